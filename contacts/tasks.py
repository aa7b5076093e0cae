"""Celery tasks of the contacts app: thin wrappers that load a job by id, claim it and hand
it to the service that does the work. Re-delivering a message is harmless: a job that is
already running (and still reporting) or finished cannot be claimed again."""

from __future__ import annotations

import logging

from celery import shared_task

from .bulk import job_claim, job_fail, run_bulk_job
from .scoring import run_rescore_job

logger = logging.getLogger(__name__)


def _run(job_id: int, work) -> str:
    job = job_claim(job_id)
    if job is None:
        return "not claimed"
    try:
        work(job)
    except Exception as exc:
        logger.exception("Background job %s failed", job_id)
        job_fail(job, f"The job stopped on an unexpected error ({exc.__class__.__name__}).")
        raise
    return "ran"


@shared_task(acks_late=True)
def run_bulk_action(job_id: int) -> str:
    return _run(job_id, run_bulk_job)


@shared_task(acks_late=True)
def rescore_org_contacts(job_id: int) -> str:
    return _run(job_id, run_rescore_job)
