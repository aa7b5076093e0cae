"""Celery tasks of the contacts app: thin wrappers around a service. Long jobs (bulk actions,
rescores, imports, undos) have no task of their own: the job runner's one task
(`crm.jobs.tasks.run_job_task`) runs them by kind."""

from __future__ import annotations

from celery import shared_task

# Imported here so a worker registers the duplicate scan's job runner when it starts.
from .dedup.jobs import queue_due_scans
from .scoring import queue_nightly_rescores


@shared_task
def nightly_rescore_task() -> int:
    """Beat runs this once a night: rules like "last activity in the last 30 days" change
    their answer as time passes, so those organizations are rescored."""
    return queue_nightly_rescores()


@shared_task(ignore_result=True)
def dedup_scan_schedule_task() -> int:
    """Beat runs this every quarter hour: organizations at 02:xx in their own time zone get
    their nightly duplicate scan (the full one on Sunday) queued as a job."""
    return queue_due_scans()
