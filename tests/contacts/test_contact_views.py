import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from contacts.forms import ContactForm
from contacts.models import Activity, Contact
from crm.models import AuditEvent
from crm.permissions import Policy
from tests.factories import (
    ActivityFactory,
    CompanyFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    NoteFactory,
    TagFactory,
    TaskFactory,
    member,
    role,
)


def detail_url(contact, **params):
    url = reverse("contacts:contact_detail", kwargs={"public_id": contact.public_id})
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return url


def url(name, contact, **kwargs):
    return reverse(f"contacts:{name}", kwargs={"public_id": contact.public_id, **kwargs})


@pytest.fixture
def acme_contact(org, owner):
    company = CompanyFactory(org=org, name="Acme Rockets", domain="acme.example")
    return ContactFactory(
        org=org,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@acme.example",
        phone="+442079460958",
        job_title="VP Engineering",
        company=company,
        owner=owner.user,
        lifecycle_stage="qualified",
        tags=[TagFactory(org=org, name="vip")],
    )


# The page ---------------------------------------------------------------------------------


def test_detail_shows_header_facts_and_details(client_as, owner, acme_contact):
    response = client_as(owner).get(detail_url(acme_contact))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Ada Lovelace" in html
    assert "VP Engineering" in html
    assert "Acme Rockets" in html
    assert "Qualified" in html
    assert "vip" in html
    assert "+44 20 7946 0958" in html  # the E.164 number shown nicely
    assert url("contact_edit", acme_contact) in html


@pytest.mark.parametrize("tab", ["details", "timeline", "tasks", "notes"])
def test_every_tab_renders_as_page_and_as_htmx_partial(client_as, owner, acme_contact, tab):
    ActivityFactory(org=acme_contact.org, contact=acme_contact, subject="Intro call")
    NoteFactory(org=acme_contact.org, contact=acme_contact, body="Likes rockets")
    TaskFactory(org=acme_contact.org, contact=acme_contact, assignee=owner.user, title="Send deck")

    page = client_as(owner).get(detail_url(acme_contact, tab=tab))
    partial = client_as(owner, htmx=True).get(
        detail_url(acme_contact, tab=tab), HTTP_HX_TARGET="contact-tabs"
    )

    assert page.status_code == partial.status_code == 200
    assert b"<html" in page.content
    assert b"<html" not in partial.content
    assert b'id="contact-tabs"' in partial.content


def test_custom_fields_show_on_the_details_tab(client_as, owner, acme_contact):
    CustomFieldDefinitionFactory(
        org=acme_contact.org, key="budget", label="Budget", field_type="currency", currency="EUR"
    )
    acme_contact.custom = {"budget": 1250.5}
    acme_contact.save()

    html = client_as(owner).get(detail_url(acme_contact)).content.decode()

    assert "Budget" in html
    assert "1,250.50 EUR" in html


def test_other_org_gets_404(client_as, other_org, acme_contact):
    outsider = member(other_org, "owner")
    client = client_as(outsider)
    assert client.get(detail_url(acme_contact)).status_code == 404
    assert client.post(url("contact_edit", acme_contact), {"first_name": "X"}).status_code == 404


def test_team_member_cannot_open_a_contact_owned_outside_their_scope(client_as, org, members):
    rep = members["team"]
    someone_elses = ContactFactory(org=org, owner=members["admin"].user)
    unclaimed = ContactFactory(org=org, owner=None)
    own = ContactFactory(org=org, owner=rep.user)
    client = client_as(rep)

    assert client.get(detail_url(someone_elses)).status_code == 404
    assert client.get(detail_url(unclaimed)).status_code == 404
    assert client.post(url("contact_claim", unclaimed)).status_code == 404
    assert client.get(detail_url(own)).status_code == 200


# Field visibility -------------------------------------------------------------------------


@pytest.fixture
def restricted(org):
    """An executive whose role hides the phone and shows the email read-only."""
    executive = role(org, "executive")
    executive.field_rules = {"phone": "hidden", "email": "visible"}
    executive.save()
    return member(org, "executive")


def test_hidden_field_value_never_appears_in_page_or_form(client_as, restricted, acme_contact):
    client = client_as(restricted)
    for tab in ("details", "timeline", "tasks", "notes"):
        html = client.get(detail_url(acme_contact, tab=tab)).content.decode()
        assert "7946" not in html, tab
    form_html = client.get(url("contact_edit", acme_contact)).content.decode()
    assert "7946" not in form_html
    assert 'name="phone"' not in form_html
    assert client.get(url("contact_field", acme_contact, key="phone")).status_code == 404


def test_visible_only_field_is_read_only_in_the_form(client_as, restricted, acme_contact):
    html = client_as(restricted).get(url("contact_edit", acme_contact)).content.decode()
    assert "ada@acme.example" in html
    email_input = html[html.index('name="email"') - 200 : html.index('name="email"') + 200]
    assert "disabled" in email_input


