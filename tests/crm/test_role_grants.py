"""Nobody grants a role, or a right, that they do not hold themselves.

Every (granting role, granted role) pair of the built-in roles plus custom roles on both
sides goes through the services and the pages (member update, invitation). The expected
answer is computed here from the roles' permission JSON, on its own, not by asking the
policy layer that is under test. Then: nobody changes their own role, role edits cannot add
a right, widen a scope or open a field beyond the editor's own, and invitations are
re-checked when accepted."""

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from crm.models import AuditEvent, Invitation, Membership, Role
from crm.permissions import BUILTIN_ROLE_KEYS, MODULE_KEYS
from crm.services import Actor
from crm.services.members import (
    InvitationError,
    MemberError,
    invitation_accept,
    invitation_create,
    invitation_revoke,
    member_deactivate,
    member_reactivate,
    member_update,
)
from crm.services.roles import (
    role_create,
    role_rename,
    role_set_field_rule,
    role_set_permission,
    role_update_matrix,
)
from tests.factories import MembershipFactory, TeamFactory, UserFactory, member

ALL = ["access", "view", "create", "edit", "delete", "export"]


def entry(actions: str, scope: str = "all") -> dict:
    """One module of a permission JSON; letters as in the policy: v c e d x."""
    names = {"v": "view", "c": "create", "e": "edit", "d": "delete", "x": "export"}
    granted = {names[ch] for ch in actions}
    return {"access": bool(granted), **{a: a in granted for a in ALL[1:]}, "scope": scope}


# Custom roles that grant: each holds Settings edit, so each may manage members.
CUSTOM_GRANTERS = {
    # Settings rights, but only its own contacts, and some contact fields kept from it.
    "clerk": (
        {
            "settings": entry("vced"),
            "contacts": entry("ve", "own"),
            "companies": entry("v", "own"),
        },
        {"email": "hidden", "phone": "visible"},
    ),
    # A team lead who runs the team's business records and may edit members.
    "lead": (
        {
            "settings": entry("vce"),
            "contacts": entry("vcedx", "team"),
            "companies": entry("vce", "team"),
            "pipeline": entry("vce", "team"),
            "tasks": entry("vced", "team"),
            "analytics": entry("v"),
            "ai": entry("vc"),
        },
        {},
    ),
}
# Custom roles that are granted.
CUSTOM_GRANTED = {
    "nothing": ({}, {}),
    # A strict subset of the clerk (and so of the lead and the admin).
    "clerk-subset": ({"contacts": entry("v", "own")}, {"email": "hidden", "phone": "visible"}),
    # Like clerk-subset, but sees the email field the clerk may not see.
    "peeker": ({"contacts": entry("v", "own")}, {"phone": "visible"}),
    # Exports every contact: more than the clerk or the lead holds.
    "exporter": ({"contacts": entry("vx", "all")}, {}),
    # Works the team's contacts: within the lead, beyond the clerk's "own" reach.
    "team-rep": ({"contacts": entry("vce", "team")}, {}),
}
GRANTERS = [*BUILTIN_ROLE_KEYS, *CUSTOM_GRANTERS]
GRANTED = [*BUILTIN_ROLE_KEYS, *CUSTOM_GRANTED]
CATALOG_KEYS = ["email", "phone", "first_name", "city"]


@pytest.fixture
def roles(org) -> dict[str, Role]:
    """Every role of the table, built-in and custom, by key."""
    found = {r.key: r for r in Role.objects.for_org(org)}
    for key, (permissions, rules) in {**CUSTOM_GRANTERS, **CUSTOM_GRANTED}.items():
        found[key] = Role.objects.create(
            org=org,
            key=key,
            name=key.replace("-", " ").title(),
            permissions=permissions,
            field_rules=rules,
        )
    return found


# The expectation, worked out from the JSON alone -----------------------------------------
LEVEL = {"hidden": 0, "visible": 1, "editable": 2}
REACH = {"own": 0, "team": 1, "all": 2}


