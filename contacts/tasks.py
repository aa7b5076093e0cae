"""Celery tasks of the contacts app: thin wrappers that load a job by id, claim it and hand
it to the service that does the work. Re-delivering a message is harmless: a job that is
already running (and still reporting) or finished cannot be claimed again."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import bulk, scoring
from .bulk import job_claim, job_fail, run_bulk_job
from .scoring import run_rescore_job

logger = logging.getLogger(__name__)

# A lost or restarting database is worth another try; anything else is a bug to report.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
MAX_RETRIES = 5


def _run(task, org_id: int, job_id: int, work) -> str:
    # The broker marks a message it hands out again because its worker died.
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    job = job_claim(org_id, job_id, holder=task.request.id or "", redelivered=redelivered)
    if job is None:
        return "not claimed"
    try:
        work(job)
    except TRANSIENT_ERRORS as exc:
        if task.request.retries >= MAX_RETRIES:
            job_fail(job, "The database stayed unreachable; the job stopped part-way.")
            raise
        # Completed chunks are committed with the job's cursor; the retry (same task id, so
        # it may take the job over at once) resumes after them. Celery's Django fix-up
        # replaces the broken connection before the retry runs.
        raise task.retry(exc=exc, countdown=min(60, 5 * 2**task.request.retries)) from exc
    except Exception as exc:
        logger.exception("Background job %s failed", job_id)
        job_fail(job, f"The job stopped on an unexpected error ({exc.__class__.__name__}).")
        raise
    return "ran"


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def run_bulk_action(self, org_id: int, job_id: int) -> str:
    return _run(self, org_id, job_id, run_bulk_job)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def rescore_org_contacts(self, org_id: int, job_id: int) -> str:
    return _run(self, org_id, job_id, run_rescore_job)


@shared_task
def nightly_rescore() -> int:
    """Beat runs this once a night: rules like "last activity in the last 30 days" change
    their answer as time passes, so those organizations are rescored."""
    from .scoring import queue_nightly_rescores

    return queue_nightly_rescores()


@shared_task
def resend_stalled_jobs() -> int:
    """Beat runs this every minute: bulk and rescore jobs whose task was lost or whose
    worker died are handed to a worker again."""
    return bulk.job_resend_stalled(
        {bulk.JOB_KIND: run_bulk_action, scoring.JOB_KIND: rescore_org_contacts}
    )
