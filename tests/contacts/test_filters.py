"""The smart-view filter language: every operator of every field type compiled against real
rows, dates across timezones, custom fields in JSONB, and clear messages for bad input."""

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.fields import contact_field_catalog
from contacts.filters import (
    MAX_CONDITIONS,
    MAX_GROUPS,
    FilterError,
    compile_condition,
    compile_filters,
    describe_filters,
    parse_condition,
    parse_filters,
)
from contacts.models import Contact
from crm.permissions import Policy
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    MembershipFactory,
    TagFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=dt.UTC)


def spec(*groups):
    """spec([cond, cond], [cond]) -> the JSON shape; a condition is (field, op[, value])."""
    out = []
    for group in groups:
        conditions = []
        for condition in group:
            field, op, *value = condition
            item = {"field": field, "op": op}
            if value:
                item["value"] = value[0]
            conditions.append(item)
        out.append({"conditions": conditions})
    return {"groups": out}


def one(field, op, *value):
    return spec([(field, op, *value)])


def names(org, filters, *, tz="UTC", now=NOW, user=None) -> set[str]:
    catalog = contact_field_catalog(org)
    q = compile_filters(filters, catalog, tz=tz, now=now, org=org, user=user)
    return set(Contact.objects.for_org(org).filter(q).values_list("first_name", flat=True))


def created(contact, moment):
    Contact.objects.filter(pk=contact.pk).update(created_at=moment)


# Text-like standard fields ----------------------------------------------------------------


@pytest.fixture
def people(org):
    ContactFactory(org=org, first_name="Ann", job_title="VP Sales", email="ann@acme.example")
    ContactFactory(org=org, first_name="Bob", job_title="Engineer", email="bob@initech.example")
    ContactFactory(org=org, first_name="Cid", job_title="", email="")
    return org


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "vp sales", {"Ann"}),
        ("neq", "VP Sales", {"Bob", "Cid"}),
        ("contains", "sal", {"Ann"}),
        ("starts_with", "eng", {"Bob"}),
        ("any_of", ["engineer", "VP SALES"], {"Ann", "Bob"}),
    ],
)
def test_text_operators_ignore_case(people, op, value, expected):
    assert names(people, one("job_title", op, value)) == expected


def test_text_is_empty_and_is_not_empty(people):
    assert names(people, one("job_title", "is_empty")) == {"Cid"}
    assert names(people, one("job_title", "is_not_empty")) == {"Ann", "Bob"}


def test_email_operators(people):
    assert names(people, one("email", "eq", "ANN@acme.example")) == {"Ann"}
    assert names(people, one("email", "contains", "initech")) == {"Bob"}
    assert names(people, one("email", "is_empty")) == {"Cid"}


def test_other_emails_eq_and_contains(org):
    ContactFactory(org=org, first_name="Dee", other_emails=["dee@home.example"])
    ContactFactory(org=org, first_name="Eve", other_emails=[])
    assert names(org, one("other_emails", "eq", "DEE@home.example")) == {"Dee"}
    assert names(org, one("other_emails", "contains", "home")) == {"Dee"}
    assert names(org, one("other_emails", "is_empty")) == {"Eve"}


def test_phone_value_is_normalized_to_digits(org):
    ContactFactory(org=org, first_name="Pat", phone="+15550100")
    ContactFactory(org=org, first_name="Quinn", phone="+4930123")
    assert names(org, one("phone", "eq", "+1 555-0100")) == {"Pat"}
    assert names(org, one("phone", "starts_with", "+49")) == {"Quinn"}


def test_country_codes_compare_upper_case(org):
    ContactFactory(org=org, first_name="Udo", country="DE")
    ContactFactory(org=org, first_name="Val", country="FR")
    assert names(org, one("country", "eq", "de")) == {"Udo"}
    assert names(org, one("country", "any_of", ["de", "fr"])) == {"Udo", "Val"}
    assert names(org, one("country", "neq", "DE")) == {"Val"}


