"""Many orders at once, matched by external id: the inbound order URL's write, and the API's
(issue 18) later.

`upsert_orders` takes up to MAX_ITEMS raw order objects (parsed JSON) and, for each one,
creates the order, updates it (a repeat of an external id is an update, never a conflict) or
leaves it unchanged, or reports why it failed, per field. A bad item never costs the others
anything, and a failed item changes nothing at all: the sender fixes it and sends it again.

Set-based, so a batch of 1,000 costs a few statements rather than thousands: one look-up of
the contacts by email, one of the deals, one of the existing orders (locked, in external-id
order), one INSERT of the new orders, one UPDATE of the changed ones, one INSERT each of the
status history rows and of the outbox events, and ONE audit row for the whole batch (its
counts and the ids it created or changed: an audit row per order would double the cost of a
batch and bury the log). Contacts for unknown emails are the exception: each is made through
the contacts service (contact_create), with its own audit row, event and timeline entry.

Two requests carrying the same new external id at the same moment make one order: the INSERT
is `ON CONFLICT ... DO NOTHING` on the partial unique index order_external_id_per_source, so
the second waits for the first to commit and then inserts nothing; the batch's plan is then
made again (inside a savepoint) with the committed row as an existing order, and the item
becomes an update or is unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from contacts.models import Contact
from contacts.normalize import normalize_email
from contacts.services import contact_create
from crm.services import Actor, audit

from ..models import Deal, Order, OrderStatusChange
from . import order_bulk
from .order_input import clean_order_fields

MAX_ITEMS = 1000
# The order fields an item may carry (the rest of an item is ignored: shops send more).
ORDER_KEYS = (
    "external_id",
    "title",
    "value",
    "currency",
    "status",
    "order_date",
    "paid_date",
    "note",
)
CHANGEABLE = ("title", "value", "currency", "status", "order_date", "paid_date", "note")
CONTACT_KEYS = ("email", "first_name", "last_name", "phone")
# Ids listed in the batch's audit row, per kind; the counts are always complete.
AUDIT_IDS = 100
# A concurrent sender inserting the same new external ids can make the plan stale; it is made
# again this many times at most (each time the other transaction has committed meanwhile).
PLAN_ATTEMPTS = 4
SOURCE_LABELS: dict[str, str] = {
    Order.Source.WEBHOOK: "Orders webhook",
    Order.Source.API: "Orders API",
}

CREATED, UPDATED, UNCHANGED, FAILED = "created", "updated", "unchanged", "failed"
NO_CONTACT = (
    "Give the customer's email (contact.email, or email), so the order belongs to a contact."
)
UNKNOWN_CONTACT = (
    "No contact has this email, and this organization's setting does not create contacts "
    "for unknown emails."
)
NO_EXTERNAL_ID = (
    "Give each order the sender's own id (external_id), so that sending it again updates it "
    "instead of adding another order."
)
NOT_STORABLE = "contains a character that cannot be stored (NUL or invalid Unicode)."


@dataclass
class ItemResult:
    index: int
    external_id: str
    status: str = FAILED
    id: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "external_id": self.external_id,
            "status": self.status,
            "id": self.id,
            "errors": self.errors,
        }


@dataclass
class UpsertResult:
    items: list[ItemResult]

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "items": len(self.items),
            CREATED: self.count(CREATED),
            UPDATED: self.count(UPDATED),
            UNCHANGED: self.count(UNCHANGED),
            FAILED: self.count(FAILED),
        }

    @property
    def failures(self) -> list[ItemResult]:
        return [item for item in self.items if item.status == FAILED]


_MISSING: Any = object()


@dataclass
class _Item:
    """An item whose fields passed the checks; what it asks for."""

    result: ItemResult
    key: str  # the external id; "" never matches another item
    raw: dict  # the order fields it carries, as sent
    values: dict  # those fields checked (clean_order_fields, partial)
    email: str
    person: dict  # first_name, last_name, phone for a contact made from it
    deal: Any  # _MISSING (keep), None (unlink) or a deal's public id


@dataclass
class _Record:
    """One order as the batch leaves it: an existing row or a new one."""

    values: dict
    id: int | None = None
    public_id: uuid.UUID = field(default_factory=uuid.uuid4)
    original: dict | None = None  # the stored values of an existing row
    contact_public_id: str = ""
    # (from, to) status changes in order; a new order's first is ("", status).
    transitions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_new(self) -> bool:
        return self.original is None

    def changed_fields(self) -> list[str]:
        if self.original is None:
            return []
        return [k for k in (*CHANGEABLE, "contact_id", "deal_id") if self._differs(k)]

    def _differs(self, key: str) -> bool:
        assert self.original is not None
        return self.values.get(key) != self.original.get(key)


# Checking one item ------------------------------------------------------------------------


def _storable(value) -> bool:
    if not isinstance(value, str):
        return True
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") from JSON
        return False
    return True


def _scalar(value) -> bool:
    return value is None or isinstance(value, str | int | float | Decimal)


def _external_id_text(item) -> str:
    raw = item.get("external_id") if isinstance(item, dict) else None
    if raw is None or not _scalar(raw) or isinstance(raw, bool) or not _storable(raw):
        return ""
    return str(raw).strip()[:200]


def _parse(org, index: int, item, result: ItemResult, *, need_key: bool) -> _Item | None:
    if not isinstance(item, dict):
        result.errors = {"item": "Each order is a JSON object (external_id, title, value, …)."}
        return None
    errors: dict[str, str] = {}
    raw = {key: item[key] for key in ORDER_KEYS if key in item}
    for key, value in raw.items():
        if not _scalar(value) or isinstance(value, bool):
            errors[key] = "Send a text or a number here."
        elif not _storable(value):
            errors[key] = f"The value {NOT_STORABLE}"
    values, field_errors = clean_order_fields(
        org, {k: v for k, v in raw.items() if k not in errors}, partial=True
    )
    errors.update(field_errors)
    key = values.get("external_id", "")
    if need_key and not key and "external_id" not in errors:
        errors["external_id"] = NO_EXTERNAL_ID

    person = item.get("contact", {})
    email, details = "", {}
    if person is None:
        person = {}
    if not isinstance(person, dict):
        errors["contact"] = 'Send the contact as an object: {"email": …, "first_name": …}.'
    else:
        raw_email = person.get("email", item.get("email"))
        details = {k: person[k] for k in CONTACT_KEYS[1:] if person.get(k) not in (None, "")}
        texts = [raw_email, *details.values()]
        if not all(v is None or isinstance(v, str) for v in texts):
            errors["contact"] = "The contact's email, names and phone are text."
        elif not all(_storable(v) for v in texts):
            errors["contact"] = f"The contact {NOT_STORABLE}"
        else:
            try:
                email = normalize_email(raw_email)
            except ValidationError as exc:
                errors["contact"] = exc.messages[0]

    deal: Any = _MISSING
    if "deal_id" in item:
        raw_deal = item["deal_id"]
        if raw_deal in (None, ""):
            deal = None
        else:
            try:
                deal = uuid.UUID(str(raw_deal)) if _storable(raw_deal) else None
            except ValueError:
                deal = None
            if deal is None:
                errors["deal_id"] = "Send a deal's id as shown in the deal's address (a UUID)."

    if errors:
        result.errors = errors
        return None
    return _Item(result, key, raw, values, email, details, deal)


# Looking things up, one query each ----------------------------------------------------------


def _contacts_by_email(org, emails: set[str]) -> dict[str, tuple[int, str]]:
    """{email: (contact id, public id)}: the active contact with that email, else the most
    recent archived one (its history stays in one place)."""
    if not emails:
        return {}
    found: dict[str, tuple[int, str]] = {}
    rows = (
        Contact.objects.for_org(org)
        .filter(email__in=sorted(emails))
        .order_by("email", "is_archived", "-id")
        .values_list("email", "id", "public_id")
    )
    for email, pk, public_id in rows:
        found.setdefault(email, (pk, str(public_id)))
    return found


def _deals_by_public_id(org, public_ids: set) -> dict:
    if not public_ids:
        return {}
    rows = Deal.objects.for_org(org).filter(public_id__in=public_ids).values_list("public_id", "id")
    return dict(rows)


def _existing_orders(org, source: str, keys: list[str], *, lock: bool) -> dict[str, _Record]:
    """The stored orders of these external ids; with `lock`, locked for the batch in
    external-id order (the order every batch locks them in). `exclude(external_id="")`
    spells the partial unique index's condition, so the look-up uses that index for any
    number of ids (the planner cannot prove it from a long IN list)."""
    if not keys:
        return {}
    rows = (
        Order.objects.for_org(org)
        .filter(source=source, external_id__in=keys)
        .exclude(external_id="")
        .order_by("external_id")
        .values("id", "public_id", "external_id", "contact_id", "deal_id", *CHANGEABLE)
    )
    if lock:
        rows = rows.select_for_update()
    out = {}
    for row in rows:
        stored = {k: row[k] for k in (*CHANGEABLE, "contact_id", "deal_id", "external_id")}
        out[row["external_id"]] = _Record(
            values=dict(stored), id=row["id"], public_id=row["public_id"], original=stored
        )
    return out


def _make_contacts(org, items: list[_Item], emails: set[str], actor, source: str) -> dict:
    """Contacts for `emails` (unknown so far) through the contacts service, in email order (two
    batches making the same contacts wait for each other instead of deadlocking).
    Returns {email: (id, public id)} and sets the errors of items whose contact failed."""
    made: dict[str, tuple[int, str]] = {}
    first: dict[str, _Item] = {}
    for item in items:
        first.setdefault(item.email, item)
    for email in sorted(emails):
        data = {"email": email, **first[email].person}
        data.update(
            source=SOURCE_LABELS.get(source, "Orders"),
            consent_type=Contact.ConsentType.IMPORTED,
            lifecycle_stage=Contact.Stage.STAGE,
        )
        try:
            contact = contact_create(org=org, actor=actor, data=data, policy=None)
        except ValidationError as exc:
            # Another batch made this contact a moment ago: it is there now.
            again = _contacts_by_email(org, {email})
            if email in again:
                made[email] = again[email]
                continue
            message = _contact_error(exc)
            for item in items:
                if item.email == email and item.result.status != FAILED:
                    item.result.status, item.result.id = FAILED, None
                    item.result.errors = {"contact": message}
            continue
        made[email] = (contact.pk, str(contact.public_id))
    return made


def _contact_error(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        key, messages = next(iter(exc.message_dict.items()))
        label = key.replace("_", " ").capitalize()
        return f"{label}: {messages[0]}"
    return exc.messages[0]


# The plan: what each item does, worked out in memory ---------------------------------------


def _plan(org, items: list[_Item], existing: dict[str, _Record], contacts: dict, deals: dict):
    """Walk the items in order against the stored orders (and the ones earlier items of the
    batch create or change): each item's outcome, and every record to write."""
    state: dict[str, _Record] = dict(existing)
    new: list[_Record] = []
    for item in items:
        result = item.result
        result.errors, result.status, result.id = {}, FAILED, None
        if item.email and item.email not in contacts:
            result.errors = {"contact": UNKNOWN_CONTACT}
            continue
        deal_id = _MISSING
        if item.deal is not _MISSING:
            deal_id = None if item.deal is None else deals.get(item.deal)
            if item.deal is not None and deal_id is None:
                result.errors = {"deal_id": "No deal of this organization has this id."}
                continue
        record = state.get(item.key) if item.key else None
        if record is None:
            values, errors = clean_order_fields(org, item.raw, partial=False)
            if not item.email:
                errors.setdefault("contact", NO_CONTACT)
            if errors:
                result.errors = errors
                continue
            contact_id, contact_public_id = contacts[item.email]
            record = _Record(
                values={
                    **{k: values.get(k) for k in CHANGEABLE},
                    "note": values.get("note", ""),
                    "external_id": values.get("external_id", ""),
                    "contact_id": contact_id,
                    "deal_id": None if deal_id is _MISSING else deal_id,
                },
                contact_public_id=contact_public_id,
                transitions=[("", values["status"])],
            )
            new.append(record)
            if item.key:
                state[item.key] = record
            result.status, result.id = CREATED, str(record.public_id)
            continue
        change = {k: v for k, v in item.values.items() if k in CHANGEABLE}
        if item.email:
            change["contact_id"], record.contact_public_id = contacts[item.email]
        if deal_id is not _MISSING:
            change["deal_id"] = deal_id
        differs = {k: v for k, v in change.items() if record.values.get(k) != v}
        if "status" in differs:
            record.transitions.append((record.values["status"], differs["status"]))
        record.values.update(differs)
        result.status = UPDATED if differs else UNCHANGED
        result.id = str(record.public_id)
    changed = [r for r in existing.values() if r.changed_fields()]
    return new, changed