def is_open(module_entry) -> bool:
    return module_entry.get("access") is True and module_entry.get("view") is True


def field_level(role: Role, key: str) -> int:
    if role.is_owner:
        return LEVEL["editable"]
    contacts = role.permissions.get("contacts", {})
    if not is_open(contacts):
        return LEVEL["hidden"]
    level = LEVEL.get(role.field_rules.get(key, "editable"), LEVEL["hidden"])
    if level == LEVEL["editable"] and not (contacts.get("edit") or contacts.get("create")):
        level = LEVEL["visible"]
    return level


def holds(granter: Role, granted: Role) -> bool:
    """Whether every right of `granted` is one `granter` holds."""
    if granter.is_owner:
        return True
    for module in MODULE_KEYS:
        mine = granter.permissions.get(module, {})
        theirs = granted.permissions.get(module, {})
        if not is_open(theirs):
            continue
        if not is_open(mine):
            return False
        if any(theirs.get(a) is True and mine.get(a) is not True for a in ALL):
            return False
        if REACH[theirs.get("scope", "own")] > REACH[mine.get("scope", "own")]:
            return False
    keys = {*CATALOG_KEYS, *granter.field_rules, *granted.field_rules}
    return all(field_level(granted, k) <= field_level(granter, k) for k in keys)


def may_grant(granter: Role, granted: Role) -> bool:
    settings = granter.permissions.get("settings", {})
    if not granter.is_owner and not (is_open(settings) and settings.get("edit") is True):
        return False
    if granted.is_owner:
        return granter.is_owner
    return holds(granter, granted)


def test_the_table_has_both_answers_for_the_custom_granters(org, roles):
    """The table is only worth something if it holds allowed and refused pairs."""
    for granter in ["admin", "clerk", "lead"]:
        answers = {may_grant(roles[granter], roles[g]) for g in GRANTED}
        assert answers == {True, False}, granter
    assert may_grant(roles["clerk"], roles["clerk-subset"])
    assert not may_grant(roles["clerk"], roles["peeker"])
    assert not may_grant(roles["clerk"], roles["team-rep"])
    assert may_grant(roles["lead"], roles["team-rep"])
    assert not may_grant(roles["admin"], roles["owner"])
    assert may_grant(roles["admin"], roles["admin"])
    assert not may_grant(roles["director"], roles["client"])


# The scene: a granter, and someone holding a role every granter may grant ----------------
def scene(org, roles, granter_key):
    granter = MembershipFactory(org=org, role=roles[granter_key])
    target = MembershipFactory(org=org, role=roles["nothing"])
    return granter, target


def actor(membership):
    return Actor.for_user(membership.user)


@pytest.mark.parametrize("granted_key", GRANTED)
@pytest.mark.parametrize("granter_key", GRANTERS)
def test_member_update_service_grants_exactly_what_the_granter_holds(
    org, roles, granter_key, granted_key
):
    granter, target = scene(org, roles, granter_key)
    granted = roles[granted_key]
    expected = may_grant(roles[granter_key], granted)

    if expected:
        member_update(membership=target, actor=actor(granter), role=granted, team=None)
    else:
        with pytest.raises((PermissionDenied, MemberError)):
            member_update(membership=target, actor=actor(granter), role=granted, team=None)

    target.refresh_from_db()
    assert target.role == (granted if expected else roles["nothing"])
    updated = AuditEvent.objects.for_org(org).filter(verb="member.updated").exists()
    assert updated is (expected and granted_key != "nothing")


