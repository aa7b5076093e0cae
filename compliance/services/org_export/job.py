"""The runner of Export all data, registered with crm.jobs under JOB_KIND when this module
is imported. A run re-reads the starter's right, counts the rows once for the progress bar,
writes the sections chunk by chunk (each chunk commits its cursor and file lengths with the
job row locked, so a replacement worker resumes exactly there), packs the ZIP, then finishes
(audit, notification, email) or fails (partial files deleted, starter told).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from crm import jobs
from crm.jobs.background import starter_policy
from crm.models import BackgroundJob
from crm.services import Actor, audit
from crm.services.notifications import notify

from ..links import absolute
from ._base import EXPORT_DAYS, JOB_KIND, PACKING, TITLE, _LostFiles, _Stopped, may_export
from .download import download_path, expires_at
from .objects import Section, build_sections
from .writer import _cut_to, _pack, _PartWriter, _remove, work_dir, zip_name, zip_path

logger = logging.getLogger(__name__)

LOST_FILES = (
    "The export's working files were lost part-way (the server's disk was cleaned or "
    "replaced). Start a new export."
)
NO_RIGHT = (
    "The member who started this export no longer has the right to export all data, so it "
    "was stopped before any data was written."
)


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
