"""The consent ledger: every change to a consent field of a contact appends a ConsentRecord.

A contact's consent fields are the current state; the ledger is how it got there. The rows
are written by database triggers on contacts_contact (migration 0002), so no writer can
change a consent without a row: the form, the API, an import's COPY, a merge, raw SQL.
What the database cannot know, who acted and with what evidence, the writer states with
`consent_context(via)` around its write. `set_consent()` is the write for a consent change
made on purpose (the Compliance card, the preference center, a double opt-in click, an
unsubscribe link): it adds an audit entry and a `contact.consent_changed` event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from contacts.models import Contact
from crm.models import AuditEvent
from crm.services import Actor, audit, emit_event

from ..models import ConsentRecord, LegalBasis

Kind = ConsentRecord.ActorKind

# Contact fields the ledger covers, in the order the Compliance card shows them.
BOOL_FIELDS = (
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_whatsapp",
    "consent_data_processing",
)
CONSENT_FIELDS = (*BOOL_FIELDS, "consent_status", "do_not_sell")
FIELD_LABELS = dict(ConsentRecord.Field.choices)
USER_AGENT_MAX = ConsentRecord._meta.get_field("user_agent").max_length or 400


@dataclass(frozen=True)
class ConsentVia:
    """Who or what changes a consent, and the evidence that goes with it."""

    kind: str
    user: object | None = None
    label: str = ""
    source: str = ""
    legal_basis: str = ""
    form: str = ""
    ip: str | None = None
    user_agent: str = ""
    consent_text: str = ""
    consent_text_version: str = ""
    evidence: Mapping = field(default_factory=dict)

    @classmethod
    def from_actor(cls, actor: Actor, *, source: str = "Contact form", **extra) -> ConsentVia:
        """A member's change (or an API key's, or a system job's) from its audit actor."""
        kinds: dict[str, str] = {
            AuditEvent.ActorType.USER: Kind.MEMBER,
            AuditEvent.ActorType.API_KEY: Kind.API,
            AuditEvent.ActorType.AI: Kind.MEMBER,
        }
        kind = kinds.get(actor.type, Kind.SYSTEM)
        return cls(
            kind=kind, user=actor.user, label=actor.label, source=source, ip=actor.ip, **extra
        )

    def as_json(self) -> str:
        """The form the ledger's trigger reads (crm.consent_via)."""
        return json.dumps(
            {
                "kind": self.kind,
                "user_id": getattr(self.user, "pk", None),
                "label": (self.label or "")[:200],
                "source": (self.source or "")[:200],
                "legal_basis": self.legal_basis,
                "form": (self.form or "")[:120],
                "ip": self.ip or "",
                "user_agent": (self.user_agent or "")[:USER_AGENT_MAX],
                "consent_text": self.consent_text,
                "consent_text_version": (self.consent_text_version or "")[:40],
                "evidence": dict(self.evidence),
            },
            default=str,
        )

    def actor(self) -> Actor:
        """The audit actor for this change."""
        if self.user is not None:
            return Actor.for_user(self.user, ip=self.ip)
        return Actor.system(self.label or dict(Kind.choices).get(self.kind, self.kind))


def as_text(value) -> str:
    """A consent value as the ledger stores it: "true", "false", "" or the status key."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def consent_state(contact: Contact) -> dict[str, str]:
    return {name: as_text(getattr(contact, name)) for name in CONSENT_FIELDS}


@contextmanager
def consent_context(via: ConsentVia):
    """Within the block, consent changes on this connection are ledgered as made by `via`.
    Transaction-local (SET LOCAL): it cannot outlive the transaction, and it is restored on
    leaving, so nested writers each speak for themselves."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('crm.consent_via', true)")
        previous = cursor.fetchone()[0] or ""
        cursor.execute("SELECT set_config('crm.consent_via', %s, true)", [via.as_json()])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('crm.consent_via', %s, true)", [previous])


@contextmanager
def erasure_mode():
    """Within the block, this transaction may delete consent ledger rows and redact audit
    entries (the `crm.erasure` flag both append-only triggers honour): for an erasure, an
    anonymization, and an import's undo, which deletes the contacts the import created as
    though they had never been. Restored on leaving."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('crm.erasure', true)")
        previous = cursor.fetchone()[0] or ""
        cursor.execute("SELECT set_config('crm.erasure', 'on', true)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('crm.erasure', %s, true)", [previous])


def _clean(name: str, value):
    if name not in CONSENT_FIELDS:
        raise ValidationError({name: ["This is not a consent field."]})
    if name == "consent_status":
        if value not in Contact.ConsentStatus.values:
            raise ValidationError({name: ["Choose a consent status."]})
        return value
    if name == "do_not_sell":
        return bool(value)
    if value is not None and not isinstance(value, bool):
        raise ValidationError({name: ["Choose yes, no or unknown."]})
    return value


@transaction.atomic
def set_consent(*, contact: Contact, changes: Mapping[str, object], via: ConsentVia) -> dict:
    """Change consent fields of one contact; the ledger gets a row per change. Returns
    {field: [old, new]} as ledger text (empty when nothing changed). Values: True, False or
    None for channel consents, a status key for consent_status, True/False for do_not_sell."""
    cleaned = {name: _clean(name, value) for name, value in changes.items()}
    if via.legal_basis and via.legal_basis not in LegalBasis.values:
        raise ValidationError({"legal_basis": ["Choose a legal basis."]})
    locked = Contact.objects.for_org(contact.org_id).select_for_update().get(pk=contact.pk)
    before = consent_state(locked)
    for name, value in cleaned.items():
        setattr(locked, name, value)
    if consent_state(locked) == before:
        return {}
    update_fields = [*cleaned, "updated_at"]
    if "consent_status" in cleaned and before["consent_status"] != cleaned["consent_status"]:
        locked.consent_date = timezone.now()
        locked.consent_source = (via.source or "")[:200]
        update_fields += ["consent_date", "consent_source"]
    with consent_context(via):
        locked.save(update_fields=update_fields)
    after = consent_state(locked)
    changed = {
        name: [before[name], after[name]] for name in CONSENT_FIELDS if before[name] != after[name]
    }
    audit(
        org=locked.org,
        actor=via.actor(),
        verb="contact.consent_changed",
        obj=locked,
        changes=changed,
    )
    emit_event(
        org=locked.org,
        event_type="contact.consent_changed",
        payload={"contact": locked.public_id, "fields": sorted(changed), "via": via.kind},
    )
    for name in cleaned:
        setattr(contact, name, getattr(locked, name))
    contact.consent_date, contact.consent_source = locked.consent_date, locked.consent_source
    return changed
