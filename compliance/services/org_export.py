"""Compliance → Export all data: the whole organization as one ZIP, built by a background job.

Who may start one: Owners always, and any role with the Compliance "export" right (the
built-in Admin has it; Executive and Director only view Compliance). The right is read again
when the job runs, so a member who lost it meanwhile gets a failed job, not the data.

What a non-Owner gets: every file, with the contact columns their role may see (the same
`contacts.export.export_columns` that the contact list export applies) and the deal columns
their deal field rules leave visible; hidden fields have no column at all. Record scope does
not narrow the export: it is the organization's data, exported under the compliance right.
The compliance records themselves (ledger, suppressions, requests) are exported whole, as
the compliance pages show them to whoever holds the right.

How it runs, in constant memory and resumable:
1. Writing. Each object ("section") is read in chunks of ids (`jobs.ids_after`, keyset on the
   primary key) and its rows appended to two working files, `<name>.csv` and
   `<name>.jsonl`. Each chunk commits, with the job row locked, where it got to: the section,
   the last id, and the byte length of both files. A worker that dies is replaced by one
   that cuts the files back to the committed lengths and carries on after the last id.
2. Packing. The working files are copied, block by block, into entries of a ZIP (deflate)
   next to them, which is renamed into place once complete; a worker lost while packing
   packs again from the working files. Then the working files go.
Progress counts each row twice (written, then packed), so the bar moves through both steps.

The finished file lives under MEDIA_ROOT/org_exports/<org id>/, for `EXPORT_DAYS` days. Its
download link is signed (django.core.signing) over the job and its expiry; the view serves
it only to the member who started it or an Owner of the same organization. Expired files
are deleted when the export page is next opened (`purge_expired`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import GeneratedField, Model, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from contacts.export import csv_value as contact_csv_value
from contacts.export import export_columns, export_values
from contacts.export import json_record as contact_json_record
from contacts.fields import contact_field_catalog
from contacts.models import (
    Activity,
    Company,
    Contact,
    ContactList,
    ContactTag,
    CustomFieldDefinition,
    Note,
    Tag,
    Task,
)
from crm import jobs
from crm.csvutils import safe_cell
from crm.jobs.background import starter_policy
from crm.models import AuditEvent, BackgroundJob
from crm.permissions import Policy
from crm.selectors import org_timezone
from crm.services import Actor, audit, emit_event
from crm.services.notifications import notify
from crm.streaming import local_value
from pipeline.models import (
    Deal,
    DealContact,
    DealTag,
    ObjectAssociation,
    ObjectField,
    ObjectRecord,
    ObjectType,
    Order,
)

from ..models import ConsentRecord, DataRequest, Suppression
from .links import absolute

logger = logging.getLogger(__name__)

JOB_KIND = "compliance.org_export"
TITLE = "Export all data"
EXPORT_DAYS = 7
CHUNK_ROWS = 2000
COPY_BLOCK = 1 << 20
HEARTBEAT_SECONDS = 10.0
# Deflate level: 1 packs text about three times faster than the default 6 for a few percent
# more bytes, which matters at a million contacts and not at all for a download.
COMPRESS_LEVEL = 1
LINK_SALT = "compliance.org_export.download"
STORAGE_DIR = "org_exports"
# The advisory lock key's first half (the second is the organization): one start at a time.
LOCK_NAMESPACE = 17_005
WRITING, PACKING = "writing", "packing"
ACTIVE_STATUSES = (BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING)

LOST_FILES = (
    "The export's working files were lost part-way (the server's disk was cleaned or "
    "replaced). Start a new export."
)
NO_RIGHT = (
    "The member who started this export no longer has the right to export all data, so it "
    "was stopped before any data was written."
)


class OrgExportError(Exception):
    """A start that is refused, with the reason to show the member."""


def may_export(policy: Policy) -> bool:
    """Owners (who hold every right) and roles with the Compliance export right."""
    return policy.can("compliance", "export")


# Sections --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str  # CSV header and JSON key
    path: str  # the `values()` path that reads it


@dataclass
class Section:
    """One object of the export: its files' name, its rows' ids, and how a chunk of them
    becomes CSV cells and JSON records."""

    name: str
    base: QuerySet  # the org's rows, whose primary keys the chunks walk
    header: list[str]
    read: Callable[[list[int]], Iterable[tuple[list, dict]]]
    hidden: list[str] = field(default_factory=list)

    def next_ids(self, cursor: int) -> list[int]:
        return jobs.ids_after(self.base, cursor, CHUNK_ROWS)

    def count(self) -> int:
        return self.base.count()


def _user_model():
    return get_user_model()


def model_columns(model: type[Model], *, skip: Iterable[str] = ()) -> list[Column]:
    """Every stored field of `model` as a column: its public id as "id", a member as their
    email, another record as its public id ("<name>_id"); the integer keys, the
    organization and generated search columns are left out."""
    skipped = {"id", "org", *skip}
    columns: list[Column] = []
    for model_field in model._meta.concrete_fields:
        name = model_field.name
        if name in skipped or isinstance(model_field, GeneratedField):
            continue
        if name == "public_id":
            columns.insert(0, Column("id", "public_id"))
        elif model_field.is_relation:
            related = model_field.related_model
            if not isinstance(related, type):  # "self" is resolved by the time this runs
                related = model
            if related is _user_model():
                columns.append(Column(name, f"{name}__email"))
            elif any(f.name == "public_id" for f in related._meta.concrete_fields):
                columns.append(Column(f"{name}_id", f"{name}__public_id"))
            else:
                columns.append(Column(f"{name}_id", model_field.attname))
        else:
            columns.append(Column(name, name))
    return columns


def _csv_cell(value):
    """A cell from a value already in the org's time: JSON for lists and objects, and
    nothing a spreadsheet would run as a formula."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)
    return safe_cell(value)


