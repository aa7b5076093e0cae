"""Suppression: addresses that must not be contacted on a channel, and why.

A suppression is keyed by (channel, address), not by contact: a bounce or a complaint is a
fact about an address, and it must hold for a contact created tomorrow with the same address.
The database keeps at most one active row per (org, channel, address) (the partial unique
constraint `suppression_one_active`); lifting keeps the row, with who lifted it and why, so
the history stays. `compliance.selectors.may_contact` reads the active rows.

The CSV import takes lists brought from other tools (a mailing tool's unsubscribed members,
an SMS provider's opt-out list). It reads the columns it recognizes by their header, writes
in batches, and reports every row it could not use with its number and the reason; a bad row
never costs the others. The file is bounded: size, rows and the length of the cells it reads.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from contacts.importing.detect import detect_encoding
from contacts.importing.limits import Bounds, FileRefused, csv_records, human_size
from contacts.models import Contact
from contacts.normalize import normalize_email, normalize_phone
from crm.selectors import org_timezone
from crm.services import Actor, audit, emit_event
from crm.streaming import local_value, streamed

from ..models import Channel, Suppression

Reason = Suppression.Reason
Scope = Suppression.Scope

# The bounds of an uploaded suppression list.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_ROWS = 100_000
MAX_CELL_CHARS = 254
# What the CSV reader itself tolerates in a column this import does not read (a mailing
# tool's notes column, say) before it refuses the file: far above a real export's cells.
READER_CELL_CHARS = 32_768
MAX_COLUMNS = 200
MAX_ROW_ERRORS = 100
BATCH_SIZE = 1000

# Header names (lower case, spaces, dashes and underscores folded to one space) by role.
EMAIL_HEADERS = frozenset({"email", "email address", "e mail", "e mail address", "emailaddress"})
PHONE_HEADERS = frozenset(
    {"phone", "phone number", "phonenumber", "mobile", "mobile number", "mobile phone"}
)
CHANNEL_HEADERS = frozenset({"channel"})
REASON_HEADERS = frozenset({"reason", "suppression reason"})

# What other tools write in a channel or reason column, mapped to ours.
CHANNEL_WORDS = {
    "email": Channel.EMAIL,
    "e mail": Channel.EMAIL,
    "mail": Channel.EMAIL,
    "sms": Channel.SMS,
    "text": Channel.SMS,
    "text message": Channel.SMS,
    "phone": Channel.PHONE,
    "call": Channel.PHONE,
    "calls": Channel.PHONE,
    "voice": Channel.PHONE,
    "whatsapp": Channel.WHATSAPP,
    "whats app": Channel.WHATSAPP,
}
REASON_WORDS = {
    "unsubscribe": Reason.UNSUBSCRIBE,
    "unsubscribed": Reason.UNSUBSCRIBE,
    "opt out": Reason.UNSUBSCRIBE,
    "opted out": Reason.UNSUBSCRIBE,
    "optout": Reason.UNSUBSCRIBE,
    "stop": Reason.UNSUBSCRIBE,
    "bounce": Reason.BOUNCE,
    "bounced": Reason.BOUNCE,
    "hard bounce": Reason.BOUNCE,
    "cleaned": Reason.BOUNCE,
    "complaint": Reason.COMPLAINT,
    "spam": Reason.COMPLAINT,
    "spam complaint": Reason.COMPLAINT,
    "abuse": Reason.COMPLAINT,
    "manual": Reason.MANUAL,
    "do not contact": Reason.DO_NOT_CONTACT,
    "dnc": Reason.DO_NOT_CONTACT,
}

CHANNEL_LABELS = dict(Channel.choices)


def _folded(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", (text or "").strip().lower()).strip()


def default_scope(reason: str) -> str:
    """An unsubscribe stops marketing; a bounce, a complaint or a do-not-contact stops all."""
    return Scope.MARKETING if reason == Reason.UNSUBSCRIBE else Scope.ALL


def normalize_address(channel: str, address) -> str:
    """The address as suppressions store it: email lower-cased, phone numbers in E.164.
    Raises ValidationError({"address": [...]}) when it is not one."""
    text = (address or "").strip()
    if not text:
        noun = "an email address" if channel == Channel.EMAIL else "a phone number"
        raise ValidationError({"address": [f"Enter {noun}."]})
    try:
        value = normalize_email(text) if channel == Channel.EMAIL else normalize_phone(text)
    except ValidationError as exc:
        raise ValidationError({"address": exc.messages}) from None
    if channel != Channel.EMAIL and not value:
        raise ValidationError({"address": ["Enter a phone number."]})
    return value


def _check_choices(channel: str, reason: str, scope: str) -> None:
    errors = {}
    if channel not in Channel.values:
        errors["channel"] = ["Choose a channel: email, SMS, calls or WhatsApp."]
    if reason not in Reason.values:
        errors["reason"] = ["Choose a reason."]
    if scope not in Scope.values:
        errors["scope"] = ["Choose what the suppression covers: marketing only, or all."]
    if errors:
        raise ValidationError(errors)


def _active(org, channel: str, address: str):
    return Suppression.objects.for_org(org).filter(
        channel=channel, address=address, lifted_at__isnull=True
    )


def suppress(
    *,
    org,
    channel: str,
    address: str,
    reason: str,
    actor: Actor,
    contact: Contact | None = None,
    note: str = "",
    source: str = "",
    scope: str | None = None,
) -> Suppression:
    """Suppress `address` on `channel`. Idempotent: when the address is already suppressed
    on that channel, the active suppression is returned as it is."""
    scope = scope or default_scope(reason)
    _check_choices(channel, reason, scope)
    address = normalize_address(channel, address)
    if contact is not None and contact.org_id != org.pk:
        raise ValueError("The contact belongs to another organization.")
    with transaction.atomic():
        existing = _active(org, channel, address).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                row = Suppression.objects.for_org(org).create(
                    org=org,
                    channel=channel,
                    address=address,
                    reason=reason,
                    scope=scope,
                    contact=contact,
                    source=(source or "")[:200],
                    note=note or "",
                    created_by=actor.user,
                )
        except IntegrityError:
            # Someone suppressed the same address between our look and our write.
            return _active(org, channel, address).get()
        audit(
            org=org,
            actor=actor,
            verb="suppression.added",
            obj=row,
            changes={
                "channel": channel,
                "reason": reason,
                "scope": scope,
                "source": row.source,
                "note": row.note,
            },
        )
        if contact is not None:
            emit_event(
                org=org,
                event_type="contact.suppressed",
                payload={
                    "contact": contact.public_id,
                    "suppression": row.public_id,
                    "channel": channel,
                    "reason": reason,
                    "scope": scope,
                },
            )
    return row


def unsuppress(*, suppression: Suppression, actor: Actor, note: str) -> Suppression:
    """Lift a suppression. The note (why it may be contacted again) is required; the row
    stays, lifted, so the history of the address shows both."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": ["Say why this address may be contacted again."]})
    with transaction.atomic():
        locked = (
            Suppression.objects.for_org(suppression.org_id)
            .select_for_update()
            .get(pk=suppression.pk)
        )
        if locked.lifted_at is not None:
            raise ValidationError(
                "This suppression was already lifted"
                f" on {locked.lifted_at.date().isoformat()}; nothing changed."
            )
        locked.lifted_at = timezone.now()
        locked.lifted_by = actor.user
        locked.lift_note = note
        locked.save(update_fields=["lifted_at", "lifted_by", "lift_note"])
        audit(
            org=locked.org,
            actor=actor,
            verb="suppression.lifted",
            obj=locked,
            changes={"channel": locked.channel, "reason": locked.reason, "note": note},
        )
        if locked.contact_id is not None:
            contact_id = (
                Contact.objects.for_org(locked.org_id)
                .filter(pk=locked.contact_id)
                .values_list("public_id", flat=True)
                .first()
            )
            if contact_id is not None:
                emit_event(
                    org=locked.org,
                    event_type="contact.unsuppressed",
                    payload={
                        "contact": contact_id,
                        "suppression": locked.public_id,
                        "channel": locked.channel,
                    },
                )
    suppression.lifted_at, suppression.lifted_by = locked.lifted_at, locked.lifted_by
    suppression.lift_note = locked.lift_note
    return suppression


