"""Legal hold: set and lifted with a note, audited, only with the compliance right, and it
keeps erasure and retention away."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from compliance.services.erasure import erase_contact
from compliance.services.legal_hold import set_legal_hold
from contacts.models import Contact
from crm.models import AuditEvent
from crm.services import Actor
from tests.factories import ContactFactory, member

pytestmark = pytest.mark.django_db


def test_a_hold_needs_a_note_and_is_audited(org):
    contact = ContactFactory(org=org)
    with pytest.raises(ValidationError):
        set_legal_hold(contact=contact, on=True, actor=Actor.system("t"), note="  ")
    assert set_legal_hold(contact=contact, on=True, actor=Actor.system("t"), note="Case 4471")
    contact.refresh_from_db()
    assert contact.legal_hold
    entry = AuditEvent.objects.for_org(org).get(verb="contact.legal_hold_set")
    assert entry.changes["note"] == "Case 4471"
    # Setting it again changes nothing and writes nothing.
    assert not set_legal_hold(contact=contact, on=True, actor=Actor.system("t"), note="again")
    assert AuditEvent.objects.for_org(org).filter(verb="contact.legal_hold_set").count() == 1


def test_a_contact_on_hold_cannot_be_erased(org):
    contact = ContactFactory(org=org, legal_hold=True, first_name="Ines", last_name="Kahn")
    with pytest.raises(ValidationError, match="legal hold"):
        erase_contact(contact=contact, actor=Actor.system("t"))
    assert Contact.objects.for_org(org).filter(pk=contact.pk).exists()


def test_only_the_compliance_right_sets_a_hold_from_the_card(org, client_as):
    contact = ContactFactory(org=org)
    url = reverse("compliance:contact_legal_hold", args=[contact.public_id])
    rep = client_as(member(org, "executive"))  # compliance: view only
    assert rep.post(url, {"legal_hold": "on", "note": "x"}).status_code == 403
    admin = client_as(member(org, "admin"))
    missing_note = admin.post(url, {"legal_hold": "on", "note": ""})
    assert missing_note.status_code == 400
    assert b"Say why the hold" in missing_note.content
    assert admin.post(url, {"legal_hold": "on", "note": "Audit 2026"}).status_code == 302
    contact.refresh_from_db()
    assert contact.legal_hold
    admin.post(url, {"legal_hold": "off", "note": "Matter closed"})
    contact.refresh_from_db()
    assert not contact.legal_hold


def test_another_organizations_contact_is_not_found(org, other_org, client_as):
    theirs = ContactFactory(org=other_org)
    admin = client_as(member(org, "admin"))
    url = reverse("compliance:contact_legal_hold", args=[theirs.public_id])
    assert admin.post(url, {"legal_hold": "on", "note": "x"}).status_code == 404
    theirs.refresh_from_db()
    assert not theirs.legal_hold


def test_the_card_offers_the_double_opt_in_email_to_an_editor(org, client_as):
    contact = ContactFactory(org=org, email="pia@example.com", consent_status="unknown")
    admin = client_as(member(org, "admin"))
    page = admin.get(reverse("compliance:contact_card", args=[contact.public_id]))
    assert reverse("compliance:send_opt_in", args=[contact.public_id]).encode() in page.content