# Choices and numbers ------------------------------------------------------------------------


@pytest.fixture
def staged(org):
    ContactFactory(org=org, first_name="Lea", lifecycle_stage="lead", lead_score=10)
    ContactFactory(org=org, first_name="Quo", lifecycle_stage="qualified", lead_score=50)
    ContactFactory(org=org, first_name="Cus", lifecycle_stage="customer", lead_score=90)
    return org


def test_choice_operators(staged):
    assert names(staged, one("lifecycle_stage", "eq", "qualified")) == {"Quo"}
    assert names(staged, one("lifecycle_stage", "neq", "lead")) == {"Quo", "Cus"}
    assert names(staged, one("lifecycle_stage", "any_of", ["lead", "customer"])) == {"Lea", "Cus"}


def test_choice_accepts_the_label_and_stores_the_key(staged):
    parsed = parse_filters(one("lifecycle_stage", "eq", "Qualified"), contact_field_catalog(staged))
    assert parsed["groups"][0]["conditions"][0]["value"] == "qualified"
    assert names(staged, parsed) == {"Quo"}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", 50, {"Quo"}),
        ("neq", 50, {"Lea", "Cus"}),
        ("gt", 10, {"Quo", "Cus"}),
        ("lt", "50", {"Lea"}),
    ],
)
def test_number_operators(staged, op, value, expected):
    assert names(staged, one("lead_score", op, value)) == expected


# Dates and timezones ------------------------------------------------------------------------


@pytest.fixture
def late_evening(org):
    """A contact created at 23:30 UTC on May 1st: still May 1st in New York, already May 2nd
    in Berlin."""
    contact = ContactFactory(org=org, first_name="Late")
    created(contact, dt.datetime(2024, 5, 1, 23, 30, tzinfo=dt.UTC))
    early = ContactFactory(org=org, first_name="Early")
    created(early, dt.datetime(2024, 4, 20, 12, 0, tzinfo=dt.UTC))
    return org


def test_a_date_means_the_local_day_of_the_given_timezone(late_evening):
    may_1 = one("created_at", "eq", "2024-05-01")
    may_2 = one("created_at", "eq", "2024-05-02")
    assert names(late_evening, may_1, tz="America/New_York") == {"Late"}
    assert names(late_evening, may_2, tz="America/New_York") == set()
    assert names(late_evening, may_1, tz="Europe/Berlin") == set()
    assert names(late_evening, may_2, tz="Europe/Berlin") == {"Late"}


def test_before_and_after_exclude_the_day_itself_in_local_time(late_evening):
    before_may_2 = one("created_at", "before", "2024-05-02")
    assert names(late_evening, before_may_2, tz="America/New_York") == {"Late", "Early"}
    assert names(late_evening, before_may_2, tz="Europe/Berlin") == {"Early"}
    after_may_1 = one("created_at", "after", "2024-05-01")
    assert names(late_evening, after_may_1, tz="America/New_York") == set()
    assert names(late_evening, after_may_1, tz="Europe/Berlin") == {"Late"}


def test_in_last_days_is_relative_to_now(late_evening):
    now = dt.datetime(2024, 5, 5, 12, 0, tzinfo=dt.UTC)
    assert names(late_evening, one("created_at", "in_last_days", 7), now=now) == {"Late"}
    assert names(late_evening, one("created_at", "in_last_days", 30), now=now) == {
        "Late",
        "Early",
    }
    # Nothing from the future counts as "in the last N days".
    assert names(late_evening, one("created_at", "in_last_days", 30), now=NOW) == set()


def test_nullable_dates_and_booleans_can_be_empty(org):
    ContactFactory(org=org, first_name="Met", last_activity_at=NOW, consent_email=True)
    ContactFactory(org=org, first_name="New", consent_email=False)
    ContactFactory(org=org, first_name="Unk")
    assert names(org, one("last_activity_at", "is_empty")) == {"New", "Unk"}
    assert names(org, one("last_activity_at", "is_not_empty")) == {"Met"}
    assert names(org, one("consent_email", "eq", True)) == {"Met"}
    assert names(org, one("consent_email", "eq", "no")) == {"New"}
    assert names(org, one("consent_email", "is_empty")) == {"Unk"}