def model_section(
    name: str,
    base,
    columns: list[Column],
    tz,
    *,
    transform: Callable[[dict], dict] | None = None,
    hidden: Iterable[str] = (),
) -> Section:
    paths = [column.path for column in columns]
    headers = [column.header for column in columns]

    def read(ids: list[int]) -> Iterator[tuple[list, dict]]:
        for row in base.filter(pk__in=ids).order_by("pk").values(*paths):
            if transform is not None:
                row = transform(row)
            # Each value converted once, for both files.
            values = [local_value(row[path], tz) for path in paths]
            yield [_csv_cell(value) for value in values], dict(zip(headers, values, strict=True))

    return Section(name, base, headers, read, list(hidden))


def contact_section(org, policy: Policy, tz) -> Section:
    """Contacts through the contact list export's own columns: every field of the catalog
    (custom fields as columns) that the member may see, values read the same way."""
    catalog = contact_field_catalog(org)
    columns = export_columns(catalog, policy)
    shown = {column.key for column in columns}
    hidden = [spec.key for spec in catalog if spec.key not in shown]
    base = Contact.objects.for_org(org)

    def read(ids: list[int]) -> Iterator[tuple[list, dict]]:
        for row in export_values(base.filter(pk__in=ids), columns, order_by=("id",)):
            cells = [safe_cell(contact_csv_value(row, column, tz)) for column in columns]
            yield cells, contact_json_record(row, columns, tz)

    return Section("contacts", base, [c.label for c in columns], read, hidden)