# Writing -----------------------------------------------------------------------------------


def _insert(org, records: list[_Record], source: str, actor, now) -> bool:
    """Insert the new orders; False when a concurrent batch inserted one of their external
    ids first (nothing of this batch is kept then: the caller's savepoint rolls back)."""
    rows = [{"public_id": r.public_id, **_row(r)} for r in records]
    ids = order_bulk.insert_orders(org.pk, rows, source=source, user_id=_user_id(actor), now=now)
    for record in records:
        record.id = ids.get(record.public_id)
    return len(ids) == len(records)


def _row(record: _Record) -> dict:
    return {key: record.values.get(key) for key in order_bulk.ORDER_FIELDS}


def _user_id(actor) -> int | None:
    return getattr(getattr(actor, "user", None), "pk", None)


def _history_and_events(org, records: list[_Record], source: str, via: str, actor, now):
    history, events = [], []
    for record in records:
        history += [
            {"order_id": record.id, "from_status": before, "to_status": after}
            for before, after in record.transitions
        ]
        base = {"order": str(record.public_id), "external_id": record.values["external_id"]}
        base.update(source=source, via=via, bulk=True)
        if record.is_new:
            payload = {
                **base,
                "contact": record.contact_public_id,
                "status": record.values["status"],
                "value": str(record.values["value"]),
                "currency": record.values["currency"],
            }
            events.append({"event_type": "order.created", "payload": payload})
        else:
            fields = [k.removesuffix("_id") for k in record.changed_fields()]
            events.append({"event_type": "order.updated", "payload": {**base, "fields": fields}})
        events += [
            {"event_type": "order.status_changed", "payload": {**base, "from": a, "to": b}}
            for a, b in record.transitions
            if a
        ]
    user_id = _user_id(actor)
    order_bulk.insert_status_changes(org.pk, history, via=via, user_id=user_id, now=now)
    order_bulk.insert_events(org.pk, events, now=now)