@pytest.mark.parametrize("granted_key", GRANTED)
@pytest.mark.parametrize("granter_key", GRANTERS)
def test_invitation_service_offers_exactly_what_the_granter_holds(
    org, roles, granter_key, granted_key
):
    granter = MembershipFactory(org=org, role=roles[granter_key])
    granted = roles[granted_key]
    expected = may_grant(roles[granter_key], granted)
    invite = {"org": org, "actor": actor(granter), "email": "new@example.test", "role": granted}

    if expected:
        invitation_create(**invite)
    else:
        with pytest.raises((PermissionDenied, MemberError)):
            invitation_create(**invite)

    assert Invitation.objects.for_org(org).filter(role=granted).exists() is expected


@pytest.mark.parametrize("granted_key", GRANTED)
@pytest.mark.parametrize("granter_key", GRANTERS)
def test_member_update_page_grants_exactly_what_the_granter_holds(
    org, roles, client_as, granter_key, granted_key
):
    granter, target = scene(org, roles, granter_key)
    granted = roles[granted_key]
    expected = may_grant(roles[granter_key], granted)

    response = client_as(granter, htmx=True).post(
        reverse("crm:member_update", args=[target.public_id]),
        {"role": str(granted.public_id), "team": ""},
    )

    target.refresh_from_db()
    assert target.role == (granted if expected else roles["nothing"])
    if expected:
        assert response.status_code == 200
    elif response.status_code == 200:
        # Refused in place: the row comes back with the reason.
        assert 'role="alert"' in response.content.decode()
    else:
        assert response.status_code == 403
        assert not roles[granter_key].permissions.get("settings", {}).get("edit")


@pytest.mark.parametrize("granted_key", GRANTED)
@pytest.mark.parametrize("granter_key", GRANTERS)
def test_invite_page_offers_exactly_what_the_granter_holds(
    org, roles, client_as, granter_key, granted_key
):
    granter = MembershipFactory(org=org, role=roles[granter_key])
    granted = roles[granted_key]
    expected = may_grant(roles[granter_key], granted)

    response = client_as(granter).post(
        reverse("crm:member_invite"),
        {"invite-email": "new@example.test", "invite-role": str(granted.public_id)},
    )

    assert Invitation.objects.for_org(org).filter(role=granted).exists() is expected
    if expected:
        assert response.status_code == 302
    elif response.status_code == 200:
        assert response.context["invite_form"].errors["role"]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("granter_key", ["admin", "clerk", "lead"])
def test_role_selects_offer_exactly_the_roles_the_member_may_grant(
    org, roles, client_as, granter_key
):
    granter, _target = scene(org, roles, granter_key)

    response = client_as(granter).get(reverse("crm:members"))

    offered = {r.key for r in response.context["role_choices"]}
    assert offered == {k for k, r in roles.items() if may_grant(roles[granter_key], r)}
    invite_choices = {
        str(value) for value, _label in response.context["invite_form"].fields["role"].choices
    }
    assert invite_choices == {str(roles[k].public_id) for k in offered}


# Nobody changes their own role ----------------------------------------------------------
@pytest.mark.parametrize("role_key", GRANTERS)
def test_nobody_changes_their_own_role(org, roles, role_key):
    other_owner = member(org, "owner")  # so "last Owner" is not what stops an Owner
    me = MembershipFactory(org=org, role=roles[role_key])
    new_role = roles["nothing"] if role_key != "nothing" else roles["viewer"]

    with pytest.raises((PermissionDenied, MemberError)):
        member_update(membership=me, actor=actor(me), role=new_role, team=None)

    me.refresh_from_db()
    assert me.role == roles[role_key]
    assert other_owner.role.key == "owner"
    assert not AuditEvent.objects.for_org(org).filter(verb="member.updated").exists()


@pytest.mark.parametrize("role_key", ["owner", "admin", "clerk", "lead"])
def test_own_row_offers_no_role_change_and_a_forged_post_is_refused(
    org, roles, client_as, role_key
):
    member(org, "owner")
    me = MembershipFactory(org=org, role=roles[role_key])
    client = client_as(me, htmx=True)

    page = client_as(me).get(reverse("crm:members")).content.decode()
    response = client.post(
        reverse("crm:member_update", args=[me.public_id]),
        {"role": str(roles["nothing"].public_id), "team": ""},
    )

    assert f'id="role-{me.public_id}"' not in page
    assert "your own role" in response.content.decode()
    me.refresh_from_db()
    assert me.role == roles[role_key]


