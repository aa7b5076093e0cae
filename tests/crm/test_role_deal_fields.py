"""Deal field rules in Settings → Roles & Permissions.

The pipeline app registers its deal fields with crm.fields_registry; a role's field rules
store them as "deal.<key>". An admin hides or locks a deal field like a contact field, only
known keys and levels are taken, and nobody opens a deal field wider than their own role has
it (rights_beyond counts deal rules as well as contact rules)."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.fields_registry import field_rule_section, field_rule_sections, section_of_rule_key
from crm.models import AuditEvent, Role
from crm.permissions import Policy
from crm.services import Actor
from crm.services import roles as role_services
from crm.services.roles import role_set_field_rule, role_set_permission, role_update_matrix
from pipeline.fields import DEAL_RULE_KEYS
from tests.factories import MembershipFactory, member, role


def entry(actions: str, scope: str = "all") -> dict:
    names = {"v": "view", "c": "create", "e": "edit", "d": "delete", "x": "export"}
    granted = {names[ch] for ch in actions}
    return {
        "access": bool(granted),
        **{a: a in granted for a in ["view", "create", "edit", "delete", "export"]},
        "scope": scope,
    }


def actor(membership):
    return Actor.for_user(membership.user)


def make_role(org, key, permissions, rules=None) -> Role:
    return Role.objects.create(
        org=org, key=key, name=key.title(), permissions=permissions, field_rules=rules or {}
    )


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def seller(org):
    """A custom role that works deals but may not change or see a deal's value."""
    return make_role(org, "seller", {"pipeline": entry("vce")})


@pytest.fixture
def clerk(org):
    """Manages roles (Settings edit) and works deals, but the value is hidden from them and the
    probability only visible."""
    clerk_role = make_role(
        org,
        "clerk",
        {"settings": entry("vce"), "pipeline": entry("vce")},
        {"deal.value": "hidden", "deal.probability": "visible"},
    )
    return MembershipFactory(org=org, role=clerk_role)


# The catalog ----------------------------------------------------------------------------------
def test_deal_fields_are_registered_after_the_contact_fields(org):
    modules = [section.module for section in field_rule_sections()]
    assert modules[:2] == ["contacts", "pipeline"]
    catalogs = {module: fields for module, _title, fields in role_services.rule_catalogs(org)}
    assert [key for key, *_ in catalogs["pipeline"]] == [f"deal.{k}" for k in DEAL_RULE_KEYS]
    assert all(editable for *_, editable in catalogs["pipeline"])
    assert "email" in {key for key, *_ in catalogs["contacts"]}
    assert section_of_rule_key("deal.value") is field_rule_section("pipeline")
    # A contact custom field keeps its own prefix and stays a contact field.
    assert section_of_rule_key("custom.tier") is field_rule_section("contacts")


# Services ---------------------------------------------------------------------------------------
def test_admin_hides_and_locks_deal_fields(org, admin, seller):
    role_set_field_rule(org, actor(admin), seller, "deal.value", "hidden")
    role_set_field_rule(org, actor(admin), seller, "deal.probability", "visible")

    seller.refresh_from_db()
    assert seller.field_rules == {"deal.value": "hidden", "deal.probability": "visible"}
    policy = Policy.for_role(seller)
    assert not policy.can_see_field("value", "pipeline")
    assert policy.can_see_field("probability", "pipeline")
    assert not policy.can_edit_field("probability", "pipeline")
    assert policy.can_edit_field("owner", "pipeline")
    changes = [e.changes for e in AuditEvent.objects.for_org(org).filter(verb__startswith="role.")]
    assert {"fields.deal.value": ["editable", "hidden"]} in changes


def test_deal_rules_and_contact_rules_do_not_mix(org, admin, seller):
    seller.permissions = {**seller.permissions, "contacts": entry("vce")}
    seller.save()
    role_set_field_rule(org, actor(admin), seller, "deal.owner", "hidden")
    role_set_field_rule(org, actor(admin), seller, "source", "visible")

    seller.refresh_from_db()
    policy = Policy.for_role(seller)
    assert not policy.can_see_field("owner", "pipeline")
    assert policy.can_edit_field("owner", "contacts")
    assert policy.can_edit_field("source", "pipeline")
    assert not policy.can_edit_field("source", "contacts")


