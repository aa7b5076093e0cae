from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    max_retries=5,
)
def run_import(self, org_id: int, job_id: int) -> None:
    """Thin wrapper: the service claims the job (so a redelivered task is harmless) and
    resumes after the last committed chunk."""
    services.run_import(job_id, org_id)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    max_retries=5,
)
def run_undo(self, org_id: int, job_id: int) -> None:
    """Thin wrapper: the service claims the undo (so a redelivered task is harmless) and
    resumes after the last committed batch."""
    services.run_undo(job_id, org_id)