def test_a_member_may_still_change_their_own_team(org, owner):
    team = TeamFactory(org=org, name="Inbound")

    member_update(membership=owner, actor=actor(owner), role=owner.role, team=team)

    owner.refresh_from_db()
    assert owner.team == team


# Members above you ----------------------------------------------------------------------
def test_clerk_cannot_demote_deactivate_or_reactivate_someone_whose_role_they_cannot_grant(
    org, roles
):
    clerk = MembershipFactory(org=org, role=roles["clerk"])
    admin = member(org, "admin")
    gone = member(org, "executive", is_active=False)

    with pytest.raises(PermissionDenied):
        member_update(membership=admin, actor=actor(clerk), role=roles["nothing"], team=None)
    with pytest.raises(PermissionDenied):
        member_deactivate(membership=admin, actor=actor(clerk))
    with pytest.raises(PermissionDenied):
        member_reactivate(membership=gone, actor=actor(clerk))

    admin.refresh_from_db()
    gone.refresh_from_db()
    assert (admin.role.key, admin.is_active, gone.is_active) == ("admin", True, False)


def test_member_services_refuse_an_actor_without_settings_edit(org, roles):
    director = member(org, "director")
    target = MembershipFactory(org=org, role=roles["nothing"])

    with pytest.raises(PermissionDenied):
        member_update(membership=target, actor=actor(director), role=roles["nothing"], team=None)
    with pytest.raises(PermissionDenied):
        invitation_create(
            org=org, actor=actor(director), email="x@example.test", role=roles["nothing"]
        )
    with pytest.raises(PermissionDenied):
        member_deactivate(membership=target, actor=actor(director))


def test_clerk_sees_stronger_members_rows_locked(org, roles, client_as):
    clerk = MembershipFactory(org=org, role=roles["clerk"])
    admin = member(org, "admin")
    weaker = MembershipFactory(org=org, role=roles["clerk-subset"])

    html = client_as(clerk).get(reverse("crm:members")).content.decode()

    assert f'id="role-{admin.public_id}"' not in html
    assert reverse("crm:member_deactivate", args=[admin.public_id]) not in html
    assert f'id="role-{weaker.public_id}"' in html


# Teams: a team move widens who sees whose records ----------------------------------------
def test_team_lead_may_place_a_team_scoped_role_only_in_their_own_team(org, roles):
    own_team, other_team = TeamFactory(org=org), TeamFactory(org=org)
    lead = MembershipFactory(org=org, role=roles["lead"], team=own_team)
    rep = MembershipFactory(org=org, role=roles["nothing"])

    with pytest.raises(PermissionDenied, match="team"):
        member_update(membership=rep, actor=actor(lead), role=roles["team-rep"], team=other_team)
    rep.refresh_from_db()
    assert (rep.role, rep.team) == (roles["nothing"], None)

    with pytest.raises(PermissionDenied, match="team"):
        invitation_create(
            org=org,
            actor=actor(lead),
            email="x@example.test",
            role=roles["team-rep"],
            team=other_team,
        )
    assert not Invitation.objects.for_org(org).exists()


def test_team_lead_cannot_pull_someone_into_their_team_to_see_their_records(org, roles):
    own_team = TeamFactory(org=org)
    lead = MembershipFactory(org=org, role=roles["lead"], team=own_team)
    outsider = MembershipFactory(org=org, role=roles["nothing"])

    with pytest.raises(PermissionDenied, match="team"):
        member_update(membership=outsider, actor=actor(lead), role=roles["nothing"], team=own_team)

    outsider.refresh_from_db()
    assert outsider.team is None