def deal_section(org, policy: Policy, tz) -> Section:
    """Deals with their pipeline and stage by name; a non-Owner's hidden deal fields
    (field rules under "deal.") have no column, and hidden custom deal fields are dropped
    from the custom values."""
    by_name = {
        "pipeline_id": Column("pipeline", "pipeline__name"),
        "stage_id": Column("stage", "stage__name"),
    }
    columns = [by_name.get(column.header, column) for column in model_columns(Deal)]
    if policy.is_owner:
        return model_section("deals", Deal.objects.for_org(org), columns, tz)

    def rule_key(column: Column) -> str:
        return (
            column.header.removesuffix("_id")
            if column.path.endswith("__public_id")
            else column.header
        )

    shown = [
        c for c in columns if c.header == "id" or policy.can_see_field(rule_key(c), "pipeline")
    ]
    hidden = [c.header for c in columns if c not in shown]

    def visible_custom(row: dict) -> dict:
        custom = row.get("custom")
        if isinstance(custom, dict):
            row["custom"] = {
                key: value
                for key, value in custom.items()
                if policy.can_see_field(f"custom.{key}", "pipeline")
            }
        return row

    return model_section(
        "deals", Deal.objects.for_org(org), shown, tz, transform=visible_custom, hidden=hidden
    )


def build_sections(org, policy: Policy) -> list[Section]:
    """Every object of the export, in the order of the files in the ZIP."""
    tz = org_timezone(org)

    def plain(name, model, *, skip=(), extra=()):
        base = model.objects.for_org(org)
        return model_section(name, base, model_columns(model, skip=skip) + list(extra), tz)

    # Link tables that are not tenant models: two reached through their contact, the deal
    # tags by the organization they carry.
    contact_tags = ContactTag.objects.filter(contact__org=org)
    memberships = ContactList.contacts.through.objects.filter(contactlist__org=org)
    deal_tags = DealTag.objects.filter(org=org)
    return [
        contact_section(org, policy, tz),
        plain("companies", Company),
        deal_section(org, policy, tz),
        plain("deal_contacts", DealContact),
        plain("activities", Activity),
        plain("notes", Note),
        plain("tasks", Task),
        plain("tags", Tag),
        model_section(
            "contact_tags",
            contact_tags,
            [Column("contact_id", "contact__public_id"), Column("tag", "tag__name")],
            tz,
        ),
        model_section(
            "deal_tags",
            deal_tags,
            [Column("deal_id", "deal__public_id"), Column("tag", "tag__name")],
            tz,
        ),
        plain("lists", ContactList),
        model_section(
            "list_memberships",
            memberships,
            [
                Column("list_id", "contactlist__public_id"),
                Column("list", "contactlist__name"),
                Column("contact_id", "contact__public_id"),
            ],
            tz,
        ),
        plain("custom_field_definitions", CustomFieldDefinition),
        plain("orders", Order),
        plain("custom_object_types", ObjectType),
        plain("custom_object_fields", ObjectField),
        plain("custom_object_records", ObjectRecord),
        plain("custom_object_associations", ObjectAssociation),
        plain("consent_records", ConsentRecord),
        plain("suppressions", Suppression),
        plain("data_requests", DataRequest),
        plain("audit_log", AuditEvent),
    ]


SECTION_NAMES = [
    "contacts",
    "companies",
    "deals",
    "deal_contacts",
    "activities",
    "notes",
    "tasks",
    "tags",
    "contact_tags",
    "deal_tags",
    "lists",
    "list_memberships",
    "custom_field_definitions",
    "orders",
    "custom_object_types",
    "custom_object_fields",
    "custom_object_records",
    "custom_object_associations",
    "consent_records",
    "suppressions",
    "data_requests",
    "audit_log",
]


# Files ---------------------------------------------------------------------------------------


def export_root() -> Path:
    return Path(settings.MEDIA_ROOT) / STORAGE_DIR


def work_dir(job: BackgroundJob) -> Path:
    return export_root() / str(job.org_id) / f"{job.public_id}.parts"


def zip_name(job: BackgroundJob) -> str:
    """The finished file, relative to MEDIA_ROOT."""
    return f"{STORAGE_DIR}/{job.org_id}/{job.public_id}.zip"


