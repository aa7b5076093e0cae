"""Settings → Roles & Permissions: the services and the pages."""

import json
import re
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from crm.models import AuditEvent, Invitation, Membership, OutboxEvent, Role
from crm.permissions import ACTIONS, MODULE_KEYS, Policy, normalize_permissions
from crm.services import Actor
from crm.services import roles as role_services
from crm.services.roles import (
    role_create,
    role_delete,
    role_rename,
    role_set_field_rule,
    role_set_permission,
    role_update_matrix,
)
from tests.factories import member, role

FAKE_CATALOG = [
    ("email", "Email", "Core"),
    ("phone", "Phone", "Core"),
    ("city", "City", "Address"),
]


class ReadOnlySpec:
    """Stands in for a catalog entry the CRM fills in itself (not editable by anyone)."""

    key, label, group, editable = "lead_score", "Lead score", "Core", False


@pytest.fixture
def catalog(monkeypatch):
    """A fixed contact field catalog, so these tests don't move with the contacts app."""
    entries = [*FAKE_CATALOG, ReadOnlySpec()]

    def fake(org):
        return [
            (e.key, e.label, e.group, e.editable) if isinstance(e, ReadOnlySpec) else (*e, True)
            for e in entries
        ]

    monkeypatch.setattr(role_services, "field_catalog", fake)
    return entries


@pytest.fixture
def admin(members):
    return members["admin"]


def actor(membership):
    return Actor.for_user(membership.user)


def perms(role_obj):
    role_obj.refresh_from_db()
    return normalize_permissions(role_obj.permissions)


def permission_url(role_obj):
    return reverse("crm:role_permission", args=[role_obj.public_id])


def toasts(response):
    return json.loads(response["HX-Trigger"])["toast"]


def custom_role(org, name, permissions=None):
    """A custom role straight in the database, for setting up a scene."""
    return Role.objects.create(
        org=org, key=name.lower().replace(" ", "-"), name=name, permissions=permissions or {}
    )


# Instant saves through HTMX -------------------------------------------------------------
def test_admin_turns_on_export_via_htmx_and_gets_the_row_back(org, admin, client_as):
    team = role(org, "team")
    client = client_as(admin, htmx=True)

    response = client.post(
        permission_url(team), {"module": "contacts", "field": "export", "contacts-export": "on"}
    )

    assert response.status_code == 200
    assert perms(team)["contacts"]["export"] is True
    html = response.content.decode()
    assert html.strip().startswith('<tr id="perm-row-contacts"')
    assert re.search(r'id="perm-contacts-export"[^>]*\bchecked\b', html)
    assert toasts(response)[0]["level"] == "success"
    assert toasts(response)[0]["text"].startswith("Saved")


def test_permission_change_is_audited_with_before_and_after_and_emits_role_updated(
    org, admin, client_as
):
    team = role(org, "team")

    client_as(admin, htmx=True).post(
        permission_url(team), {"module": "contacts", "field": "export", "contacts-export": "on"}
    )

    event = AuditEvent.objects.for_org(org).get(verb="role.permissions_changed")
    assert event.object_id == str(team.public_id)
    assert event.actor_user == admin.user
    assert event.changes == {"contacts.export": [False, True]}
    outbox = OutboxEvent.objects.for_org(org).get(event_type="role.updated")
    assert outbox.payload["role"] == str(team.public_id)
    assert outbox.payload["changes"] == {"contacts.export": [False, True]}


def test_unticking_a_checkbox_turns_the_action_off(org, admin, client_as):
    team = role(org, "team")

    client_as(admin, htmx=True).post(permission_url(team), {"module": "contacts", "field": "edit"})

    assert perms(team)["contacts"]["edit"] is False
    assert perms(team)["contacts"]["view"] is True


def test_turning_access_off_turns_every_action_off(org, admin, client_as):
    director = role(org, "director")

    response = client_as(admin, htmx=True).post(
        permission_url(director), {"module": "contacts", "field": "access"}
    )

    entry = perms(director)["contacts"]
    assert entry["access"] is False
    assert not any(entry[a] for a in ACTIONS)
    assert not re.search(r'id="perm-contacts-edit"[^>]*\bchecked\b', response.content.decode())


