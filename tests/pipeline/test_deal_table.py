"""The deal table: who may open it, its rows in the member's scope, columns without hidden
fields, sorting with keyset pages, a query count that does not grow with the rows shown,
the capped count, and saved deal views (kept apart from the contact list's views)."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from contacts.models import SmartView
from crm.models import AuditEvent
from pipeline.models import DealTag
from tests.factories import (
    CompanyFactory,
    DealFactory,
    MembershipFactory,
    OrganizationFactory,
    PipelineFactory,
    SmartViewFactory,
    StageFactory,
    TagFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db
LIST = "pipeline:deal_list"


@pytest.fixture
def stage(org):
    pipeline = PipelineFactory(org=org, name="Sales")
    return StageFactory(org=org, pipeline=pipeline, name="Propose", probability=40)


def titles_of(response) -> list[str]:
    return [row["title"] for row in response.context["rows"]]


def test_members_with_pipeline_view_open_the_table(org, stage, client_as):
    DealFactory(org=org, stage=stage, title="Visible deal")
    board = member(org, "board")
    response = client_as(board).get(reverse(LIST))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Visible deal" in html
    # Read-only: no row checkboxes, no bulk bar, no export.
    assert 'name="ids"' not in html and 'id="bulk-bar"' not in html
    assert not response.context["export_urls"]
    support = member(org, "support")
    assert client_as(support).get(reverse(LIST)).status_code == 403


def test_rows_are_limited_to_the_record_scope(org, stage, client_as):
    rep = member(org, "team")
    DealFactory(org=org, stage=stage, title="Mine", owner=rep.user)
    DealFactory(org=org, stage=stage, title="Someone else's", owner=member(org, "admin").user)
    response = client_as(rep).get(reverse(LIST))
    assert titles_of(response) == ["Mine"]
    assert "Someone else" not in response.content.decode()


def test_another_orgs_deals_never_show(org, stage, client_as):
    DealFactory(org=org, stage=stage, title="Acme secret")
    other = OrganizationFactory()
    response = client_as(member(other, "owner")).get(reverse(LIST))
    assert response.status_code == 200
    assert "Acme secret" not in response.content.decode()


def test_a_hidden_field_is_no_column(org, stage, client_as):
    DealFactory(org=org, stage=stage, title="Priced", value=Decimal("98765.43"))
    admin_role = role(org, "admin")
    secretive = MembershipFactory(
        org=org,
        role=custom_role(
            org, permissions=admin_role.permissions, field_rules={"deal.value": "hidden"}
        ),
    )
    response = client_as(secretive).get(reverse(LIST), {"columns": "value,currency,stage"})
    html = response.content.decode()
    assert "Priced" in html and "Propose" in html
    assert "98,765.43" not in html
    assert [h["key"] for h in response.context["headers"]] == ["title", "stage"]
    assert "value" not in {key for key, *_ in response.context["column_choices"]}
    # Nor a sort: the value sort falls back to the default.
    response = client_as(secretive).get(reverse(LIST), {"sort": "-value"})
    assert response.context["state"].sort == "-updated_at"


def test_columns_show_the_deal_fields(org, stage, client_as):
    owner = member(org, "owner")
    company = CompanyFactory(org=org, name="Initech")
    deal = DealFactory(
        org=org,
        stage=stage,
        title="Columns",
        value=Decimal("1234.50"),
        currency="EUR",
        owner=owner.user,
        company=company,
        expected_close_date=dt.date(2026, 7, 1),
    )
    DealTag.objects.create(org=org, deal=deal, tag=TagFactory(org=org, name="q3"))
    response = client_as(owner).get(
        reverse(LIST), {"columns": "value,stage,probability,owner,company,tags,status"}
    )
    html = response.content.decode()
    for text in ("1,234.50 EUR", "Propose", "40%", owner.user.display_name, "Initech", "q3"):
        assert text in html
    assert reverse("pipeline:deal_detail", args=[deal.public_id]) in html


@pytest.fixture
def priced(org, stage):
    values = [700, 100, 500, 300, 600, 200, 400]
    return [
        DealFactory(org=org, stage=stage, title=f"Deal {value}", value=Decimal(value))
        for value in values
    ]


def test_sorting_with_keyset_pages(org, priced, client_as):
    client = client_as(member(org, "owner"))
    first = client.get(reverse(LIST), {"sort": "-value", "size": 3})
    assert titles_of(first) == ["Deal 700", "Deal 600", "Deal 500"]
    page = first.context["page"]
    assert page.has_next and not page.has_prev
    second = client.get(reverse(LIST), {"sort": "-value", "size": 3, "cursor": page.next_cursor})
    assert titles_of(second) == ["Deal 400", "Deal 300", "Deal 200"]
    third = client.get(
        reverse(LIST), {"sort": "-value", "size": 3, "cursor": second.context["page"].next_cursor}
    )
    assert titles_of(third) == ["Deal 100"]
    assert not third.context["page"].has_next
    back = client.get(
        reverse(LIST), {"sort": "-value", "size": 3, "cursor": third.context["page"].prev_cursor}
    )
    assert titles_of(back) == ["Deal 400", "Deal 300", "Deal 200"]
    ascending = client.get(reverse(LIST), {"sort": "value", "size": 2})
    assert titles_of(ascending) == ["Deal 100", "Deal 200"]
    # A forged cursor is ignored: the first page.
    forged = client.get(reverse(LIST), {"sort": "-value", "size": 3, "cursor": "x" * 40})
    assert titles_of(forged) == ["Deal 700", "Deal 600", "Deal 500"]


def test_a_nullable_sort_puts_deals_without_a_date_last(org, stage, client_as):
    for title, day in (("Late", 20), ("None", None), ("Early", 5)):
        DealFactory(
            org=org,
            stage=stage,
            title=title,
            expected_close_date=dt.date(2026, 1, day) if day else None,
        )
    client = client_as(member(org, "owner"))
    first = client.get(reverse(LIST), {"sort": "expected_close_date", "size": 2})
    assert titles_of(first) == ["Early", "Late"]
    rest = client.get(
        reverse(LIST),
        {"sort": "expected_close_date", "size": 2, "cursor": first.context["page"].next_cursor},
    )
    assert titles_of(rest) == ["None"]


def test_unknown_sort_and_columns_fall_back(org, priced, client_as):
    response = client_as(member(org, "owner")).get(
        reverse(LIST), {"sort": "title; DROP TABLE", "columns": "nope,value"}
    )
    assert response.status_code == 200
    assert response.context["state"].sort == "-updated_at"
    assert response.context["state"].columns == ["value"]


def _queries(client, **params) -> int:
    """The queries one request of the table runs (counted as they run: the query log is
    reset when a request starts)."""
    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(reverse(LIST), params)
    assert response.status_code == 200
    assert len(response.context["rows"]) == len(response.context["page"].rows)
    return len(statements)


def test_query_count_does_not_grow_with_the_rows_shown(org, stage, client_as):
    owner = member(org, "owner")
    client = client_as(owner)
    columns = "value,stage,probability,owner,team,contact,company,tags,forecast_category"
    company = CompanyFactory(org=org)
    tag = TagFactory(org=org)

    def add(n):
        for _ in range(n):
            deal = DealFactory(org=org, stage=stage, owner=owner.user, company=company)
            DealTag.objects.create(org=org, deal=deal, tag=tag)

    add(2)
    few = _queries(client, columns=columns, size=50)
    add(30)
    many = _queries(client, columns=columns, size=50)
    assert few == many
    assert 5 < many < 30


def test_the_count_is_capped_and_filtered(org, priced, client_as):
    client = client_as(member(org, "owner"), htmx=True)
    html = client.get(reverse("pipeline:deal_list_count"), {"value_min": "500"}).content.decode()
    assert "3 deals" in html
    data = client.get(reverse("pipeline:deal_list_bulk_count"), {"q": "deal"}).json()
    assert data["count"] == 7


def test_htmx_requests_get_the_table_part_only(org, priced, client_as):
    client = client_as(member(org, "owner"), htmx=True)
    response = client.get(reverse(LIST), {"sort": "value"}, HTTP_HX_TARGET="deal-table")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="deal-table"' in html and "Deal 100" in html


def test_the_no_javascript_builder_sends_one_condition(org, priced, client_as):
    response = client_as(member(org, "owner")).get(
        reverse(LIST), {"nf_field": "value", "nf_op": "lt", "nf_value": "250"}
    )
    assert sorted(titles_of(response)) == ["Deal 100", "Deal 200"]


# Saved deal views ------------------------------------------------------------------------------


def test_save_a_deal_view_and_open_it(org, priced, client_as):
    owner = member(org, "owner")
    client = client_as(owner)
    spec = {"groups": [{"conditions": [{"field": "value", "op": "gt", "value": 450}]}]}
    response = client.post(
        reverse("pipeline:deal_view_create"),
        {
            "name": "Big ones",
            "filters": json.dumps(spec),
            "columns": "value,stage",
            "sort": "value",
        },
    )
    assert response.status_code == 302
    view = SmartView.objects.for_org(org).get(name="Big ones")
    assert view.entity == SmartView.Entity.DEAL
    assert view.columns == ["value", "stage"] and view.sort == "value"
    assert AuditEvent.objects.for_org(org).filter(verb="deal_view.created").exists()
    opened = client.get(reverse(LIST), {"view": str(view.public_id)})
    assert titles_of(opened) == ["Deal 500", "Deal 600", "Deal 700"]
    assert opened.context["state"].columns == ["value", "stage"]
    assert view in opened.context["views"]


def test_deal_views_and_contact_views_stay_apart(org, priced, client_as):
    owner = member(org, "owner")
    client = client_as(owner)
    contact_view = SmartViewFactory(org=org, owner=owner.user, name="Hot leads")
    client.post(reverse("pipeline:deal_view_create"), {"name": "Hot leads"})
    deal_view = SmartView.objects.for_org(org).get(entity="deal", name="Hot leads")
    # The same name is fine: a contact view and a deal view never clash.
    contacts = client.get(reverse("contacts:contact_list"))
    assert list(contacts.context["views"]) == [contact_view]
    assert (
        client.get(reverse("contacts:contact_list"), {"view": str(deal_view.public_id)}).context[
            "active_view"
        ]
        is None
    )
    deals = client.get(reverse(LIST))
    assert list(deals.context["views"]) == [deal_view]
    assert (
        client.get(reverse(LIST), {"view": str(contact_view.public_id)}).context["active_view"]
        is None
    )
    # Neither list's manage URLs reach the other's view.
    assert (
        client.get(reverse("pipeline:deal_view_edit", args=[contact_view.public_id])).status_code
        == 404
    )
    assert (
        client.get(reverse("contacts:smart_view_edit", args=[deal_view.public_id])).status_code
        == 404
    )


def test_a_view_name_is_required_and_unique_per_member(org, client_as):
    client = client_as(member(org, "owner"))
    response = client.post(reverse("pipeline:deal_view_create"), {"name": "  "})
    assert response.status_code == 400
    assert "Give the view a name" in response.content.decode()
    client.post(reverse("pipeline:deal_view_create"), {"name": "Mine"})
    again = client.post(reverse("pipeline:deal_view_create"), {"name": "mine"})
    assert again.status_code == 400 and "already have a deal view" in again.content.decode()


def test_a_view_with_a_hidden_field_cannot_be_saved(org, client_as):
    admin_role = role(org, "admin")
    secretive = MembershipFactory(
        org=org,
        role=custom_role(
            org, permissions=admin_role.permissions, field_rules={"deal.value": "hidden"}
        ),
    )
    spec = {"groups": [{"conditions": [{"field": "value", "op": "gt", "value": 1}]}]}
    response = client_as(secretive).post(
        reverse("pipeline:deal_view_create"), {"name": "Sneaky", "filters": json.dumps(spec)}
    )
    assert response.status_code == 400
    assert not SmartView.objects.for_org(org).filter(name="Sneaky").exists()


def test_rename_update_and_delete_a_deal_view(org, priced, client_as):
    owner = member(org, "owner")
    client = client_as(owner)
    client.post(reverse("pipeline:deal_view_create"), {"name": "Draft"})
    view = SmartView.objects.for_org(org).get(name="Draft")
    edit = reverse("pipeline:deal_view_edit", args=[view.public_id])
    assert client.get(edit).status_code == 200
    assert client.post(edit, {"name": "Final", "is_shared": "1"}).status_code == 302
    view.refresh_from_db()
    assert view.name == "Final" and view.is_shared
    client.post(edit, {"update_filters": "1", "value_max": "250", "sort": "value"})
    view.refresh_from_db()
    assert view.filters["groups"][0]["conditions"][0]["field"] == "value"
    assert view.sort == "value"
    delete = reverse("pipeline:deal_view_delete", args=[view.public_id])
    assert client.post(delete).status_code == 302
    assert not SmartView.objects.for_org(org).filter(pk=view.pk).exists()


def test_views_of_others_and_of_other_orgs_are_404(org, client_as):
    author = member(org, "owner")
    client_as(author).post(reverse("pipeline:deal_view_create"), {"name": "Private"})
    view = SmartView.objects.for_org(org).get(name="Private")
    colleague = member(org, "admin")
    outsider = member(OrganizationFactory(), "owner")
    for who in (colleague, outsider):
        for name in ("pipeline:deal_view_edit", "pipeline:deal_view_delete"):
            url = reverse(name, args=[view.public_id])
            assert client_as(who).get(url).status_code == 404
            assert client_as(who).post(url, {"name": "Taken"}).status_code == 404
        assert (
            client_as(who).get(reverse(LIST), {"view": str(view.public_id)}).context["active_view"]
            is None
        )
    view.refresh_from_db()
    assert view.name == "Private"


def test_a_shared_view_is_used_by_all_but_changed_by_its_author(org, client_as):
    author = member(org, "owner")
    client_as(author).post(reverse("pipeline:deal_view_create"), {"name": "Team", "is_shared": "1"})
    view = SmartView.objects.for_org(org).get(name="Team")
    rep = member(org, "team")
    assert view in client_as(rep).get(reverse(LIST)).context["views"]
    url = reverse("pipeline:deal_view_edit", args=[view.public_id])
    assert client_as(rep).post(url, {"name": "Mine now"}).status_code == 403