# Owner, company, tags -----------------------------------------------------------------------


def test_owner_me_unclaimed_and_a_person(org):
    me = member(org, "team").user
    colleague = member(org, "team").user
    ContactFactory(org=org, first_name="Mine", owner=me)
    ContactFactory(org=org, first_name="Theirs", owner=colleague)
    ContactFactory(org=org, first_name="Free", owner=None)
    assert names(org, one("owner", "eq", "me"), user=me) == {"Mine"}
    assert names(org, one("owner", "eq", "unclaimed")) == {"Free"}
    assert names(org, one("owner", "eq", str(colleague.public_id))) == {"Theirs"}
    assert names(org, one("owner", "neq", "me"), user=me) == {"Theirs", "Free"}
    assert names(org, one("owner", "any_of", ["me", "unclaimed"]), user=me) == {"Mine", "Free"}
    assert names(org, one("owner", "is_not_empty")) == {"Mine", "Theirs"}


def test_owner_me_without_a_user_matches_nothing(org):
    ContactFactory(org=org, first_name="Any", owner=member(org, "team").user)
    assert names(org, one("owner", "eq", "me"), user=None) == set()


def test_company_by_id_name_and_contains(org, other_org):
    initech = CompanyFactory(org=org, name="Initech")
    globex = CompanyFactory(org=org, name="Globex Corp")
    foreign = CompanyFactory(org=other_org, name="Initech")
    ContactFactory(org=org, first_name="Ini", company=initech)
    ContactFactory(org=org, first_name="Glo", company=globex)
    ContactFactory(org=org, first_name="Non", company=None)
    assert names(org, one("company", "eq", str(initech.public_id))) == {"Ini"}
    assert names(org, one("company", "eq", "initech")) == {"Ini"}
    assert names(org, one("company", "contains", "corp")) == {"Glo"}
    assert names(org, one("company", "neq", str(initech.public_id))) == {"Glo", "Non"}
    assert names(org, one("company", "any_of", [str(globex.public_id), "Initech"])) == {
        "Ini",
        "Glo",
    }
    assert names(org, one("company", "is_empty")) == {"Non"}
    # Another org's company of the same name never matches.
    assert names(org, one("company", "eq", str(foreign.public_id))) == set()


@pytest.fixture
def tagged(org):
    vip, hot = TagFactory(org=org, name="VIP"), TagFactory(org=org, name="hot")
    cold = TagFactory(org=org, name="cold")
    ContactFactory(org=org, first_name="Both", tags=[vip, hot])
    ContactFactory(org=org, first_name="Vip", tags=[vip])
    ContactFactory(org=org, first_name="Cold", tags=[cold])
    ContactFactory(org=org, first_name="None")
    return org, vip


def test_tag_eq_by_name_or_id(tagged):
    org, vip = tagged
    assert names(org, one("tags", "eq", "vip")) == {"Both", "Vip"}
    assert names(org, one("tags", "eq", str(vip.public_id))) == {"Both", "Vip"}


def test_tag_any_of_returns_each_contact_once(tagged):
    org, _ = tagged
    catalog = contact_field_catalog(org)
    q = compile_filters(one("tags", "any_of", ["VIP", "hot"]), catalog, tz="UTC", org=org)
    rows = list(Contact.objects.for_org(org).filter(q).values_list("first_name", flat=True))
    assert sorted(rows) == ["Both", "Vip"]  # "Both" has two matching tags, appears once
    sql = str(Contact.objects.filter(q).query).upper()
    assert "DISTINCT" not in sql


def test_tag_neq_and_emptiness(tagged):
    org, _ = tagged
    assert names(org, one("tags", "neq", "VIP")) == {"Cold", "None"}
    assert names(org, one("tags", "is_empty")) == {"None"}
    assert names(org, one("tags", "is_not_empty")) == {"Both", "Vip", "Cold"}