def test_turning_an_action_on_turns_access_and_view_on(org, admin, client_as):
    board = role(org, "board")

    response = client_as(admin, htmx=True).post(
        permission_url(board), {"module": "contacts", "field": "delete", "contacts-delete": "on"}
    )

    entry = perms(board)["contacts"]
    assert (entry["access"], entry["view"], entry["delete"]) == (True, True, True)
    assert entry["create"] is False
    html = response.content.decode()
    for control in ("access", "view", "delete"):
        assert re.search(rf'id="perm-contacts-{control}"[^>]*\bchecked\b', html), control


def test_scope_select_saves_the_record_scope(org, admin, client_as):
    team = role(org, "team")

    client_as(admin, htmx=True).post(
        permission_url(team), {"module": "pipeline", "field": "scope", "pipeline-scope": "team"}
    )

    assert perms(team)["pipeline"]["scope"] == "team"


def test_invalid_module_or_scope_is_refused_and_changes_nothing(org, admin):
    team = role(org, "team")
    before = perms(team)

    with pytest.raises(ValidationError, match="Unknown module"):
        role_set_permission(org, actor(admin), team, "payroll", "view", True)
    with pytest.raises(ValidationError, match="Unknown record scope"):
        role_set_permission(org, actor(admin), team, "contacts", "scope", "galaxy")
    with pytest.raises(ValidationError, match="Unknown permission"):
        role_set_permission(org, actor(admin), team, "contacts", "approve", True)
    with pytest.raises(ValidationError, match="on or off"):
        role_set_permission(org, actor(admin), team, "contacts", "edit", "yes")

    assert perms(team) == before
    assert not AuditEvent.objects.for_org(org).filter(object_type="role").exists()


def test_saving_the_same_value_again_records_nothing(org, admin):
    team = role(org, "team")

    role_set_permission(org, actor(admin), team, "contacts", "view", True)

    assert not AuditEvent.objects.for_org(org).filter(object_type="role").exists()
    assert not OutboxEvent.objects.for_org(org).filter(event_type="role.updated").exists()


def test_change_takes_effect_for_the_roles_members(org, admin, members):
    support = role(org, "support")

    role_set_permission(org, actor(admin), support, "pipeline", "view", True)

    holder = Membership.objects.select_related("role").get(pk=members["support"].pk)
    assert Policy(holder).can("pipeline", "view") is True


# The Owner role and self-lockout ---------------------------------------------------------
def test_owner_role_cannot_be_changed(org, owner):
    owner_role = role(org, "owner")
    before = owner_role.permissions

    with pytest.raises(ValidationError, match="Owner role"):
        role_set_permission(org, actor(owner), owner_role, "contacts", "delete", False)
    with pytest.raises(ValidationError, match="Owner role"):
        role_set_field_rule(org, actor(owner), owner_role, "email", "hidden")

    owner_role.refresh_from_db()
    assert owner_role.permissions == before
    assert owner_role.field_rules == {}


def test_owner_role_post_gets_its_row_back_unchanged_with_an_error(org, owner, client_as):
    owner_role = role(org, "owner")

    response = client_as(owner, htmx=True).post(
        permission_url(owner_role), {"module": "contacts", "field": "delete"}
    )

    assert response.status_code == 200
    assert "cannot be changed" in response.content.decode()
    assert toasts(response)[0]["level"] == "error"
    assert perms(owner_role)["contacts"]["delete"] is True


