"""Erasure: the right to be forgotten, for one contact.

`erase_contact()` removes a person from the organization in one transaction:

1. Every relation to Contact is found by introspection and has a decision in
   RELATION_HANDLING: its rows are deleted (the person's timeline, notes, tasks, links...),
   kept without the person (orders keep their amounts for the books; deals lose the link),
   or erased along with them (contacts merged into this one are the same person).
   A relation without a decision stops the erasure: a new foreign key must be thought about.
2. Free text that may name the person outside those rows is listed in ERASURE_TEXT_PLACES
   and redacted there: the audit log and the outbox about them, notifications pointing at
   them, the import's samples and records. Other contacts' notes are not scanned: what a
   member wrote about someone else is that someone else's record.
3. The contact rows are deleted, and an ErasureTombstone keeps keyed hashes (HMAC-SHA256
   under a key derived from SECRET_KEY) of their addresses, so imports and forms can refuse
   to bring the person back without anyone being able to read who it was.

The consent ledger and the audit log are append-only; both let an erasure through when the
transaction sets `crm.erasure = on` (compliance migration 0002, crm migration 0013).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from contacts import normalize
from contacts.importing.models import ImportJob, ImportRecord
from contacts.models import Contact, Note, Task
from contacts.services.merge_relations import contact_relations, relation_key, rows_of
from crm.models import AuditEvent, Notification, Organization, OutboxEvent
from crm.services import Actor, audit, emit_event
from pipeline.models import Deal, Order

from ..models import DataRequest, ErasureTombstone, Suppression
from .consent import erasure_mode

# The salt of the tombstone key: fixed, so hashes made today match tomorrow's lookups.
TOMBSTONE_SALT = "compliance.erasure.tombstone.v1"
REDACTED = "[erased]"
ERASED_LABEL = "Erased person"
# Orders stay for the books; their contact becomes this archived stand-in, one per org.
PLACEHOLDER_SOURCE = "erasure"
# What an import says of a row whose email belongs to an erased person (it skips the row).
ERASED_IMPORT_MESSAGE = "Erased on request; not re-imported."
LEGAL_HOLD_MESSAGE = (
    "{name} is on legal hold, so they cannot be erased. Lift the legal hold on the "
    "contact's Compliance card first if the hold has ended."
)

# What happens to the rows of each relation to Contact ("app.Model.field").
DELETE = "delete"  # the person's own rows: gone with them
KEEP_ORDERS = "keep_orders"  # kept, moved to the stand-in and stripped of personal text
UNLINK = "unlink"  # kept, no longer linked (and redacted where they may name them)
SAME_PERSON = "same_person"  # contacts merged into this one: erased with it
TRIGGER = "trigger"  # kept right by database triggers as the other rows change

RELATION_HANDLING = {
    "contacts.Contact.merged_into": SAME_PERSON,
    "contacts.ContactTag.contact": DELETE,
    "contacts.ContactList_contacts.contact": DELETE,
    "contacts.Activity.contact": DELETE,
    "contacts.Note.contact": DELETE,
    "contacts.Task.contact": DELETE,
    "contacts.DuplicatePair.contact_a": DELETE,
    "contacts.DuplicatePair.contact_b": DELETE,
    "contacts.DuplicateDismissal.contact_a": DELETE,
    "contacts.DuplicateDismissal.contact_b": DELETE,
    "contacts.MergeRecord.primary": DELETE,
    "contacts.MergeRecord.secondary": DELETE,
    "pipeline.Deal.contact": UNLINK,
    "pipeline.DealContact.contact": DELETE,
    "pipeline.ObjectAssociation.contact": DELETE,
    "pipeline.Order.contact": KEEP_ORDERS,
    "pipeline.OrderRollup.contact": TRIGGER,
    "compliance.ConsentRecord.contact": DELETE,
    "compliance.Suppression.contact": UNLINK,
    "compliance.OptInConfirmation.contact": DELETE,
    "compliance.DataRequest.contact": UNLINK,
}


# Tombstones ---------------------------------------------------------------------------------


def _secrets() -> list[str]:
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _hash(value: str, secret: str | None = None) -> str:
    return salted_hmac(
        TOMBSTONE_SALT, value, secret=secret or settings.SECRET_KEY, algorithm="sha256"
    ).hexdigest()


def _norm_email(value) -> str:
    return (value or "").strip().lower()


def _norm_phone(value) -> str:
    text = (value or "").strip()
    if not text:
        return ""
    try:
        return normalize.normalize_phone(text)
    except ValidationError:
        return "+" + re.sub(r"\D", "", text) if text.startswith("+") else re.sub(r"\D", "", text)


def email_hashes(email: str) -> set[str]:
    """The hashes an email may have been tombstoned under (current key and fallbacks)."""
    value = _norm_email(email)
    return {_hash(value, secret) for secret in _secrets()} if value else set()


def phone_hashes(phone: str) -> set[str]:
    """The hashes a phone number may have been tombstoned under (current key and fallbacks)."""
    value = _norm_phone(phone)
    return {_hash(value, secret) for secret in _secrets()} if value else set()


def is_tombstoned(org, email: str | None = None, phone: str | None = None) -> bool:
    """Whether an erased person of `org` had this email or phone number."""
    checks = Q(pk__in=[])
    hashes = email_hashes(email or "")
    if hashes:
        checks |= Q(email_hash__in=hashes)
    phones = phone_hashes(phone or "")
    if phones:
        checks |= Q(phone_hash__in=phones)
    if not hashes and not phones:
        return False
    return ErasureTombstone.objects.for_org(org).filter(checks).exists()


def tombstoned_emails(org, emails: Iterable[str]) -> set[str]:
    """Of `emails`, those (as given) that belong to an erased person of `org`: one query."""
    by_hash: dict[str, set[str]] = {}
    for email in emails:
        for digest in email_hashes(email):
            by_hash.setdefault(digest, set()).add(email)
    if not by_hash:
        return set()
    found = ErasureTombstone.objects.for_org(org).filter(email_hash__in=list(by_hash))
    out: set[str] = set()
    for digest in found.values_list("email_hash", flat=True):
        out |= by_hash[digest]
    return out


# Redaction ----------------------------------------------------------------------------------


@dataclass
class ErasedPerson:
    """What identifies the person being erased, and the rows that are theirs."""

    org: Organization
    contact_ids: list[int]
    public_ids: list[str]
    emails: list[str]
    phones: list[str]
    names: list[str]
    # Public ids of the person's notes and tasks, whose audit entries are redacted too.
    owned_object_ids: list[str] = field(default_factory=list)

    @property
    def needles(self) -> list[str]:
        values = {*self.emails, *self.phones, *self.names}
        return sorted((v for v in values if len(v) >= 3), key=len, reverse=True)

    def redact_text(self, text: str) -> str:
        if not text:
            return text
        for needle in self.needles:
            text = re.sub(re.escape(needle), REDACTED, text, flags=re.IGNORECASE)
        return text

    def redact_json(self, value):
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, list):
            return [self.redact_json(item) for item in value]
        if isinstance(value, dict):
            return {self.redact_text(k): self.redact_json(v) for k, v in value.items()}
        return value


def _blank_values(changes):
    """An audit entry's changes with the field names kept and every value erased."""
    if isinstance(changes, dict):
        return {key: REDACTED for key in changes}
    return {}