# CSV import -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    email: int | None
    phone: int | None
    channel: int | None
    reason: int | None


def _columns(header: list[str]) -> _Columns:
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _folded(name.lstrip("\ufeff"))
        for role, names in (
            ("email", EMAIL_HEADERS),
            ("phone", PHONE_HEADERS),
            ("channel", CHANNEL_HEADERS),
            ("reason", REASON_HEADERS),
        ):
            if key in names and role not in found:
                found[role] = index
    if "email" not in found and "phone" not in found:
        raise FileRefused(
            "The file has no column we can read addresses from. Name the column "
            "“Email”, “Email Address”, “Phone”, “Phone Number” or “Mobile” in the first row."
        )
    return _Columns(
        found.get("email"), found.get("phone"), found.get("channel"), found.get("reason")
    )


TOO_BIG = (
    "The file is larger than {limit}, the most a suppression list may be. "
    "Split it into smaller files."
)


def _text_of(file) -> str:
    limit = human_size(MAX_UPLOAD_BYTES)
    size = getattr(file, "size", None)
    if size is not None and size > MAX_UPLOAD_BYTES:
        raise FileRefused(TOO_BIG.format(limit=limit))
    file.seek(0)
    data = file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise FileRefused(TOO_BIG.format(limit=limit))
    text = data.decode(detect_encoding(data[:65536]), errors="replace")
    if "\x00" in text:
        raise FileRefused("This is not a CSV file. Export the list as CSV and upload that.")
    return text


