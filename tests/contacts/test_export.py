"""Contact exports: the export right, the list state, field visibility (a hidden field has no
column at all), formula neutralization in CSV only, a valid streamed JSON array, a query count
that does not grow with the rows, and an audit record of what was exported."""

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import CustomFieldDefinition
from crm.models import AuditEvent, Membership
from tests.factories import CompanyFactory, ContactFactory, TagFactory, custom_role, member

CSV_URL = "contacts:export_csv"
JSON_URL = "contacts:export_json"


def download(response) -> str:
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content).decode("utf-8")


def csv_rows(response) -> list[dict]:
    text = download(response).lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text)))


def json_rows(response) -> list[dict]:
    return json.loads(download(response))


def exporter(org, **role_fields):
    """A member whose role may view and export contacts (plus what `role_fields` say)."""
    permissions = {
        "contacts": {"access": True, "view": True, "export": True, "scope": "all"},
        "companies": {"access": True, "view": True, "scope": "all"},
    }
    permissions.update(role_fields.pop("permissions", {}))
    role = custom_role(org, permissions=permissions, **role_fields)
    membership = member(org, "team")
    Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.refresh_from_db()
    return membership


@pytest.mark.parametrize("role", ["viewer", "team", "support"])
def test_exporting_needs_the_export_right(org, members, client_as, role):
    ContactFactory(org=org)
    client = client_as(members[role])

    assert client.get(reverse(CSV_URL)).status_code == 403
    assert client.get(reverse(JSON_URL)).status_code == 403
    assert not AuditEvent.objects.filter(verb="contacts.exported").exists()


def test_admin_exports_every_visible_field_with_custom_fields_and_tags(org, members, client_as):
    CustomFieldDefinition.objects.create(
        org=org,
        key="industry_fit",
        label="Industry fit",
        field_type="list",
        choices=["Strong", "Weak"],
    )
    company = CompanyFactory(org=org, name="Initech")
    contact = ContactFactory(
        org=org,
        first_name="Ada",
        last_name="Lovelace",
        company=company,
        owner=members["team"].user,
        lifecycle_stage="qualified",
        custom={"industry_fit": "Strong"},
        tags=[TagFactory(org=org, name="vip"), TagFactory(org=org, name="beta")],
    )

    [row] = csv_rows(client_as(members["admin"]).get(reverse(CSV_URL)))
    [record] = json_rows(client_as(members["admin"]).get(reverse(JSON_URL)))

    assert row["ID"] == str(contact.public_id)
    assert row["First name"] == "Ada"
    assert row["Company"] == "Initech"
    assert row["Owner"] == members["team"].user.email
    assert row["Lifecycle stage"] == "Qualified"
    assert row["Tags"] == "beta; vip"
    assert row["Industry fit (custom)"] == "Strong"
    assert record["lifecycle_stage"] == "qualified"
    assert record["tags"] == ["beta", "vip"]
    assert record["custom"] == {"industry_fit": "Strong"}


def test_a_hidden_field_has_no_column_in_csv_or_json(org, client_as):
    CustomFieldDefinition.objects.create(org=org, key="salary", label="Salary", field_type="number")
    ContactFactory(org=org, phone="+15551234567", custom={"salary": 99000})
    clerk = exporter(org, field_rules={"phone": "hidden", "custom.salary": "hidden"})
    client = client_as(clerk)

    csv_text = download(client.get(reverse(CSV_URL)))
    records = json_rows(client.get(reverse(JSON_URL)))

    header = csv_text.lstrip("\ufeff").splitlines()[0]
    assert "Phone" not in header.split(",")
    assert "Salary (custom)" not in header
    assert "5551234567" not in csv_text and "99000" not in csv_text
    assert "phone" not in records[0]
    assert "salary" not in records[0].get("custom", {})
    assert "Mobile" in header.split(",")