def form_data(membership, contact, **changes) -> dict:
    """What the edit form would post for `contact`, as a browser sends it, with `changes`."""
    membership.refresh_from_db()
    form = ContactForm(
        org=contact.org, policy=Policy(membership), user=membership.user, instance=contact
    )
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool) or value is None:
            value = {True: "true", False: "false", None: ""}[value]
        data[name] = "" if value is None else str(value)
    data.update(changes)
    return data


def test_forged_post_of_a_visible_only_field_does_not_write_it(client_as, restricted, acme_contact):
    data = form_data(restricted, acme_contact, first_name="Augusta")
    data.update({"email": "forged@evil.example", "phone": "+15555550100"})

    response = client_as(restricted).post(url("contact_edit", acme_contact), data)

    assert response.status_code == 302
    acme_contact.refresh_from_db()
    assert acme_contact.first_name == "Augusta"
    assert acme_contact.email == "ada@acme.example"
    assert acme_contact.phone == "+442079460958"


def test_inline_edit_of_a_visible_only_field_is_forbidden(client_as, restricted, acme_contact):
    response = client_as(restricted).post(
        url("contact_field_edit", acme_contact, key="email"), {"email": "forged@evil.example"}
    )
    assert response.status_code == 403
    acme_contact.refresh_from_db()
    assert acme_contact.email == "ada@acme.example"


def test_hidden_stage_keeps_stage_changes_off_the_timeline(client_as, org, acme_contact):
    executive = role(org, "executive")
    executive.field_rules = {"lifecycle_stage": "hidden"}
    executive.save()
    viewer = member(org, "executive")
    ActivityFactory(
        org=org,
        contact=acme_contact,
        type="stage_change",
        subject="Stage changed from Lead to Qualified",
    )

    html = client_as(viewer).get(detail_url(acme_contact, tab="timeline")).content.decode()

    assert "Stage changed" not in html
    assert "Qualified" not in html


# Viewer -----------------------------------------------------------------------------------


def test_viewer_sees_no_edit_buttons(client_as, members, acme_contact):
    html = client_as(members["viewer"]).get(detail_url(acme_contact)).content.decode()

    assert url("contact_edit", acme_contact) not in html
    assert url("contact_archive", acme_contact) not in html
    assert "/fields/" not in html  # no inline edit links
    assert url("contact_claim", acme_contact) not in html


@pytest.mark.parametrize(
    ("name", "kwargs", "data"),
    [
        ("contact_edit", {}, {"first_name": "X"}),
        ("contact_field_edit", {"key": "first_name"}, {"first_name": "X"}),
        ("contact_archive", {}, {}),
        ("contact_claim", {}, {}),
        ("contact_release", {}, {}),
        ("contact_note_create", {}, {"body": "x"}),
        ("contact_log", {}, {"type": "call", "subject": "x"}),
    ],
)
def test_viewer_gets_403_on_forged_posts(client_as, members, acme_contact, name, kwargs, data):
    response = client_as(members["viewer"]).post(url(name, acme_contact, **kwargs), data)

    assert response.status_code == 403
    acme_contact.refresh_from_db()
    assert acme_contact.first_name == "Ada"
    assert not acme_contact.is_archived
    assert not acme_contact.notes.exists()


# Writing ----------------------------------------------------------------------------------


def test_create_page_adds_a_contact_and_opens_it(client_as, owner):
    response = client_as(owner).post(
        reverse("contacts:contact_create"),
        {
            "first_name": "Grace",
            "last_name": "Hopper",
            "email": "Grace@Navy.example",
            "phone": "+1 415 555 2671",
            "tags": "navy, pioneer",
            "company": "US Navy",
            "status": "active",
            "lifecycle_stage": "lead",
            "consent_status": "unknown",
            "owner": str(owner.user.public_id),
        },
    )

    contact = Contact.objects.for_org(owner.org).get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(contact)
    assert contact.email == "grace@navy.example"
    assert contact.phone == "+14155552671"
    assert contact.company.name == "US Navy"
    assert sorted(t.name for t in contact.tags.all()) == ["navy", "pioneer"]


def test_duplicate_email_is_shown_next_to_the_field(client_as, owner, acme_contact):
    response = client_as(owner).post(
        reverse("contacts:contact_create"),
        {
            "first_name": "Other",
            "email": "ADA@acme.example",
            "status": "active",
            "lifecycle_stage": "lead",
            "consent_status": "unknown",
        },
    )

    assert response.status_code == 200
    assert "Another active contact already has this email." in response.content.decode()
    assert Contact.objects.for_org(acme_contact.org).count() == 1


