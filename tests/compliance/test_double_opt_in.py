"""Double opt-in: a signed confirmation link that expires; the first click confirms with its
evidence, a replay, an expired, an altered or another organization's link changes nothing;
and where GDPR applies, "opted in" set directly waits for that click."""

import re
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from compliance.models import ConsentRecord, OptInConfirmation
from compliance.services.consent import ConsentVia
from compliance.services.double_opt_in import OptInRefused, request_opt_in
from compliance.tokens import OPT_IN_SALT, opt_in_token, preference_token
from contacts import services as contact_services
from contacts.models import Contact
from crm.services import Actor
from tests.factories import ContactFactory, PrivacySettingsFactory, SuppressionFactory, member

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^\s\"<>]+/compliance/confirm/[^\s\"<>/]+/")


@pytest.fixture
def gdpr(org):
    return PrivacySettingsFactory(
        org=org,
        mode="gdpr",
        confirmation_hours=48,
        consent_text="Send me the monthly newsletter.",
        consent_text_version="2025-03",
    )


@pytest.fixture
def ada(org):
    return ContactFactory(org=org, email="ada@example.com", country="DE")


def ledger(contact):
    return list(
        ConsentRecord.objects.for_org(contact.org_id).filter(contact=contact).order_by("id")
    )


def send(contact, django_capture_on_commit_callbacks):
    via = ConsentVia.from_actor(Actor.system("test"), source="Test")
    with django_capture_on_commit_callbacks(execute=True):
        return request_opt_in(contact=contact, via=via)


def link_in(mail) -> str:
    found = LINK.search(mail.body)
    assert found, mail.body
    return found.group(0)


def path_of(url: str) -> str:
    return url[url.index("/compliance/") :]


def test_request_sends_a_signed_link_and_leaves_the_status_pending(
    org, gdpr, ada, mailoutbox, django_capture_on_commit_callbacks
):
    confirmation = send(ada, django_capture_on_commit_callbacks)
    ada.refresh_from_db()
    assert ada.consent_status == Contact.ConsentStatus.PENDING
    assert confirmation.address == "ada@example.com"
    assert confirmation.consent_text == "Send me the monthly newsletter."
    assert confirmation.consent_text_version == "2025-03"
    hours = (confirmation.expires_at - confirmation.sent_at).total_seconds() / 3600
    assert hours == pytest.approx(48)
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]
    assert "Send me the monthly newsletter." in mailoutbox[0].body
    assert link_in(mailoutbox[0]) in mailoutbox[0].alternatives[0][0]
    rows = ledger(ada)
    assert [(r.field, r.new_value) for r in rows] == [("consent_status", "pending")]


def test_a_confirmed_link_opts_in_with_its_evidence(
    org, gdpr, ada, mailoutbox, django_capture_on_commit_callbacks
):
    confirmation = send(ada, django_capture_on_commit_callbacks)
    path = path_of(link_in(mailoutbox[0]))
    before = len(ledger(ada))

    shown = Client().get(path)
    assert shown.status_code == 200
    assert b"Yes, confirm my subscription" in shown.content
    ada.refresh_from_db()
    assert ada.consent_status == "pending"  # opening the link (a mail scanner) confirms nothing

    answer = Client(HTTP_USER_AGENT="Mail/1.0").post(path, REMOTE_ADDR="203.0.113.9")
    assert answer.status_code == 200
    assert b"subscription is confirmed" in answer.content
    ada.refresh_from_db()
    assert ada.consent_email is True
    assert ada.consent_status == Contact.ConsentStatus.OPTED_IN
    new = ledger(ada)[before:]
    assert {(r.field, r.new_value) for r in new} == {
        ("consent_email", "true"),
        ("consent_status", "opted_in"),
    }
    for row in new:
        assert row.actor_kind == "double_opt_in"
        assert row.source == "Double opt-in confirmation"
        assert row.ip_address == "203.0.113.9"
        assert row.user_agent == "Mail/1.0"
        assert row.consent_text == "Send me the monthly newsletter."
        assert row.consent_text_version == "2025-03"
        assert row.evidence["confirmation"] == str(confirmation.public_id)
        assert row.evidence["sent_at"] == confirmation.sent_at.isoformat()
    confirmation.refresh_from_db()
    assert confirmation.confirmed_at is not None
    assert confirmation.confirmed_ip == "203.0.113.9"


def test_a_replayed_link_says_already_confirmed_and_ledgers_nothing(
    org, gdpr, ada, mailoutbox, django_capture_on_commit_callbacks
):
    send(ada, django_capture_on_commit_callbacks)
    path = path_of(link_in(mailoutbox[0]))
    assert Client().post(path).status_code == 200
    count = len(ledger(ada))

    again = Client().post(path)
    assert again.status_code == 200
    assert b"Already confirmed" in again.content
    assert len(ledger(ada)) == count


