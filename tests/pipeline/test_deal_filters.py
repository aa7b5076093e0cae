"""The deal filters: the contact filter engine run over the deal field catalog, one condition
per field type (text, number, choices, a pipeline's stages by id or name, effective
probability and forecast category, owner, team, primary contact, company, dates, tags and the
Deal entity's custom fields), the filter panel, title search, and field rules (a filter on a
hidden deal field is refused by name). The contact filters keep working unchanged."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from contacts.filters import parse_filters
from contacts.models import Contact
from crm.permissions import Policy
from pipeline.filters import (
    deal_builder_schema,
    deal_field_catalog,
    deals_for_search,
    filter_deals,
    visible_deal_catalog,
)
from pipeline.models import Deal, DealTag
from pipeline.selectors import visible_deals
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    DealFactory,
    MembershipFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    TeamFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db


def tag(deal, *tags):
    for each in tags:
        DealTag.objects.create(org_id=deal.org_id, deal=deal, tag=each)


@pytest.fixture
def world(org):
    admin = member(org, "admin")
    rep = member(org, "team")
    sales = PipelineFactory(org=org, name="Sales", position=0)
    renewals = PipelineFactory(org=org, name="Renewals", position=1)
    qualify = StageFactory(org=org, pipeline=sales, name="Qualify", position=0, probability=10)
    negotiate = StageFactory(org=org, pipeline=sales, name="Negotiate", position=1, probability=80)
    negotiate.forecast_category = "commit"
    negotiate.save()
    renew = StageFactory(org=org, pipeline=renewals, name="Renew", position=0, probability=50)
    team = TeamFactory(org=org, name="Enterprise")
    acme = CompanyFactory(org=org, name="Acme Anvils")
    ada = ContactFactory(org=org, first_name="Ada", last_name="Lovelace")
    vip, cold = TagFactory(org=org, name="vip"), TagFactory(org=org, name="cold")
    CustomFieldDefinitionFactory(
        org=org, entity="deal", key="seats", label="Seats", field_type="number"
    )
    CustomFieldDefinitionFactory(
        org=org,
        entity="deal",
        key="region",
        label="Region",
        field_type="list",
        choices=["EMEA", "APAC"],
    )
    CustomFieldDefinitionFactory(org=org, entity="contact", key="hobby", label="Hobby")
    deals = {
        "big": DealFactory(
            org=org,
            title="Acme anvil fleet",
            stage=negotiate,
            value=Decimal("50000.00"),
            owner=admin.user,
            team=team,
            company=acme,
            contact=ada,
            priority="high",
            source="Webinar",
            expected_close_date=dt.date(2026, 3, 31),
            custom={"seats": 120, "region": "EMEA"},
        ),
        "small": DealFactory(
            org=org,
            title="Starter pack",
            stage=qualify,
            value=Decimal("900.00"),
            owner=rep.user,
            probability=35,
            expected_close_date=dt.date(2026, 5, 15),
            custom={"seats": 5, "region": "APAC"},
        ),
        "renewal": DealFactory(
            org=org,
            title="Annual renewal",
            stage=renew,
            value=Decimal("12000.00"),
            owner=None,
            currency="EUR",
        ),
        "won": DealFactory(
            org=org,
            title="Won deal",
            stage=qualify,
            value=Decimal("3000.00"),
            owner=admin.user,
            status="won",
            closed_at=timezone.now(),
        ),
    }
    tag(deals["big"], vip)
    tag(deals["small"], vip, cold)
    return {
        "org": org,
        "admin": admin,
        "rep": rep,
        "stages": {"qualify": qualify, "negotiate": negotiate, "renew": renew},
        "pipelines": {"sales": sales, "renewals": renewals},
        "team": team,
        "deals": deals,
    }


def titles(world, *conditions, who="admin", params=None):
    """The titles of the deals a filter of `conditions` (one group) matches, and its state."""
    membership = world[who]
    policy = Policy(membership)
    query = dict(params or {})
    if conditions:
        query["filters"] = json.dumps({"groups": [{"conditions": list(conditions)}]})
    queryset, state = filter_deals(
        visible_deals(world["org"], policy, archived=None),
        org=world["org"],
        policy=policy,
        params=query,
    )
    return sorted(queryset.values_list("title", flat=True)), state


def only(world, *conditions, **kwargs):
    found, state = titles(world, *conditions, **kwargs)
    assert not state.error, state.error
    return found


def test_text_number_and_choice_conditions(world):
    assert only(world, {"field": "title", "op": "contains", "value": "anvil"}) == [
        "Acme anvil fleet"
    ]
    assert only(world, {"field": "value", "op": "gt", "value": 10000}) == [
        "Acme anvil fleet",
        "Annual renewal",
    ]
    assert only(world, {"field": "status", "op": "eq", "value": "won"}) == ["Won deal"]
    assert only(world, {"field": "priority", "op": "any_of", "value": ["high", "urgent"]}) == [
        "Acme anvil fleet"
    ]
    assert only(world, {"field": "currency", "op": "eq", "value": "eur"}) == ["Annual renewal"]
    assert only(world, {"field": "source", "op": "is_not_empty"}) == ["Acme anvil fleet"]


def test_pipeline_and_stage_by_public_id_or_by_name(world):
    sales, renewals = world["pipelines"]["sales"], world["pipelines"]["renewals"]
    negotiate = world["stages"]["negotiate"]
    assert only(world, {"field": "pipeline", "op": "eq", "value": str(renewals.public_id)}) == [
        "Annual renewal"
    ]
    assert only(world, {"field": "pipeline", "op": "neq", "value": str(sales.public_id)}) == [
        "Annual renewal"
    ]
    assert only(world, {"field": "stage", "op": "eq", "value": str(negotiate.public_id)}) == [
        "Acme anvil fleet"
    ]
    # The builder's labels name a stage with its pipeline when there are several pipelines.
    assert only(world, {"field": "stage", "op": "eq", "value": "Sales › Qualify"}) == [
        "Starter pack",
        "Won deal",
    ]
    _found, state = titles(world, {"field": "stage", "op": "eq", "value": "Nowhere"})
    assert "has no option" in state.error


def test_probability_and_forecast_category_are_what_the_deal_counts_as(world):
    # Negotiate's 80 %, the starter's own 35 %, the renewal stage's 50 %, won counts 100.
    assert only(world, {"field": "probability", "op": "gt", "value": 60}) == [
        "Acme anvil fleet",
        "Won deal",
    ]
    assert only(world, {"field": "probability", "op": "eq", "value": 35}) == ["Starter pack"]
    assert only(world, {"field": "forecast_category", "op": "eq", "value": "commit"}) == [
        "Acme anvil fleet"
    ]
    assert only(world, {"field": "forecast_category", "op": "eq", "value": "closed"}) == [
        "Won deal"
    ]
    assert only(world, {"field": "probability", "op": "lt", "value": 40}) == ["Starter pack"]
    assert only(world, {"field": "probability", "op": "neq", "value": 80}) == [
        "Annual renewal",
        "Starter pack",
        "Won deal",
    ]
    assert only(world, {"field": "forecast_category", "op": "neq", "value": "pipeline"}) == [
        "Acme anvil fleet",
        "Won deal",
    ]
    assert only(
        world, {"field": "forecast_category", "op": "any_of", "value": ["pipeline", "closed"]}
    ) == ["Annual renewal", "Starter pack", "Won deal"]
    assert only(world, {"field": "probability", "op": "is_empty"}) == []
    _found, state = titles(world, {"field": "probability", "op": "eq", "value": 35.5})
    assert "whole number" in state.error


def test_owner_team_contact_and_company(world):
    rep = world["rep"].user
    assert only(world, {"field": "owner", "op": "eq", "value": "me"}) == [
        "Acme anvil fleet",
        "Won deal",
    ]
    assert only(world, {"field": "owner", "op": "eq", "value": "unclaimed"}) == ["Annual renewal"]
    assert only(world, {"field": "owner", "op": "eq", "value": str(rep.public_id)}) == [
        "Starter pack"
    ]
    team = world["team"]
    assert only(world, {"field": "team", "op": "eq", "value": str(team.public_id)}) == [
        "Acme anvil fleet"
    ]
    assert only(world, {"field": "team", "op": "is_empty"}) == [
        "Annual renewal",
        "Starter pack",
        "Won deal",
    ]
    assert only(world, {"field": "contact", "op": "eq", "value": "ada lovelace"}) == [
        "Acme anvil fleet"
    ]
    assert only(world, {"field": "contact", "op": "contains", "value": "LOVE"}) == [
        "Acme anvil fleet"
    ]
    assert len(only(world, {"field": "contact", "op": "is_empty"})) == 3
    assert only(world, {"field": "company", "op": "contains", "value": "anvils"}) == [
        "Acme anvil fleet"
    ]


def test_dates(world):
    assert only(world, {"field": "expected_close_date", "op": "before", "value": "2026-04-01"}) == [
        "Acme anvil fleet"
    ]
    assert only(world, {"field": "expected_close_date", "op": "is_empty"}) == [
        "Annual renewal",
        "Won deal",
    ]
    assert only(world, {"field": "closed_at", "op": "in_last_days", "value": 7}) == ["Won deal"]
    assert len(only(world, {"field": "created_at", "op": "in_last_days", "value": 1})) == 4
    old = world["deals"]["renewal"]
    Deal.objects.for_org(world["org"]).filter(pk=old.pk).update(
        updated_at=timezone.now() - dt.timedelta(days=40)
    )
    assert only(world, {"field": "updated_at", "op": "before", "value": "2000-01-01"}) == []
    assert "Annual renewal" not in only(
        world, {"field": "updated_at", "op": "in_last_days", "value": 30}
    )


def test_tags(world):
    assert only(world, {"field": "tags", "op": "eq", "value": "cold"}) == ["Starter pack"]
    assert only(world, {"field": "tags", "op": "any_of", "value": ["VIP"]}) == [
        "Acme anvil fleet",
        "Starter pack",
    ]
    assert only(world, {"field": "tags", "op": "neq", "value": "vip"}) == [
        "Annual renewal",
        "Won deal",
    ]
    assert only(world, {"field": "tags", "op": "is_empty"}) == ["Annual renewal", "Won deal"]


def test_custom_fields_of_the_deal_entity(world):
    assert only(world, {"field": "custom.seats", "op": "gt", "value": 100}) == ["Acme anvil fleet"]
    assert only(world, {"field": "custom.region", "op": "eq", "value": "APAC"}) == ["Starter pack"]
    assert len(only(world, {"field": "custom.seats", "op": "is_empty"})) == 2
    # A contact's custom field is not a deal field.
    _found, state = titles(world, {"field": "custom.hobby", "op": "is_not_empty"})
    assert "unknown field" in state.error


def test_groups_combine_with_or_and_the_panel_ands_into_them(world):
    spec = {
        "groups": [
            {"conditions": [{"field": "title", "op": "contains", "value": "anvil"}]},
            {"conditions": [{"field": "title", "op": "contains", "value": "renewal"}]},
        ]
    }
    policy = Policy(world["admin"])
    query = QueryDict(mutable=True)
    query["filters"] = json.dumps(spec)
    query["value_min"] = "12000"
    queryset, state = filter_deals(
        visible_deals(world["org"], policy, archived=None),
        org=world["org"],
        policy=policy,
        params=query,
    )
    assert not state.error
    assert sorted(queryset.values_list("title", flat=True)) == [
        "Acme anvil fleet",
        "Annual renewal",
    ]
    query["value_min"] = "12000.01"
    queryset, _ = filter_deals(
        visible_deals(world["org"], policy, archived=None),
        org=world["org"],
        policy=policy,
        params=query,
    )
    assert list(queryset.values_list("title", flat=True)) == ["Acme anvil fleet"]


def test_panel_inputs(world):
    negotiate, qualify = world["stages"]["negotiate"], world["stages"]["qualify"]
    query = QueryDict(mutable=True)
    query.setlist("stage", [str(negotiate.public_id), str(qualify.public_id)])
    query.setlist("status", ["open"])
    query["close_from"] = "2026-03-31"
    query["close_to"] = "2026-05-15"
    assert only(world, params=query) == ["Acme anvil fleet", "Starter pack"]
    query["close_to"] = "2026-05-14"
    assert only(world, params=query) == ["Acme anvil fleet"]
    bad = QueryDict(mutable=True)
    bad["close_from"] = "yesterday"
    _found, state = titles(world, params=bad)
    assert "needs a date" in state.error


def test_an_invalid_filter_matches_nothing(world):
    _found, state = titles(world, params={"filters": "{not json"})
    assert state.error and _found == []


def test_title_search_needs_each_word_to_start_a_word(world):
    assert only(world, params={"q": "acme fle"}) == ["Acme anvil fleet"]
    assert only(world, params={"q": "nvil"}) == []
    # tsquery syntax typed into the box is only text.
    assert only(world, params={"q": "renew:* & !|"}) == ["Annual renewal"]


def test_archived_deals_only_when_asked(world):
    deal = world["deals"]["small"]
    Deal.objects.for_org(world["org"]).filter(pk=deal.pk).update(is_archived=True)
    assert "Starter pack" not in only(world)
    assert only(world, params={"archived": "1"}) == ["Starter pack"]


def test_record_scope_limits_what_a_filter_finds(world):
    assert only(world, {"field": "value", "op": "gt", "value": 0}, who="rep") == ["Starter pack"]


@pytest.fixture
def hides_value(world):
    org = world["org"]
    admin_role = role(org, "admin")
    world["secretive"] = MembershipFactory(
        org=org,
        role=custom_role(
            org,
            permissions=admin_role.permissions,
            field_rules={"deal.value": "hidden", "deal.custom": "hidden"},
        ),
    )
    return world


def test_a_filter_on_a_hidden_deal_field_is_refused_by_name(hides_value):
    world = hides_value
    for field, op, value in (
        ("value", "gt", 1),
        ("currency", "eq", "EUR"),
        ("custom.seats", "gt", 1),
    ):
        found, state = titles(world, {"field": field, "op": op, "value": value}, who="secretive")
        assert "hidden for your role" in state.error
        assert found == []
    # The panel's value range is simply not offered: its inputs are ignored.
    assert len(only(world, who="secretive", params={"value_min": "1000000"})) == 4
    # A visible field still filters.
    assert only(world, {"field": "title", "op": "contains", "value": "pack"}, who="secretive") == [
        "Starter pack"
    ]


def test_hidden_fields_are_not_in_the_builder(hides_value):
    world = hides_value
    policy = Policy(world["secretive"])
    visible = visible_deal_catalog(deal_field_catalog(world["org"]), policy)
    keys = {spec.key for spec in visible}
    assert {"value", "currency", "custom.seats", "custom.region"}.isdisjoint(keys)
    assert {"title", "stage", "owner", "tags"} <= keys
    schema = deal_builder_schema(visible, [], [])
    assert "value" not in {f["key"] for f in schema["fields"]}
    probability = next(f for f in schema["fields"] if f["key"] == "probability")
    assert probability["whole"] is True


def test_the_table_shows_a_refused_filter_without_rows(hides_value, client_as):
    world = hides_value
    spec = {"groups": [{"conditions": [{"field": "value", "op": "gt", "value": 1}]}]}
    response = client_as(world["secretive"]).get(
        reverse("pipeline:deal_list"), {"filters": json.dumps(spec)}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "hidden for your role" in html
    assert "Starter pack" not in html


def test_search_finds_deals_by_title_in_scope(world):
    org = world["org"]
    admin, rep = Policy(world["admin"]), Policy(world["rep"])
    found = deals_for_search(org=org, policy=admin, search="annual", limit=5)
    assert [d.title for d in found] == ["Annual renewal"]
    assert deals_for_search(org=org, policy=rep, search="annual", limit=5) == []
    assert [d.title for d in deals_for_search(org=org, policy=rep, search="start", limit=5)] == [
        "Starter pack"
    ]
    # No pipeline right, no deals.
    support = Policy(member(org, "support"))
    assert deals_for_search(org=org, policy=support, search="annual", limit=5) == []


def test_global_search_lists_deals(world, client_as):
    html = (
        client_as(world["admin"]).get(reverse("contacts:search"), {"q": "anvil"}).content.decode()
    )
    assert "Acme anvil fleet" in html
    assert reverse("pipeline:deal_detail", args=[world["deals"]["big"].public_id]) in html
    suggest = (
        client_as(world["admin"], htmx=True)
        .get(reverse("contacts:search_suggest"), {"q": "starter"})
        .content.decode()
    )
    assert "Starter pack" in suggest


def test_board_members_search_deals_only(world, client_as):
    board = member(world["org"], "board")
    response = client_as(board).get(reverse("contacts:search"), {"q": "acme"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Acme anvil fleet" in html
    assert "Ada Lovelace" not in html and "Acme Anvils" not in html
    client = member(world["org"], "client")
    assert client_as(client).get(reverse("contacts:search"), {"q": "acme"}).status_code == 403


def test_contact_filters_are_unchanged(world):
    """The engine's contact side: a contact spec still parses and compiles on contacts."""
    org = world["org"]
    ContactFactory(org=org, first_name="Zed", last_name="Zulu")
    from contacts.fields import contact_field_catalog
    from contacts.filters import compile_filters

    catalog = contact_field_catalog(org)
    spec = parse_filters(
        {"groups": [{"conditions": [{"field": "first_name", "op": "eq", "value": "zed"}]}]},
        catalog,
    )
    q = compile_filters(spec, catalog, tz="UTC", org=org)
    assert list(Contact.objects.for_org(org).filter(q).values_list("last_name", flat=True)) == [
        "Zulu"
    ]
