"""Exports of the deal table: CSV and JSON of the filtered deals, streamed; only the fields the
role may see; formula-looking text neutralized in CSV; the member's record scope; the export
right required; audited."""

import csv
import io
import json
from decimal import Decimal

import pytest
from django.urls import reverse

from crm.models import AuditEvent
from pipeline.models import DealTag
from tests.factories import (
    CompanyFactory,
    CustomFieldDefinitionFactory,
    DealFactory,
    MembershipFactory,
    OrganizationFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db
EXPORT = "pipeline:deal_export"


@pytest.fixture
def world(org):
    owner = member(org, "owner")
    stage = StageFactory(
        org=org, pipeline=PipelineFactory(org=org, name="Sales"), name="Propose", probability=40
    )
    CustomFieldDefinitionFactory(
        org=org, entity="deal", key="seats", label="Seats", field_type="number"
    )
    big = DealFactory(
        org=org,
        stage=stage,
        title='=HYPERLINK("http://evil.example", "click")',
        value=Decimal("1234.50"),
        currency="EUR",
        owner=owner.user,
        company=CompanyFactory(org=org, name="Initech"),
        custom={"seats": 12},
        source="+1 617 428 7721",
    )
    DealTag.objects.create(org=org, deal=big, tag=TagFactory(org=org, name="vip"))
    DealFactory(org=org, stage=stage, title="Small one", value=Decimal("10.00"), owner=owner.user)
    return {"org": org, "owner": owner, "stage": stage, "big": big}


def read_csv(response) -> list[dict]:
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def read_json(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    return json.loads(b"".join(response.streaming_content))


def test_csv_has_the_visible_fields_and_neutralizes_formulas(world, client_as):
    rows = read_csv(client_as(world["owner"]).get(reverse(EXPORT), {"sort": "-value"}))
    assert len(rows) == 2
    first = rows[0]
    assert first["Title"] == '\'=HYPERLINK("http://evil.example", "click")'
    assert first["Value"] == "1234.50" and first["Currency"] == "EUR"
    assert first["Stage"] == "Propose" and first["Pipeline"] == "Sales"
    assert first["Probability"] == "40" and first["Status"] == "Open"
    assert first["Company"] == "Initech" and first["Tags"] == "vip"
    assert first["Seats (custom)"] == "12"
    assert first["Owner (email)"] == world["owner"].user.email
    # A phone-like source is data, not a formula: left as it is.
    assert first["Source"] == "+1 617 428 7721"
    assert first["ID"] == str(world["big"].public_id)


def test_json_keeps_stored_values_with_custom_fields_together(world, client_as):
    records = read_json(
        client_as(world["owner"]).get(reverse(EXPORT), {"format": "json", "sort": "-value"})
    )
    first = records[0]
    assert first["title"].startswith("=HYPERLINK")  # JSON is data, not a spreadsheet
    assert first["value"] == "1234.50" and first["status"] == "open"
    assert first["tags"] == ["vip"]
    assert first["custom"] == {"seats": 12}
    assert first["forecast_category"] == "pipeline"


def test_the_export_follows_the_filter(world, client_as):
    rows = read_csv(client_as(world["owner"]).get(reverse(EXPORT), {"q": "small"}))
    assert [row["Title"] for row in rows] == ["Small one"]
    spec = {"groups": [{"conditions": [{"field": "value", "op": "gt", "value": 100}]}]}
    rows = read_csv(client_as(world["owner"]).get(reverse(EXPORT), {"filters": json.dumps(spec)}))
    assert len(rows) == 1 and rows[0]["Value"] == "1234.50"


def test_hidden_fields_are_not_exported(world, client_as):
    org = world["org"]
    secretive = MembershipFactory(
        org=org,
        role=custom_role(
            org,
            permissions=role(org, "admin").permissions,
            field_rules={"deal.value": "hidden", "deal.custom": "hidden", "deal.tags": "hidden"},
        ),
    )
    client = client_as(secretive)
    rows = read_csv(client.get(reverse(EXPORT)))
    assert rows and not {"Value", "Currency", "Seats (custom)", "Tags"} & set(rows[0])
    records = read_json(client.get(reverse(EXPORT), {"format": "json"}))
    assert not {"value", "currency", "custom", "tags"} & set(records[0])
    assert "1234.50" not in json.dumps(records)
    spec = {"groups": [{"conditions": [{"field": "value", "op": "gt", "value": 100}]}]}
    refused = client.get(reverse(EXPORT), {"filters": json.dumps(spec)})
    assert refused.status_code == 400
    assert "hidden for your role" in refused.content.decode()


def test_the_export_keeps_to_the_record_scope(world, client_as):
    rep = member(world["org"], "partner")  # pipeline view/create/edit, own scope, no export
    assert client_as(rep).get(reverse(EXPORT)).status_code == 403
    org = world["org"]
    own_exporter = MembershipFactory(
        org=org,
        role=custom_role(
            org,
            permissions={
                "pipeline": {
                    "access": True,
                    "view": True,
                    "export": True,
                    "scope": "own",
                }
            },
        ),
    )
    DealFactory(org=org, stage=world["stage"], title="Exporter's own", owner=own_exporter.user)
    rows = read_csv(client_as(own_exporter).get(reverse(EXPORT)))
    assert [row["Title"] for row in rows] == ["Exporter's own"]


def test_another_orgs_deals_never_leave(world, client_as):
    other = OrganizationFactory()
    outsider = member(other, "owner")
    DealFactory(org=other, title="Theirs")
    rows = read_csv(client_as(outsider).get(reverse(EXPORT)))
    assert [row["Title"] for row in rows] == ["Theirs"]


def test_exports_are_audited_and_need_the_export_right(world, client_as):
    read_csv(client_as(world["owner"]).get(reverse(EXPORT), {"q": "small"}))
    event = AuditEvent.objects.for_org(world["org"]).get(verb="deals.exported")
    assert event.changes["format"] == "csv" and event.changes["search"] == "small"
    assert "value" in event.changes["columns"]
    viewer = member(world["org"], "viewer")
    assert client_as(viewer).get(reverse(EXPORT)).status_code == 403
    bad = client_as(world["owner"]).get(reverse(EXPORT), {"format": "xml"})
    assert bad.status_code == 400


def test_export_links_only_for_members_with_the_right(world, client_as):
    owner_page = client_as(world["owner"]).get(reverse("pipeline:deal_list"), {"q": "small"})
    csv_url = owner_page.context["export_urls"]["csv"]
    assert "q=small" in csv_url and "format=csv" in csv_url
    viewer_page = client_as(member(world["org"], "viewer")).get(reverse("pipeline:deal_list"))
    assert viewer_page.context["export_urls"] == {}
