"""Settings → Members: the list, inline role/team changes, deactivation and reactivation,
the Owner rules, teams, and the audit trail of each."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from contacts.models import Contact
from crm.models import AuditEvent, Membership, OutboxEvent, Team
from crm.services import Actor
from crm.services.members import (
    MemberError,
    member_deactivate,
    member_reactivate,
    member_update,
    team_create,
    team_rename,
)
from tests.factories import (
    MembershipFactory,
    TeamFactory,
    custom_role,
    member,
    pending_invitation,
    role,
)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def as_actor(membership):
    return Actor.for_user(membership.user)


# The page ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_members_page_lists_people_invitations_and_teams(client_as, members, org):
    TeamFactory(org=org, name="Enterprise")
    pending_invitation(org, "waiting@example.test")
    member_deactivate(membership=members["viewer"], actor=as_actor(members["owner"]))

    response = client_as(members["admin"]).get(reverse("crm:members"))

    assert response.status_code == 200
    html = response.content.decode()
    for m in members.values():
        assert m.user.email in html
    assert "waiting@example.test" in html
    assert "Enterprise" in html
    assert "Deactivated" in html
    assert response.context["active_count"] == 9
    assert response.context["inactive_count"] == 1


@pytest.mark.parametrize("role_key", ["team", "viewer", "director", "client"])
@pytest.mark.django_db
def test_roles_without_settings_rights_get_403(client_as, org, role_key):
    someone = member(org, role_key)

    assert client_as(someone).get(reverse("crm:members")).status_code == 403


@pytest.mark.django_db
def test_members_page_query_count_does_not_grow_with_members(
    client_as, org, owner, django_assert_max_num_queries
):
    client = client_as(owner)
    for _ in range(2):
        member(org, "team", team=TeamFactory(org=org))
    with django_assert_max_num_queries(40) as few:
        client.get(reverse("crm:members"))
    for _ in range(12):
        member(org, "team", team=TeamFactory(org=org))
    pending_invitation(org)

    with django_assert_max_num_queries(len(few.captured_queries) + 2):
        client.get(reverse("crm:members"))


@pytest.mark.django_db
def test_non_owner_sees_owner_rows_locked_and_no_owner_choice(client_as, members):
    response = client_as(members["admin"]).get(reverse("crm:members"))

    html = response.content.decode()
    owner_id = members["owner"].public_id
    assert f'id="role-{owner_id}"' not in html
    assert reverse("crm:member_deactivate", args=[owner_id]) not in html
    assert all(not r.is_owner for r in response.context["role_choices"])


@pytest.mark.django_db
def test_dashboard_shows_member_figures_to_settings_roles_only(client_as, members, org):
    pending_invitation(org)

    admin_figures = client_as(members["admin"]).get(reverse("crm:dashboard")).context["widgets"]
    team_figures = client_as(members["team"]).get(reverse("crm:dashboard")).context["widgets"]

    by_label = {w["label"]: w["value"] for w in admin_figures}
    assert by_label["Active members"] == 10
    assert by_label["Pending invitations"] == 1
    assert "Active members" not in {w["label"] for w in team_figures}


# Inline role and team ------------------------------------------------------------------------


@pytest.mark.django_db
def test_inline_change_of_role_and_team_returns_the_row_and_is_audited(client_as, members, org):
    team = TeamFactory(org=org, name="Field sales")
    target = members["viewer"]

    response = client_as(members["admin"], htmx=True).post(
        reverse("crm:member_update", args=[target.public_id]),
        {"role": str(role(org, "support").public_id), "team": str(team.public_id)},
    )

    assert response.status_code == 200
    assert f'id="member-{target.public_id}"' in response.content.decode()
    assert "toast" in response["HX-Trigger"]
    target.refresh_from_db()
    assert (target.role.key, target.team) == ("support", team)
    event = AuditEvent.objects.get(org=org, verb="member.updated")
    assert event.changes == {"role": ["Viewer", "Support"], "team": [None, "Field sales"]}
    assert event.actor_user == members["admin"].user
    assert OutboxEvent.objects.filter(org=org, event_type="member.updated").exists()


@pytest.mark.django_db
def test_forged_owner_grant_by_admin_changes_nothing(client_as, members, org):
    target = members["viewer"]

    response = client_as(members["admin"], htmx=True).post(
        reverse("crm:member_update", args=[target.public_id]),
        {"role": str(role(org, "owner").public_id), "team": ""},
    )

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    target.refresh_from_db()
    assert target.role.key == "viewer"
    with pytest.raises(PermissionDenied):
        member_update(
            membership=target, actor=as_actor(members["admin"]), role=role(org, "owner"), team=None
        )
    assert not AuditEvent.objects.filter(org=org, verb="member.updated").exists()


@pytest.mark.django_db
def test_admin_cannot_take_the_owner_role_away(members, org):
    with pytest.raises(PermissionDenied):
        member_update(
            membership=members["owner"],
            actor=as_actor(members["admin"]),
            role=role(org, "admin"),
            team=None,
        )
    members["owner"].refresh_from_db()
    assert members["owner"].role.key == "owner"


@pytest.mark.django_db
def test_owner_can_make_another_owner_who_can_then_move_the_first_to_admin(members, org):
    owner, admin = members["owner"], members["admin"]

    member_update(membership=admin, actor=as_actor(owner), role=role(org, "owner"), team=None)
    # Nobody changes their own role, an Owner included: the new Owner does it.
    with pytest.raises(MemberError, match="your own role"):
        member_update(membership=owner, actor=as_actor(owner), role=role(org, "admin"), team=None)
    member_update(membership=owner, actor=as_actor(admin), role=role(org, "admin"), team=None)

    owner.refresh_from_db()
    admin.refresh_from_db()
    assert admin.role.key == "owner" and owner.role.key == "admin"
    assert AuditEvent.objects.filter(org=org, verb="member.updated").count() == 2


@pytest.mark.django_db
def test_last_owner_cannot_step_down(owner, org):
    with pytest.raises(MemberError, match="last active Owner"):
        member_update(membership=owner, actor=as_actor(owner), role=role(org, "admin"), team=None)
    owner.refresh_from_db()
    assert owner.role.key == "owner"


@pytest.mark.django_db
def test_a_deactivated_owner_does_not_count_as_the_other_owner(owner, org):
    second = member(org, "owner")
    member_deactivate(membership=second, actor=as_actor(owner))

    with pytest.raises(MemberError, match="last active Owner"):
        member_update(membership=owner, actor=as_actor(owner), role=role(org, "admin"), team=None)


@pytest.mark.django_db
def test_unchanged_update_records_nothing(members, org):
    target = members["viewer"]

    member_update(membership=target, actor=as_actor(members["admin"]), role=target.role, team=None)

    assert not AuditEvent.objects.filter(org=org, verb="member.updated").exists()


@pytest.mark.django_db
def test_updating_a_member_of_another_org_is_404(client_as, owner, other_org):
    stranger = member(other_org, "viewer")

    response = client_as(owner).post(
        reverse("crm:member_update", args=[stranger.public_id]),
        {"role": str(role(other_org, "admin").public_id)},
    )

    assert response.status_code == 404
    stranger.refresh_from_db()
    assert stranger.role.key == "viewer"


# Deactivation --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deactivation_asks_first_then_closes_the_door_and_keeps_owned_data(client_as, members, org):
    target = members["team"]
    contact = Contact.objects.create(org=org, first_name="Pat", owner=target.user)
    client = client_as(members["admin"])
    url = reverse("crm:member_deactivate", args=[target.public_id])

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Deactivate" in confirm.content.decode()
    target.refresh_from_db()
    assert target.is_active

    response = client.post(url)

    assert response["Location"] == reverse("crm:members")
    target.refresh_from_db()
    assert not target.is_active and target.deactivated_at is not None
    contact.refresh_from_db()
    assert contact.owner == target.user
    event = AuditEvent.objects.get(org=org, verb="member.deactivated")
    assert event.changes["is_active"] == [True, False]
    assert event.object_id == str(target.public_id)
    assert OutboxEvent.objects.filter(org=org, event_type="member.deactivated").exists()
    # They cannot get in any more.
    assert client_as(target.user).get(reverse("crm:dashboard"))["Location"] == reverse(
        "crm:no_access"
    )


@pytest.mark.django_db
def test_htmx_confirm_step_swaps_the_row(client_as, members):
    target = members["support"]
    client = client_as(members["admin"], htmx=True)

    confirm = client.get(reverse("crm:member_deactivate", args=[target.public_id]))
    done = client.post(reverse("crm:member_deactivate", args=[target.public_id]))

    assert "They lose access at once" in confirm.content.decode()
    assert confirm.content.decode().lstrip().startswith("<tr")
    assert "Deactivated" in done.content.decode()
    target.refresh_from_db()
    assert not target.is_active


@pytest.mark.django_db
def test_cannot_deactivate_yourself(client_as, members):
    admin = members["admin"]

    client_as(admin).post(reverse("crm:member_deactivate", args=[admin.public_id]))

    admin.refresh_from_db()
    assert admin.is_active
    with pytest.raises(MemberError, match="yourself"):
        member_deactivate(membership=admin, actor=as_actor(admin))


@pytest.mark.django_db
def test_last_owner_cannot_be_deactivated(owner, org):
    with pytest.raises(MemberError, match="last active Owner"):
        member_deactivate(membership=owner, actor=Actor.system("cleanup"))
    owner.refresh_from_db()
    assert owner.is_active
    assert not AuditEvent.objects.filter(org=org, verb="member.deactivated").exists()


@pytest.mark.django_db
def test_admin_cannot_deactivate_an_owner(members):
    with pytest.raises(PermissionDenied):
        member_deactivate(membership=members["owner"], actor=as_actor(members["admin"]))


@pytest.mark.django_db
def test_owner_can_deactivate_another_owner(owner, org):
    second = member(org, "owner")

    member_deactivate(membership=second, actor=as_actor(owner))

    second.refresh_from_db()
    assert not second.is_active


@pytest.mark.django_db
def test_reactivation_gives_access_back_and_is_audited(client_as, members, org):
    target = members["team"]
    member_deactivate(membership=target, actor=as_actor(members["owner"]))

    client_as(members["admin"]).post(reverse("crm:member_reactivate", args=[target.public_id]))

    target.refresh_from_db()
    assert target.is_active and target.deactivated_at is None
    assert AuditEvent.objects.filter(org=org, verb="member.reactivated").exists()
    assert client_as(target.user).get(reverse("crm:dashboard")).status_code == 200


@pytest.mark.django_db
def test_reactivating_an_active_member_is_refused(members):
    with pytest.raises(MemberError, match="already active"):
        member_reactivate(membership=members["team"], actor=as_actor(members["owner"]))


@pytest.mark.django_db
def test_team_role_cannot_deactivate_by_forged_post(client_as, members):
    target = members["viewer"]

    response = client_as(members["team"]).post(
        reverse("crm:member_deactivate", args=[target.public_id])
    )

    assert response.status_code == 403
    target.refresh_from_db()
    assert target.is_active


@pytest.mark.django_db
def test_deactivating_a_member_of_another_org_is_404(client_as, owner, other_org):
    stranger = member(other_org, "viewer")
    url = reverse("crm:member_deactivate", args=[stranger.public_id])

    assert client_as(owner).get(url).status_code == 404
    assert client_as(owner).post(url).status_code == 404
    stranger.refresh_from_db()
    assert stranger.is_active


# Teams ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_adding_and_renaming_a_team_is_audited(client_as, owner, org):
    client = client_as(owner)

    client.post(reverse("crm:team_create"), {"team-name": "  Inside sales "})
    team = Team.objects.get(org=org)
    client.post(reverse("crm:team_rename", args=[team.public_id]), {"name": "Inbound"})

    team.refresh_from_db()
    assert team.name == "Inbound"
    created = AuditEvent.objects.get(org=org, verb="team.created")
    assert created.changes == {"name": [None, "Inside sales"]}
    renamed = AuditEvent.objects.get(org=org, verb="team.renamed")
    assert renamed.changes == {"name": ["Inside sales", "Inbound"]}


@pytest.mark.django_db
def test_duplicate_team_name_shows_error_in_place(client_as, owner, org):
    TeamFactory(org=org, name="Inbound")

    response = client_as(owner).post(reverse("crm:team_create"), {"team-name": "inbound"})

    assert response.status_code == 200
    assert "already a team called" in response.content.decode()
    assert Team.objects.for_org(org).count() == 1


@pytest.mark.django_db
def test_team_names_are_per_org(org, other_org, owner):
    TeamFactory(org=other_org, name="Inbound")

    team = team_create(org=org, actor=as_actor(owner), name="Inbound")

    assert team.org == org


@pytest.mark.django_db
def test_renaming_to_an_empty_name_is_refused(org, owner):
    team = TeamFactory(org=org, name="Inbound")

    with pytest.raises(MemberError):
        team_rename(team=team, actor=as_actor(owner), name="   ")
    team.refresh_from_db()
    assert team.name == "Inbound"


@pytest.mark.django_db
def test_renaming_a_team_of_another_org_is_404(client_as, owner, other_org):
    team = TeamFactory(org=other_org, name="Theirs")

    response = client_as(owner).post(
        reverse("crm:team_rename", args=[team.public_id]), {"name": "Ours"}
    )

    assert response.status_code == 404
    team.refresh_from_db()
    assert team.name == "Theirs"


@pytest.mark.django_db
def test_deactivated_member_is_not_counted_in_team(client_as, owner, org):
    team = TeamFactory(org=org, name="Inbound")
    leaving = member(org, "team", team=team)
    member(org, "team", team=team)
    member_deactivate(membership=leaving, actor=as_actor(owner))

    response = client_as(owner).get(reverse("crm:members"))

    counts = {t.name: t.member_count for t in response.context["teams"]}
    assert counts["Inbound"] == 1
    assert Membership.objects.filter(team=team).count() == 2


@pytest.mark.django_db
def test_settings_viewer_sees_the_list_without_any_controls(client_as, org, members):
    auditor_role = custom_role(org, permissions={"settings": {"access": True, "view": True}})
    auditor = MembershipFactory(org=org, role=auditor_role)
    client = client_as(auditor)

    page = client.get(reverse("crm:members"))
    forged = client.post(reverse("crm:member_deactivate", args=[members["viewer"].public_id]))

    assert page.status_code == 200
    html = page.content.decode()
    assert members["viewer"].user.email in html
    assert "Send invitation" not in html
    assert "/deactivate/" not in html
    assert "<select" not in html
    assert "Add team" not in html
    assert forged.status_code == 403