def _redact_audit(person: ErasedPerson) -> int:
    about = Q(object_type="contact", object_id__in=person.public_ids)
    if person.owned_object_ids:
        about |= Q(object_id__in=person.owned_object_ids)
    rows = AuditEvent.objects.for_org(person.org).filter(about)
    count = 0
    for event in rows.only("id", "changes", "object_repr").iterator(chunk_size=2000):
        event.changes = _blank_values(event.changes)
        event.object_repr = ERASED_LABEL if event.object_type == "contact" else REDACTED
        event.save(update_fields=["changes", "object_repr"])
        count += 1
    return count


def _redact_outbox(person: ErasedPerson) -> int:
    rows = OutboxEvent.objects.for_org(person.org).filter(payload__contact__in=person.public_ids)
    count = 0
    for event in rows.only("id", "payload").iterator(chunk_size=2000):
        event.payload = {"contact": event.payload.get("contact"), "erased": True}
        event.save(update_fields=["payload"])
        count += 1
    return count


def _redact_notifications(person: ErasedPerson) -> int:
    pointing = Q(pk__in=[])
    for public_id in person.public_ids:
        pointing |= Q(url__contains=public_id)
    count = 0
    for note in Notification.objects.for_org(person.org).filter(pointing).iterator():
        note.title = person.redact_text(note.title)[:200] or REDACTED
        note.body = person.redact_text(note.body)
        note.url = ""
        note.save(update_fields=["title", "body", "url"])
        count += 1
    return count


def _redact_imports(person: ErasedPerson) -> int:
    """The import that created them keeps only redacted samples; the records of what
    imports changed on them go (they serve an undo that cannot bring them back)."""
    deleted, _ = ImportRecord.objects.filter(
        job__org=person.org, contact_id__in=person.contact_ids
    ).delete()
    job_ids = (
        Contact.objects.for_org(person.org)
        .filter(pk__in=person.contact_ids, import_job__isnull=False)
        .values_list("import_job_id", flat=True)
    )
    for job in ImportJob.objects.for_org(person.org).filter(pk__in=list(job_ids)):
        job.suggestions = person.redact_json(job.suggestions)
        job.value_map = person.redact_json(job.value_map)
        job.value_counts = person.redact_json(job.value_counts)
        job.save(update_fields=["suggestions", "value_map", "value_counts"])
    return deleted


