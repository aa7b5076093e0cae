"""The Celery side of the job runner: one task runs a job of any registered kind, one beat
task sweeps for stalled jobs. Both are thin: ids in, the runner does the work."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import core as runner

logger = logging.getLogger(__name__)

# A lost or restarting database is worth another try; anything else is a bug to report.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
MAX_RETRIES = 5


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, name=runner.TASK_NAME)
def run_job_task(self, kind: str, org_id: int, job_id: int) -> str:
    # The broker marks a message it hands out again because its worker died.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    holder = self.request.id or f"local-{job_id}"
    job = runner.claim(kind, org_id, job_id, holder, redelivered=redelivered)
    if job is None:
        return "not claimed"
    spec = runner.get_runner(kind)
    try:
        with runner.working_for(org_id):
            spec.run(job)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= MAX_RETRIES:
            runner.fail(job, "The database stayed unreachable; the job stopped part-way.")
            raise
        # Completed chunks are committed with the job's cursor; the retry (same task id, so
        # it takes the job back at once) resumes after them. Celery's Django fix-up replaces
        # the broken connection before the retry runs.
        raise self.retry(exc=exc, countdown=min(60, 5 * 2**self.request.retries)) from exc
    except Exception as exc:
        logger.exception("Background job %s (%s) failed", job_id, kind)
        (spec.give_up or runner.fail)(
            job, f"The job stopped on an unexpected error ({exc.__class__.__name__})."
        )
        raise
    return "ran"


@shared_task(name="crm.jobs.tasks.sweep_stalled_jobs_task")
def sweep_stalled_jobs_task() -> int:
    """Beat runs this every minute: jobs whose message was lost or whose worker died are
    handed to a worker again."""
    return runner.sweep_stalled()