def test_owner_role_page_is_read_only_with_an_explanation(org, owner, client_as):
    response = client_as(owner).get(reverse("crm:role_detail", args=[role(org, "owner").public_id]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "This role can't be changed" in html
    assert "hx-post" not in html
    assert 'id="perm-contacts-edit"' in html and "disabled" in html


@pytest.mark.parametrize("field", ["access", "view", "edit"])
def test_admin_cannot_remove_settings_access_or_edit_from_own_role(org, admin, field):
    admin_role = role(org, "admin")

    with pytest.raises(ValidationError, match="your own role"):
        role_set_permission(org, actor(admin), admin_role, "settings", field, False)

    assert perms(admin_role)["settings"][field] is True


def test_admin_may_not_change_other_parts_of_own_role_either(org, admin):
    """Nobody sets their own rights (it used to be allowed for all but Settings)."""
    admin_role = role(org, "admin")

    with pytest.raises(ValidationError, match="your own role"):
        role_set_permission(org, actor(admin), admin_role, "contacts", "export", False)

    assert perms(admin_role)["contacts"]["export"] is True


def test_owner_may_remove_settings_from_the_admin_role(org, owner):
    admin_role = role(org, "admin")

    role_set_permission(org, actor(owner), admin_role, "settings", "access", False)

    assert perms(admin_role)["settings"]["access"] is False


def test_own_role_via_htmx_is_refused_and_its_page_is_read_only(org, admin, client_as):
    admin_role = role(org, "admin")
    client = client_as(admin, htmx=True)

    response = client.post(permission_url(admin_role), {"module": "settings", "field": "edit"})
    page = client_as(admin).get(reverse("crm:role_detail", args=[admin_role.public_id]))

    assert "your own role" in response.content.decode()
    assert perms(admin_role)["settings"]["edit"] is True
    html = page.content.decode()
    assert "your own role" in html
    assert re.search(r'id="perm-settings-edit"[^>]*\bdisabled\b', html)
    assert re.search(r'id="perm-contacts-edit"[^>]*\bdisabled\b', html)
    assert "hx-post" not in html


def test_member_cannot_grant_a_right_their_own_role_lacks(org):
    settings_admin = custom_role(
        org,
        "Settings admin",
        {"settings": {m: True for m in ["access", *ACTIONS]} | {"scope": "own"}},
    )
    person = member(org, "viewer")
    Membership.objects.filter(pk=person.pk).update(role=settings_admin)
    empty = custom_role(org, "Empty")
    team = role(org, "team")

    with pytest.raises(ValidationError, match="your own role doesn't have it"):
        role_set_permission(org, actor(person), empty, "contacts", "export", True)
    # A scope on a closed module grants nothing; opening the module with it would.
    role_set_permission(org, actor(person), empty, "settings", "scope", "all")
    with pytest.raises(ValidationError, match="wider record scope"):
        role_set_permission(org, actor(person), empty, "settings", "view", True)
    # Team already has rights this member lacks, so they may not change it at all.
    with pytest.raises(ValidationError, match="rights your own role doesn't have"):
        role_set_permission(org, actor(person), team, "contacts", "export", True)

    assert perms(empty)["contacts"]["export"] is False
    assert perms(empty)["settings"]["view"] is False
    assert perms(team)["contacts"]["export"] is False


def test_service_refuses_a_member_without_settings_edit(org, members):
    with pytest.raises(PermissionDenied):
        role_set_permission(org, actor(members["viewer"]), role(org, "team"), "ai", "view", True)


# Field visibility -----------------------------------------------------------------------
def test_admin_hides_a_field_via_htmx_and_it_is_saved_and_audited(org, admin, client_as, catalog):
    team = role(org, "team")

    response = client_as(admin, htmx=True).post(
        reverse("crm:role_field_rule", args=[team.public_id]),
        {"field_key": "email", "field-email": "hidden"},
    )

    team.refresh_from_db()
    assert team.field_rules == {"email": "hidden"}
    html = response.content.decode()
    assert html.strip().startswith('<tr id="field-row-fld-email"')
    assert re.search(r'id="fld-email-hidden"[^>]*\bchecked\b', html)
    event = AuditEvent.objects.for_org(org).get(verb="role.field_rules_changed")
    assert event.changes == {"fields.email": ["editable", "hidden"]}
    assert OutboxEvent.objects.for_org(org).filter(event_type="role.updated").count() == 1


def test_field_rule_refuses_unknown_fields_and_levels(org, admin, catalog):
    team = role(org, "team")

    with pytest.raises(ValidationError, match="Unknown contact field"):
        role_set_field_rule(org, actor(admin), team, "salary", "hidden")
    with pytest.raises(ValidationError, match="editable, visible or hidden"):
        role_set_field_rule(org, actor(admin), team, "email", "secret")
    with pytest.raises(ValidationError, match="filled in by the CRM"):
        role_set_field_rule(org, actor(admin), team, "lead_score", "editable")

    team.refresh_from_db()
    assert team.field_rules == {}


def test_unknown_field_via_htmx_answers_400_with_an_error_toast(org, admin, client_as, catalog):
    response = client_as(admin, htmx=True).post(
        reverse("crm:role_field_rule", args=[role(org, "team").public_id]),
        {"field_key": "salary", "level": "hidden"},
    )

    assert response.status_code == 400
    assert "Unknown contact field" in toasts(response)[0]["text"]


def test_field_rule_takes_effect_in_the_policy(org, admin, members, catalog):
    role_set_field_rule(org, actor(admin), role(org, "team"), "phone", "visible")

    holder = Membership.objects.select_related("role").get(pk=members["team"].pk)
    assert Policy(holder).field_level("phone") == "visible"
    assert Policy(holder).field_level("email") == "editable"


def test_field_catalog_lists_the_contact_fields(org):
    keys = [key for key, _label, _group, _editable in role_services.field_catalog(org)]

    assert "email" in keys and "first_name" in keys
    assert len(keys) == len(set(keys))


# The whole form without JavaScript ------------------------------------------------------
def _matrix_post(role_obj, changes=None, rules=None):
    """The form as a browser sends it: every ticked box, every select, every radio."""
    data = {}
    for module, entry in normalize_permissions(role_obj.permissions).items():
        for field in ["access", *ACTIONS]:
            if entry[field]:
                data[f"{module}-{field}"] = "on"
        data[f"{module}-scope"] = entry["scope"]
    for key, value in (changes or {}).items():
        if value is False:
            data.pop(key, None)
        else:
            data[key] = value
    for key, level in (rules or {}).items():
        data[f"field-{key}"] = level
    return data


def test_whole_matrix_form_saves_without_javascript(org, admin, client_as, catalog):
    team = role(org, "team")
    data = _matrix_post(
        team,
        {"contacts-export": "on", "ai-access": False, "tasks-scope": "team"},
        {"email": "visible", "phone": "editable"},
    )

    response = client_as(admin).post(reverse("crm:role_detail", args=[team.public_id]), data)

    assert response.status_code == 302
    after = perms(team)
    assert after["contacts"]["export"] is True
    assert after["ai"]["access"] is False and after["ai"]["create"] is False
    assert after["tasks"]["scope"] == "team"
    assert team.field_rules == {"email": "visible", "phone": "editable"}
    event = AuditEvent.objects.for_org(org).get(object_type="role")
    assert event.changes["contacts.export"] == [False, True]
    assert event.changes["ai.access"] == [True, False]
    assert event.changes["fields.email"] == ["editable", "visible"]
    assert "fields.phone" not in event.changes


def test_whole_matrix_new_action_opens_a_closed_module(org, admin, catalog):
    board = role(org, "board")
    data = _matrix_post(board, {"contacts-edit": "on"})
    submitted = {
        m: {f: f"{m}-{f}" in data for f in ["access", *ACTIONS]} | {"scope": data[f"{m}-scope"]}
        for m in MODULE_KEYS
    }

    role_update_matrix(org, actor(admin), board, submitted)

    entry = perms(board)["contacts"]
    assert (entry["access"], entry["view"], entry["edit"]) == (True, True, True)


def test_whole_matrix_refusal_saves_none_of_it(org, client_as, catalog):
    clerk_role = custom_role(
        org,
        "Clerk",
        {
            "settings": {"access": True, "view": True, "edit": True, "scope": "all"},
            "contacts": {"access": True, "view": True, "edit": True, "scope": "all"},
        },
    )
    clerk = member(org, "viewer")
    Membership.objects.filter(pk=clerk.pk).update(role=clerk_role)
    target = custom_role(org, "Reader", {"contacts": {"access": True, "view": True}})
    data = _matrix_post(target, {"contacts-edit": "on", "contacts-export": "on"})
    submitted = {
        m: {f: f"{m}-{f}" in data for f in ["access", *ACTIONS]} | {"scope": data[f"{m}-scope"]}
        for m in MODULE_KEYS
    }

    with pytest.raises(ValidationError, match="export on Contacts"):
        role_update_matrix(org, actor(clerk), target, submitted)

    assert perms(target)["contacts"]["edit"] is False
    # The page leaves the export box disabled: a browser does not send it, so the rest saves.
    response = client_as(clerk).post(reverse("crm:role_detail", args=[target.public_id]), data)
    assert response.status_code == 302
    assert perms(target)["contacts"]["edit"] is True
    assert perms(target)["contacts"]["export"] is False


# Custom roles ---------------------------------------------------------------------------
def test_create_custom_role_starts_closed_and_is_audited(org, admin):
    created = role_create(org, actor(admin), "  Sales   Ops ")

    assert (created.name, created.key, created.is_builtin) == ("Sales Ops", "sales-ops", False)
    assert not any(e["access"] for e in perms(created).values())
    event = AuditEvent.objects.for_org(org).get(verb="role.created")
    assert event.changes["name"] == [None, "Sales Ops"]
    assert OutboxEvent.objects.for_org(org).get(event_type="role.updated").payload["change"] == (
        "created"
    )


def test_create_refuses_a_name_taken_in_any_case(org, admin):
    with pytest.raises(ValidationError) as refused:
        role_create(org, actor(admin), "ADMIN")

    assert "already a role called" in refused.value.message_dict["name"][0]


def test_create_refuses_an_empty_or_long_name(org, admin):
    with pytest.raises(ValidationError, match="Give the role a name"):
        role_create(org, actor(admin), "   ")
    with pytest.raises(ValidationError, match="80 characters"):
        role_create(org, actor(admin), "x" * 81)


def test_create_gives_a_unique_key_when_names_slugify_alike(org, admin):
    first = role_create(org, actor(admin), "Sales Ops")
    second = role_create(org, actor(admin), "Sales-Ops")
    third = role_create(org, actor(admin), "¿¿¿")

    assert (first.key, second.key, third.key) == ("sales-ops", "sales-ops-2", "role")


def test_same_name_is_fine_in_another_org(org, other_org, admin):
    other_admin = member(other_org, "admin")
    role_create(org, actor(admin), "Field sales")

    created = role_create(other_org, actor(other_admin), "Field sales")

    assert created.org == other_org


def test_create_copies_permissions_and_field_rules(org, admin):
    team = role(org, "team")
    Role.objects.filter(pk=team.pk).update(field_rules={"email": "hidden"})
    team.refresh_from_db()

    copy = role_create(org, actor(admin), "Senior rep", copy_from=team)

    assert perms(copy) == perms(team)
    assert copy.field_rules == {"email": "hidden"}
    event = AuditEvent.objects.for_org(org).get(verb="role.created")
    assert event.changes["copied_from"] == [None, "Team"]


def test_copy_of_the_owner_gets_every_right_but_is_changeable(org, owner):
    copy = role_create(org, actor(owner), "Deputy", copy_from=role(org, "owner"))

    assert all(perms(copy)[m][a] for m in MODULE_KEYS for a in ACTIONS)
    role_set_permission(org, actor(owner), copy, "developer", "access", False)
    assert perms(copy)["developer"]["access"] is False


def test_create_refuses_copying_a_role_of_another_org(org, other_org, admin):
    with pytest.raises(ValidationError) as refused:
        role_create(org, actor(admin), "Spy", copy_from=role(other_org, "admin"))

    assert "copy_from" in refused.value.message_dict


def test_rename_custom_role_is_audited(org, admin):
    created = role_create(org, actor(admin), "Sales Ops")

    role_rename(org, actor(admin), created, "Revenue Ops", description="Runs the tooling")

    created.refresh_from_db()
    assert (created.name, created.description, created.key) == (
        "Revenue Ops",
        "Runs the tooling",
        "sales-ops",
    )
    event = AuditEvent.objects.for_org(org).get(verb="role.renamed")
    assert event.changes["name"] == ["Sales Ops", "Revenue Ops"]


def test_rename_refuses_builtin_roles_and_taken_names(org, admin):
    created = role_create(org, actor(admin), "Sales Ops")

    with pytest.raises(ValidationError, match="Built-in roles keep their names"):
        role_rename(org, actor(admin), role(org, "team"), "Reps")
    with pytest.raises(ValidationError, match="already a role called"):
        role_rename(org, actor(admin), created, "viewer")

    assert role(org, "team").name == "Team"


def test_delete_is_refused_while_members_hold_the_role_with_the_count(org, admin):
    created = role_create(org, actor(admin), "Sales Ops")
    for _ in range(2):
        Membership.objects.filter(pk=member(org, "viewer").pk).update(role=created)

    with pytest.raises(ValidationError, match="2 members hold this role"):
        role_delete(org, actor(admin), created)

    assert Role.objects.filter(pk=created.pk).exists()


def test_delete_counts_deactivated_holders_too(org, admin):
    created = role_create(org, actor(admin), "Sales Ops")
    gone = member(org, "viewer", is_active=False)
    Membership.objects.filter(pk=gone.pk).update(role=created)

    with pytest.raises(ValidationError, match="1 member holds this role"):
        role_delete(org, actor(admin), created)


def test_delete_is_refused_while_an_invitation_offers_the_role(org, admin):
    created = role_create(org, actor(admin), "Sales Ops")
    Invitation.objects.create(
        org=org,
        email="new@example.test",
        role=created,
        token_hash="a" * 64,
        expires_at=timezone.now() + timedelta(days=3),
    )

    with pytest.raises(ValidationError, match="1 pending invitation"):
        role_delete(org, actor(admin), created)


def test_delete_unused_custom_role_removes_spent_invitations_and_is_audited(org, admin):
    created = role_create(org, actor(admin), "Sales Ops")
    Invitation.objects.create(
        org=org,
        email="old@example.test",
        role=created,
        token_hash="b" * 64,
        expires_at=timezone.now() - timedelta(days=1),
    )

    role_delete(org, actor(admin), created)

    assert not Role.objects.filter(pk=created.pk).exists()
    assert not Invitation.objects.filter(email="old@example.test").exists()
    event = AuditEvent.objects.for_org(org).get(verb="role.deleted")
    assert event.object_id == str(created.public_id)
    assert event.changes["name"] == ["Sales Ops", None]
    assert event.changes["spent_invitations_removed"] == [1, 0]


def test_builtin_roles_cannot_be_deleted(org, admin):
    with pytest.raises(ValidationError, match="Built-in roles cannot be deleted"):
        role_delete(org, actor(admin), role(org, "client"))


# Pages ----------------------------------------------------------------------------------
def test_roles_page_lists_roles_with_member_counts(org, members, client_as):
    member(org, "viewer")

    response = client_as(members["admin"]).get(reverse("crm:roles"))

    html = response.content.decode()
    assert response.status_code == 200
    viewer_row = re.search(r">Viewer</a></th>.*?</tr>", html, re.S).group(0)
    assert "<td>2</td>" in viewer_row
    assert 'name="copy_from"' in html


def test_new_role_form_creates_a_copy_and_opens_it(org, admin, client_as):
    support = role(org, "support")

    response = client_as(admin).post(
        reverse("crm:roles"), {"name": "Support lead", "copy_from": str(support.public_id)}
    )

    created = Role.objects.for_org(org).get(name="Support lead")
    assert response.status_code == 302
    assert response["Location"] == reverse("crm:role_detail", args=[created.public_id])
    assert perms(created) == perms(support)


def test_new_role_form_shows_errors_in_place(org, admin, client_as):
    response = client_as(admin).post(reverse("crm:roles"), {"name": "director", "copy_from": ""})

    assert response.status_code == 200
    assert "There is already a role called" in response.content.decode()
    assert Role.objects.for_org(org).count() == 10


def test_matrix_page_labels_every_control_with_module_and_action(org, admin, client_as, catalog):
    team = role(org, "team")

    html = client_as(admin).get(reverse("crm:role_detail", args=[team.public_id])).content.decode()

    for module, label in [("contacts", "Contacts"), ("developer", "Developer")]:
        for action in ACTIONS:
            assert (
                f'<label class="visually-hidden" for="perm-{module}-{action}">{label}: {action}'
                in html
            )
        assert f'for="perm-{module}-access">{label}: access' in html
        assert f'for="perm-{module}-scope">{label}: records' in html
    assert 'for="fld-email-hidden">Email: hidden' in html
    assert 'id="fld-lead-score-editable"' not in html
    assert html.count('id="perm-row-') == 11


def test_rename_form_renames_and_errors_stay_on_the_page(org, admin, client_as):
    created = role_create(org, actor(admin), "Sales Ops")
    url = reverse("crm:role_rename", args=[created.public_id])
    client = client_as(admin)

    refused = client.post(url, {"name": "Admin", "description": ""})
    renamed = client.post(url, {"name": "Revenue Ops", "description": ""})

    assert refused.status_code == 200
    assert "There is already a role called" in refused.content.decode()
    assert renamed.status_code == 302
    created.refresh_from_db()
    assert created.name == "Revenue Ops"


def test_delete_page_confirms_then_deletes(org, admin, client_as):
    created = role_create(org, actor(admin), "Sales Ops")
    url = reverse("crm:role_delete", args=[created.public_id])
    client = client_as(admin)

    confirm = client.get(url)
    deleted = client.post(url)

    assert confirm.status_code == 200 and "Delete role" in confirm.content.decode()
    assert deleted.status_code == 302 and deleted["Location"] == reverse("crm:roles")
    assert not Role.objects.filter(pk=created.pk).exists()


def test_delete_page_shows_why_a_role_in_use_stays(org, admin, client_as):
    created = role_create(org, actor(admin), "Sales Ops")
    Membership.objects.filter(pk=member(org, "viewer").pk).update(role=created)

    response = client_as(admin).post(reverse("crm:role_delete", args=[created.public_id]))

    assert response.status_code == 200
    assert "1 member holds this role" in response.content.decode()
    assert Role.objects.filter(pk=created.pk).exists()


def test_get_on_a_save_endpoint_leads_back_to_the_role(org, admin, client_as):
    team = role(org, "team")

    response = client_as(admin).get(permission_url(team))

    assert response.status_code == 302
    assert response["Location"] == reverse("crm:role_detail", args=[team.public_id])


# Access -----------------------------------------------------------------------------------
def test_viewer_gets_403_on_the_roles_pages_and_forged_posts(org, members, client_as):
    team = role(org, "team")
    client = client_as(members["viewer"], htmx=True)

    assert client.get(reverse("crm:roles")).status_code == 403
    post = client.post(
        permission_url(team), {"module": "contacts", "field": "export", "contacts-export": "on"}
    )
    assert post.status_code == 403
    assert client.post(reverse("crm:roles"), {"name": "Mine"}).status_code == 403
    assert perms(team)["contacts"]["export"] is False


def test_settings_viewer_sees_the_matrix_read_only_and_cannot_post(org, members, client_as):
    looker = custom_role(
        org, "Settings viewer", {"settings": {"access": True, "view": True, "scope": "all"}}
    )
    person = members["viewer"]
    Membership.objects.filter(pk=person.pk).update(role=looker)
    team = role(org, "team")
    client = client_as(person)

    page = client.get(reverse("crm:role_detail", args=[team.public_id]))
    forged = client.post(permission_url(team), {"module": "contacts", "field": "view"})
    forged_matrix = client.post(reverse("crm:role_detail", args=[team.public_id]), {})

    assert page.status_code == 200
    assert "hx-post" not in page.content.decode()
    assert "needs the right to edit Settings" in page.content.decode()
    assert forged.status_code == 403 and forged_matrix.status_code == 403
    assert perms(team)["contacts"]["view"] is True


def test_other_orgs_role_is_404(org, other_org, admin, client_as):
    foreign = role(other_org, "team")
    client = client_as(admin, htmx=True)

    for name in ["role_detail", "role_permission", "role_field_rule", "role_rename", "role_delete"]:
        url = reverse(f"crm:{name}", args=[foreign.public_id])
        assert client.get(url).status_code == 404, name
        assert client.post(url, {"module": "contacts", "field": "view"}).status_code == 404, name
    assert perms(foreign)["contacts"]["view"] is True