def _records(text: str) -> Iterator[list[str]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    limits = Bounds(
        unpacked_bytes=MAX_UPLOAD_BYTES,
        compression_ratio=1,
        rows=MAX_ROWS + 2,  # the header and one row too many, which _check_rows names
        columns=MAX_COLUMNS,
        cell_chars=READER_CELL_CHARS,
        shared_strings=0,
        cell_lines=20,
    )
    yield from csv_records(io.StringIO(text, newline=""), delimiter, limits=limits)


def _check_rows(text: str) -> None:
    for records, _ in enumerate(_records(text), start=1):
        if records > MAX_ROWS + 1:  # the header, then the rows
            raise FileRefused(
                f"This file has more than {MAX_ROWS:,} rows, the most one suppression import "
                "takes. Split it into smaller files."
            )


def _cell(record: list[str], index: int | None) -> str:
    if index is None or index >= len(record):
        return ""
    return record[index].strip()


def _row_items(record, columns: _Columns, default_reason: str) -> list[tuple[str, str, str]]:
    """(channel, raw address, reason) for each address the row names. Raises
    ValidationError with the row's problem."""
    cells = [_cell(record, i) for i in (columns.email, columns.phone, columns.channel)]
    cells.append(_cell(record, columns.reason))
    if any(len(cell) > MAX_CELL_CHARS for cell in cells):
        raise ValidationError(f"A cell holds more than {MAX_CELL_CHARS} characters.")
    email, phone, channel_text, reason_text = cells
    reason = default_reason
    if reason_text:
        reason = REASON_WORDS.get(_folded(reason_text), "")
        if not reason:
            raise ValidationError(
                f"The reason “{reason_text}” is not one we know: use unsubscribe, bounce, "
                "complaint, manual or do not contact."
            )
    if channel_text:
        channel = CHANNEL_WORDS.get(_folded(channel_text), "")
        if not channel:
            raise ValidationError(
                f"The channel “{channel_text}” is not one we know: use email, SMS, calls "
                "or WhatsApp."
            )
        address = email if channel == Channel.EMAIL else phone
        if not address and channel != Channel.EMAIL and columns.phone is None:
            address = email  # a list whose one column holds every kind of address
        if not address:
            raise ValidationError(f"The row has no address for {CHANNEL_LABELS[channel]}.")
        return [(channel, address, reason)]
    items = []
    if email:
        items.append((Channel.EMAIL.value, email, reason))
    if phone:
        items.append((Channel.SMS.value, phone, reason))
    if not items:
        raise ValidationError("The row has no address.")
    return items


def _write_batch(org, batch: dict, actor: Actor, source: str) -> tuple[int, int]:
    """Create the batch's suppressions that are not active yet: (added, already)."""
    keys = list(batch)
    existing = set()
    for channel in {channel for channel, _ in keys}:
        addresses = [address for ch, address in keys if ch == channel]
        existing |= {
            (channel, address)
            for address in _active_by_address(org, channel, addresses).values_list(
                "address", flat=True
            )
        }
    new_rows = [
        Suppression(
            org=org,
            channel=channel,
            address=address,
            reason=reason,
            scope=default_scope(reason),
            source=source[:200],
            created_by=actor.user,
        )
        for (channel, address), reason in batch.items()
        if (channel, address) not in existing
    ]
    Suppression.objects.for_org(org).bulk_create(new_rows, ignore_conflicts=True)
    return len(new_rows), len(existing)


def _active_by_address(org, channel: str, addresses: list[str]):
    return Suppression.objects.for_org(org).filter(
        channel=channel, address__in=addresses, lifted_at__isnull=True
    )


def import_suppressions_csv(
    *, org, actor: Actor, file, default_reason: str = Reason.MANUAL, source: str
) -> dict:
    """Suppress the addresses of a CSV file. Returns {"added", "already", "invalid",
    "rows", "errors": [{"row", "message"}] (the first MAX_ROW_ERRORS), "errors_more"}.
    Raises FileRefused (a ValidationError) when the file as a whole can't be taken: too big,
    too many rows, not CSV, no address column; nothing is written then."""
    if default_reason not in Reason.values:
        raise ValidationError({"default_reason": ["Choose a reason."]})
    text = _text_of(file)
    # A first pass finds what refuses the whole file (rows, columns, broken quoting) before
    # anything is written; the second reads the rows.
    _check_rows(text)
    records = _records(text)
    header = next(records, None)
    if header is None:
        raise FileRefused("The file is empty.")
    columns = _columns(header)
    result: dict = {"added": 0, "already": 0, "invalid": 0, "rows": 0, "errors": []}
    errors: list[dict] = result["errors"]
    batch: dict[tuple[str, str], str] = {}
    seen: set[tuple[str, str]] = set()

    def fail(row_number: int, message: str) -> None:
        result["invalid"] += 1
        if len(errors) < MAX_ROW_ERRORS:
            errors.append({"row": row_number, "message": message})

    with transaction.atomic():
        for row_number, record in enumerate(records, start=2):
            if not any(cell.strip() for cell in record):
                continue  # a blank line: not a row
            result["rows"] += 1
            try:
                items = _row_items(record, columns, default_reason)
                keyed = [
                    (channel, normalize_address(channel, raw), reason)
                    for channel, raw, reason in items
                ]
            except ValidationError as exc:
                fail(row_number, " ".join(exc.messages))
                continue
            for channel, address, reason in keyed:
                if (channel, address) in seen:
                    result["already"] += 1
                    continue
                seen.add((channel, address))
                batch[channel, address] = reason
            if len(batch) >= BATCH_SIZE:
                added, already = _write_batch(org, batch, actor, source)
                result["added"] += added
                result["already"] += already
                batch = {}
        if batch:
            added, already = _write_batch(org, batch, actor, source)
            result["added"] += added
            result["already"] += already
        result["errors_more"] = max(0, result["invalid"] - len(errors))
        audit(
            org=org,
            actor=actor,
            verb="suppression.imported",
            object_type="suppression",
            object_repr=(source or "Suppression import")[:200],
            changes={key: result[key] for key in ("added", "already", "invalid", "rows")}
            | {"default_reason": default_reason},
        )
    return result


# Listing and export ---------------------------------------------------------------------------

STATUS_ACTIVE, STATUS_LIFTED, STATUS_ALL = "active", "lifted", "all"
STATUSES = [(STATUS_ACTIVE, "Active"), (STATUS_LIFTED, "Lifted"), (STATUS_ALL, "All")]


@dataclass(frozen=True)
class SuppressionFilters:
    channel: str = ""
    reason: str = ""
    status: str = STATUS_ACTIVE
    q: str = ""

    @classmethod
    def from_query(cls, params) -> SuppressionFilters:
        """The filters of a query string; anything unknown is dropped, not an error."""
        channel = params.get("channel", "")
        reason = params.get("reason", "")
        status = params.get("status", STATUS_ACTIVE)
        return cls(
            channel=channel if channel in Channel.values else "",
            reason=reason if reason in Reason.values else "",
            status=status if status in dict(STATUSES) else STATUS_ACTIVE,
            q=(params.get("q", "") or "").strip()[:MAX_CELL_CHARS],
        )

    def params(self) -> dict[str, str]:
        values = {"channel": self.channel, "reason": self.reason, "q": self.q}
        values["status"] = "" if self.status == STATUS_ACTIVE else self.status
        return {key: value for key, value in values.items() if value}


def filtered_suppressions(org, filters: SuppressionFilters):
    queryset = Suppression.objects.for_org(org)
    if filters.channel:
        queryset = queryset.filter(channel=filters.channel)
    if filters.reason:
        queryset = queryset.filter(reason=filters.reason)
    if filters.status == STATUS_ACTIVE:
        queryset = queryset.filter(lifted_at__isnull=True)
    elif filters.status == STATUS_LIFTED:
        queryset = queryset.filter(lifted_at__isnull=False)
    if filters.q:
        needle = filters.q.lower()
        digits = re.sub(r"[^\d+]", "", filters.q)
        match = Q(address__contains=needle)
        if digits and digits != needle and len(digits) >= 3:
            match |= Q(address__contains=digits)
        queryset = queryset.filter(match)
    return queryset


EXPORT_HEADER = [
    "Channel",
    "Address",
    "Reason",
    "Covers",
    "Status",
    "Added",
    "Added by",
    "Source",
    "Note",
    "Lifted",
    "Lifted by",
    "Lift note",
]
_EXPORT_VALUES = (
    "channel",
    "address",
    "reason",
    "scope",
    "created_at",
    "created_by__email",
    "source",
    "note",
    "lifted_at",
    "lifted_by__email",
    "lift_note",
)


def suppression_rows_for_export(org, filters: SuppressionFilters) -> Iterable[list]:
    """The rows of the suppression export, newest first, read through a server-side cursor
    so any number of rows takes constant memory. Times in the organization's timezone."""
    tz = org_timezone(org)
    reasons = dict(Reason.choices)
    scopes = dict(Scope.choices)
    queryset = (
        filtered_suppressions(org, filters).order_by("-created_at", "-id").values(*_EXPORT_VALUES)
    )
    for row in streamed(queryset):
        yield [
            CHANNEL_LABELS.get(row["channel"], row["channel"]),
            row["address"],
            reasons.get(row["reason"], row["reason"]),
            scopes.get(row["scope"], row["scope"]),
            "Lifted" if row["lifted_at"] else "Active",
            local_value(row["created_at"], tz),
            row["created_by__email"] or "",
            row["source"],
            row["note"],
            local_value(row["lifted_at"], tz) if row["lifted_at"] else "",
            row["lifted_by__email"] or "",
            row["lift_note"],
        ]
