"""The policy's named questions ("is this member a contacts admin?", "may they share smart
views?"), answered for every built-in role.

Written out by hand: a role default that changes one of these answers must fail here."""

import pytest

from crm.permissions import BUILTIN_ROLE_KEYS, Policy
from tests.factories import SmartViewFactory, member

CONTACT_ADMINS = {"owner", "admin", "executive", "support"}  # edit contacts, scope "all"
SETTINGS_ADMINS = {"owner", "admin"}
VIEW_SHARERS = {"owner", "admin", "executive", "director", "team", "support", "partner"}


@pytest.mark.parametrize("role_key", BUILTIN_ROLE_KEYS)
def test_each_role_answers_the_admin_questions(org, role_key):
    policy = Policy(member(org, role_key))
    assert policy.is_contact_admin() is (role_key in CONTACT_ADMINS)
    assert policy.is_settings_admin() is (role_key in SETTINGS_ADMINS)
    assert policy.can_share_views() is (role_key in VIEW_SHARERS)


def test_a_director_edits_contacts_but_only_their_teams_so_is_no_contact_admin(org):
    policy = Policy(member(org, "director"))
    assert policy.can("contacts", "edit")
    assert not policy.is_contact_admin()


def test_a_member_manages_their_own_views_and_settings_admins_the_shared_ones(org):
    author = member(org, "team")
    mine = SmartViewFactory(org=org, owner=author.user, is_shared=False)
    shared_by_other = SmartViewFactory(org=org, owner=member(org, "team").user, is_shared=True)
    private_of_other = SmartViewFactory(org=org, owner=member(org, "team").user, is_shared=False)
    rep, admin = Policy(author), Policy(member(org, "admin"))
    assert rep.can_manage_view(mine)
    assert not rep.can_manage_view(shared_by_other)
    assert admin.can_manage_view(shared_by_other)
    assert not admin.can_manage_view(private_of_other)


def test_no_membership_manages_no_view(org):
    view = SmartViewFactory(org=org, is_shared=True)
    assert not Policy(None).can_manage_view(view)
