"""Celery tasks of the core app: thin wrappers around its services."""

from celery import shared_task

from . import outbox


@shared_task(ignore_result=True)
def relay_outbox_task() -> int:
    """Beat runs this every few seconds: domain events go from the outbox to their
    consumers. Several may run at once (one organization is only ever held by one)."""
    return outbox.relay()
