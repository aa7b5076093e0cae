"""Running an import: start it, run it on a worker (claimed through the job runner), end it,
cancel it. The chunks themselves are the engine's (`contacts.importing.engine`)."""

from __future__ import annotations

import itertools
import logging
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, transaction
from django.urls import reverse
from django.utils import timezone

from compliance.services.import_gate import gate_imported_opt_ins
from crm import jobs
from crm.services.audit import Actor, audit
from crm.services.notifications import notify

from .. import selectors
from ..engine import ImportCancelled, Importer
from ..models import ImportJob
from ..reader import record_count
from .access import require_import_in_scope
from .duplicates import flag_import_duplicates_safely

log = logging.getLogger(__name__)

JOB_KIND = "contacts.import"
RESCORE_BATCH = 20_000
# What the member reads when the import lost its worker too often in a row.
GAVE_UP = (
    "its worker stopped answering {times} times in a row without finishing a chunk "
    "(a file that makes it run out of memory can do that)"
)


@transaction.atomic
def import_start(*, job: ImportJob, actor: Actor, policy) -> ImportJob:
    require_import_in_scope(job, policy)
    if job.status != ImportJob.Status.MAPPED:
        raise ValidationError("Map the columns before starting the import.")
    job.status = ImportJob.Status.QUEUED
    job.kind = JOB_KIND
    job.save(update_fields=["status", "kind"])
    audit(org=job.org, actor=actor, verb="import.started", obj=job)
    jobs.enqueue(job)
    return job


def _gave_up(job: ImportJob, _message: str) -> None:
    reason = GAVE_UP.format(times=job.takeovers + 1)
    log.error("import %s failed: %s", job.pk, reason)
    _end(job, ImportJob.Status.FAILED, f"The import stopped: {reason}.")


@jobs.runner(JOB_KIND, model="contacts.ImportJob", give_up=_gave_up)
def run_claimed_import(job: ImportJob, *, chunk_rows: int | None = None) -> ImportJob:
    """Run an import a worker has claimed, resuming after its last committed part."""
    job = ImportJob.objects.for_org(job.org_id).select_related("org", "created_by").get(pk=job.pk)
    importer = Importer(job, **({"chunk_rows": chunk_rows} if chunk_rows else {}))
    started = time.monotonic()
    try:
        with job.file.open("rb") as fh:
            if not job.total:
                # One quick parsing pass gives the progress bar its end (~1 s per 1M rows).
                job.total = record_count(
                    fh,
                    kind=job.file_kind,
                    encoding=job.encoding or "utf-8",
                    delimiter=job.delimiter or ",",
                    header_row=job.header_row,
                )
                ImportJob.objects.for_org(job.org_id).filter(pk=job.pk).update(total=job.total)
            importer.run(fh)
    except ImportCancelled:
        _end(job, ImportJob.Status.CANCELLED, "Import cancelled; rows already imported stay.")
        return job
    except OperationalError:
        # The database went away: hand the job back so the retried task resumes it.
        jobs.release(job)
        raise
    except Exception as exc:
        log.exception("import %s failed", job.pk)
        _end(job, ImportJob.Status.FAILED, f"The import stopped: {exc}")
        return job
    _rescore(job)
    # Under GDPR an imported "opted in" waits for the person's confirmation (not "safely":
    # a failure must not leave unconfirmed opt-ins standing, so the run fails and resumes).
    gate_imported_opt_ins(job, selectors.touched_ids(job), heartbeat=lambda: jobs.heartbeat(job))
    flag_import_duplicates_safely(
        job, selectors.created_ids(job), heartbeat=lambda: jobs.heartbeat(job)
    )
    with transaction.atomic():
        importer.finish()
        _end(job, ImportJob.Status.DONE, "")
    log.info("import %s done in %.1fs", job.pk, time.monotonic() - started)
    return job


def run_import(*, org_id: int, job_id: int, chunk_rows: int | None = None) -> ImportJob | None:
    """Claim and run an import here, in this process (the command line, the benchmarks,
    tests); None when it is not ours to run (finished, or held by a live worker)."""
    return jobs.run_inline(JOB_KIND, org_id, job_id, chunk_rows=chunk_rows)


def _rescore(job: ImportJob) -> None:
    """Lead scores of what the import touched, set-based, without bumping updated_at. The
    heartbeat goes on between batches: a million contacts take a while, and a job that
    looks dead would be taken over."""
    from ...scoring import has_active_rules, rescore_contacts

    if not has_active_rules(job.org):
        return
    ids = selectors.touched_ids(job)
    while batch := list(itertools.islice(ids, RESCORE_BATCH)):
        rescore_contacts(job.org, ids=batch)
        jobs.heartbeat(job)


def _end(job: ImportJob, status: str, failure: str) -> None:
    if status == ImportJob.Status.FAILED:
        jobs.fail(job, failure)
    else:
        jobs.finish(job, status=status, error=failure)
    job.status, job.error = status, failure
    if job.created_by_id:
        url = reverse("contacts:import_detail", args=[job.public_id])
        titles: dict[str, str] = {
            ImportJob.Status.DONE: f"Import of {job.file_name} finished",
            ImportJob.Status.FAILED: f"Import of {job.file_name} failed",
            ImportJob.Status.CANCELLED: f"Import of {job.file_name} was cancelled",
        }
        title = titles[status]
        errors = "1 error" if job.error_count == 1 else f"{job.error_count} errors"
        body = (
            f"{job.created_count} created, {job.updated_count} updated, "
            f"{job.skipped_count} skipped, {errors}."
        )
        if job.warning_count:
            rows = "1 row" if job.warning_count == 1 else f"{job.warning_count} rows"
            body += f" {rows} imported with warnings."
        if failure:
            body = f"{failure}\n{body}"
        notify(
            org=job.org,
            user=job.created_by,
            title=title,
            body=body,
            url=url,
            level={"done": "success", "failed": "error"}.get(status, "warning"),
            email=True,
            absolute_url=settings.SITE_URL + url,
        )


@transaction.atomic
def import_cancel(*, job: ImportJob, actor: Actor, policy) -> ImportJob:
    require_import_in_scope(job, policy)
    if job.status in (ImportJob.Status.UPLOADED, ImportJob.Status.MAPPED, ImportJob.Status.QUEUED):
        job.status = ImportJob.Status.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at"])
    elif job.status == ImportJob.Status.RUNNING:
        ImportJob.objects.for_org(job.org_id).filter(pk=job.pk).update(cancel_requested=True)
        job.cancel_requested = True
    else:
        raise ValidationError("This import has already ended.")
    audit(org=job.org, actor=actor, verb="import.cancelled", obj=job)
    return job
