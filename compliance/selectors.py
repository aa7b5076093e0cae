"""Reads of the compliance app, and the one answer to "may we contact this person?".

`may_contact()` and `may_contact_many()` are what messaging, sequences and the AI ask before
they send anything. They weigh, in this order: an address to send to, suppression of that
address on that channel, the person's opt-outs, and, for marketing, what the organization's
privacy mode asks for the person's jurisdiction. Each answer carries a reason in words and a
stable code, so a send report can group refusals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection

from contacts.models import Contact

from .models import (
    CCPA_COUNTRIES,
    GDPR_COUNTRIES,
    Channel,
    ConsentRecord,
    PrivacySettings,
    Purpose,
    Suppression,
)

GDPR, CCPA = "gdpr", "ccpa"
Mode = PrivacySettings.Mode
CONSENT_FIELD_OF: dict[str, str] = {
    Channel.EMAIL: "consent_email",
    Channel.SMS: "consent_sms",
    Channel.PHONE: "consent_phone",
    Channel.WHATSAPP: "consent_whatsapp",
}
CHANNEL_NOUN: dict[str, str] = {
    Channel.EMAIL: "email",
    Channel.SMS: "text messages",
    Channel.PHONE: "calls",
    Channel.WHATSAPP: "WhatsApp messages",
}
# The contact columns may_contact_many() reads; callers that already hold contacts loaded
# with .only(*CONTACTABILITY_COLUMNS) pay no further query for them.
CONTACTABILITY_COLUMNS = (
    "id",
    "org_id",
    "email",
    "phone",
    "mobile",
    "country",
    "consent_status",
    *CONSENT_FIELD_OF.values(),
)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    code: str
    reason: str
    address: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def privacy_settings(org) -> PrivacySettings:
    """The organization's privacy settings; unsaved defaults when it has none yet."""
    found = PrivacySettings.objects.for_org(org).first()
    if found is not None:
        return found
    return PrivacySettings(org_id=getattr(org, "pk", org))


def jurisdictions(mode: str, country: str) -> frozenset[str]:
    """Which regimes apply to a person in `country` under the organization's `mode`.

    GDPR mode applies GDPR to everyone: it follows the organization, wherever the person
    lives. CCPA mode likewise. "Both" goes by the contact's country: EEA, UK and Swiss
    residents get GDPR, US residents CCPA; anyone else, or a contact without a country,
    gets both, the stricter reading."""
    if mode == Mode.GDPR:
        return frozenset({GDPR})
    if mode == Mode.CCPA:
        return frozenset({CCPA})
    if mode == Mode.BOTH:
        code = (country or "").upper()
        if code in GDPR_COUNTRIES:
            return frozenset({GDPR})
        if code in CCPA_COUNTRIES:
            return frozenset({CCPA})
        return frozenset({GDPR, CCPA})
    return frozenset()


def address_for(contact: Contact, channel: str) -> str:
    """Where a message on `channel` would go: the primary email, or the mobile number (the
    landline for calls when there is no mobile)."""
    if channel == Channel.EMAIL:
        return (contact.email or "").strip().lower()
    if channel == Channel.PHONE:
        return contact.mobile or contact.phone or ""
    return contact.mobile or (contact.phone if channel == Channel.SMS else "") or ""


def _suppression_refusal(found: Suppression, purpose: str, address: str) -> Verdict | None:
    if found.scope == Suppression.Scope.MARKETING and purpose != Purpose.MARKETING:
        return None
    when = found.created_at.date().isoformat() if found.created_at else ""
    what = found.get_reason_display().lower()
    reason = f"{address} is suppressed for {CHANNEL_NOUN[found.channel]}: {what}"
    return Verdict(
        False,
        f"suppressed_{found.reason}",
        f"{reason} since {when}." if when else f"{reason}.",
        address,
    )


def _judge(
    contact: Contact,
    channel: str,
    purpose: str,
    mode: str,
    suppressions: dict[str, Suppression],
) -> Verdict:
    noun = CHANNEL_NOUN[channel]
    address = address_for(contact, channel)
    if not address:
        what = "email address" if channel == Channel.EMAIL else "phone number"
        return Verdict(False, "no_address", f"The contact has no {what}.")
    found = suppressions.get(address)
    if found is not None:
        refusal = _suppression_refusal(found, purpose, address)
        if refusal is not None:
            return refusal
    if purpose == Purpose.TRANSACTIONAL:
        return Verdict(
            True, "transactional", "Transactional messages need no marketing consent.", address
        )
    channel_consent = getattr(contact, CONSENT_FIELD_OF[channel])
    if channel_consent is False:
        return Verdict(False, "opted_out_channel", f"The contact opted out of {noun}.", address)
    if contact.consent_status == Contact.ConsentStatus.OPTED_OUT:
        return Verdict(False, "opted_out", "The contact opted out of marketing.", address)
    regimes = jurisdictions(mode, contact.country)
    if GDPR in regimes:
        if channel == Channel.EMAIL and contact.consent_status == Contact.ConsentStatus.PENDING:
            return Verdict(
                False,
                "awaiting_confirmation",
                "GDPR: the contact has not yet confirmed the double opt-in email.",
                address,
            )
        if channel_consent is not True:
            return Verdict(
                False,
                "no_consent",
                f"GDPR: marketing by {noun} needs the contact's explicit consent.",
                address,
            )
        if channel == Channel.EMAIL and contact.consent_status != Contact.ConsentStatus.OPTED_IN:
            return Verdict(
                False,
                "unconfirmed",
                "GDPR: marketing email needs consent confirmed by double opt-in.",
                address,
            )
        return Verdict(True, "consent", f"The contact consented to {noun}.", address)
    if channel_consent is True:
        return Verdict(True, "consent", f"The contact consented to {noun}.", address)
    if CCPA in regimes:
        return Verdict(True, "not_opted_out", "CCPA: the contact has not opted out.", address)
    return Verdict(True, "not_opted_out", "The contact has not opted out.", address)


