import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from contacts.custom_fields import (
    apply_custom_values,
    clean_definition,
    coerce_custom_value,
    display_custom_value,
)
from contacts.models import CustomFieldDefinition
from tests.factories import CustomFieldDefinitionFactory

FieldType = CustomFieldDefinition.FieldType


def definition(field_type, **kwargs):
    """An unsaved definition: coercion needs no database."""
    return CustomFieldDefinition(
        key=kwargs.pop("key", "f"),
        label=kwargs.pop("label", "Field"),
        field_type=field_type,
        **kwargs,
    )


# Coercing values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_type", "raw", "stored"),
    [
        (FieldType.TEXT, "  hello ", "hello"),
        (FieldType.NUMBER, "1,250", 1250),
        (FieldType.NUMBER, "2.5", 2.5),
        (FieldType.CURRENCY, "$ 99.999", 100.0),
        (FieldType.CURRENCY, "19.90", 19.9),
        (FieldType.PERCENT, "15 %", 15),
        (FieldType.LINK, "acme.com/pricing", "https://acme.com/pricing"),
        (FieldType.DATE, "2026-03-01", "2026-03-01"),
        (FieldType.DATE, dt.date(2026, 3, 1), "2026-03-01"),
        (FieldType.CHECKBOX, "yes", True),
        (FieldType.CHECKBOX, False, False),
    ],
)
def test_values_are_coerced_to_their_stored_form(field_type, raw, stored):
    assert coerce_custom_value(definition(field_type), raw) == stored


def test_list_value_takes_the_spelling_of_the_choice():
    field = definition(FieldType.LIST, choices=["Gold", "Silver"])
    assert coerce_custom_value(field, "gold") == "Gold"


def test_empty_value_means_not_set():
    assert coerce_custom_value(definition(FieldType.NUMBER), "  ") is None


@pytest.mark.parametrize(
    ("field_type", "raw", "message"),
    [
        (FieldType.NUMBER, "twelve", "is not a number"),
        (FieldType.PERCENT, "150", "between 0 and 100"),
        (FieldType.DATE, "01/03/2026", "use YYYY-MM-DD"),
        (FieldType.LINK, "not a link", "is not a web address"),
        (FieldType.CHECKBOX, "maybe", "must be yes or no"),
    ],
)
def test_bad_values_get_a_message_for_the_person_typing(field_type, raw, message):
    with pytest.raises(ValidationError) as exc:
        coerce_custom_value(definition(field_type), raw)
    assert message in exc.value.messages[0]


def test_list_value_outside_the_choices_names_the_choices():
    field = definition(FieldType.LIST, label="Tier", choices=["Gold", "Silver"])
    with pytest.raises(ValidationError) as exc:
        coerce_custom_value(field, "Bronze")
    assert "not one of the choices for Tier (Gold, Silver)" in exc.value.messages[0]


def test_regex_mismatch_shows_the_admins_message():
    field = definition(
        FieldType.TEXT, regex=r"[A-Z]{2}-\d{4}", regex_message="Use the form AB-1234."
    )
    assert coerce_custom_value(field, "AB-1234") == "AB-1234"
    with pytest.raises(ValidationError) as exc:
        coerce_custom_value(field, "ab-12345")
    assert exc.value.messages == ["Use the form AB-1234."]


def test_regex_must_match_the_whole_value():
    field = definition(FieldType.TEXT, regex=r"\d+", regex_message="Digits only.")
    with pytest.raises(ValidationError):
        coerce_custom_value(field, "123abc")


def test_apply_merges_removes_and_reports_each_bad_key():
    budget = definition(FieldType.NUMBER, key="budget", label="Budget")
    tier = definition(FieldType.LIST, key="tier", label="Tier", choices=["Gold"])
    merged = apply_custom_values(
        {"budget": 5, "old": "kept"},
        {"budget": budget, "tier": tier},
        {"budget": "", "tier": "gold"},
    )
    assert merged == {"old": "kept", "tier": "Gold"}

    with pytest.raises(ValidationError) as exc:
        apply_custom_values({}, {"budget": budget}, {"budget": "x", "nope": 1})
    assert set(exc.value.message_dict) == {"budget", "nope"}


def test_display_formats_currency_percent_and_checkbox():
    assert (
        display_custom_value(definition(FieldType.CURRENCY, currency="EUR"), 1234.5)
        == "1,234.50 EUR"
    )
    assert display_custom_value(definition(FieldType.PERCENT), 15) == "15%"
    assert display_custom_value(definition(FieldType.CHECKBOX), False) == "No"


# Definitions -----------------------------------------------------------------------------


def clean(org, **kwargs):
    args = {
        "entity": "contact",
        "key": "contract_value",
        "label": "Contract value",
        "field_type": "number",
    }
    args.update(kwargs)
    return clean_definition(org=org, **args)


def test_valid_definition_is_cleaned(org):
    cleaned = clean(org, key=" Contract_Value ", field_type="currency")
    assert cleaned["key"] == "contract_value"
    assert cleaned["currency"] == org.base_currency


@pytest.mark.parametrize(
    "key", ["email", "first_name", "owner", "domain", "industry", "lead_score", "custom"]
)
def test_key_cannot_clash_with_a_standard_field(org, key):
    with pytest.raises(ValidationError) as exc:
        clean(org, key=key)
    assert "is a standard field" in exc.value.message_dict["key"][0]