@pytest.mark.parametrize(
    ("key", "level", "message"),
    [
        ("deal.bogus", "hidden", "Unknown deal field “bogus”"),
        ("deal.title", "hidden", "Unknown deal field “title”"),
        ("deal.", "hidden", "Unknown deal field “”"),
        ("bogus", "hidden", "Unknown contact field “bogus”"),
        ("deal.value", "secret", "Choose editable, visible or hidden for Value"),
        ("deal.value", "", "Choose editable, visible or hidden for Value"),
    ],
)
def test_only_known_deal_keys_and_levels_are_taken(org, admin, seller, key, level, message):
    with pytest.raises(ValidationError, match=message):
        role_set_field_rule(org, actor(admin), seller, key, level)
    seller.refresh_from_db()
    assert seller.field_rules == {}


def test_the_whole_matrix_refuses_an_unknown_deal_key_and_saves_nothing(org, admin, seller):
    with pytest.raises(ValidationError, match="Unknown deal field"):
        role_update_matrix(
            org,
            actor(admin),
            seller,
            {"pipeline": {**entry("vced")}},
            {"deal.value": "hidden", "deal.nope": "hidden"},
        )
    seller.refresh_from_db()
    assert seller.field_rules == {}
    assert seller.permissions["pipeline"]["delete"] is False


# Nobody grants a deal field level they do not hold ---------------------------------------------
def test_rights_beyond_counts_deal_field_rules(org, clerk, seller):
    beyond = Policy(clerk).rights_beyond(seller)
    assert "edit access to the deal field “value”" in beyond
    assert "edit access to the deal field “probability”" in beyond
    assert not any("contact field" in phrase for phrase in beyond)
    assert "deal field" in Policy(clerk).grant_refusal(seller)


def test_a_deal_field_hidden_from_the_member_is_not_theirs_to_open(org, clerk, seller):
    # The seller role already sees the value, which the clerk does not: not theirs to change.
    with pytest.raises(ValidationError, match="rights your own role doesn't have"):
        role_set_field_rule(org, actor(clerk), seller, "deal.owner", "hidden")

    # A role within the clerk's own rights may not be opened past them either.
    within = make_role(
        org,
        "within",
        {"pipeline": entry("vce")},
        {"deal.value": "hidden", "deal.probability": "visible"},
    )
    with pytest.raises(ValidationError, match="deal field “value”"):
        role_set_field_rule(org, actor(clerk), within, "deal.value", "visible")
    with pytest.raises(ValidationError, match="deal field “probability”"):
        role_set_field_rule(org, actor(clerk), within, "deal.probability", "editable")
    within.refresh_from_db()
    assert within.field_rules == {"deal.value": "hidden", "deal.probability": "visible"}

    # Closing fields, and keeping what they hold, is theirs to do.
    role_set_field_rule(org, actor(clerk), within, "deal.owner", "visible")
    within.refresh_from_db()
    assert within.field_rules["deal.owner"] == "visible"


def test_opening_pipeline_on_a_role_would_show_a_hidden_deal_field(org, clerk):
    empty = make_role(org, "empty", {})
    with pytest.raises(ValidationError, match="deal field “value”"):
        role_set_permission(org, actor(clerk), empty, "pipeline", "view", True)
    # Hide the value first, keep the probability no more than visible: then it may.
    role_set_field_rule(org, actor(clerk), empty, "deal.value", "hidden")
    role_set_field_rule(org, actor(clerk), empty, "deal.probability", "visible")
    role_set_permission(org, actor(clerk), empty, "pipeline", "view", True)
    empty.refresh_from_db()
    assert empty.permissions["pipeline"]["view"] is True


def test_a_clerk_may_not_hand_out_a_role_that_sees_the_value(org, clerk):
    deal_viewer = make_role(org, "deal-viewer", {"pipeline": entry("v")})
    assert "deal field “value”" in Policy(clerk).grant_refusal(deal_viewer)
    assert not Policy(member(org, "admin")).grant_refusal(deal_viewer)
    assert not Policy(member(org, "admin")).grant_refusal(role(org, "viewer"))
    deal_viewer.field_rules = {"deal.value": "hidden"}
    deal_viewer.save()
    assert Policy(clerk).grant_refusal(deal_viewer) == ""