def _redact_requests(person: ErasedPerson) -> int:
    """Data requests about them keep their kind, dates and status, not what was written."""
    about = Q(contact_id__in=person.contact_ids)
    for email in person.emails:
        about |= Q(requester_email__iexact=email)
    return (
        DataRequest.objects.for_org(person.org)
        .filter(about)
        .update(contact=None, requester_email="", details="", updated_at=timezone.now())
    )


@dataclass(frozen=True)
class TextPlace:
    """A place outside the person's own rows where free text may name them."""

    label: str
    redact: Callable[[ErasedPerson], int]


ERASURE_TEXT_PLACES = (
    TextPlace("Audit log entries about the contact, their notes and tasks", _redact_audit),
    TextPlace("Outbox events about the contact", _redact_outbox),
    TextPlace("Notifications linking to the contact", _redact_notifications),
    TextPlace("Import records and the samples of the import that created them", _redact_imports),
    TextPlace("Data requests about them (requester email, details)", _redact_requests),
)


# Kept rows ----------------------------------------------------------------------------------


def erased_placeholder(org) -> Contact:
    """The archived stand-in that keeps erased people's orders, made on first need."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x45524153, org.pk])
    found = (
        Contact.objects.for_org(org)
        .filter(source=PLACEHOLDER_SOURCE, email="", first_name=ERASED_LABEL, is_archived=True)
        .order_by("id")
        .first()
    )
    if found is not None:
        return found
    now = timezone.now()
    return Contact.objects.for_org(org).create(
        org=org,
        first_name=ERASED_LABEL,
        source=PLACEHOLDER_SOURCE,
        is_archived=True,
        archived_at=now,
    )


def _keep_orders(person: ErasedPerson) -> int:
    orders = Order.objects.for_org(person.org).filter(contact_id__in=person.contact_ids)
    if not orders.exists():
        return 0
    placeholder = erased_placeholder(person.org)
    count = 0
    for order in orders.iterator(chunk_size=2000):
        order.contact = placeholder
        order.title = f"Order of {ERASED_LABEL.lower()}"
        order.note = ""
        if order.external_id and person.redact_text(order.external_id) != order.external_id:
            order.external_id = ""
        order.save(update_fields=["contact", "title", "note", "external_id", "updated_at"])
        count += 1
    return count


def _unlink_deals(person: ErasedPerson) -> int:
    deals = Deal.objects.for_org(person.org).filter(
        Q(contact_id__in=person.contact_ids) | Q(deal_contacts__contact_id__in=person.contact_ids)
    )
    count = 0
    for deal in deals.distinct().iterator():
        title = person.redact_text(deal.title)
        Deal.objects.for_org(person.org).filter(pk=deal.pk).update(title=title[:200])
        count += 1
    Deal.objects.for_org(person.org).filter(contact_id__in=person.contact_ids).update(contact=None)
    return count


def tombstone_suppressions(person: ErasedPerson, addresses: set[str]) -> int:
    """Suppressions of their addresses stay in force for nobody in clear: the address
    becomes its keyed hash, so the row still counts but names no one."""
    rows = Suppression.objects.for_org(person.org).filter(
        Q(contact_id__in=person.contact_ids) | Q(address__in=addresses)
    )
    count = 0
    for row in rows.iterator():
        row.address = "erased:" + _hash(row.address)
        row.contact = None
        row.note = person.redact_text(row.note)
        row.lift_note = person.redact_text(row.lift_note)
        row.source = person.redact_text(row.source)
        row.save(update_fields=["address", "contact", "note", "lift_note", "source"])
        count += 1
    return count


# The erasure --------------------------------------------------------------------------------


@dataclass
class ErasureReport:
    contacts: int = 0
    deleted: dict = field(default_factory=dict)
    kept: dict = field(default_factory=dict)
    redacted: dict = field(default_factory=dict)


def _same_person(org, contact: Contact) -> list[Contact]:
    """The contact and every contact merged into it, at any depth."""
    group, frontier = [contact], [contact.pk]
    while frontier:
        found = list(
            Contact.objects.for_org(org)
            .select_for_update()
            .filter(merged_into_id__in=frontier)
            .exclude(pk__in=[c.pk for c in group])
        )
        group += found
        frontier = [c.pk for c in found]
    return group


def person_of(org, group: list[Contact]) -> ErasedPerson:
    emails, phones, names = set(), set(), set()
    for c in group:
        emails |= {_norm_email(e) for e in [c.email, *(c.other_emails or [])] if e}
        phones |= {p.strip() for p in (c.phone, c.mobile) if p and p.strip()}
        full = f"{c.first_name} {c.last_name}".strip()
        if c.first_name and c.last_name:
            names.add(full)
            names.add(f"{c.last_name}, {c.first_name}")
    ids = [c.pk for c in group]
    owned = [
        str(pid)
        for model in (Note, Task)
        for pid in model.objects.for_org(org)
        .filter(contact_id__in=ids)
        .values_list("public_id", flat=True)
    ]
    return ErasedPerson(
        org=org,
        contact_ids=ids,
        public_ids=[str(c.public_id) for c in group],
        emails=sorted(emails),
        phones=sorted(phones),
        names=sorted(names),
        owned_object_ids=owned,
    )


def check_relations(relations) -> None:
    unknown = [relation_key(fk) for fk in relations if relation_key(fk) not in RELATION_HANDLING]
    if unknown:
        raise ImproperlyConfigured(
            "Erasure has no decision for these relations to Contact: "
            f"{', '.join(unknown)}. Add each to RELATION_HANDLING in {__name__}."
        )


def _write_tombstones(org, person: ErasedPerson, request: DataRequest | None) -> None:
    """One row per address pair: keyed hashes only, never the address."""
    email_values = [_hash(e) for e in person.emails]
    phone_values = [_hash(_norm_phone(p)) for p in person.phones]
    ErasureTombstone.objects.for_org(org).bulk_create(
        [
            ErasureTombstone(org=org, email_hash=e or "", phone_hash=p or "", request=request)
            for e, p in itertools.zip_longest(email_values, phone_values)
        ]
        or [ErasureTombstone(org=org, request=request)]
    )


def _erase(org, group: list[Contact], request, tombstone: bool) -> ErasureReport:
    """The erasure's writes, in erasure mode: every relation, the text places, the rows."""
    relations = contact_relations()
    person = person_of(org, group)
    addresses = {*person.emails, *person.phones}
    report = ErasureReport(contacts=len(group))
    for fk in relations:
        key, how = relation_key(fk), RELATION_HANDLING[relation_key(fk)]
        if how == DELETE:
            rows = rows_of(fk.model, org).filter(**{f"{fk.attname}__in": person.contact_ids})
            deleted, _ = rows.delete()
            if deleted:
                report.deleted[key] = deleted
    report.kept["pipeline.Order.contact"] = _keep_orders(person)
    report.kept["pipeline.Deal.contact"] = _unlink_deals(person)
    report.kept["compliance.Suppression.contact"] = tombstone_suppressions(person, addresses)
    for place in ERASURE_TEXT_PLACES:
        report.redacted[place.label] = place.redact(person)

    Contact.objects.for_org(org).filter(pk__in=person.contact_ids).update(merged_into=None)
    Contact.objects.for_org(org).filter(pk__in=person.contact_ids).delete()
    if tombstone:
        _write_tombstones(org, person, request)
    return report