def _audit(org, actor: Actor, result: UpsertResult, source: str, via: str) -> None:
    counts = result.counts
    if not counts[CREATED] and not counts[UPDATED]:
        return  # nothing was written: nothing to account for
    ids = {
        status: [item.id for item in result.items if item.status == status]
        for status in (CREATED, UPDATED)
    }
    audit(
        org=org,
        actor=actor,
        verb="order.batch_upserted",
        object_type="order",
        object_repr=f"{counts[CREATED]} created, {counts[UPDATED]} updated ({source})",
        changes={
            "source": source,
            "via": via,
            **counts,
            **{f"{status}_ids": values[:AUDIT_IDS] for status, values in ids.items()},
            "ids_truncated": any(len(values) > AUDIT_IDS for values in ids.values()),
        },
    )


# The service -------------------------------------------------------------------------------


def upsert_orders(
    *, org, items: list, source: str, via: str, actor: Actor, create_contacts: bool
) -> UpsertResult:
    """Create or update orders of `source` by external id; see the module's docstring.

    `items` are raw order objects (at most MAX_ITEMS); `via` is an OrderStatusChange.Via for
    the status history; `actor` is who acts (its user, if any, is recorded as creator);
    `create_contacts` makes contacts for emails no contact has (else such items fail)."""
    if len(items) > MAX_ITEMS:
        raise ValueError(f"At most {MAX_ITEMS} orders per call.")
    if source not in Order.Source.values or via not in OrderStatusChange.Via.values:
        raise ValueError("Unknown order source or status-change origin.")
    results = [ItemResult(index, _external_id_text(item)) for index, item in enumerate(items)]
    need_key = source == Order.Source.WEBHOOK
    with transaction.atomic():
        parsed = [
            item
            for index, raw in enumerate(items)
            if (item := _parse(org, index, raw, results[index], need_key=need_key))
        ]
        emails = {item.email for item in parsed if item.email}
        contacts = _contacts_by_email(org, emails)
        deals = _deals_by_public_id(
            org, {i.deal for i in parsed if i.deal is not _MISSING and i.deal is not None}
        )
        keys = sorted({item.key for item in parsed if item.key})
        now = timezone.now()
        unknown = emails - contacts.keys()
        if unknown and create_contacts:
            # Contacts only for items that would succeed otherwise. No order is locked yet:
            # a batch waiting for another's new contact must not hold orders that one needs.
            existing = _existing_orders(org, source, keys, lock=False)
            _plan(org, parsed, existing, {**contacts, **dict.fromkeys(unknown, (0, ""))}, deals)
            wanted = {i.email for i in parsed if i.email in unknown and i.result.status != FAILED}
            contacts.update(_make_contacts(org, parsed, wanted, actor, source))
            parsed = [item for item in parsed if not item.result.errors]
        for attempt in range(PLAN_ATTEMPTS):
            try:
                with transaction.atomic():
                    existing = _existing_orders(org, source, keys, lock=True)
                    new, changed = _plan(org, parsed, existing, contacts, deals)
                    if not _insert(org, new, source, actor, now):
                        raise _StalePlan
                    order_bulk.update_orders(
                        org.pk, [{"id": r.id, **_row(r)} for r in changed], now=now
                    )
                    _history_and_events(org, [*new, *changed], source, via, actor, now)
                break
            except _StalePlan:
                if attempt == PLAN_ATTEMPTS - 1:
                    raise RuntimeError("Orders kept being inserted concurrently.") from None
        result = UpsertResult(results)
        _audit(org, actor, result, source, via)
    return result


class _StalePlan(Exception):
    """A concurrent batch inserted one of this batch's new external ids first."""
