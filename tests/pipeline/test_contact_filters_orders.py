"""Contact filters over orders (pipeline.contact_filters, registered with the contact filter
engine): "has an order" with status, source and period, its negation, total paid in one
currency, the number of orders; strict validation, the module switch, the Pipeline right,
record scope, descriptions, saved views and naughty input."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.fields import contact_field_catalog
from contacts.filters import (
    FilterError,
    compile_filters,
    describe_filters,
    parse_condition,
    parse_filters,
)
from contacts.models import Contact, SmartView
from contacts.selectors import contacts_for_list
from crm.permissions import Policy
from pipeline.contact_filters import common as contact_filters
from pipeline.filters import deal_field_catalog
from tests.factories import ContactFactory, OrderFactory, member

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


@pytest.fixture
def org(org):
    org.enabled_modules = ["orders", "custom_objects"]
    org.base_currency = "EUR"
    org.save()
    return org


def one(field, op, value=None):
    condition = {"field": field, "op": op}
    if value is not None:
        condition["value"] = value
    return {"groups": [{"conditions": [condition]}]}


def names(org, filters, *, now=NOW, tz="UTC") -> set[str]:
    q = compile_filters(filters, contact_field_catalog(org), tz=tz, now=now, org=org)
    return set(Contact.objects.for_org(org).filter(q).values_list("first_name", flat=True))


def parse(org, filters):
    return parse_filters(filters, contact_field_catalog(org), org=org)


def error_of(org, filters) -> str:
    with pytest.raises(FilterError) as caught:
        parse(org, filters)
    return caught.value.message


def order(org, contact, *, days_ago=0, **fields):
    return OrderFactory(
        org=org, contact=contact, order_date=TODAY - dt.timedelta(days=days_ago), **fields
    )


@pytest.fixture
def shoppers(org):
    """Ann paid 600 + 500 EUR, Bob paid 900 EUR and has a refunded one, Cid paid in USD
    only, Dee has a pending webhook order from 200 days ago, Eve has no order."""
    people = {
        name: ContactFactory(org=org, first_name=name)
        for name in ["Ann", "Bob", "Cid", "Dee", "Eve"]
    }
    order(org, people["Ann"], value=600, currency="EUR", days_ago=10)
    order(org, people["Ann"], value=500, currency="EUR", days_ago=100)
    order(org, people["Bob"], value=900, currency="EUR", days_ago=30)
    order(org, people["Bob"], value=5000, currency="EUR", status="refunded", days_ago=5)
    order(org, people["Cid"], value=5000, currency="USD", days_ago=1)
    order(
        org,
        people["Dee"],
        value=50,
        currency="EUR",
        status="pending",
        source="webhook",
        days_ago=200,
    )
    return people


# Has an order ---------------------------------------------------------------------------------


def test_has_an_order_of_any_kind_and_none_at_all(org, shoppers):
    assert names(org, one("orders", "has")) == {"Ann", "Bob", "Cid", "Dee"}
    assert names(org, one("orders", "has_none")) == {"Eve"}


def test_has_an_order_with_one_status_or_any_of_several(org, shoppers):
    assert names(org, one("orders", "has", {"status": "refunded"})) == {"Bob"}
    assert names(org, one("orders", "has", {"status": ["Refunded", "pending"]})) == {"Bob", "Dee"}


def test_has_no_order_with_a_status_keeps_contacts_without_orders(org, shoppers):
    assert names(org, one("orders", "has_none", {"status": ["paid"]})) == {"Dee", "Eve"}


def test_source_option(org, shoppers):
    assert names(org, one("orders", "has", {"source": "Webhook"})) == {"Dee"}
    assert names(org, one("orders", "has_none", {"source": ["webhook"]})) == {
        "Ann",
        "Bob",
        "Cid",
        "Eve",
    }


def test_last_n_days_includes_the_first_day_and_today_not_the_day_before(org):
    edge = ContactFactory(org=org, first_name="Edge")
    before = ContactFactory(org=org, first_name="Before")
    ahead = ContactFactory(org=org, first_name="Ahead")
    order(org, edge, days_ago=30)
    order(org, before, days_ago=31)
    order(org, ahead, days_ago=-1)  # dated tomorrow: not "in the last 30 days"
    assert names(org, one("orders", "has", {"days": 30})) == {"Edge"}
    assert names(org, one("orders", "has", {"days": 31})) == {"Edge", "Before"}


def test_last_n_days_counts_in_the_organizations_time_zone(org):
    late = ContactFactory(org=org, first_name="Late")
    OrderFactory(org=org, contact=late, order_date=dt.date(2024, 6, 16))
    evening_utc = dt.datetime(2024, 6, 15, 23, 0, tzinfo=dt.UTC)  # the 16th in Tokyo
    assert names(org, one("orders", "has", {"days": 1}), now=evening_utc) == set()
    assert names(org, one("orders", "has", {"days": 1}), now=evening_utc, tz="Asia/Tokyo") == {
        "Late"
    }


def test_between_dates_is_inclusive_and_either_end_may_be_open(org, shoppers):
    start = (TODAY - dt.timedelta(days=100)).isoformat()
    end = (TODAY - dt.timedelta(days=30)).isoformat()
    assert names(org, one("orders", "has", {"from": start, "to": end})) == {"Ann", "Bob"}
    assert names(org, one("orders", "has", {"to": start})) == {"Ann", "Dee"}
    assert names(org, one("orders", "has", {"from": end, "status": "paid"})) == {
        "Ann",
        "Bob",
        "Cid",
    }


def test_every_option_together(org, shoppers):
    value = {"status": ["paid"], "source": "manual", "days": 20}
    assert names(org, one("orders", "has", value)) == {"Ann", "Cid"}
    assert names(org, one("orders", "has_none", value)) == {"Bob", "Dee", "Eve"}


def test_another_organizations_orders_never_count(org, other_org, shoppers):
    twin = ContactFactory(org=other_org, first_name="Eve")
    OrderFactory(org=other_org, contact=twin, value=10_000, currency="EUR")
    assert names(org, one("orders", "has_none")) == {"Eve"}
    assert "Eve" not in names(org, one("orders.total_paid", "gt", {"amount": 1, "currency": "EUR"}))


# Total paid ---------------------------------------------------------------------------------------


def test_total_paid_greater_than_sums_paid_orders_in_that_currency_only(org, shoppers):
    # Ann 1,100 EUR paid; Bob 900 paid (his 5,000 is refunded); Cid's 5,000 are USD.
    assert names(org, one("orders.total_paid", "gt", {"amount": 1000, "currency": "EUR"})) == {
        "Ann"
    }
    assert names(org, one("orders.total_paid", "gt", {"amount": "899.99", "currency": "eur"})) == {
        "Ann",
        "Bob",
    }
    assert names(org, one("orders.total_paid", "gt", {"amount": 1000, "currency": "USD"})) == {
        "Cid"
    }


def test_total_paid_less_than_counts_contacts_without_paid_orders_as_zero(org, shoppers):
    assert names(org, one("orders.total_paid", "lt", {"amount": 1000, "currency": "EUR"})) == {
        "Bob",
        "Cid",
        "Dee",
        "Eve",
    }
    assert names(org, one("orders.total_paid", "lt", {"amount": 0, "currency": "EUR"})) == set()


def test_total_paid_between_is_inclusive(org, shoppers):
    between = {"min": 900, "max": 1100, "currency": "EUR"}
    assert names(org, one("orders.total_paid", "between", between)) == {"Ann", "Bob"}
    from_zero = {"min": 0, "max": 899, "currency": "EUR"}
    assert names(org, one("orders.total_paid", "between", from_zero)) == {"Cid", "Dee", "Eve"}


def test_total_paid_without_a_currency_means_the_base_currency(org, shoppers):
    spec = parse(org, one("orders.total_paid", "gt", {"amount": "1,000"}))
    assert spec["groups"][0]["conditions"][0]["value"] == {"amount": "1000.00", "currency": "EUR"}


# Number of orders ---------------------------------------------------------------------------------


def test_number_of_orders(org, shoppers):
    assert names(org, one("orders.count", "gt", {"count": 1})) == {"Ann", "Bob"}
    assert names(org, one("orders.count", "lt", {"count": 2})) == {"Cid", "Dee", "Eve"}
    assert names(org, one("orders.count", "eq", {"count": 0})) == {"Eve"}
    assert names(org, one("orders.count", "eq", {"count": 1, "status": "paid"})) == {"Bob", "Cid"}
    assert names(org, one("orders.count", "gt", {"count": 0, "days": 7})) == {"Bob", "Cid"}
    assert names(org, one("orders.count", "lt", {"count": 0})) == set()
    # Several statuses add up their counts; with a source the orders themselves are counted.
    several = {"status": ["paid", "refunded"]}
    assert names(org, one("orders.count", "eq", {"count": 2, **several})) == {"Ann", "Bob"}
    assert names(org, one("orders.count", "lt", {"count": 1, **several})) == {"Dee", "Eve"}
    webhook = {"status": "pending", "source": "webhook"}
    assert names(org, one("orders.count", "eq", {"count": 1, **webhook})) == {"Dee"}


def test_figures_follow_orders_as_they_change(org, shoppers):
    """Totals and counts come from the rollup the database keeps (OrderRollup): an order
    paid, refunded, moved to another contact or deleted changes them at once."""
    eur_over_1000 = one("orders.total_paid", "gt", {"amount": 1000, "currency": "EUR"})
    assert names(org, eur_over_1000) == {"Ann"}
    refunded = shoppers["Bob"].orders.get(status="refunded")
    refunded.status = "paid"
    refunded.save()
    assert names(org, eur_over_1000) == {"Ann", "Bob"}
    shoppers["Ann"].orders.filter(value=600).update(contact=shoppers["Eve"])
    assert names(org, eur_over_1000) == {"Bob"}
    assert names(org, one("orders.count", "eq", {"count": 1})) == {"Ann", "Cid", "Dee", "Eve"}
    shoppers["Bob"].orders.all().delete()
    assert names(org, eur_over_1000) == set()
    assert names(org, one("orders.count", "eq", {"count": 0})) == {"Bob"}


SHAPES = {"id list": (1000, 5000), "id array": (0, 5000), "exists": (0, 0)}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_query_shape_finds_the_same_contacts(org, shoppers, monkeypatch, shape):
    """Few matching orders go to the contact list as ids, more as an array, many as a
    correlated EXISTS (pipeline.contact_filters.common.linked_contacts): same answers."""
    list_cap, array_cap = SHAPES[shape]
    monkeypatch.setattr(contact_filters, "ID_LIST_CAP", list_cap)
    monkeypatch.setattr(contact_filters, "ID_ARRAY_CAP", array_cap)
    assert names(org, one("orders", "has", {"status": "paid"})) == {"Ann", "Bob", "Cid"}
    assert names(org, one("orders", "has_none", {"status": "paid"})) == {"Dee", "Eve"}
    eur = {"currency": "EUR"}
    assert names(org, one("orders.total_paid", "gt", {"amount": 1000, **eur})) == {"Ann"}
    assert names(org, one("orders.total_paid", "lt", {"amount": 1000, **eur})) == {
        "Bob",
        "Cid",
        "Dee",
        "Eve",
    }
    between = {"min": 0, "max": 899, **eur}
    assert names(org, one("orders.total_paid", "between", between)) == {"Cid", "Dee", "Eve"}
    assert names(org, one("orders.count", "gt", {"count": 1})) == {"Ann", "Bob"}
    assert names(org, one("orders.count", "eq", {"count": 0})) == {"Eve"}


# Combined with other conditions -------------------------------------------------------------------


def test_combines_with_field_conditions_and_groups(org, shoppers):
    spec = {
        "groups": [
            {
                "conditions": [
                    {"field": "orders", "op": "has", "value": {"status": ["paid"]}},
                    {"field": "first_name", "op": "neq", "value": "Ann"},
                ]
            },
            {"conditions": [{"field": "orders", "op": "has_none"}]},
        ]
    }
    assert names(org, spec) == {"Bob", "Cid", "Eve"}


# Validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (one("orders", "gt", {}), "'Orders' cannot use 'gt' (allowed: has an order, has no order)"),
        (one("orders", "has", ["paid"]), "'Orders' needs an object like"),
        (one("orders", "has", {"state": "paid"}), "unknown option 'state'"),
        (one("orders", "has", {"status": "shipped"}), "has no status 'shipped'"),
        (one("orders", "has", {"status": [1]}), "has no status '1'"),
        (one("orders", "has", {"status": ["paid"] * 8}), "needs one status or a list"),
        (one("orders", "has", {"source": "fax"}), "has no source 'fax'"),
        (one("orders", "has", {"days": 0}), "between 1 and 3,650"),
        (one("orders", "has", {"days": 3651}), "between 1 and 3,650"),
        (one("orders", "has", {"days": 2.5}), "a whole number"),
        (one("orders", "has", {"days": True}), "a whole number"),
        (
            one("orders", "has", {"days": 9, "from": "2024-01-01"}),
            "either a number of days or dates",
        ),
        (one("orders", "has", {"from": "2024-02-30"}), "impossible date '2024-02-30'"),
        (one("orders", "has", {"to": "31/05/2024"}), "needs an end date like 2024-05-31"),
        (one("orders", "has", {"from": "2024-05-02", "to": "2024-05-01"}), "start date after"),
        (one("orders.total_paid", "gt", None), "'Total paid' needs a value."),
        (one("orders.total_paid", "gt", {"amount": -1}), "needs an amount of 0 or more"),
        (one("orders.total_paid", "gt", {"amount": "NaN"}), "needs an amount of 0 or more"),
        (one("orders.total_paid", "gt", {"amount": True}), "needs an amount (a number)"),
        (one("orders.total_paid", "gt", {"amount": 1e20}), "needs an amount of 0 or more"),
        (one("orders.total_paid", "gt", {"amount": 5, "currency": "EURO"}), "unknown currency"),
        (one("orders.total_paid", "gt", {"amount": 5, "currency": 978}), "needs a currency code"),
        (one("orders.total_paid", "gt", {"min": 5, "max": 6}), "unknown option 'max'"),
        (one("orders.total_paid", "between", {"min": 9, "max": 6}), "lowest amount above"),
        (one("orders.count", "gt", {"count": -1}), "between 0 and 100,000"),
        (one("orders.count", "gt", {"status": "paid"}), "needs a number of orders"),
    ],
)
def test_bad_order_conditions_get_a_message_naming_the_condition(org, filters, message):
    text = error_of(org, filters)
    assert text.startswith("Condition 1: ")
    assert message in text


def test_an_extra_key_on_the_condition_is_refused(org):
    condition = {"field": "orders", "op": "has", "value": {}, "join": "left"}
    assert "unknown key 'join'" in error_of(org, {"groups": [{"conditions": [condition]}]})


def test_a_missing_value_means_any_order(org):
    spec = parse(org, one("orders", "has"))
    assert spec == {"groups": [{"conditions": [{"field": "orders", "op": "has", "value": {}}]}]}


def test_values_are_normalized(org):
    value = {"status": ["Paid", "pending", "paid"], "source": "WEBHOOK", "days": "90"}
    spec = parse(org, one("orders", "has", value))
    assert spec["groups"][0]["conditions"][0]["value"] == {
        "status": ["pending", "paid"],
        "source": ["webhook"],
        "days": 90,
    }


def test_order_conditions_belong_to_the_contact_list_only(org):
    # A lead-scoring rule is one condition (parse_condition): not there.
    with pytest.raises(FilterError, match="unknown field 'orders'"):
        parse_condition({"field": "orders", "op": "has"}, contact_field_catalog(org))
    # A deal filter: its catalog is the deals'.
    with pytest.raises(FilterError, match="unknown field 'orders'"):
        parse_filters(one("orders", "has"), deal_field_catalog(org), org=org)
    # Without an organization to check the module against: refused, not guessed.
    with pytest.raises(FilterError, match="'Orders' cannot be used in this filter"):
        parse_filters(one("orders", "has"), contact_field_catalog(org))


def test_module_off_refuses_the_condition_with_a_clear_message(org, shoppers):
    org.enabled_modules = ["custom_objects"]
    org.save()
    text = error_of(org, one("orders.total_paid", "gt", {"amount": 5}))
    assert text == (
        "Condition 1: The Orders module is off for your organization, so contacts cannot be "
        "filtered by their orders."
    )
    with pytest.raises(FilterError, match="Orders module is off"):
        names(org, one("orders", "has"))


def test_a_role_without_the_pipeline_right_cannot_filter_by_orders(org, shoppers):
    support = member(org, "support")  # contacts, but no pipeline
    policy = Policy(support)
    with pytest.raises(FilterError, match="Your role cannot see orders"):
        parse_filters(one("orders", "has"), contact_field_catalog(org), policy=policy)


# Scope ------------------------------------------------------------------------------------------


def test_an_own_scope_rep_lists_only_own_contacts_and_their_orders_all_count(org):
    rep = member(org, "team")
    other = member(org, "team")
    mine = ContactFactory(org=org, first_name="Mine", owner=rep.user)
    theirs = ContactFactory(org=org, first_name="Theirs", owner=other.user)
    order(org, mine, value=700, currency="EUR")
    order(org, mine, value=700, currency="EUR", created_by=other.user)
    order(org, theirs, value=9000, currency="EUR")
    filters = one("orders.total_paid", "gt", {"amount": 1000, "currency": "EUR"})
    found = contacts_for_list(org=org, policy=Policy(rep), filters=parse(org, filters))
    assert set(found.values_list("first_name", flat=True)) == {"Mine"}
    admin = member(org, "admin")
    found = contacts_for_list(org=org, policy=Policy(admin), filters=parse(org, filters))
    assert set(found.values_list("first_name", flat=True)) == {"Mine", "Theirs"}


# Descriptions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "op", "value", "text"),
    [
        ("orders", "has", {}, "has an order"),
        (
            "orders",
            "has",
            {"status": "paid", "days": 90},
            "has an order with status Paid in the last 90 days",
        ),
        ("orders", "has", {"days": 1}, "has an order in the last 1 day"),
        (
            "orders",
            "has_none",
            {
                "status": ["paid", "partially_paid"],
                "source": "webhook",
                "from": "2024-01-01",
                "to": "2024-03-31",
            },
            "has no order with status Paid or Partially paid from Webhook "
            "between 2024-01-01 and 2024-03-31",
        ),
        (
            "orders",
            "has",
            {"status": ["pending", "overdue", "failed"], "from": "2024-01-01"},
            "has an order with status Pending, Overdue or Failed on or after 2024-01-01",
        ),
        ("orders", "has", {"to": "2024-01-01"}, "has an order on or before 2024-01-01"),
        (
            "orders.total_paid",
            "gt",
            {"amount": 1000, "currency": "EUR"},
            "total paid greater than 1,000.00 EUR (EUR orders only, not converted)",
        ),
        (
            "orders.total_paid",
            "lt",
            {"amount": "99.5", "currency": "USD"},
            "total paid less than 99.50 USD (USD orders only, not converted)",
        ),
        (
            "orders.total_paid",
            "between",
            {"min": 100, "max": 2500, "currency": "GBP"},
            "total paid between 100.00 and 2,500.00 GBP (GBP orders only, not converted)",
        ),
        ("orders.count", "gt", {"count": 3}, "has more than 3 orders"),
        (
            "orders.count",
            "eq",
            {"count": 1, "status": "paid", "days": 30},
            "has exactly 1 order with status Paid in the last 30 days",
        ),
        ("orders.count", "lt", {"count": 2}, "has fewer than 2 orders"),
    ],
)
def test_descriptions_read_naturally(org, field, op, value, text):
    spec = parse(org, one(field, op, value))
    assert describe_filters(spec, contact_field_catalog(org), org=org) == text


def test_description_of_a_stored_odd_value_never_fails(org):
    odd = one("orders.total_paid", "gt", {"amount": "lots", "currency": "EUR"})
    assert "total paid greater than lots EUR" in describe_filters(odd, contact_field_catalog(org))


# The list, the builder and saved views ----------------------------------------------------------


def list_url(filters) -> str:
    return reverse("contacts:contact_list") + "?" + "filters=" + json.dumps(filters)


def test_the_list_applies_the_condition_and_shows_its_description(org, client_as):
    admin = member(org, "admin")
    today = timezone.localdate()
    recent = ContactFactory(org=org, first_name="Recent")
    old = ContactFactory(org=org, first_name="Old")
    ContactFactory(org=org, first_name="Never")
    OrderFactory(org=org, contact=recent, order_date=today - dt.timedelta(days=89))
    OrderFactory(org=org, contact=old, order_date=today - dt.timedelta(days=200))
    filters = json.dumps(one("orders", "has", {"status": ["paid"], "days": 90}))
    response = client_as(admin).get(reverse("contacts:contact_list"), {"filters": filters})
    assert response.status_code == 200
    assert "has an order with status Paid in the last 90 days" in response.content.decode()
    assert {c.first_name for c in response.context["page"].rows} == {"Recent"}
    count = client_as(admin).get(reverse("contacts:contact_count"), {"filters": filters})
    assert count.status_code == 200
    assert count.context["count"] == 1


def test_the_builder_offers_the_order_conditions_only_with_the_module_on(org, client_as):
    admin = member(org, "admin")
    schema = client_as(admin).get(reverse("contacts:contact_list")).context["builder_schema"]
    keys = {f["key"] for f in schema["fields"]}
    assert {"orders", "orders.total_paid", "orders.count"} <= keys
    assert schema["ops"]["related:orders"] == [
        ["has", "has an order"],
        ["has_none", "has no order"],
    ]
    assert schema["related"]["orders"]["base_currency"] == "EUR"
    assert ["paid", "Paid"] in schema["related"]["orders"]["statuses"]
    org.enabled_modules = []
    org.save()
    schema = client_as(admin).get(reverse("contacts:contact_list")).context["builder_schema"]
    assert not {"orders", "orders.total_paid", "orders.count"} & {
        f["key"] for f in schema["fields"]
    }


def test_the_list_shows_a_module_off_message_instead_of_failing(org, client_as):
    admin = member(org, "admin")
    org.enabled_modules = []
    org.save()
    response = client_as(admin).get(
        reverse("contacts:contact_list"), {"filters": json.dumps(one("orders", "has"))}
    )
    assert response.status_code == 200
    assert "The Orders module is off for your organization" in response.content.decode()
    assert response.context["page"] is None


def test_a_saved_view_keeps_the_condition_and_reapplies_it(org, shoppers, client_as):
    admin = member(org, "admin")
    client = client_as(admin)
    filters = one("orders.total_paid", "gt", {"amount": "1000", "currency": "eur"})
    response = client.post(
        reverse("contacts:smart_view_create") + "?" + f"filters={json.dumps(filters)}",
        {"name": "Big spenders", "filters": json.dumps(filters)},
    )
    assert response.status_code == 302
    view = SmartView.objects.for_org(org).get(name="Big spenders")
    assert view.filters == {
        "groups": [
            {
                "conditions": [
                    {
                        "field": "orders.total_paid",
                        "op": "gt",
                        "value": {"amount": "1000.00", "currency": "EUR"},
                    }
                ]
            }
        ]
    }
    page = client.get(reverse("contacts:contact_list"), {"view": str(view.public_id)})
    assert {c.first_name for c in page.context["page"].rows} == {"Ann"}
    assert "total paid greater than 1,000.00 EUR" in page.content.decode()


NAUGHTY = [
    "<script>alert(1)</script>",
    "'; DROP TABLE pipeline_order; --",
    "\u0000",
    "😀" * 300,
    "%s%s%n",
    {"$gt": ""},
    ["paid", ["nested"]],
    1e308,
]


@pytest.mark.parametrize("naughty", NAUGHTY)
@pytest.mark.parametrize(
    "where",
    [
        lambda v: one("orders", "has", {"status": v}),
        lambda v: one("orders", "has", {"source": v}),
        lambda v: one("orders", "has", {"days": v}),
        lambda v: one("orders", "has", {"from": v}),
        lambda v: one("orders.total_paid", "gt", {"amount": v}),
        lambda v: one("orders.total_paid", "gt", {"amount": 1, "currency": v}),
        lambda v: one("orders.count", "eq", {"count": v}),
        lambda v: one("orders", v if isinstance(v, str) else "has", v),
    ],
)
def test_naughty_values_get_a_message_never_a_crash(org, naughty, where):
    with pytest.raises(FilterError) as caught:
        parse(org, where(naughty))
    assert caught.value.condition == 1
    assert len(caught.value.message) < 400


def test_naughty_values_in_the_list_are_escaped(org, client_as):
    admin = member(org, "admin")
    filters = one("orders", "has", {"status": "<script>alert(1)</script>"})
    response = client_as(admin).get(
        reverse("contacts:contact_list"), {"filters": json.dumps(filters)}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "has no status" in body


def test_money_is_compared_exactly(org):
    cent = ContactFactory(org=org, first_name="Cent")
    order(org, cent, value=Decimal("1000.01"), currency="EUR")
    assert names(org, one("orders.total_paid", "gt", {"amount": "1000", "currency": "EUR"})) == {
        "Cent"
    }
    assert (
        names(org, one("orders.total_paid", "gt", {"amount": "1000.01", "currency": "EUR"}))
        == set()
    )
