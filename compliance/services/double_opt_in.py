"""Double opt-in: marketing email under GDPR needs consent the person confirmed themselves.

- `request_opt_in()` records an OptInConfirmation (with the consent text and version the
  person will be agreeing to), sets the contact's consent status to "pending" through the
  ledger, and emails a signed link once the transaction commits.
- `confirm_opt_in()` is the click: the first valid one sets email consent and "opted_in",
  ledgered with the click's IP, browser, the text and its version. A second click finds the
  confirmation used and changes nothing; an expired, altered or foreign link changes nothing.
- `gate_opt_in()` is how the contact services keep a member, an import or the API from
  setting "opted_in" directly where GDPR applies: the value becomes "pending" and a
  confirmation goes out instead (`send_gated_opt_in()`, after the save).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from contacts.models import Contact
from crm import rls
from crm.models import Organization
from crm.services import Actor, audit, emit_event

from ..models import Channel, ConsentRecord, LegalBasis, OptInConfirmation, PrivacySettings, Purpose
from ..selectors import GDPR, address_for, jurisdictions, may_contact, privacy_settings
from ..tokens import LinkError, read_opt_in_token
from .consent import ConsentVia, set_consent
from .links import opt_in_url, person_language

logger = logging.getLogger(__name__)

Status = Contact.ConsentStatus
SOURCE = "Double opt-in confirmation"


class OptInRefused(ValidationError):
    """A confirmation email that cannot be sent to this contact; the message says why."""


@dataclass(frozen=True)
class OptInOutcome:
    """What a confirmation link came to, for the page that answers it. outcome: "ready"
    (valid, not yet clicked), "confirmed", "already_confirmed", "expired" or "invalid"."""

    outcome: str
    org: Organization | None = None
    contact: Contact | None = None
    settings: PrivacySettings | None = None
    consent_text: str = ""


# Sending --------------------------------------------------------------------------------------


def _email_context(confirmation: OptInConfirmation, settings: PrivacySettings) -> dict:
    return {
        "brand_name": settings.brand_name or confirmation.org.name,
        "contact": confirmation.contact,
        "link": opt_in_url(confirmation),
        "consent_text": confirmation.consent_text,
        "expires_at": confirmation.expires_at,
        "hours": settings.confirmation_hours,
    }


def _send(address: str, language: str, context: dict) -> None:
    with translation.override(language):
        subject = render_to_string("compliance/email/opt_in_subject.txt", context).strip()
        text = render_to_string("compliance/email/opt_in.txt", context)
        html = render_to_string("compliance/email/opt_in.html", context)
    send_mail(
        subject=" ".join(subject.split()),
        message=text,
        from_email=None,
        recipient_list=[address],
        html_message=html,
    )


@transaction.atomic
def request_opt_in(*, contact: Contact, via: ConsentVia) -> OptInConfirmation:
    """Ask `contact` to confirm marketing email: a pending status now, an email on commit.
    Raises OptInRefused when there is no address, the address may receive nothing at all
    (a bounce or a complaint), or the contact has already opted in."""
    org = contact.org
    address = address_for(contact, Channel.EMAIL)
    if not address:
        raise OptInRefused("The contact has no email address to send the confirmation to.")
    if contact.consent_status == Status.OPTED_IN:
        raise OptInRefused("The contact has already opted in.")
    verdict = may_contact(contact, Channel.EMAIL, Purpose.TRANSACTIONAL)
    if not verdict.allowed:
        raise OptInRefused(verdict.reason)
    settings = privacy_settings(org)
    now = timezone.now()
    confirmation = OptInConfirmation.objects.for_org(org).create(
        org=org,
        contact=contact,
        channel=Channel.EMAIL,
        address=address,
        consent_text=settings.consent_text,
        consent_text_version=settings.consent_text_version,
        sent_at=now,
        expires_at=now + timedelta(hours=settings.confirmation_hours),
    )
    set_consent(contact=contact, changes={"consent_status": Status.PENDING}, via=via)
    audit(
        org=org,
        actor=via.actor(),
        verb="contact.opt_in_requested",
        obj=contact,
        changes={"confirmation": str(confirmation.public_id), "address": address},
    )
    emit_event(
        org=org,
        event_type="contact.opt_in_requested",
        payload={"contact": contact.public_id, "confirmation": confirmation.public_id},
    )
    # Rendered now, inside the organization's transaction; sent only once the row is
    # committed, so no email points at a confirmation that was rolled back. A mail server
    # that fails is logged: the member can send the email again.
    context = _email_context(confirmation, settings)
    language = person_language(contact)
    transaction.on_commit(lambda: _send(address, language, context), robust=True)
    return confirmation


# The GDPR gate on direct writes ---------------------------------------------------------------


def gate_opt_in(org, values: dict, *, contact: Contact | None = None) -> bool:
    """Called by the contact services with the cleaned values, before the save. Where GDPR
    applies to the contact, "opted_in" set directly becomes "pending" (in `values`), and the
    answer is True: a confirmation email must follow the save. A contact already opted in
    keeps its status."""
    if values.get("consent_status") != Status.OPTED_IN:
        return False
    if contact is not None and contact.consent_status == Status.OPTED_IN:
        return False
    country = values.get("country", contact.country if contact is not None else "")
    if GDPR not in jurisdictions(privacy_settings(org).mode, country):
        return False
    values["consent_status"] = Status.PENDING
    return True


def send_gated_opt_in(*, contact: Contact, actor: Actor, source: str = "Contact record") -> None:
    """The confirmation email after a gated save. A contact that cannot get one (no email,
    a bounced address) simply stays pending: the save itself is not refused for it."""
    via = ConsentVia.from_actor(actor, source=source)
    try:
        with transaction.atomic():
            request_opt_in(contact=contact, via=via)
    except OptInRefused as exc:
        logger.info("No double opt-in email for contact %s: %s", contact.public_id, exc.message)


# The click ------------------------------------------------------------------------------------


def _organization(target) -> Organization | None:
    # Organizations are not tenant rows: the link's organization is found before any
    # organization is set on the connection.
    return Organization.objects.filter(public_id=target.org_public_id).first()


def peek_opt_in(token: str) -> OptInOutcome:
    """What the link would do, changing nothing: the page shown before the click."""
    return _settle(token, ip=None, user_agent="", commit=False)


def confirm_opt_in(token: str, *, ip: str | None, user_agent: str) -> OptInOutcome:
    """The person confirmed through the link. Runs in the link's organization (the request
    has no member)."""
    return _settle(token, ip=ip, user_agent=user_agent, commit=True)


def _settle(token: str, *, ip: str | None, user_agent: str, commit: bool) -> OptInOutcome:
    try:
        target = read_opt_in_token(token)
    except LinkError as exc:
        return OptInOutcome("expired" if exc.expired else "invalid")
    org = _organization(target)
    if org is None:
        return OptInOutcome("invalid")
    with transaction.atomic(), rls.tenant(org.pk):
        confirmation = (
            OptInConfirmation.objects.for_org(org)
            .select_for_update(of=("self",))
            .select_related("contact")
            .filter(public_id=target.record_public_id)
            .first()
        )
        if confirmation is None:
            return OptInOutcome("invalid")
        settings = privacy_settings(org)
        contact = confirmation.contact
        contact.org = org

        def outcome(name: str) -> OptInOutcome:
            return OptInOutcome(name, org, contact, settings, confirmation.consent_text)

        if confirmation.confirmed_at is not None:
            return outcome("already_confirmed")
        now = timezone.now()
        try:
            read_opt_in_token(token, max_hours=settings.confirmation_hours)
        except LinkError:
            return outcome("expired")
        if confirmation.expires_at <= now:
            return outcome("expired")
        if address_for(contact, Channel.EMAIL) != confirmation.address:
            # The contact's email changed since: this link confirms an address no longer held.
            return OptInOutcome("invalid")
        if not commit:
            return outcome("ready")
        via = ConsentVia(
            kind=ConsentRecord.ActorKind.DOUBLE_OPT_IN,
            label="Double opt-in",
            source=SOURCE,
            legal_basis=LegalBasis.CONSENT,
            form="Double opt-in email",
            ip=ip,
            user_agent=user_agent,
            consent_text=confirmation.consent_text,
            consent_text_version=confirmation.consent_text_version,
            evidence={
                "confirmation": str(confirmation.public_id),
                "sent_at": confirmation.sent_at.isoformat(),
                "address": confirmation.address,
            },
        )
        set_consent(
            contact=contact,
            changes={"consent_email": True, "consent_status": Status.OPTED_IN},
            via=via,
        )
        confirmation.confirmed_at = now
        confirmation.confirmed_ip = ip
        confirmation.confirmed_user_agent = (user_agent or "")[:400]
        confirmation.save(update_fields=["confirmed_at", "confirmed_ip", "confirmed_user_agent"])
        return outcome("confirmed")
