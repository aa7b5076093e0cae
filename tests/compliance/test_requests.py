"""The data request queue: due dates, overdue, the pages and who may do what."""

import datetime as dt
import io
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from compliance.models import ConsentRecord, DataRequest
from compliance.services import requests as services
from contacts.models import Contact
from crm.models import AuditEvent
from crm.services import Actor
from tests.factories import ContactFactory, DataRequestFactory, member

pytestmark = pytest.mark.django_db


def actor_of(membership):
    return Actor.for_user(membership.user)


def new_request(org, owner, **kwargs):
    values = {"kind": "access", "regime": "gdpr", "requester_email": "ask@example.com"}
    return services.create_request(org=org, actor=actor_of(owner), **{**values, **kwargs})


# Due dates and overdue -----------------------------------------------------------------------


@pytest.mark.parametrize(("regime", "days"), [("gdpr", 30), ("ccpa", 45)])
def test_the_due_date_follows_the_regime(org, owner, regime, days):
    received = timezone.now() - dt.timedelta(days=3)
    req = new_request(org, owner, regime=regime, received_at=received)
    assert req.due_at == received + dt.timedelta(days=days)
    assert DataRequest.DUE_DAYS[regime] == days


def test_an_unknown_regime_is_a_field_error(org, owner):
    with pytest.raises(ValidationError) as exc:
        new_request(org, owner, regime="lgpd")
    assert "regime" in exc.value.message_dict


def test_a_request_past_its_due_date_is_overdue_until_closed(org, owner):
    req = new_request(org, owner, received_at=timezone.now() - dt.timedelta(days=31))
    assert req.is_overdue
    req = services.set_request_status(
        data_request=req, actor=actor_of(owner), status="done", resolution="Sent."
    )
    assert not req.is_overdue and req.completed_at is not None


def test_the_assignee_must_be_an_active_member(org, other_org, owner):
    stranger = member(other_org, "owner")
    with pytest.raises(ValidationError) as exc:
        new_request(org, owner, assignee=stranger.user)
    assert "assignee" in exc.value.message_dict