def erase_contact(
    *,
    contact: Contact,
    actor: Actor,
    request: DataRequest | None = None,
    tombstone: bool = True,
):
    """Erase `contact` (and the contacts merged into it) for good. Refused, with a message
    naming them, when any of them is on legal hold. Returns an ErasureReport.

    `tombstone=False` (a retention rule's deletion, not a person's request) leaves no
    tombstone, so the person may be added again later."""
    check_relations(contact_relations())
    org = contact.org
    with transaction.atomic():
        locked = Contact.objects.for_org(org).select_for_update().get(pk=contact.pk)
        group = _same_person(org, locked)
        held = [c for c in group if c.legal_hold]
        if held:
            name = f"{locked.first_name} {locked.last_name}".strip() or "This contact"
            raise ValidationError(LEGAL_HOLD_MESSAGE.format(name=name), code="legal_hold")
        with erasure_mode():
            report = _erase(org, group, request, tombstone)
        audit(
            org=org,
            actor=actor,
            verb="contact.erased",
            object_type="contact",
            object_id=str(locked.public_id),
            object_repr=ERASED_LABEL,
            changes={
                "contacts": report.contacts,
                "deleted": report.deleted,
                "kept": {k: v for k, v in report.kept.items() if v},
                "request": str(request.public_id) if request is not None else "",
            },
        )
        emit_event(
            org=org,
            event_type="contact.erased",
            payload={
                "contact": str(locked.public_id),
                "request": str(request.public_id) if request is not None else "",
            },
        )
    return report
