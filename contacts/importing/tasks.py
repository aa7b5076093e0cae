from celery import shared_task
from django.db import OperationalError

from . import services

# Both jobs claim their work and resume after their last committed batch, so a redelivered
# task is harmless and a lost database connection is worth a few retries.
resumable_task = shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    max_retries=5,
)


@resumable_task
def run_import(self, org_id: int, job_id: int) -> None:
    """Thin wrapper: the service claims the job and resumes after the last committed chunk."""
    services.run_import(job_id, org_id)


@resumable_task
def run_undo(self, org_id: int, job_id: int) -> None:
    """Thin wrapper: the service claims the undo and resumes after the last committed batch."""
    services.run_undo(job_id, org_id)


@shared_task
def resend_stalled_imports() -> int:
    """Beat runs this every minute: imports and undos whose task was lost or whose
    worker died are handed to a worker again."""
    return services.resend_stalled_jobs()
