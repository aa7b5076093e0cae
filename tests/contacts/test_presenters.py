"""The contact pages' HTML made in Python (contacts/presenters.py) and what the list reads for
it (contacts/selectors/list_page.py): every value escaped, tags A to Z, the row's parts in
place, the details tab's rows, and a page query that reads only the columns it shows."""

import datetime as dt
import zoneinfo
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.fields import catalog_by_key, contact_field_catalog
from contacts.models import Contact
from contacts.presenters import field_row_html, list_rows
from contacts.selectors.list_page import for_list_page, tag_names_by_contact
from crm.permissions import Policy
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    TagFactory,
)

pytestmark = pytest.mark.django_db

UTC = zoneinfo.ZoneInfo("UTC")


@pytest.fixture
def tricky(org, owner):
    """A contact whose every shown value holds markup."""
    company = CompanyFactory(org=org, name="<script>alert(1)</script> & Co")
    tags = [TagFactory(org=org, name=name) for name in ("zeta", "<b>bold</b>", "alpha")]
    contact = ContactFactory(
        org=org,
        first_name='Ada "<i>',
        last_name="O'Hara",
        email="ada@example.com",
        company=company,
        owner=owner.user,
        tags=tags,
        is_archived=True,
    )
    # created_at is set on insert; a known moment makes the day it shows checkable.
    Contact.objects.for_org(org).filter(pk=contact.pk).update(
        created_at=dt.datetime(2026, 3, 4, 23, 30, tzinfo=UTC)
    )
    return contact


def _row(org, contact, columns, *, selectable=True, tz=UTC):
    fields = catalog_by_key(contact_field_catalog(org))
    contact = Contact.objects.for_org(org).select_related("owner", "company").get(pk=contact.pk)
    names = tag_names_by_contact(org, [contact.pk])
    (row,) = list_rows(
        [contact], columns=columns, fields=fields, tz=tz, tag_names=names, selectable=selectable
    )
    return row


def test_a_list_row_escapes_every_value_and_shows_tags_a_to_z(org, tricky):
    row = _row(org, tricky, ["company", "owner", "tags", "created_at"])
    html = row["html"]
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</a></td>" in html
    assert "Ada &quot;&lt;i&gt; O&#x27;Hara</a>" in html
    assert 'aria-label="Select Ada &quot;&lt;i&gt; O&#x27;Hara"' in html
    badges = html.split('class="badge tag-badge">')[1:]
    assert [badge.split("</span>")[0] for badge in badges] == [
        "&lt;b&gt;bold&lt;/b&gt;",
        "alpha",
        "zeta",
    ]
    assert html.startswith('<tr class="is-archived">')
    assert ' <span class="badge">Archived</span></th>' in html
    company_url = reverse("contacts:company_detail", args=[tricky.company.public_id])
    assert f'<a href="{company_url}">' in html
    assert row["url"] == reverse("contacts:contact_detail", args=[tricky.public_id])


def test_a_moment_shows_its_day_in_the_org_time_zone_with_the_exact_time_as_a_title(org, tricky):
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    cell = _row(org, tricky, ["created_at"], tz=tokyo)["html"].split("</th>")[1]
    assert cell == '<td title="2026-03-04T23:30:00+00:00">Mar 5, 2026</td></tr>'


def test_an_unowned_contact_says_no_one_and_a_row_without_bulk_actions_has_no_checkbox(org):
    contact = ContactFactory(org=org, first_name="", last_name="", email="x@example.com")
    row = _row(org, contact, ["owner", "company", "tags"], selectable=False)
    assert row["html"] == (
        f'<tr><th scope="row" class="col-name"><a href="{row["url"]}">x@example.com</a></th>'
        '<td class="muted">No one</td><td></td><td></td></tr>'
    )


def test_custom_choice_and_bool_cells_read_as_words(org):
    CustomFieldDefinitionFactory(org=org, key="vip", label="VIP", field_type="checkbox")
    contact = ContactFactory(
        org=org, lifecycle_stage="customer", consent_email=None, custom={"vip": True}
    )
    cells = _row(org, contact, ["lifecycle_stage", "consent_email", "custom.vip"])["html"]
    assert cells.split("</th>")[1] == "<td>Customer</td><td></td><td>Yes</td></tr>"


def test_the_page_query_reads_only_what_the_page_shows(org, owner, client_as):
    ContactFactory(org=org, owner=owner.user, company=CompanyFactory(org=org))
    qs = for_list_page(
        Contact.objects.for_org(org), ["email", "owner"], contact_field_catalog(org), "-lead_score"
    )
    with CaptureQueriesContext(connection) as captured:
        assert len(list(qs)) == 1
    sql, owners = [q["sql"] for q in captured.captured_queries]
    assert '"contacts_contact"."lead_score"' in sql  # the sort key, for the next cursor
    # The owners in a second query for the page (joined, they misled the planner).
    assert "crm_user" not in sql
    assert '"crm_user"."first_name"' in owners and "password" not in owners
    for unread in ("search_vector", '"contacts_contact"."custom"', '"contacts_contact"."city"'):
        assert unread not in sql
    assert "contacts_company" not in sql  # no company column, no join

    # A page whose sort is not among its columns still pages without a query per row.
    client = client_as(owner)
    for _ in range(3):
        ContactFactory(org=org, owner=owner.user)
    for columns in ("email", "email,owner"):
        with CaptureQueriesContext(connection) as few:
            client.get(reverse("contacts:contact_list"), {"size": 1, "columns": columns})
        with CaptureQueriesContext(connection) as more:
            client.get(reverse("contacts:contact_list"), {"size": 4, "columns": columns})
        assert len(few.captured_queries) == len(more.captured_queries)


def test_a_details_row_escapes_its_value_and_links_edit_only_when_editable(org, tricky):
    fields = catalog_by_key(contact_field_catalog(org))
    item = {
        "spec": fields["first_name"],
        "editable": True,
        "dom_id": "field-first_name",
        "edit_url": "/contacts/x/fields/first_name/edit/",
    }
    html = field_row_html(tricky, item)
    assert '<span class="field-value">Ada &quot;&lt;i&gt;</span>' in html
    assert 'hx-get="/contacts/x/fields/first_name/edit/" hx-target="#field-first_name"' in html
    assert ">Edit<span" in html
    assert "inline-edit" not in field_row_html(tricky, {**item, "editable": False})


def test_the_contact_page_works_out_each_field_rule_once(org, owner, client_as, monkeypatch):
    """The header, the tabs and every field row ask the policy about fields; it answers each
    (field, module) once per request and remembers."""
    contact = ContactFactory(org=org, owner=owner.user)
    worked_out = Counter()
    original = Policy._field_level

    def counting(policy, field_key, module):
        worked_out[field_key, module] += 1
        return original(policy, field_key, module)

    monkeypatch.setattr(Policy, "_field_level", counting)
    response = client_as(owner).get(reverse("contacts:contact_detail", args=[contact.public_id]))
    assert response.status_code == 200
    assert len(worked_out) >= 40  # every field of the catalog was asked about
    assert max(worked_out.values()) == 1, worked_out.most_common(3)