def test_bad_phone_is_shown_next_to_the_field(client_as, owner, acme_contact):
    response = client_as(owner).post(
        url("contact_field_edit", acme_contact, key="phone"),
        {"phone": "call me"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "not a phone number we can read" in response.content.decode()


def test_inline_edit_returns_the_row_and_refreshes_the_header(client_as, owner, acme_contact):
    client = client_as(owner, htmx=True)
    form = client.get(url("contact_field_edit", acme_contact, key="lifecycle_stage"))
    assert form.status_code == 200
    assert b'name="lifecycle_stage"' in form.content

    saved = client.post(
        url("contact_field_edit", acme_contact, key="lifecycle_stage"),
        {"lifecycle_stage": "customer"},
    )

    html = saved.content.decode()
    assert saved.status_code == 200
    assert 'id="field-lifecycle_stage"' in html
    assert 'id="record-header" hx-swap-oob="true"' in html
    acme_contact.refresh_from_db()
    assert acme_contact.lifecycle_stage == "customer"
    event = AuditEvent.objects.for_org(acme_contact.org).get(verb="contact.updated")
    assert event.changes == {"lifecycle_stage": ["qualified", "customer"]}


def test_inline_edit_of_a_custom_field_uses_its_key(client_as, owner, acme_contact):
    CustomFieldDefinitionFactory(
        org=acme_contact.org,
        key="tier",
        label="Tier",
        field_type="list",
        choices=["Gold", "Silver"],
    )
    response = client_as(owner, htmx=True).post(
        url("contact_field_edit", acme_contact, key="custom.tier"), {"custom__tier": "Gold"}
    )
    assert response.status_code == 200
    acme_contact.refresh_from_db()
    assert acme_contact.custom == {"tier": "Gold"}


def test_claim_and_release_from_the_page(client_as, org, members):
    rep = members["executive"]
    contact = ContactFactory(org=org, owner=None)
    client = client_as(rep)

    assert b"Claim</button>" in client.get(detail_url(contact)).content
    client.post(url("contact_claim", contact))
    contact.refresh_from_db()
    assert contact.owner == rep.user
    page = client.get(detail_url(contact)).content
    assert b"Release</button>" in page
    assert b"Unclaim" not in page  # one name per action (docs/glossary.md)

    client.post(url("contact_release", contact))
    contact.refresh_from_db()
    assert contact.owner is None


def test_archive_asks_first_then_archives_and_restore_brings_it_back(
    client_as, owner, acme_contact
):
    client = client_as(owner)
    confirm = client.get(url("contact_archive", acme_contact))
    assert confirm.status_code == 200
    assert b"Archive contact" in confirm.content
    acme_contact.refresh_from_db()
    assert not acme_contact.is_archived

    client.post(url("contact_archive", acme_contact))
    acme_contact.refresh_from_db()
    assert acme_contact.is_archived
    assert b"Restore</button>" in client.get(detail_url(acme_contact)).content

    client.post(url("contact_restore", acme_contact))
    acme_contact.refresh_from_db()
    assert not acme_contact.is_archived


def test_merge_button_only_when_the_merge_page_exists(client_as, owner, acme_contact):
    html = client_as(owner).get(detail_url(acme_contact)).content.decode()
    assert ("Merge</a>" in html) == _merge_url_exists(acme_contact)


def _merge_url_exists(contact) -> bool:
    from django.urls import NoReverseMatch

    try:
        reverse("contacts:contact_merge", kwargs={"public_id": contact.public_id})
    except NoReverseMatch:
        return False
    return True


# Timeline ---------------------------------------------------------------------------------


def test_timeline_filters_by_type(client_as, owner, acme_contact):
    org = acme_contact.org
    ActivityFactory(org=org, contact=acme_contact, type="call", subject="Pricing call")
    ActivityFactory(org=org, contact=acme_contact, type="meeting", subject="Onsite visit")
    ActivityFactory(org=org, contact=acme_contact, type="email_sent", subject="Proposal sent")

    calls = (
        client_as(owner).get(detail_url(acme_contact, tab="timeline", type="call")).content.decode()
    )
    emails = (
        client_as(owner)
        .get(detail_url(acme_contact, tab="timeline", type="email"))
        .content.decode()
    )

    assert "Pricing call" in calls and "Onsite visit" not in calls and "Proposal sent" not in calls
    assert "Proposal sent" in emails and "Pricing call" not in emails


def test_timeline_is_newest_first_with_who_and_when_in_the_org_timezone(
    client_as, owner, acme_contact
):
    org = acme_contact.org
    org.timezone = "Asia/Tokyo"
    org.save()
    when = dt.datetime(2026, 1, 15, 23, 30, tzinfo=dt.UTC)  # 08:30 next day in Tokyo
    ActivityFactory(
        org=org,
        contact=acme_contact,
        subject="Older",
        occurred_at=when - dt.timedelta(days=1),
        actor=owner.user,
    )
    ActivityFactory(
        org=org, contact=acme_contact, subject="Newer", occurred_at=when, actor=owner.user
    )

    html = client_as(owner).get(detail_url(acme_contact, tab="timeline")).content.decode()

    assert html.index("Newer") < html.index("Older")
    assert "Jan 16, 2026, 08:30" in html
    assert owner.user.display_name in html


def test_timeline_load_more_pages_with_a_cursor(client_as, owner, acme_contact):
    start = timezone.now() - dt.timedelta(days=1)
    for i in range(30):
        ActivityFactory(
            org=acme_contact.org,
            contact=acme_contact,
            subject=f"Entry {i:02d}",
            occurred_at=start + dt.timedelta(minutes=i),
        )
    client = client_as(owner, htmx=True)

    first = client.get(
        detail_url(acme_contact, tab="timeline"), HTTP_HX_TARGET="contact-tabs"
    ).content.decode()
    assert "Entry 29" in first and "Entry 05" in first and "Entry 04" not in first
    more_href = (
        first.split('id="timeline-more"')[1]
        .split('hx-get="')[1]
        .split('"')[0]
        .replace("&amp;", "&")
    )

    second = client.get(more_href, HTTP_HX_TARGET="timeline-more").content.decode()
    assert "Entry 04" in second and "Entry 00" in second and "Entry 05" not in second
    assert 'id="timeline-more"' not in second


@pytest.mark.parametrize("tab", ["details", "timeline", "tasks", "notes"])
def test_detail_query_count_does_not_grow_with_the_record(client_as, owner, acme_contact, tab):
    org = acme_contact.org
    client = client_as(owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(detail_url(acme_contact, tab=tab)).status_code == 200
        return len(ctx.captured_queries)

    ActivityFactory(org=org, contact=acme_contact, actor=owner.user)
    NoteFactory(org=org, contact=acme_contact, author=owner.user)
    TaskFactory(org=org, contact=acme_contact, assignee=owner.user)
    queries()  # warm caches (session, content types)
    few = queries()

    for _ in range(29):
        ActivityFactory(org=org, contact=acme_contact, actor=member(org, "team").user)
        NoteFactory(org=org, contact=acme_contact, author=owner.user)
        TaskFactory(org=org, contact=acme_contact, assignee=owner.user)
    acme_contact.tags.add(*[TagFactory(org=org) for _ in range(10)])
    many = queries()

    assert many == few


# Notes ------------------------------------------------------------------------------------


def test_notes_render_paragraphs_and_links_but_never_html(client_as, owner, acme_contact):
    client_as(owner).post(
        url("contact_note_create", acme_contact),
        {"body": "Met at the fair.\n\nDeck: https://example.com/deck <img src=x onerror=alert(1)>"},
    )

    html = client_as(owner).get(detail_url(acme_contact, tab="notes")).content.decode()

    assert "<p>Met at the fair.</p>" in html
    assert '<a href="https://example.com/deck"' in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert acme_contact.activities.filter(type=Activity.Type.NOTE).exists()


# Around the record ------------------------------------------------------------------------


def test_dashboard_shows_contact_count_and_my_open_tasks(client_as, org, owner):
    ContactFactory(org=org)
    ContactFactory(org=org)
    ContactFactory(org=org, is_archived=True)
    TaskFactory(org=org, assignee=owner.user)
    TaskFactory(org=org, assignee=owner.user, status="done")
    TaskFactory(org=org, assignee=member(org, "team").user)

    html = client_as(owner).get("/").content.decode()

    pattern = r'<span class="figure-value">([^<]*)</span><span class="figure-label">([^<]*)</span>'
    figures = {label: value for value, label in re.findall(pattern, html)}
    assert figures["Contacts"] == "2"
    assert figures["My open tasks"] == "1"


def test_contact_form_suggests_companies_and_their_matches(client_as, org, owner):
    CompanyFactory(org=org, name="Acme Rockets")
    html = client_as(owner).get(reverse("contacts:contact_create")).content.decode()

    assert '<datalist id="company-options">' in html
    assert '<option value="Acme Rockets">' in html
    assert f'hx-get="{reverse("contacts:company_options")}"' in html


def test_member_without_companies_access_gets_no_company_suggestions(client_as, org):
    role_ = role(org, "partner")  # contacts and companies, own scope
    role_.permissions = {**role_.permissions, "companies": {"access": False}}
    role_.save()
    partner = member(org, "partner")
    CompanyFactory(org=org, name="Secret Corp")

    html = client_as(partner).get(reverse("contacts:contact_create")).content.decode()

    assert "Secret Corp" not in html
    assert "company_options" not in html and "/companies/options/" not in html