def zip_path(job: BackgroundJob) -> Path:
    return Path(settings.MEDIA_ROOT) / zip_name(job)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _cut_to(path: Path, size: int) -> bool:
    """Cut `path` back to `size` bytes (what the last committed chunk wrote); False when it
    holds less than that, i.e. the file was lost."""
    if size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        return True
    if not path.exists() or path.stat().st_size < size:
        return False
    os.truncate(path, size)
    return True


class _PartWriter:
    """A section's two working files, appended to chunk by chunk."""

    def __init__(self, directory: Path, name: str):
        self.csv_path = directory / f"{name}.csv"
        self.jsonl_path = directory / f"{name}.jsonl"
        self._csv_raw = open(self.csv_path, "ab")  # noqa: SIM115 (closed in close())
        self._jsonl = open(self.jsonl_path, "ab")  # noqa: SIM115
        self._csv_text = io.TextIOWrapper(self._csv_raw, encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_text)
        self._encoder = DjangoJSONEncoder(ensure_ascii=False)

    def header(self, header: list[str]) -> None:
        # Custom field labels are typed by admins: a header is a cell like any other.
        self._csv.writerow([safe_cell(text) for text in header])

    def rows(self, rows: Iterable[tuple[list, dict]]) -> int:
        count = 0
        lines = []
        for cells, record in rows:
            self._csv.writerow(cells)
            lines.append(self._encoder.encode(record))
            count += 1
        if lines:
            self._jsonl.write(("\n".join(lines) + "\n").encode("utf-8"))
        return count

    def flush(self) -> tuple[int, int]:
        """Push everything to the files; their byte lengths."""
        self._csv_text.flush()
        self._jsonl.flush()
        return self._csv_raw.tell(), self._jsonl.tell()

    def close(self) -> None:
        self._csv_text.close()
        self._jsonl.close()


# Starting ----------------------------------------------------------------------------------------


def start_org_export(*, org, actor: Actor, policy: Policy) -> BackgroundJob:
    """Queue an export of all the organization's data for `actor`; runs in the background.

    Raises RightMissing (a PermissionDenied) without the right, and OrgExportError while
    another export of the organization is still running (one at a time: each reads every
    table)."""
    policy.require("compliance", "export")
    with transaction.atomic():
        # Two starts at once: the second waits here, then sees the first one's job.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, org.pk])
        running = (
            BackgroundJob.objects.for_org(org)
            .filter(kind=JOB_KIND, status__in=ACTIVE_STATUSES)
            .select_related("created_by")
            .first()
        )
        if running is not None:
            who = running.created_by.email if running.created_by else "someone"
            raise OrgExportError(
                f"An export of all data is already running (started by {who}). "
                "Wait for it to finish before starting another."
            )
        job = BackgroundJob.objects.for_org(org).create(
            org=org,
            kind=JOB_KIND,
            created_by=actor.user,
            params={"title": TITLE, "ip": actor.ip},
            result={"phase": WRITING, "section": 0, "csv_bytes": 0, "jsonl_bytes": 0},
        )
        audit(
            org=org,
            actor=actor,
            verb="compliance.org_export_started",
            obj=job,
            object_repr=TITLE,
            changes={"owner": policy.is_owner},
        )
        emit_event(
            org=org,
            event_type="compliance.org_export_started",
            payload={"job": str(job.public_id), "by": actor.label},
        )
        jobs.enqueue(job)
    return job


def exports_for(org, policy: Policy):
    """The exports a member sees on the page: all of the organization's for an Owner, their
    own for anyone else."""
    queryset = (
        BackgroundJob.objects.for_org(org)
        .filter(kind=JOB_KIND)
        .select_related("created_by")
        .order_by("-created_at", "-id")
    )
    if policy.is_owner:
        return queryset
    user_id = policy.membership.user_id if policy.membership is not None else None
    return queryset.filter(created_by_id=user_id)


# The job -----------------------------------------------------------------------------------------


class _Stopped(Exception):
    """The job stopped being this worker's (another worker took it over)."""