def test_an_expired_confirmation_changes_nothing(
    org, gdpr, ada, mailoutbox, django_capture_on_commit_callbacks
):
    confirmation = send(ada, django_capture_on_commit_callbacks)
    path = path_of(link_in(mailoutbox[0]))
    OptInConfirmation.objects.for_org(org).filter(pk=confirmation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    count = len(ledger(ada))

    answer = Client().post(path)
    assert answer.status_code == 400
    assert b"This link has expired" in answer.content
    ada.refresh_from_db()
    assert ada.consent_status == "pending"
    assert len(ledger(ada)) == count
    confirmation.refresh_from_db()
    assert confirmation.confirmed_at is None


def test_a_link_older_than_the_confirmation_hours_has_expired(org, gdpr, ada):
    gdpr.confirmation_hours = 1
    gdpr.save()
    confirmation = OptInConfirmation.objects.for_org(org).create(
        org=org,
        contact=ada,
        address="ada@example.com",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    two_hours_ago = time.time() - 2 * 3600
    with mock.patch("django.core.signing.time.time", return_value=two_hours_ago):
        token = opt_in_token(confirmation)

    answer = Client().post(reverse("compliance:confirm_opt_in", args=[token]))
    assert answer.status_code == 400
    ada.refresh_from_db()
    assert ada.consent_email is None
    assert ledger(ada) == []


def test_an_altered_link_is_refused_without_details(
    org, gdpr, ada, mailoutbox, django_capture_on_commit_callbacks
):
    send(ada, django_capture_on_commit_callbacks)
    path = path_of(link_in(mailoutbox[0]))
    token = path.rstrip("/").rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    count = len(ledger(ada))

    answer = Client().post(reverse("compliance:confirm_opt_in", args=[flipped]))
    assert answer.status_code == 404
    assert b"This link is not valid" in answer.content
    assert b"Signature" not in answer.content and b"Traceback" not in answer.content
    ada.refresh_from_db()
    assert ada.consent_status == "pending"
    assert len(ledger(ada)) == count


def test_another_organizations_link_confirms_nothing(org, other_org, gdpr, ada):
    confirmation = OptInConfirmation.objects.for_org(org).create(
        org=org,
        contact=ada,
        address="ada@example.com",
        expires_at=timezone.now() + timedelta(hours=4),
    )
    # Validly signed, but naming the other organization with this organization's record.
    forged = signing.dumps([other_org.public_id.hex, confirmation.public_id.hex], salt=OPT_IN_SALT)

    answer = Client().post(reverse("compliance:confirm_opt_in", args=[forged]))
    assert answer.status_code == 404
    ada.refresh_from_db()
    assert ada.consent_email is None
    confirmation.refresh_from_db()
    assert confirmation.confirmed_at is None


def test_a_preference_link_is_no_confirmation_link(org, gdpr, ada):
    answer = Client().post(reverse("compliance:confirm_opt_in", args=[preference_token(ada)]))
    assert answer.status_code == 404
    ada.refresh_from_db()
    assert ada.consent_email is None


def test_gdpr_keeps_a_directly_opted_in_contact_pending_until_the_click(
    org, gdpr, mailoutbox, django_capture_on_commit_callbacks
):
    owner = member(org, "owner")
    with django_capture_on_commit_callbacks(execute=True):
        contact = contact_services.contact_create(
            org=org,
            actor=Actor.for_user(owner.user),
            data={"email": "grace@example.com", "country": "FR", "consent_status": "opted_in"},
        )
    contact.refresh_from_db()
    assert contact.consent_status == Contact.ConsentStatus.PENDING
    assert [r.new_value for r in ledger(contact) if r.field == "consent_status"] == ["pending"]
    assert OptInConfirmation.objects.for_org(org).filter(contact=contact).count() == 1
    assert [m.to for m in mailoutbox] == [["grace@example.com"]]

    assert Client().post(path_of(link_in(mailoutbox[0]))).status_code == 200
    contact.refresh_from_db()
    assert contact.consent_status == Contact.ConsentStatus.OPTED_IN


def test_gdpr_gate_holds_for_an_update_too(
    org, gdpr, ada, mailoutbox, django_capture_on_commit_callbacks
):
    owner = member(org, "owner")
    with django_capture_on_commit_callbacks(execute=True):
        contact_services.contact_update(
            contact=ada, actor=Actor.for_user(owner.user), data={"consent_status": "opted_in"}
        )
    ada.refresh_from_db()
    assert ada.consent_status == "pending"
    assert len(mailoutbox) == 1


def test_outside_gdpr_a_direct_opt_in_stands(org, mailoutbox, django_capture_on_commit_callbacks):
    PrivacySettingsFactory(org=org, mode="both")
    owner = member(org, "owner")
    with django_capture_on_commit_callbacks(execute=True):
        contact = contact_services.contact_create(
            org=org,
            actor=Actor.for_user(owner.user),
            data={"email": "sam@example.com", "country": "US", "consent_status": "opted_in"},
        )
    contact.refresh_from_db()
    assert contact.consent_status == "opted_in"
    assert mailoutbox == []


def test_no_confirmation_to_a_bounced_address(org, gdpr, ada):
    SuppressionFactory(org=org, channel="email", address="ada@example.com", reason="bounce")
    with pytest.raises(OptInRefused):
        request_opt_in(contact=ada, via=ConsentVia.from_actor(Actor.system("t")))
    assert not OptInConfirmation.objects.for_org(org).exists()


def test_a_member_sends_the_confirmation_from_the_contact(
    org, gdpr, ada, client_as, mailoutbox, django_capture_on_commit_callbacks
):
    owner = member(org, "owner")
    url = reverse("compliance:send_opt_in", args=[ada.public_id])
    with django_capture_on_commit_callbacks(execute=True):
        answer = client_as(owner).post(url)
    assert answer.status_code == 302
    assert answer["Location"] == reverse("contacts:contact_detail", args=[ada.public_id])
    ada.refresh_from_db()
    assert ada.consent_status == "pending"
    assert len(mailoutbox) == 1


def test_sending_needs_edit_rights_on_that_record(org, other_org, gdpr, ada, client_as):
    url = reverse("compliance:send_opt_in", args=[ada.public_id])
    rep = member(org, "team")  # "own" scope: Ada is not theirs
    assert client_as(rep).post(url).status_code == 404
    assert client_as(member(org, "viewer")).post(url).status_code == 403
    assert client_as(member(other_org, "owner")).post(url).status_code == 404
    assert client_as(member(org, "owner")).get(url).status_code == 405
    ada.refresh_from_db()
    assert ada.consent_status == "unknown"
    assert not OptInConfirmation.objects.for_org(org).exists()