@pytest.mark.parametrize("key", ["1st", "has-dash", "two__underscores", "spaces here", "x" * 61])
def test_key_must_be_a_simple_slug(org, key):
    with pytest.raises(ValidationError) as exc:
        clean(org, key=key)
    assert "key" in exc.value.message_dict


def test_key_must_be_unique_per_entity(org, other_org):
    CustomFieldDefinitionFactory(org=org, key="tier")
    with pytest.raises(ValidationError) as exc:
        clean(org, key="tier")
    assert "already a field" in exc.value.message_dict["key"][0]
    assert clean(org, key="tier", entity="company")["key"] == "tier"
    assert clean(other_org, key="tier")["key"] == "tier"


def test_list_needs_choices(org):
    with pytest.raises(ValidationError) as exc:
        clean(org, field_type="list", choices="")
    assert "at least one choice" in exc.value.message_dict["choices"][0]
    assert clean(org, field_type="list", choices="Gold\nSilver\ngold\n")["choices"] == [
        "Gold",
        "Silver",
    ]


def test_regex_must_compile(org):
    with pytest.raises(ValidationError) as exc:
        clean(org, field_type="text", regex="([a-z")
    assert "does not compile" in exc.value.message_dict["regex"][0]


def test_regex_only_applies_to_text_and_link_fields(org):
    with pytest.raises(ValidationError) as exc:
        clean(org, field_type="number", regex=r"\d+")
    assert "regex" in exc.value.message_dict


def test_key_and_type_are_fixed_once_created(org):
    existing = CustomFieldDefinitionFactory(org=org, key="tier", field_type="text")
    with pytest.raises(ValidationError) as exc:
        clean(org, key="other", field_type="number", instance=existing)
    assert set(exc.value.message_dict) == {"key", "field_type"}


# Settings → Custom fields ------------------------------------------------------------------

SETTINGS = "/contacts/settings/fields/"


def test_admin_adds_a_field_from_settings(client_as, owner):
    response = client_as(owner).post(
        reverse("contacts:custom_field_create"),
        {
            "entity": "contact",
            "label": "Account code",
            "key": "account_code",
            "field_type": "text",
            "regex": r"[A-Z]{2}-\d{4}",
            "regex_message": "Use AB-1234.",
        },
    )

    assert response.status_code == 302
    field = CustomFieldDefinition.objects.for_org(owner.org).get()
    assert (field.key, field.regex_message) == ("account_code", "Use AB-1234.")
    assert "Account code" in client_as(owner).get(SETTINGS).content.decode()


def test_clashing_key_is_shown_on_the_form(client_as, owner):
    response = client_as(owner).post(
        reverse("contacts:custom_field_create"),
        {"entity": "contact", "label": "E-mail", "key": "email", "field_type": "text"},
    )
    assert response.status_code == 200
    assert "“email” is a standard field" in response.content.decode()
    assert not CustomFieldDefinition.objects.for_org(owner.org).exists()


def test_turning_a_field_off_hides_it_from_the_contact_form(client_as, owner):
    field = CustomFieldDefinitionFactory(org=owner.org, key="tier", label="Account tier")
    client = client_as(owner)
    assert "Account tier" in client.get(reverse("contacts:contact_create")).content.decode()

    # follow: the confirmation toast (which names the field) is shown on the settings page
    client.post(
        reverse("contacts:custom_field_deactivate", kwargs={"public_id": field.public_id}),
        follow=True,
    )

    assert "Account tier" not in client.get(reverse("contacts:contact_create")).content.decode()
    client.post(reverse("contacts:custom_field_reactivate", kwargs={"public_id": field.public_id}))
    field.refresh_from_db()
    assert field.is_active


def test_settings_nav_links_to_custom_fields_for_admins_only(client_as, members):
    assert SETTINGS in client_as(members["admin"]).get("/").content.decode()
    assert SETTINGS not in client_as(members["team"]).get("/").content.decode()


@pytest.mark.parametrize("role_key", ["executive", "team", "viewer"])
def test_non_admins_cannot_reach_custom_field_settings(client_as, members, role_key):
    client = client_as(members[role_key])
    assert client.get(SETTINGS).status_code == 403
    create = reverse("contacts:custom_field_create")
    assert client.post(create, {"label": "X", "key": "x", "field_type": "text"}).status_code == 403


def test_deal_fields_are_set_up_beside_contact_and_company_fields(client_as, owner):
    """Settings → Custom fields has a Deal section; a deal field then checks deal values."""
    from crm.services import Actor
    from pipeline.services.deals import deal_create

    response = client_as(owner).post(
        reverse("contacts:custom_field_create"),
        {"entity": "deal", "label": "Contract term", "key": "term_months", "field_type": "number"},
    )
    assert response.status_code == 302
    page = client_as(owner).get(SETTINGS).content.decode()
    assert "Deal fields" in page and "Contract term" in page
    with pytest.raises(ValidationError) as exc:
        deal_create(
            org=owner.org,
            actor=Actor.for_user(owner.user),
            data={"title": "Renewal", "custom": {"term_months": "twelve"}},
        )
    assert "custom.term_months" in exc.value.message_dict
    deal = deal_create(
        org=owner.org,
        actor=Actor.for_user(owner.user),
        data={"title": "Renewal", "custom": {"term_months": "12"}},
    )
    assert deal.custom == {"term_months": 12}