def _active_suppressions(
    org_id: int, channel: str, addresses: Iterable[str]
) -> dict[str, Suppression]:
    wanted = sorted({a for a in addresses if a})
    if not wanted:
        return {}
    rows = Suppression.objects.for_org(org_id).filter(
        lifted_at__isnull=True, channel=channel, address__in=wanted
    )
    return {
        row.address: row for row in rows.only("address", "channel", "reason", "scope", "created_at")
    }


def _check(channel: str, purpose: str) -> None:
    if channel not in Channel.values:
        raise ValueError(f"Unknown channel {channel!r}.")
    if purpose not in Purpose.values:
        raise ValueError(f"Unknown purpose {purpose!r}.")


# One round trip for the single answer: the organization's mode and the address's active
# suppression (a LEFT JOIN each, so both may be missing).
_SINGLE_SQL = """
SELECT ps.mode, s.id, s.reason, s.scope, s.created_at
  FROM (SELECT 1) AS one
  LEFT JOIN compliance_privacysettings ps ON ps.org_id = %(org)s
  LEFT JOIN compliance_suppression s
         ON s.org_id = %(org)s AND s.lifted_at IS NULL AND s.channel = %(channel)s
        AND s.address = %(address)s
"""


def may_contact(contact: Contact, channel: str, purpose: str = Purpose.MARKETING) -> Verdict:
    """May we reach `contact` on `channel` for `purpose` now? The answer says why."""
    _check(channel, purpose)
    address = address_for(contact, channel)
    with connection.cursor() as cursor:
        cursor.execute(_SINGLE_SQL, {"org": contact.org_id, "channel": channel, "address": address})
        mode, suppression_id, reason, scope, created_at = cursor.fetchone()
    suppressions = {}
    if suppression_id is not None:
        suppressions[address] = Suppression(
            id=suppression_id,
            org_id=contact.org_id,
            channel=channel,
            address=address,
            reason=reason,
            scope=scope,
            created_at=created_at,
        )
    return _judge(contact, channel, purpose, mode or Mode.OFF, suppressions)


def may_contact_many(
    org, contacts: Sequence[Contact], channel: str, purpose: str = Purpose.MARKETING
) -> dict[int, Verdict]:
    """The same answer for many contacts of one organization at once, keyed by contact id:
    one query for the settings and one for the suppressions, whatever the count."""
    _check(channel, purpose)
    mode = privacy_settings(org).mode
    suppressions = _active_suppressions(
        getattr(org, "pk", org), channel, (address_for(c, channel) for c in contacts)
    )
    return {c.pk: _judge(c, channel, purpose, mode, suppressions) for c in contacts}


def channel_verdicts(
    contact: Contact, purpose: str = Purpose.MARKETING
) -> list[tuple[str, Verdict]]:
    """One verdict per channel for the contact page: (channel label, verdict)."""
    mode = privacy_settings(contact.org_id).mode
    addresses = {channel: address_for(contact, channel) for channel in Channel.values}
    rows = Suppression.objects.for_org(contact.org_id).filter(
        lifted_at__isnull=True, address__in=[a for a in addresses.values() if a]
    )
    by_channel: dict[str, dict[str, Suppression]] = {}
    for row in rows:
        by_channel.setdefault(row.channel, {})[row.address] = row
    labels = dict(Channel.choices)
    return [
        (labels[channel], _judge(contact, channel, purpose, mode, by_channel.get(channel, {})))
        for channel in Channel.values
    ]


def consent_history(contact: Contact, limit: int = 200):
    """The contact's consent ledger, newest first."""
    return (
        ConsentRecord.objects.for_org(contact.org_id)
        .filter(contact_id=contact.pk)
        .select_related("actor_user")
        .order_by("-occurred_at", "-id")[:limit]
    )


def contact_suppressions(contact: Contact):
    """Suppressions of the contact's addresses, active first, then lifted ones."""
    addresses = [a for a in {address_for(contact, ch) for ch in Channel.values} if a]
    return (
        Suppression.objects.for_org(contact.org_id)
        .filter(address__in=addresses)
        .select_related("created_by", "lifted_by")
        .order_by("lifted_at", "-created_at")
    )