def test_a_tag_of_another_org_with_the_same_name_does_not_match(org, other_org):
    TagFactory(org=other_org, name="vip")
    foreign = TagFactory(org=other_org, name="partner")
    ContactFactory(org=other_org, first_name="Elsewhere", tags=[foreign])
    ContactFactory(org=org, first_name="Here")
    assert names(org, one("tags", "eq", "partner")) == set()
    assert names(org, one("tags", "eq", str(foreign.public_id))) == set()


# Custom fields ------------------------------------------------------------------------------


@pytest.fixture
def custom(org):
    for key, kind, extra in [
        ("note", "text", {}),
        ("budget", "number", {}),
        ("renewal", "date", {}),
        ("tier", "list", {"choices": ["Gold", "Silver"]}),
        ("vip", "checkbox", {}),
    ]:
        CustomFieldDefinitionFactory(org=org, key=key, label=key.title(), field_type=kind, **extra)
    ContactFactory(
        org=org,
        first_name="Nine",
        custom={"note": "Met at Expo", "budget": 9, "renewal": "2024-06-01", "tier": "Gold"},
    )
    ContactFactory(
        org=org,
        first_name="Ten",
        custom={"note": "", "budget": 10, "renewal": "2024-06-20", "tier": "Silver", "vip": True},
    )
    ContactFactory(org=org, first_name="Blank", custom={"vip": False})
    ContactFactory(org=org, first_name="Junk", custom={"budget": "n/a"})
    return org


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "met at expo", {"Nine"}),
        ("neq", "Met at Expo", {"Ten", "Blank", "Junk"}),
        ("contains", "EXPO", {"Nine"}),
        ("starts_with", "met", {"Nine"}),
        ("any_of", ["met at expo", "other"], {"Nine"}),
        ("is_empty", None, {"Ten", "Blank", "Junk"}),
        ("is_not_empty", None, {"Nine"}),
    ],
)
def test_custom_text(custom, op, value, expected):
    condition = ("custom.note", op) if value is None else ("custom.note", op, value)
    assert names(custom, spec([condition])) == expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", 9.5, {"Ten"}),  # numeric, not text: "10" > "9.5" as numbers
        ("lt", 10, {"Nine"}),
        ("eq", "10", {"Ten"}),
        ("neq", 10, {"Nine", "Blank", "Junk"}),
    ],
)
def test_custom_number_compares_numerically(custom, op, value, expected):
    assert names(custom, one("custom.budget", op, value)) == expected


def test_custom_number_ignores_values_that_are_not_numbers(custom):
    assert "Junk" not in names(custom, one("custom.budget", "gt", -1000))
    assert names(custom, one("custom.budget", "is_empty")) == {"Blank"}


def test_custom_date(custom):
    assert names(custom, one("custom.renewal", "before", "2024-06-20")) == {"Nine"}
    assert names(custom, one("custom.renewal", "after", "2024-06-01")) == {"Ten"}
    assert names(custom, one("custom.renewal", "eq", "2024-06-20")) == {"Ten"}
    recent = one("custom.renewal", "in_last_days", 7)
    assert names(custom, recent, now=dt.datetime(2024, 6, 21, 10, tzinfo=dt.UTC)) == {"Ten"}


def test_custom_list(custom):
    assert names(custom, one("custom.tier", "eq", "Gold")) == {"Nine"}
    assert names(custom, one("custom.tier", "neq", "Gold")) == {"Ten", "Blank", "Junk"}
    assert names(custom, one("custom.tier", "any_of", ["Gold", "Silver"])) == {"Nine", "Ten"}


def test_custom_list_rejects_an_unknown_choice(custom):
    with pytest.raises(FilterError, match="'Tier' has no option 'Bronze'"):
        parse_filters(one("custom.tier", "eq", "Bronze"), contact_field_catalog(custom))


