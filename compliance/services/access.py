"""Access export: everything the organization holds about one person, as a ZIP of JSON files.

One file per kind of data (person.json, activities.json, notes.json, ...). Rows are read in
chunks with .iterator() and written one by one into the archive, so a contact with a long
timeline costs the time to read it and no more memory than a chunk.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone

from contacts.importing.models import ImportJob, ImportRecord
from contacts.models import Activity, Contact, Note, Task
from crm.models import AuditEvent
from pipeline.models import DealContact, ObjectAssociation, Order

from ..models import ConsentRecord, Suppression

CHUNK = 2000
_ENCODER = DjangoJSONEncoder(ensure_ascii=False)

# Columns left out of person.json: internal keys and the search index, not data about them.
_PERSON_SKIPPED = {"search_vector", "org"}


def export_file_name(contact: Contact) -> str:
    return f"personal-data-{contact.public_id}.zip"


def _write_array(archive: zipfile.ZipFile, name: str, rows: Iterable[dict]) -> int:
    """Write `rows` as a JSON array to `name` in the archive, one row at a time."""
    count = 0
    with archive.open(name, "w") as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
        out.write("[")
        for row in rows:
            out.write(",\n  " if count else "\n  ")
            out.write(_ENCODER.encode(row))
            count += 1
        out.write("\n]\n" if count else "]\n")
        out.flush()
        out.detach()
    return count


def _values(queryset, fields: list[str]) -> Iterator[dict]:
    return queryset.values(*fields).iterator(chunk_size=CHUNK)


def _person(contact: Contact) -> dict:
    """Every stored field of the contact; a related record (company, owner) by its name."""
    data: dict[str, object] = {}
    for f in Contact._meta.concrete_fields:
        if f.name in _PERSON_SKIPPED:
            continue
        if f.is_relation:
            target = getattr(contact, f.name)
            data[f.name] = None if target is None else str(target)
        else:
            data[f.name] = getattr(contact, f.attname)
    data["id"] = str(contact.public_id)
    data.pop("public_id", None)
    data["custom"] = contact.custom or {}
    data["tags"] = sorted(contact.tags.values_list("name", flat=True))
    return data


def _addresses(contact: Contact) -> list[str]:
    emails = [contact.email, *(contact.other_emails or [])]
    values = {(e or "").strip().lower() for e in emails} | {contact.phone, contact.mobile}
    return sorted(v for v in values if v)


def build_access_export(contact: Contact) -> bytes:
    """The person's data as the bytes of a ZIP archive."""
    org = contact.org
    buffer = io.BytesIO()
    counts: dict[str, int] = {}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr("person.json", _ENCODER.encode(_person(contact)))
        sections = {
            "activities.json": _values(
                Activity.objects.for_org(org).filter(contact=contact).order_by("occurred_at", "id"),
                ["public_id", "type", "subject", "body", "data", "occurred_at", "created_at"],
            ),
            "notes.json": _values(
                Note.objects.for_org(org).filter(contact=contact).order_by("created_at", "id"),
                ["public_id", "body", "created_at", "updated_at"],
            ),
            "tasks.json": _values(
                Task.objects.for_org(org).filter(contact=contact).order_by("created_at", "id"),
                [
                    "public_id",
                    "title",
                    "description",
                    "status",
                    "priority",
                    "due_at",
                    "completed_at",
                    "created_at",
                ],
            ),
            "deals.json": _values(
                DealContact.objects.for_org(org).filter(contact=contact).order_by("id"),
                [
                    "deal__public_id",
                    "deal__title",
                    "role",
                    "deal__value",
                    "deal__currency",
                    "deal__status",
                    "deal__stage__name",
                    "deal__created_at",
                ],
            ),
            "orders.json": _values(
                Order.objects.for_org(org).filter(contact=contact).order_by("order_date", "id"),
                [
                    "public_id",
                    "title",
                    "value",
                    "currency",
                    "status",
                    "order_date",
                    "paid_date",
                    "source",
                    "external_id",
                    "note",
                    "created_at",
                ],
            ),
            "custom_objects.json": _values(
                ObjectAssociation.objects.for_org(org).filter(contact=contact).order_by("id"),
                [
                    "record__public_id",
                    "object_type__name",
                    "record__display_name",
                    "record__values",
                    "created_at",
                ],
            ),
            "consent.json": _values(
                ConsentRecord.objects.for_org(org)
                .filter(contact=contact)
                .order_by("occurred_at", "id"),
                [
                    "field",
                    "old_value",
                    "new_value",
                    "actor_kind",
                    "actor_label",
                    "source",
                    "legal_basis",
                    "form",
                    "ip_address",
                    "user_agent",
                    "consent_text",
                    "consent_text_version",
                    "evidence",
                    "occurred_at",
                ],
            ),
            "suppressions.json": _values(
                Suppression.objects.for_org(org)
                .filter(Q(contact=contact) | Q(address__in=_addresses(contact)))
                .order_by("created_at", "id"),
                [
                    "channel",
                    "address",
                    "reason",
                    "scope",
                    "source",
                    "note",
                    "created_at",
                    "lifted_at",
                    "lift_note",
                ],
            ),
            "imports.json": _imports(contact),
            "audit.json": _values(
                AuditEvent.objects.for_org(org)
                .filter(object_type="contact", object_id=str(contact.public_id))
                .order_by("created_at", "id"),
                ["created_at", "actor_type", "actor_label", "verb", "object_repr", "changes"],
            ),
        }
        for name, rows in sections.items():
            counts[name] = _write_array(zf, name, rows)
        zf.writestr(
            "README.json",
            _ENCODER.encode(
                {
                    "organization": org.name,
                    "contact": str(contact.public_id),
                    "generated_at": timezone.now(),
                    "files": {"person.json": 1, **counts},
                }
            ),
        )
    return buffer.getvalue()


def _imports(contact: Contact) -> Iterator[dict]:
    """The import that created the contact, and each import row that changed them."""
    org = contact.org
    if contact.import_job_id:
        job = ImportJob.objects.for_org(org).filter(pk=contact.import_job_id).first()
        if job is not None:
            yield {
                "import": str(job.public_id),
                "file_name": job.file_name,
                "action": "created",
                "at": job.created_at,
            }
    records = (
        ImportRecord.objects.filter(job__org=org, contact_id=contact.pk)
        .order_by("written_at", "id")
        .values("job__public_id", "job__file_name", "action", "row_number", "changes", "written_at")
    )
    for row in records.iterator(chunk_size=CHUNK):
        yield {
            "import": str(row["job__public_id"]),
            "file_name": row["job__file_name"],
            "action": row["action"],
            "row": row["row_number"],
            "changes": row["changes"],
            "at": row["written_at"],
        }
