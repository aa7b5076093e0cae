"""Background jobs: one claimable-job model, one runner, one Celery task (see `core`).

from crm import jobs

@jobs.runner("contacts.bulk", model="crm.BackgroundJob")
def run_bulk_job(job): ...

jobs.enqueue(job)  # in a service, inside its transaction
"""

from .core import (
    GAVE_UP,
    MAX_TAKEOVERS,
    RESEND_WAITING_AFTER_SECONDS,
    STALE_AFTER_SECONDS,
    chunk_transaction,
    claim,
    each_chunk,
    enqueue,
    fail,
    finish,
    get_runner,
    heartbeat,
    ids_after,
    registered_kinds,
    release,
    run_chunks,
    run_inline,
    runner,
    sweep_stalled,
    working_for,
)

__all__ = [
    "GAVE_UP",
    "MAX_TAKEOVERS",
    "RESEND_WAITING_AFTER_SECONDS",
    "STALE_AFTER_SECONDS",
    "chunk_transaction",
    "claim",
    "each_chunk",
    "enqueue",
    "fail",
    "finish",
    "get_runner",
    "heartbeat",
    "ids_after",
    "registered_kinds",
    "release",
    "run_chunks",
    "run_inline",
    "runner",
    "sweep_stalled",
    "working_for",
]