def test_team_lead_cannot_move_themselves_into_another_team(org, roles):
    own_team, other_team = TeamFactory(org=org), TeamFactory(org=org)
    lead = MembershipFactory(org=org, role=roles["lead"], team=own_team)

    with pytest.raises(PermissionDenied, match="team"):
        member_update(membership=lead, actor=actor(lead), role=roles["lead"], team=other_team)

    lead.refresh_from_db()
    assert lead.team == own_team


def test_admin_moves_anyone_between_teams(org, roles, members):
    team = TeamFactory(org=org)
    rep = MembershipFactory(org=org, role=roles["team-rep"])

    member_update(membership=rep, actor=actor(members["admin"]), role=rep.role, team=team)

    rep.refresh_from_db()
    assert rep.team == team


# Invitations are checked again when accepted ---------------------------------------------
def test_invitation_dies_when_the_inviter_may_no_longer_grant_its_role(org, roles, client_as):
    owner = member(org, "owner")
    admin = member(org, "admin")
    invitation = invitation_create(
        org=org, actor=actor(admin), email="kim@example.test", role=roles["admin"]
    )
    token = invitation.link.rstrip("/").rsplit("/", 1)[-1]
    member_update(membership=admin, actor=actor(owner), role=roles["viewer"], team=None)
    kim = UserFactory(email="kim@example.test")

    page = client_as(kim).get(reverse("crm:accept_invitation", args=[token]))
    with pytest.raises(InvitationError, match="no longer"):
        invitation_accept(token=token, user=kim)

    assert page.status_code == 410
    assert not Membership.objects.filter(org=org, user=kim).exists()


def test_invitation_dies_when_the_inviter_is_deactivated(org, roles):
    owner = member(org, "owner")
    admin = member(org, "admin")
    invitation = invitation_create(
        org=org, actor=actor(admin), email="kim@example.test", role=roles["viewer"]
    )
    member_deactivate(membership=admin, actor=actor(owner))
    kim = UserFactory(email="kim@example.test")

    with pytest.raises(InvitationError, match="no longer"):
        invitation_accept(token=invitation.link.rstrip("/").rsplit("/", 1)[-1], user=kim)
    assert not Membership.objects.filter(org=org, user=kim).exists()


def test_invitation_from_an_inviter_who_still_holds_the_rights_is_accepted(org, roles):
    clerk = MembershipFactory(org=org, role=roles["clerk"])
    invitation = invitation_create(
        org=org, actor=actor(clerk), email="kim@example.test", role=roles["clerk-subset"]
    )
    kim = UserFactory(email="kim@example.test")

    joined = invitation_accept(token=invitation.link.rstrip("/").rsplit("/", 1)[-1], user=kim)

    assert joined.role == roles["clerk-subset"]


def test_clerk_cannot_replace_or_withdraw_an_invitation_offering_a_stronger_role(
    org, roles, client_as
):
    admin = member(org, "admin")
    clerk = MembershipFactory(org=org, role=roles["clerk"])
    invitation = invitation_create(
        org=org, actor=actor(admin), email="kim@example.test", role=roles["admin"]
    )
    own_offer = invitation_create(
        org=org, actor=actor(clerk), email="lee@example.test", role=roles["clerk-subset"]
    )

    html = client_as(clerk).get(reverse("crm:members")).content.decode()
    assert reverse("crm:invitation_revoke", args=[invitation.public_id]) not in html
    assert reverse("crm:invitation_revoke", args=[own_offer.public_id]) in html

    with pytest.raises(PermissionDenied):
        invitation_create(
            org=org, actor=actor(clerk), email="kim@example.test", role=roles["clerk-subset"]
        )
    with pytest.raises(PermissionDenied):
        invitation_revoke(invitation=invitation, actor=actor(clerk))

    invitation.refresh_from_db()
    assert (invitation.role, invitation.status, invitation.invited_by) == (
        roles["admin"],
        "pending",
        admin.user,
    )