def test_csv_neutralizes_formulas_and_json_keeps_values_intact(org, members, client_as):
    ContactFactory(
        org=org,
        first_name='=HYPERLINK("http://evil.example","x")',
        last_name="+SUM(1,2)",
        job_title="-2+3",
        department="@cmd",
        source="\tTab",
        city="\rReturn",
        phone="+15551234567",
    )
    client = client_as(members["admin"])

    [row] = csv_rows(client.get(reverse(CSV_URL)))
    [record] = json_rows(client.get(reverse(JSON_URL)))

    assert row["First name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["Last name"] == "'+SUM(1,2)"
    assert row["Job title"] == "'-2+3"
    assert row["Department"] == "'@cmd"
    assert row["Source"] == "'\tTab"
    assert row["City"] == "'\rReturn"
    assert row["Phone"] == "+15551234567"  # a phone number is not a formula
    assert record["phone"] == "+15551234567"
    assert record["first_name"] == '=HYPERLINK("http://evil.example","x")'
    assert record["department"] == "@cmd"


def test_export_follows_the_search_filters_and_archived_state(org, members, client_as):
    ContactFactory(org=org, first_name="Zelda", last_name="Fitzgerald")
    ContactFactory(org=org, first_name="Ada", last_name="Byron", lifecycle_stage="customer")
    ContactFactory(org=org, first_name="Zora", last_name="Neale", is_archived=True)
    client = client_as(members["admin"])
    customers = json.dumps(
        {
            "groups": [
                {"conditions": [{"field": "lifecycle_stage", "op": "eq", "value": "customer"}]}
            ]
        }
    )

    searched = json_rows(client.get(reverse(JSON_URL), {"q": "zel"}))
    filtered = json_rows(client.get(reverse(JSON_URL), {"filters": customers}))
    archived = json_rows(client.get(reverse(JSON_URL), {"archived": "1"}))

    assert [r["first_name"] for r in searched] == ["Zelda"]
    assert [r["first_name"] for r in filtered] == ["Ada"]
    assert [r["first_name"] for r in archived] == ["Zora"]


def test_export_of_ticked_rows_only(org, members, client_as):
    picked, other = ContactFactory.create_batch(2, org=org)

    rows = json_rows(
        client_as(members["admin"]).get(reverse(JSON_URL), {"ids": [str(picked.public_id)]})
    )

    assert [r["id"] for r in rows] == [str(picked.public_id)]
    assert str(other.public_id) not in json.dumps(rows)


def test_export_respects_record_scope(org, members, client_as):
    clerk = exporter(
        org,
        permissions={"contacts": {"access": True, "view": True, "export": True, "scope": "own"}},
    )
    mine = ContactFactory(org=org, owner=clerk.user)
    ContactFactory(org=org, owner=members["admin"].user)

    rows = json_rows(client_as(clerk).get(reverse(JSON_URL)))

    assert [r["id"] for r in rows] == [str(mine.public_id)]


def test_an_invalid_filter_is_refused_not_widened(org, members, client_as):
    ContactFactory(org=org)

    response = client_as(members["admin"]).get(reverse(CSV_URL), {"filters": "{not json"})

    assert response.status_code == 400
    assert b"Fix the filter" in response.content


def test_json_export_is_a_valid_array_when_nothing_matches(org, members, client_as):
    assert json_rows(client_as(members["admin"]).get(reverse(JSON_URL))) == []


def test_export_query_count_does_not_grow_with_rows(org, members, client_as):
    client = client_as(members["admin"])
    tag = TagFactory(org=org)

    def queries_for_export() -> int:
        with CaptureQueriesContext(connection) as captured:
            download(client.get(reverse(CSV_URL)))
        return len(captured.captured_queries)

    ContactFactory.create_batch(3, org=org, tags=[tag], company=CompanyFactory(org=org))
    few = queries_for_export()
    for _ in range(4):
        ContactFactory.create_batch(10, org=org, tags=[tag], company=CompanyFactory(org=org))
    many = queries_for_export()

    assert many == few


def test_every_export_is_audited_with_its_row_filter(org, members, client_as):
    ContactFactory(org=org)

    download(client_as(members["admin"]).get(reverse(CSV_URL), {"q": "ada", "archived": "1"}))

    event = AuditEvent.objects.get(verb="contacts.exported")
    assert event.actor_user == members["admin"].user
    assert event.changes["format"] == "csv"
    assert event.changes["search"] == "ada"
    assert event.changes["archived"] is True
    assert "email" in event.changes["columns"]


def test_another_orgs_contacts_never_appear(org, other_org, members, client_as):
    ContactFactory(org=other_org, first_name="Outsider")

    assert json_rows(client_as(members["admin"]).get(reverse(JSON_URL))) == []


XSS_FIELD = "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize("url_name", [CSV_URL, JSON_URL])
def test_a_filter_naming_html_is_refused_with_the_markup_escaped(org, members, client_as, url_name):
    """The filter error repeats the unknown field name; a 400 that echoed it raw as text/html
    would run script from a link anyone can send."""
    spec = json.dumps({"groups": [{"conditions": [{"field": XSS_FIELD, "op": "eq", "value": 1}]}]})

    response = client_as(members["admin"]).get(reverse(url_name), {"filters": spec})

    assert response.status_code == 400
    body = response.content.decode()
    assert XSS_FIELD not in body
    assert "Fix the filter before exporting" in body
    if response["Content-Type"].startswith("text/html"):
        assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "script-src 'self'" in response["Content-Security-Policy"]