def _locked(job: BackgroundJob) -> BackgroundJob:
    spec = jobs.get_runner(job.kind)
    locked = BackgroundJob.objects.for_org(job.org_id).select_for_update().get(pk=job.pk)
    if locked.status != spec.running or locked.claimed_by != job.claimed_by:
        raise _Stopped
    return locked


def _commit(job: BackgroundJob, locked: BackgroundJob, *, result: dict, progress: int) -> None:
    locked.result = result
    locked.progress = min(progress, locked.total) if locked.total else progress
    locked.heartbeat_at = timezone.now()
    locked.takeovers = 0
    locked.save(update_fields=["result", "progress", "heartbeat_at", "takeovers"])
    job.result, job.progress, job.heartbeat_at, job.takeovers = (
        locked.result,
        locked.progress,
        locked.heartbeat_at,
        0,
    )


def _estimate(job: BackgroundJob, sections: list[Section]) -> None:
    """Count every section once, at the first start: the bar's total (each row counts twice,
    written then packed)."""
    if job.total:
        return
    counts = {section.name: section.count() for section in sections}
    total = max(1, 2 * sum(counts.values()))
    with jobs.chunk_transaction(job):
        locked = _locked(job)
        locked.total = total
        locked.result = {**(locked.result or {}), "estimate": counts}
        locked.save(update_fields=["total", "result"])
    job.total, job.result = total, locked.result


def _write_sections(job: BackgroundJob, sections: list[Section], directory: Path) -> None:
    state = dict(job.result or {})
    index = int(state.get("section") or 0)
    while index < len(sections):
        section = sections[index]
        writer_csv = directory / f"{section.name}.csv"
        writer_jsonl = directory / f"{section.name}.jsonl"
        csv_bytes = int(state.get("csv_bytes") or 0)
        jsonl_bytes = int(state.get("jsonl_bytes") or 0)
        if not (_cut_to(writer_csv, csv_bytes) and _cut_to(writer_jsonl, jsonl_bytes)):
            raise _LostFiles
        writer = _PartWriter(directory, section.name)
        try:
            if csv_bytes == 0:
                writer.header(section.header)
            while True:
                with jobs.chunk_transaction(job):
                    locked = _locked(job)
                    state = dict(locked.result or {})
                    cursor = int(state.get("cursor") or 0)
                    ids = section.next_ids(cursor)
                    if ids:
                        written = writer.rows(section.read(ids))
                        csv_bytes, jsonl_bytes = writer.flush()
                        rows = dict(state.get("rows") or {})
                        rows[section.name] = int(rows.get(section.name) or 0) + written
                        state.update(
                            cursor=ids[-1], csv_bytes=csv_bytes, jsonl_bytes=jsonl_bytes, rows=rows
                        )
                        _commit(job, locked, result=state, progress=locked.progress + written)
                        continue
                    # The section is complete: the next one starts from empty files.
                    writer.flush()
                    rows = dict(state.get("rows") or {})
                    rows.setdefault(section.name, 0)
                    hidden = dict(state.get("hidden") or {})
                    if section.hidden:
                        hidden[section.name] = section.hidden
                    state.update(
                        section=index + 1,
                        cursor=0,
                        csv_bytes=0,
                        jsonl_bytes=0,
                        rows=rows,
                        hidden=hidden,
                    )
                    if index + 1 == len(sections):
                        state["phase"] = PACKING
                    _commit(job, locked, result=state, progress=locked.progress)
                    break
        finally:
            writer.close()
        index += 1


class _LostFiles(Exception):
    pass


def _manifest(job: BackgroundJob, sections: list[Section]) -> dict:
    result = job.result or {}
    return {
        "organization": job.org.name,
        "started_by": job.created_by.email if job.created_by else "",
        "created_at": job.created_at.isoformat(),
        "time_zone": str(org_timezone(job.org)),
        "files": [
            {
                "object": section.name,
                "csv": f"{section.name}.csv",
                "jsonl": f"{section.name}.jsonl",
                "rows": int((result.get("rows") or {}).get(section.name) or 0),
                "columns": section.header,
            }
            for section in sections
        ],
        "hidden_fields": result.get("hidden") or {},
    }