def test_custom_checkbox_unset_counts_as_unchecked(custom):
    assert names(custom, one("custom.vip", "eq", True)) == {"Ten"}
    assert names(custom, one("custom.vip", "eq", False)) == {"Nine", "Blank", "Junk"}
    assert names(custom, one("custom.vip", "is_empty")) == {"Nine", "Junk"}


# Combining ----------------------------------------------------------------------------------


def test_and_within_a_group_or_between_groups(staged):
    filters = spec(
        [("lifecycle_stage", "eq", "customer"), ("lead_score", "gt", 80)],
        [("first_name", "eq", "Lea")],
    )
    assert names(staged, filters) == {"Cus", "Lea"}
    narrower = spec([("lifecycle_stage", "eq", "customer"), ("lead_score", "lt", 80)])
    assert names(staged, narrower) == set()


def test_a_complex_filter_runs_as_one_query(org):
    CustomFieldDefinitionFactory(org=org, key="budget", label="Budget", field_type="number")
    vip = TagFactory(org=org, name="vip")
    ContactFactory(org=org, first_name="Hit", tags=[vip], custom={"budget": 500}, lead_score=70)
    filters = spec(
        [("tags", "any_of", ["vip"]), ("custom.budget", "gt", 100), ("company", "is_empty")],
        [("lead_score", "gt", 95)],
    )
    catalog = contact_field_catalog(org)
    q = compile_filters(filters, catalog, tz="UTC", org=org)
    with CaptureQueriesContext(connection) as queries:
        found = list(Contact.objects.for_org(org).filter(q).values_list("first_name", flat=True))
    assert found == ["Hit"]
    assert len(queries) == 1


def test_an_empty_filter_matches_everything(people):
    assert names(people, {"groups": []}) == {"Ann", "Bob", "Cid"}
    assert parse_filters("", contact_field_catalog(people)) == {"groups": []}


def test_compile_condition_for_scoring_rules(staged):
    catalog = contact_field_catalog(staged)
    q = compile_condition(
        {"field": "lead_score", "op": "gt", "value": 40}, catalog, tz="UTC", org=staged
    )
    assert set(Contact.objects.filter(q).values_list("first_name", flat=True)) == {"Quo", "Cus"}


def test_describe_filters_reads_like_a_sentence(staged):
    text = describe_filters(
        spec([("lifecycle_stage", "eq", "qualified"), ("lead_score", "gt", 50)]),
        contact_field_catalog(staged),
    )
    assert text == "Lifecycle stage is Qualified and Lead score greater than 50"


def test_owner_pills_use_the_glossarys_words(staged):
    catalog = contact_field_catalog(staged)
    assert describe_filters(spec([("owner", "eq", "me")]), catalog) == "Owner is Me"
    assert describe_filters(spec([("owner", "eq", "unclaimed")]), catalog) == "Owner is No one"


# Validation ---------------------------------------------------------------------------------