# Role edits -------------------------------------------------------------------------------
@pytest.fixture
def clerk(org, roles):
    return MembershipFactory(org=org, role=roles["clerk"])


def stored(role_obj):
    role_obj.refresh_from_db()
    return role_obj.permissions, role_obj.field_rules


def test_clerk_may_grant_a_right_they_hold_once_the_fields_hidden_from_them_are_hidden(
    org, roles, clerk
):
    target = roles["nothing"]
    # Opening Contacts would show the email field, which the clerk cannot see.
    with pytest.raises(ValidationError, match="contact field “email”"):
        role_set_permission(org, actor(clerk), target, "contacts", "view", True)

    role_set_field_rule(org, actor(clerk), target, "email", "hidden")
    role_set_permission(org, actor(clerk), target, "contacts", "view", True)

    assert stored(target)[0]["contacts"]["view"] is True
    assert stored(target)[1] == {"email": "hidden"}


@pytest.mark.parametrize(
    ("module", "field", "value"),
    [
        ("contacts", "export", True),  # an action the clerk lacks
        ("contacts", "delete", True),
        ("pipeline", "view", True),  # a module the clerk cannot open
        ("pipeline", "access", True),
        ("contacts", "scope", "team"),  # wider than the clerk's "own"
        ("contacts", "scope", "all"),
    ],
)
def test_role_edit_cannot_go_beyond_the_editors_rights(org, roles, clerk, module, field, value):
    target = roles["clerk-subset"]
    before = stored(target)

    with pytest.raises(ValidationError, match="your own role"):
        role_set_permission(org, actor(clerk), target, module, field, value)

    assert stored(target) == before


@pytest.mark.parametrize(
    ("field_key", "level"), [("email", "visible"), ("email", "editable"), ("phone", "editable")]
)
def test_role_edit_cannot_open_a_field_beyond_the_editors_level(
    org, roles, clerk, field_key, level
):
    target = roles["clerk-subset"]
    role_set_permission(org, Actor.system("setup"), target, "contacts", "edit", True)
    before = stored(target)

    with pytest.raises(ValidationError, match="your own role"):
        role_set_field_rule(org, actor(clerk), target, field_key, level)

    assert stored(target) == before


def test_role_edit_may_close_a_field(org, roles, clerk):
    role_set_field_rule(org, actor(clerk), roles["clerk-subset"], "city", "hidden")

    assert stored(roles["clerk-subset"])[1]["city"] == "hidden"