def _pack(job: BackgroundJob, sections: list[Section], directory: Path) -> int:
    """The ZIP from the working files, then renamed into place; its size in bytes."""
    target = zip_path(job)
    partial = target.with_suffix(".zip.partial")
    rows = (job.result or {}).get("rows") or {}
    written = sum(int(n) for n in rows.values())
    progress = written
    beat = time.monotonic()
    with zipfile.ZipFile(
        partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
    ) as archive:
        manifest = json.dumps(_manifest(job, sections), ensure_ascii=False, indent=2)
        archive.writestr("manifest.json", manifest)
        for section in sections:
            for suffix in ("csv", "jsonl"):
                source = directory / f"{section.name}.{suffix}"
                if not source.exists():
                    raise _LostFiles
                info = zipfile.ZipInfo(source.name, date_time=time.localtime()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(source, "rb") as src, archive.open(info, "w", force_zip64=True) as dst:
                    while block := src.read(COPY_BLOCK):
                        dst.write(block)
                        if time.monotonic() - beat > HEARTBEAT_SECONDS:
                            beat = time.monotonic()
                            if not jobs.heartbeat(job, progress=min(progress, job.total)):
                                raise _Stopped
            progress += int(rows.get(section.name) or 0)
            if not jobs.heartbeat(job, progress=min(progress, job.total)):
                raise _Stopped
    os.replace(partial, target)
    return target.stat().st_size


def _give_up(job: BackgroundJob, message: str) -> None:
    fail_org_export(job, message)


@jobs.runner(JOB_KIND, model="crm.BackgroundJob", give_up=_give_up)
def run_org_export(job: BackgroundJob) -> None:
    """Run (or resume) an export to the end."""
    policy = starter_policy(job)
    if policy is None or not may_export(policy):
        fail_org_export(job, NO_RIGHT)
        return
    sections = build_sections(job.org, policy)
    directory = work_dir(job)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        _estimate(job, sections)
        if (job.result or {}).get("phase") != PACKING:
            _write_sections(job, sections, directory)
        size = _pack(job, sections, directory)
    except _Stopped:
        return
    except _LostFiles:
        fail_org_export(job, LOST_FILES)
        return
    _finish(job, size)
    _remove(directory)


def _finish(job: BackgroundJob, size: int) -> None:
    expires_at = timezone.now() + dt.timedelta(days=EXPORT_DAYS)
    rows = (job.result or {}).get("rows") or {}
    result = {
        **(job.result or {}),
        "file": zip_name(job),
        "size": size,
        "expires_at": expires_at.isoformat(),
        "summary": f"{sum(int(n) for n in rows.values()):,} rows in {len(rows)} files.",
    }
    with transaction.atomic():
        if not jobs.finish(job, progress=job.total, result=result):
            return
        audit(
            org=job.org,
            actor=Actor.system("Export all data"),
            verb="compliance.org_export_finished",
            obj=job,
            object_repr=TITLE,
            changes={"size": size, "rows": rows},
        )
        if job.created_by_id:
            notify(
                org=job.org,
                user=job.created_by,
                title="Your export of all data is ready",
                body=f"The ZIP file can be downloaded until {expires_at:%Y-%m-%d %H:%M} UTC.",
                url=reverse("compliance:org_export"),
                level="success",
            )
    _email_starter(job)


def _email_starter(job: BackgroundJob) -> None:
    """Tell the starter by email; a mail server that refuses does not undo the export."""
    user = job.created_by
    if user is None or not user.email:
        return
    context = {
        "org": job.org,
        "user": user,
        "link": absolute(download_path(job)),
        "page": absolute(reverse("compliance:org_export")),
        "expires_at": expires_at(job),
        "size": (job.result or {}).get("size") or 0,
        "days": EXPORT_DAYS,
    }
    # Times in the email are UTC, as it says: the reader's zone is not known here.
    with timezone.override(dt.UTC):
        subject = render_to_string("compliance/email/org_export_ready_subject.txt", context)
        text = render_to_string("compliance/email/org_export_ready.txt", context)
        html = render_to_string("compliance/email/org_export_ready.html", context)
    try:
        send_mail(
            subject=" ".join(subject.split()),
            message=text,
            from_email=None,
            recipient_list=[user.email],
            html_message=html,
        )
    except OSError:
        logger.exception("The export-ready email to %s could not be sent", user.email)


def fail_org_export(job: BackgroundJob, message: str) -> None:
    """The export stopped: its partial files are deleted and its starter told once."""
    _remove(work_dir(job))
    _remove(zip_path(job).with_suffix(".zip.partial"))
    with transaction.atomic():
        if jobs.fail(job, message) and job.created_by_id:
            notify(
                org=job.org,
                user=job.created_by,
                title="Your export of all data failed",
                body=message,
                url=reverse("compliance:org_export"),
                level="error",
            )


# Download links ------------------------------------------------------------------------------


def expires_at(job: BackgroundJob) -> dt.datetime | None:
    text = (job.result or {}).get("expires_at")
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def is_expired(job: BackgroundJob, now: dt.datetime | None = None) -> bool:
    moment = expires_at(job)
    return moment is not None and (now or timezone.now()) >= moment


def download_token(job: BackgroundJob) -> str:
    """The signed part of the link: which export, and until when (both tamper-proof)."""
    moment = expires_at(job)
    return signing.dumps(
        {"job": str(job.public_id), "exp": int(moment.timestamp()) if moment else 0},
        salt=LINK_SALT,
    )


def download_path(job: BackgroundJob) -> str:
    return reverse("compliance:org_export_download", args=[download_token(job)])


@dataclass(frozen=True)
class LinkContents:
    job_public_id: str
    expires_at: dt.datetime


def read_download_token(token: str) -> LinkContents | None:
    """What a link says, or None when it was not made here (or was changed)."""
    try:
        data = signing.loads(token, salt=LINK_SALT)
        return LinkContents(
            job_public_id=str(data["job"]),
            expires_at=dt.datetime.fromtimestamp(int(data["exp"]), tz=dt.UTC),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError, OverflowError):
        return None


def may_download(policy: Policy, job: BackgroundJob) -> bool:
    """The member who started the export, or an Owner; both still holding the right."""
    if not may_export(policy) or policy.membership is None:
        return False
    return policy.is_owner or job.created_by_id == policy.membership.user_id


def record_download(job: BackgroundJob, actor: Actor) -> None:
    """Who took the organization's data, in the audit log."""
    with transaction.atomic():
        audit(
            org=job.org,
            actor=actor,
            verb="compliance.org_export_downloaded",
            obj=job,
            object_repr=TITLE,
            changes={"size": (job.result or {}).get("size")},
        )


def download_file_name(job: BackgroundJob) -> str:
    stamp = (job.finished_at or job.created_at).astimezone(org_timezone(job.org))
    return f"{job.org.slug or 'organization'}-all-data-{stamp:%Y%m%d-%H%M}.zip"


def purge_expired(org, now: dt.datetime | None = None) -> int:
    """Delete the files of the organization's expired exports; how many went."""
    now = now or timezone.now()
    done = BackgroundJob.objects.for_org(org).filter(
        kind=JOB_KIND, status=BackgroundJob.Status.DONE
    )
    purged = 0
    # An organization keeps a handful of exports: reading their results is cheap.
    for job in done.only("pk", "org_id", "public_id", "result"):
        if (job.result or {}).get("purged") or not is_expired(job, now):
            continue
        _remove(zip_path(job))
        BackgroundJob.objects.for_org(org).filter(pk=job.pk).update(
            result={**(job.result or {}), "purged": True}
        )
        purged += 1
    return purged