def _cond(field, op, value="__none__"):
    item = {"field": field, "op": op}
    if value != "__none__":
        item["value"] = value
    return item


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "The filter is not valid JSON"),
        ("[1, 2]", "The filter must be a JSON object"),
        ({"groups": [], "extra": 1}, "unknown key: 'extra'"),
        ({"groups": {"a": 1}}, "groups must be a list"),
        ({"groups": [{"rules": []}]}, "Group 1 must be an object with a list of conditions"),
        ({"groups": [{"conditions": ["lead_score"]}]}, "Condition 1: must be an object"),
        (one("shoe_size", "eq", 4), "Condition 1: unknown field 'shoe_size'"),
        (one("lead_score", "like", 4), "Condition 1: unknown operator 'like' for 'Lead score'"),
        (one("created_at", "gt", "2024-01-01"), "'Created' cannot use 'greater than'"),
        (one("tags", "contains", "v"), "'Tags' cannot use 'contains'"),
        ({"groups": [{"conditions": [_cond("lead_score", "gt")]}]}, "'Lead score' needs a value"),
        (
            spec([("first_name", "eq", "A"), ("lead_score", "gt", "lots")]),
            "Condition 2: 'Lead score' needs a number.",
        ),
        (one("lead_score", "gt", 50.5), "'Lead score' needs a whole number"),
        (one("lead_score", "gt", True), "'Lead score' needs a number"),
        (one("created_at", "before", "31/12/2024"), "'Created' needs a date like 2024-05-31"),
        (one("created_at", "before", "2024-02-30"), "'Created' has an impossible date"),
        (one("created_at", "in_last_days", 0), "between 1 and 3650"),
        (one("created_at", "in_last_days", 5000), "between 1 and 3650"),
        (one("created_at", "in_last_days", "a week"), "needs a number of days"),
        (one("tags", "any_of", []), "'Tags' needs a non-empty list of values"),
        (one("tags", "any_of", "vip"), "'Tags' needs a non-empty list of values"),
        (one("status", "eq", "sleepy"), "'Status' has no option 'sleepy'"),
        (one("owner", "eq", "bob"), "'Owner' needs 'me', 'unclaimed' or a user id"),
        (one("country", "eq", "Germany"), "two-letter country code"),
        (one("consent_email", "eq", "maybe"), "'Email consent' needs yes or no"),
        (one("first_name", "eq", ""), "'First name' needs a value"),
        (one("first_name", "eq", {"a": 1}), "'First name' needs a text value"),
        (one("first_name", "eq", "x" * 201), "longer than 200 characters"),
    ],
)
def test_invalid_filters_are_rejected_with_a_clear_message(org, raw, message):
    with pytest.raises(FilterError) as caught:
        parse_filters(raw, contact_field_catalog(org))
    assert message in caught.value.message


def test_the_error_names_the_condition_number_across_groups(org):
    raw = spec([("first_name", "eq", "A")], [("last_name", "eq", "B"), ("lead_score", "gt", "x")])
    with pytest.raises(FilterError) as caught:
        parse_filters(json.dumps(raw), contact_field_catalog(org))
    assert caught.value.condition == 3
    assert caught.value.message.startswith("Condition 3:")


def test_too_many_conditions_or_groups_are_refused(org):
    catalog = contact_field_catalog(org)
    many = spec([("lead_score", "gt", n) for n in range(MAX_CONDITIONS + 1)])
    with pytest.raises(FilterError, match=f"at most {MAX_CONDITIONS} conditions"):
        parse_filters(many, catalog)
    groups = spec(*[[("lead_score", "gt", n)] for n in range(MAX_GROUPS + 1)])
    with pytest.raises(FilterError, match=f"at most {MAX_GROUPS} groups"):
        parse_filters(groups, catalog)


def test_a_field_hidden_for_the_member_cannot_be_filtered(org):
    executive = role(org, "executive")
    hides_email = custom_role(
        org, permissions=executive.permissions, field_rules={"email": "hidden"}
    )
    membership = MembershipFactory(org=org, role=hides_email)
    policy = Policy(membership)
    with pytest.raises(FilterError) as caught:
        parse_filters(one("email", "contains", "@acme"), contact_field_catalog(org), policy=policy)
    assert "'Email' is hidden for your role" in caught.value.message
    # A visible field is fine for the same member.
    parsed = parse_filters(one("lead_score", "gt", 1), contact_field_catalog(org), policy=policy)
    assert parsed["groups"][0]["conditions"][0]["field"] == "lead_score"


@pytest.mark.parametrize(
    "text",
    [
        '{"groups": ' + "[" * 50_000 + "]" * 50_000 + "}",  # deep enough to exhaust the stack
        '{"groups": [], "x": "' + "a" * 200_000 + '"}',  # longer than any real filter
    ],
)
def test_hostile_filter_json_is_a_filter_error_not_a_crash(text):
    with pytest.raises(FilterError):
        parse_filters(text, [])
    with pytest.raises(FilterError):
        parse_condition(text, [])