def test_permission_htmx_refusal_answers_with_the_row_and_saves_nothing(
    org, roles, clerk, client_as
):
    target = roles["clerk-subset"]

    response = client_as(clerk, htmx=True).post(
        reverse("crm:role_permission", args=[target.public_id]),
        {"module": "contacts", "field": "export", "value": "true"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith('<tr id="perm-row-contacts"')
    assert "your own role" in html
    assert stored(target)[0]["contacts"].get("export") is not True


def test_field_rule_htmx_refusal_saves_nothing(org, roles, clerk, client_as):
    target = roles["clerk-subset"]

    response = client_as(clerk, htmx=True).post(
        reverse("crm:role_field_rule", args=[target.public_id]),
        {"field_key": "email", "level": "visible"},
    )

    assert "your own role" in response.content.decode()
    assert stored(target)[1]["email"] == "hidden"


def test_whole_matrix_with_one_refused_part_saves_nothing(org, roles, clerk):
    target = roles["nothing"]
    permissions = {
        "contacts": {"access": True, "view": True, "scope": "own"},  # allowed
        "companies": {"access": True, "view": True, "export": True, "scope": "own"},  # not
    }

    with pytest.raises(ValidationError, match="export on Companies"):
        role_update_matrix(org, actor(clerk), target, permissions, {"city": "hidden"})

    assert stored(target) == ({}, {})


def test_matrix_page_disables_what_the_editor_cannot_grant(org, roles, clerk, client_as):
    html = (
        client_as(clerk)
        .get(reverse("crm:role_detail", args=[roles["clerk-subset"].public_id]))
        .content.decode()
    )

    assert re.search(r'id="perm-contacts-export"[^>]*\bdisabled\b', html)
    assert re.search(r'id="perm-pipeline-access"[^>]*\bdisabled\b', html)
    assert not re.search(r'id="perm-contacts-edit"[^>]*\bdisabled\b', html)
    assert re.search(r'<option value="all"[^>]*\bdisabled\b', html)
    assert re.search(r'id="fld-email-visible"[^>]*\bdisabled\b', html)
    assert not re.search(r'id="fld-city-hidden"[^>]*\bdisabled\b', html)


@pytest.mark.parametrize("role_key", ["admin", "clerk", "lead"])
def test_nobody_edits_the_role_they_hold(org, roles, role_key, client_as):
    me = MembershipFactory(org=org, role=roles[role_key])
    own = roles[role_key]
    before = stored(own)

    with pytest.raises(ValidationError, match="your own role"):
        role_set_permission(org, actor(me), own, "settings", "delete", False)
    with pytest.raises(ValidationError, match="your own role"):
        role_set_field_rule(org, actor(me), own, "city", "hidden")
    with pytest.raises(ValidationError, match="your own role"):
        role_update_matrix(org, actor(me), own, {"contacts": {"access": False}})
    page = client_as(me).get(reverse("crm:role_detail", args=[own.public_id]))

    assert stored(own) == before
    assert "hx-post" not in page.content.decode()
    assert "your own role" in page.content.decode()


def test_nobody_but_an_owner_edits_a_role_stronger_than_theirs(org, roles, clerk):
    admin_role = roles["admin"]
    before = stored(admin_role)

    # Even taking rights away: it would demote the people above the editor.
    with pytest.raises(ValidationError, match="rights your own role"):
        role_set_permission(org, actor(clerk), admin_role, "contacts", "export", False)
    with pytest.raises(ValidationError, match="rights your own role"):
        role_rename(org, actor(clerk), roles["exporter"], "Mine now")

    assert stored(admin_role) == before


def test_copy_from_cannot_mint_a_role_beyond_the_copier(org, roles, clerk):
    for stronger in ["admin", "owner", "exporter", "peeker"]:
        with pytest.raises(ValidationError) as refused:
            role_create(org, actor(clerk), f"Copy of {stronger}", copy_from=roles[stronger])
        assert "copy_from" in refused.value.message_dict
    copy = role_create(org, actor(clerk), "Copy of subset", copy_from=roles["clerk-subset"])

    copies = Role.objects.for_org(org).filter(name__startswith="Copy of ")
    assert list(copies.values_list("name", flat=True)) == ["Copy of subset"]
    assert copy.field_rules == {"email": "hidden", "phone": "visible"}


def test_copy_from_select_offers_only_roles_within_the_copier(org, roles, clerk, client_as):
    response = client_as(clerk).get(reverse("crm:roles"))

    offered = {
        str(value)
        for value, _label in response.context["form"].fields["copy_from"].choices
        if value
    }
    expected = {
        str(r.public_id)
        for r in Role.objects.for_org(org)
        if not r.is_owner and holds(roles["clerk"], r)
    }
    assert offered == expected
    assert str(roles["admin"].public_id) not in offered


def test_copy_from_refusal_is_shown_in_place(org, roles, clerk, client_as):
    response = client_as(clerk).post(
        reverse("crm:roles"), {"name": "Escape", "copy_from": str(roles["admin"].public_id)}
    )

    assert response.status_code == 200
    assert "your own role" in response.content.decode()
    assert not Role.objects.for_org(org).filter(name="Escape").exists()
