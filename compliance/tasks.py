"""Celery tasks of the compliance app: thin wrappers around compliance.jobs."""

from celery import shared_task

from .jobs import purge_expired_exports, queue_due_retention


@shared_task(ignore_result=True)
def retention_schedule_task() -> int:
    """Beat runs this twice a night: organizations with a retention rule on that has not run
    today get a retention job queued."""
    return queue_due_retention()


@shared_task(ignore_result=True)
def purge_expired_exports_task() -> int:
    """Beat runs this daily: the files of "Export all data" whose link expired are deleted."""
    return purge_expired_exports()