# The page -------------------------------------------------------------------------------------
def test_role_page_has_a_deal_fields_section(org, admin, seller, client_as):
    seller.field_rules = {"deal.value": "hidden"}
    seller.save()

    html = client_as(admin).get(reverse("crm:role_detail", args=[seller.public_id])).content
    html = html.decode()

    assert '<h2 id="pipeline-fields-heading">Deal fields</h2>' in html
    assert '<h2 id="fields-heading">Contact fields</h2>' in html
    for key in DEAL_RULE_KEYS:
        assert f'name="field-deal.{key}"' in html
    assert re.search(r'id="fld-deal--value-hidden"[^>]*\bchecked\b', html)
    assert re.search(r'id="fld-deal--owner-editable"[^>]*\bchecked\b', html)
    assert 'for="fld-deal--value-hidden">Value: hidden' in html
    # The seller can't open Contacts: its contact section says so, the deal one does not.
    assert "This role can't open Contacts" in html
    assert "This role can't open Pipeline" not in html


def test_role_page_greys_deal_levels_the_member_does_not_hold(org, clerk, client_as):
    within = make_role(org, "within", {"pipeline": entry("v")}, {"deal.value": "hidden"})

    html = client_as(clerk).get(reverse("crm:role_detail", args=[within.public_id])).content
    html = html.decode()

    assert re.search(r'id="fld-deal--value-visible"[^>]*\bdisabled\b', html)
    assert re.search(r'id="fld-deal--value-editable"[^>]*\bdisabled\b', html)
    assert not re.search(r'id="fld-deal--owner-hidden"[^>]*\bdisabled\b', html)
    assert 'id="grant-note"' in html
    assert "can't create or edit deals" in html


def test_htmx_post_saves_a_deal_field_and_answers_with_its_row(org, admin, seller, client_as):
    response = client_as(admin, htmx=True).post(
        reverse("crm:role_field_rule", args=[seller.public_id]),
        {"field_key": "deal.value", "field-deal.value": "hidden"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert html.strip().startswith('<tr id="field-row-fld-deal--value"')
    assert re.search(r'id="fld-deal--value-hidden"[^>]*\bchecked\b', html)
    seller.refresh_from_db()
    assert seller.field_rules == {"deal.value": "hidden"}


def test_htmx_post_of_an_unknown_deal_field_is_refused(org, admin, seller, client_as):
    response = client_as(admin, htmx=True).post(
        reverse("crm:role_field_rule", args=[seller.public_id]),
        {"field_key": "deal.nope", "level": "hidden"},
    )

    assert response.status_code == 400
    seller.refresh_from_db()
    assert seller.field_rules == {}


def test_plain_form_saves_deal_fields_with_the_matrix(org, admin, seller, client_as):
    data = {"pipeline-access": "on", "pipeline-view": "on", "pipeline-scope": "all"}
    data.update({"field-deal.value": "visible", "field-deal.source": "hidden"})

    response = client_as(admin).post(reverse("crm:role_detail", args=[seller.public_id]), data)

    assert response.status_code == 302
    seller.refresh_from_db()
    assert seller.field_rules == {"deal.value": "visible", "deal.source": "hidden"}
    assert seller.permissions["pipeline"]["edit"] is False


def test_plain_form_refusal_shows_the_reason_and_saves_nothing(org, clerk, client_as):
    within = make_role(
        org,
        "within",
        {"pipeline": entry("vce")},
        {"deal.value": "hidden", "deal.probability": "visible"},
    )
    data = {
        "pipeline-access": "on",
        "pipeline-view": "on",
        "pipeline-create": "on",
        "pipeline-edit": "on",
        "pipeline-scope": "all",
        "field-deal.value": "hidden",
        "field-deal.probability": "editable",
    }

    response = client_as(clerk).post(reverse("crm:role_detail", args=[within.public_id]), data)

    assert response.status_code == 200
    assert "You can&#x27;t grant edit access to the deal field “probability”" in (
        response.content.decode()
    )
    within.refresh_from_db()
    assert within.field_rules == {"deal.value": "hidden", "deal.probability": "visible"}