def test_create_assign_and_status_are_audited_without_the_requesters_email(org, owner):
    rep = member(org, "admin")
    req = new_request(org, owner, details="Please send everything about me")
    services.assign_request(data_request=req, actor=actor_of(owner), assignee=rep.user)
    services.set_request_status(data_request=req, actor=actor_of(owner), status="in_progress")
    verbs = list(
        AuditEvent.objects.for_org(org)
        .filter(object_type="datarequest", object_id=str(req.public_id))
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == [
        "data_request.created",
        "data_request.assigned",
        "data_request.status_changed",
    ]
    for event in AuditEvent.objects.for_org(org).filter(object_id=str(req.public_id)):
        assert "ask@example.com" not in str(event.changes)
        assert "Please send" not in str(event.changes)


def test_rejecting_needs_a_reason(org, owner):
    req = new_request(org, owner)
    with pytest.raises(ValidationError) as exc:
        services.set_request_status(data_request=req, actor=actor_of(owner), status="rejected")
    assert "resolution" in exc.value.message_dict


def test_do_not_sell_done_sets_the_flag_through_the_ledger(org, owner):
    contact = ContactFactory(org=org)
    req = new_request(org, owner, kind="do_not_sell", regime="ccpa", contact=contact)
    services.complete_request(
        data_request=req, actor=actor_of(owner), resolution="Flag set, partners told."
    )
    contact.refresh_from_db()
    req.refresh_from_db()
    assert contact.do_not_sell is True
    assert req.status == "done" and req.resolution == "Flag set, partners told."
    row = ConsentRecord.objects.for_org(org).get(contact=contact, field="do_not_sell")
    assert (row.new_value, row.actor_kind, row.source) == ("true", "member", "Data request")
    assert row.actor_user == owner.user


# Pages -----------------------------------------------------------------------------------------


def test_the_queue_lists_open_requests_with_overdue_badge(org, owner, client_as):
    late = DataRequestFactory(
        org=org, requester_email="late@example.com", due_at=timezone.now() - dt.timedelta(days=1)
    )
    DataRequestFactory(org=org, requester_email="closed@example.com", status="done")
    response = client_as(owner).get(reverse("compliance:requests"))
    body = response.content.decode()
    assert response.status_code == 200
    assert str(late.public_id) in body and "Overdue" in body
    assert "closed@example.com" not in body


def test_the_queue_filters_by_kind_status_and_overdue(org, owner, client_as):
    late = DataRequestFactory(org=org, kind="erasure", due_at=timezone.now() - dt.timedelta(days=2))
    soon = DataRequestFactory(org=org, kind="access")
    done = DataRequestFactory(org=org, kind="access", status="done")
    client = client_as(owner)
    body = client.get(reverse("compliance:requests"), {"overdue": "on"}).content.decode()
    assert str(late.public_id) in body and str(soon.public_id) not in body
    body = client.get(reverse("compliance:requests"), {"kind": "access"}).content.decode()
    assert str(soon.public_id) in body and str(late.public_id) not in body
    body = client.get(reverse("compliance:requests"), {"status": "done"}).content.decode()
    assert str(done.public_id) in body and str(soon.public_id) not in body


def test_an_empty_queue_says_what_it_is_for(owner, client_as):
    body = client_as(owner).get(reverse("compliance:requests")).content.decode()
    assert "No open data requests" in body and "45 under CCPA" in body


def test_the_create_form_finds_the_contact_by_email(org, owner, client_as):
    contact = ContactFactory(org=org, email="Find.Me@example.com")
    response = client_as(owner).post(
        reverse("compliance:request_create"),
        {"kind": "erasure", "regime": "ccpa", "contact": "find.me@example.com", "details": ""},
    )
    assert response.status_code == 302
    req = DataRequest.objects.for_org(org).get()
    assert req.contact == contact and req.kind == "erasure"
    assert req.due_at - req.received_at == dt.timedelta(days=45)


def test_the_create_form_refuses_another_orgs_contact(org, other_org, owner, client_as):
    theirs = ContactFactory(org=other_org)
    response = client_as(owner).post(
        reverse("compliance:request_create"),
        {"kind": "access", "regime": "gdpr", "contact": str(theirs.public_id)},
    )
    assert response.status_code == 400
    assert "No contact of this organization" in response.content.decode()
    assert not DataRequest.objects.for_org(org).exists()


def test_the_access_export_downloads_a_zip(org, owner, client_as):
    contact = ContactFactory(org=org)
    req = DataRequestFactory(org=org, kind="access", contact=contact)
    response = client_as(owner).post(reverse("compliance:request_export", args=[req.public_id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "person.json" in names
    assert AuditEvent.objects.for_org(org).filter(verb="data_request.exported").exists()


def test_erasure_needs_the_name_typed_back(org, owner, client_as):
    contact = ContactFactory(org=org, first_name="Ada", last_name="Byron")
    req = DataRequestFactory(org=org, kind="erasure", contact=contact)
    url = reverse("compliance:request_erase", args=[req.public_id])
    client = client_as(owner)
    assert "Erase Ada Byron?" in client.get(url).content.decode()
    response = client.post(url, {"confirm": "Ada"})
    assert response.status_code == 400
    assert Contact.objects.for_org(org).filter(pk=contact.pk).exists()
    response = client.post(url, {"confirm": "ada byron"})
    assert response.status_code == 302
    assert not Contact.objects.for_org(org).filter(pk=contact.pk).exists()
    req.refresh_from_db()
    assert req.status == "done" and req.contact is None


def test_legal_hold_refusal_is_shown_on_the_confirmation(org, owner, client_as):
    contact = ContactFactory(org=org, first_name="Ada", last_name="Byron", legal_hold=True)
    req = DataRequestFactory(org=org, kind="erasure", contact=contact)
    url = reverse("compliance:request_erase", args=[req.public_id])
    response = client_as(owner).post(url, {"confirm": "Ada Byron"})
    assert response.status_code == 400
    assert "legal hold" in response.content.decode()
    assert Contact.objects.for_org(org).filter(pk=contact.pk).exists()


# Permissions and tenancy ---------------------------------------------------------------------


def test_a_team_rep_gets_403_on_the_queue(org, client_as):
    rep = member(org, "team")
    assert client_as(rep).get(reverse("compliance:requests")).status_code == 403


def test_an_executive_may_view_but_not_create_or_erase(org, client_as):
    viewer = member(org, "executive")
    contact = ContactFactory(org=org)
    req = DataRequestFactory(org=org, kind="erasure", contact=contact)
    client = client_as(viewer)
    assert client.get(reverse("compliance:requests")).status_code == 200
    detail = client.get(reverse("compliance:request_detail", args=[req.public_id]))
    assert detail.status_code == 200 and "Erase" not in detail.content.decode().split("</h1>")[1]
    assert client.get(reverse("compliance:request_create")).status_code == 403
    erase = reverse("compliance:request_erase", args=[req.public_id])
    assert client.post(erase, {"confirm": contact.first_name}).status_code == 403
    status = reverse("compliance:request_status", args=[req.public_id])
    assert client.post(status, {"status": "done"}).status_code == 403
    assert Contact.objects.for_org(org).filter(pk=contact.pk).exists()


def test_a_viewer_role_cannot_erase(org, client_as):
    viewer = member(org, "viewer")
    contact = ContactFactory(org=org)
    req = DataRequestFactory(org=org, kind="erasure", contact=contact)
    erase = reverse("compliance:request_erase", args=[req.public_id])
    assert client_as(viewer).post(erase, {"confirm": contact.first_name}).status_code == 403
    assert Contact.objects.for_org(org).filter(pk=contact.pk).exists()


def test_another_orgs_request_is_a_404(org, other_org, owner, client_as):
    theirs = DataRequestFactory(
        org=other_org, kind="erasure", contact=ContactFactory(org=other_org)
    )
    client = client_as(owner)
    for name in ("request_detail", "request_erase"):
        assert client.get(reverse(f"compliance:{name}", args=[theirs.public_id])).status_code == 404
    for name in ("request_assign", "request_status", "request_complete", "request_export"):
        url = reverse(f"compliance:{name}", args=[theirs.public_id])
        assert client.post(url, {"status": "done"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "open"


def test_an_htmx_filter_returns_only_the_results(org, owner, client_as):
    DataRequestFactory(org=org, kind="rectification")
    response = client_as(owner, htmx=True).get(reverse("compliance:requests"), {"kind": "erasure"})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="request-results"' in body and "<h1>" not in body
    assert "No requests match" in body


def test_the_compliance_home_links_to_the_queue(owner, client_as):
    body = client_as(owner).get(reverse("compliance:home")).content.decode()
    assert reverse("compliance:requests") in body


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        ("access", "Download access export"),
        ("erasure", "Erase Ada Byron"),
        ("rectification", "Mark done"),
        ("do_not_sell", "Mark done"),
    ],
)
def test_the_detail_page_offers_the_kinds_action(org, owner, client_as, kind, action):
    contact = ContactFactory(org=org, first_name="Ada", last_name="Byron")
    req = DataRequestFactory(org=org, kind=kind, contact=contact, details="Line one")
    body = client_as(owner).get(reverse("compliance:request_detail", args=[req.public_id]))
    text = body.content.decode()
    assert body.status_code == 200
    assert action in text and "Line one" in text


def test_marking_rectification_done_through_the_page(org, owner, client_as):
    req = DataRequestFactory(org=org, kind="rectification", contact=ContactFactory(org=org))
    url = reverse("compliance:request_complete", args=[req.public_id])
    client = client_as(owner)
    assert client.post(url, {"resolution": ""}).status_code == 400
    assert client.post(url, {"resolution": "Fixed the postal address."}).status_code == 302
    req.refresh_from_db()
    assert (req.status, req.resolution) == ("done", "Fixed the postal address.")
