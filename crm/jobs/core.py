"""The one runner of background jobs: registry, enqueue, claim, heartbeat, chunks, end, sweep.

Every long job (a bulk action, a rescore, an import, an undo...) is a row of a model that
inherits `ClaimableJob`, and a function registered for its kind:

    @jobs.runner("contacts.bulk", model="crm.BackgroundJob")
    def run_bulk_job(job): ...

A service creates the row and calls `jobs.enqueue(job)`; once its transaction commits, one
Celery task (`crm.jobs.tasks.run_job_task`) carries the kind and ids to a worker, which
claims the row and calls the registered function. No service imports a tasks module, and the
platform never imports a domain app: runners register themselves when their app loads.

The rules every kind gets for free:
- **Claim** is one conditional UPDATE: a waiting, unclaimed job is taken once, whoever else
  was handed the same message. A retry of the same task (same Celery task id) takes it back at
  once; another worker takes it over only once the holder went quiet (no heartbeat for
  `STALE_AFTER_SECONDS`). A takeover that follows a lost worker is counted, and a job that has
  lost `MAX_TAKEOVERS` workers in a row without committing anything fails instead of taking
  down worker after worker. Any committed chunk sets the count back to 0.
- **Chunks** (`run_chunks`) each run in one transaction that locks the job row, reads its
  cursor, applies the chunk and stores the new cursor, progress and counters: a chunk is
  applied entirely, with its progress, or not at all, so a resumed job never applies one twice.
- **Sweep** (`sweep_stalled`, every minute from beat) sends the task again for a job whose
  message was lost (waiting unclaimed longer than `RESEND_WAITING_AFTER_SECONDS`) or whose
  worker went quiet, at most one extra message per wait.
"""

from __future__ import annotations

import datetime
import functools
import logging
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm import rls

from .models import ClaimableJob

logger = logging.getLogger(__name__)

# A worker that has not reported for this long is taken to be gone.
STALE_AFTER_SECONDS = 120
# A waiting job no worker has taken for this long gets its task sent again.
RESEND_WAITING_AFTER_SECONDS = 600
# Workers a job may lose in a row (without committing anything in between) before it fails.
MAX_TAKEOVERS = 2
GAVE_UP = (
    "Its worker stopped {times} times in a row while running it, so the job was stopped. "
    "What it finished before stays done."
)
TASK_NAME = "crm.jobs.tasks.run_job_task"


@dataclass(frozen=True)
class Runner:
    kind: str
    model_label: str
    run: Callable[[ClaimableJob], object]
    # Statuses of a job waiting for a worker, and the one it has while a worker holds it.
    waiting: tuple[str, ...]
    running: str
    # Ends a job that keeps losing its worker (default: `fail`); given the job and the text.
    give_up: Callable[[Any, str], object] | None

    @property
    def model(self) -> type[ClaimableJob]:
        return apps.get_model(self.model_label)


_RUNNERS: dict[str, Runner] = {}


def runner(
    kind: str,
    *,
    model: str,
    waiting: Iterable[str] = ("queued",),
    running: str = "running",
    give_up: Callable[[Any, str], object] | None = None,
):
    """Register the function that runs jobs of `kind` (rows of `model`, "app_label.Model")."""

    def register(run: Callable[[ClaimableJob], object]):
        if kind in _RUNNERS and _RUNNERS[kind].run is not run:
            raise ValueError(f"A runner for {kind!r} is already registered.")
        _RUNNERS[kind] = Runner(kind, model, run, tuple(waiting), running, give_up)
        return run

    return register


def get_runner(kind: str) -> Runner:
    try:
        return _RUNNERS[kind]
    except KeyError:
        raise LookupError(f"No job runner is registered for {kind!r}.") from None


def registered_kinds() -> list[str]:
    return sorted(_RUNNERS)


def _send(kind: str, org_id: int, job_id: int) -> None:
    from crm.celery import app

    # Registered when the crm app loads (CrmConfig.ready); looked up by name so this module
    # does not import its own tasks module.
    app.tasks[TASK_NAME].delay(kind, org_id, job_id)


def enqueue(job: ClaimableJob) -> None:
    """Send `job` to a worker once the caller's transaction commits (right away outside one).

    The row must already be saved, waiting, with its `kind`; its `sent_at` is set now so the
    sweep knows a message is on its way."""
    get_runner(job.kind)
    now = timezone.now()
    type(job).objects.all_orgs().filter(pk=job.pk).update(sent_at=now)
    job.sent_at = now
    transaction.on_commit(functools.partial(_send, job.kind, job.org_id, job.pk))


# Claim -----------------------------------------------------------------------------------------


def _stale(now):
    return now - datetime.timedelta(seconds=STALE_AFTER_SECONDS)


def claim(kind: str, org_id: int, job_id: int, holder: str, *, redelivered: bool = False):
    """Take the job for `holder` (the Celery task id) and return it, or None when it is not
    ours to run: finished, held by a live worker, another organization's, or ended here
    because it lost too many workers in a row. `redelivered` is the broker saying the message
    comes back because the worker that had it died."""
    spec = get_runner(kind)
    model = spec.model
    now = timezone.now()
    live = (*spec.waiting, spec.running)
    # The job is looked up under its own organization: ids from a message are never trusted.
    with transaction.atomic(), rls.tenant(org_id):
        rows = model.objects.for_org(org_id).filter(pk=job_id, kind=kind)
        started = {"started_at": Coalesce(F("started_at"), now)}
        taken = rows.filter(status__in=spec.waiting, claimed_by="").update(
            status=spec.running, claimed_by=holder, heartbeat_at=now, **started
        )
        if not taken and holder:
            # The same task again: a retry keeps its task id and takes the job back at once;
            # a message the broker hands out again because its worker died is a takeover.
            mine = rows.filter(status__in=live, claimed_by=holder)
            if not redelivered:
                taken = mine.update(status=spec.running, heartbeat_at=now, **started)
            else:
                taken = mine.filter(takeovers__lt=MAX_TAKEOVERS).update(
                    status=spec.running,
                    heartbeat_at=now,
                    takeovers=F("takeovers") + 1,
                    **started,
                )
                if not taken and mine.update(heartbeat_at=now):
                    return _give_up(spec, org_id, job_id)
        if not taken:
            quiet = rows.filter(status__in=live, heartbeat_at__lt=_stale(now)).exclude(
                claimed_by=""
            )
            taken = quiet.filter(takeovers__lt=MAX_TAKEOVERS).update(
                status=spec.running,
                claimed_by=holder,
                heartbeat_at=now,
                takeovers=F("takeovers") + 1,
                **started,
            )
            # Only the caller whose UPDATE moved the heartbeat on ends the job, so it ends once.
            if not taken and quiet.update(heartbeat_at=now):
                return _give_up(spec, org_id, job_id)
        if not taken:
            return None
        return rows.select_related("org").get()


def _give_up(spec: Runner, org_id: int, job_id: int) -> None:
    job = spec.model.objects.for_org(org_id).select_related("org").get(pk=job_id)
    message = GAVE_UP.format(times=job.takeovers + 1)
    logger.error("job %s (%s) lost its worker too often; it fails", job_id, spec.kind)
    (spec.give_up or fail)(job, message)


def release(job: ClaimableJob) -> None:
    """Hand a job back (its database went away mid-run): the retried task, or the next sweep,
    claims it again and resumes from the committed cursor."""
    spec = get_runner(job.kind)
    type(job).objects.for_org(job.org_id).filter(
        pk=job.pk, status=spec.running, claimed_by=job.claimed_by
    ).update(status=spec.waiting[0], claimed_by="", heartbeat_at=None)


def heartbeat(job: ClaimableJob, **fields) -> bool:
    """Report that the worker is alive (and store `fields` with it); False when the job is no
    longer this worker's (cancelled, ended, or taken over after it went quiet)."""
    spec = get_runner(job.kind)
    return bool(
        type(job)
        .objects.for_org(job.org_id)
        .filter(pk=job.pk, status=spec.running, claimed_by=job.claimed_by)
        .update(heartbeat_at=timezone.now(), **fields)
    )


# Running -----------------------------------------------------------------------------------------


@contextmanager
def working_for(org_id: int, *, using: str = DEFAULT_DB_ALIAS):
    """The whole run of a job works in the job's organization, between its chunks as well.

    In a worker, each task starts in the app role with no organization (crm.rls's guard), so a
    runner that forgot its organization fails on its first query. The run sets the job's
    organization for the session while it lasts and puts "none" back after (session-level on
    purpose: the run spans many transactions; the task's end resets the connection anyway).
    Chunks still open their own transaction with `rls.tenant()`, as every request does.
    Run eagerly inside a transaction (a test, a request), the run is one `rls.tenant()`."""
    connection = connections[using]
    if connection.in_atomic_block:
        with rls.tenant(org_id, using=using):
            yield
        return
    if not getattr(connection, "crm_rls_guarded", False):
        yield  # no wall on this connection (row-level security turned off)
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.org_id', %s, false)", [str(int(org_id))])
    try:
        yield
    finally:
        if connection.connection is not None and not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('app.org_id', %s, false)", [rls.NO_ORG])


def run_inline(kind: str, org_id: int, job_id: int, **options):
    """Claim and run a job here, in this process (the command line, benchmarks, tests), as a
    worker would; returns what the runner returned, or None when the job was not ours to run
    (finished, or held by a live worker)."""
    job = claim(kind, org_id, job_id, holder=f"inline-{uuid.uuid4()}")
    if job is None:
        return None
    with working_for(org_id):
        return get_runner(kind).run(job, **options)


# Running in chunks -------------------------------------------------------------------------------


@contextmanager
def chunk_transaction(job: ClaimableJob):
    """One transaction for one chunk of `job`, in the job's organization."""
    with transaction.atomic(), rls.tenant(job.org_id):
        yield


def ids_after(queryset, cursor: int, limit: int) -> list[int]:
    """The next chunk of `queryset`: up to `limit` primary keys above `cursor`, ascending.
    What `run_chunks` and `each_chunk` take as `next_ids`."""
    return list(queryset.filter(pk__gt=cursor).order_by("pk").values_list("pk", flat=True)[:limit])


def each_chunk(next_ids: Callable[[int], list[int]], process: Callable[[list[int]], None]) -> None:
    """The same chunks as `run_chunks`, now, in the request (a small selection needs no job):
    each chunk is read and processed in its own transaction."""
    cursor = 0
    while True:
        with transaction.atomic():
            ids = next_ids(cursor)
            if not ids:
                return
            process(ids)
            cursor = ids[-1]


def run_chunks(
    job: ClaimableJob,
    next_ids: Callable[[int], list[int]],
    process: Callable[[list[int]], dict],
) -> bool:
    """Run `job` chunk by chunk from its cursor. `next_ids(cursor)` lists the next chunk's ids
    (ascending; empty at the end) and `process(ids)` applies them and returns counters to add
    to the job's result. Returns False when the job stopped being this worker's."""
    spec = get_runner(job.kind)
    model = type(job)
    while True:
        with chunk_transaction(job):
            locked = model.objects.for_org(job.org_id).select_for_update().get(pk=job.pk)
            if locked.status != spec.running or locked.claimed_by != job.claimed_by:
                return False
            ids = next_ids(locked.cursor)
            if not ids:
                return True
            result = dict(locked.result or {})
            for key, value in process(ids).items():
                result[key] = int(result.get(key) or 0) + int(value)
            progress = locked.progress + len(ids)
            # Rows added to "all matching" after the count must not push past 100 %.
            locked.progress = min(progress, locked.total) if locked.total else progress
            locked.cursor = ids[-1]
            locked.result = result
            locked.heartbeat_at = timezone.now()
            locked.takeovers = 0  # a committed chunk: the job does not kill its worker
            locked.save(update_fields=["progress", "cursor", "result", "heartbeat_at", "takeovers"])
            job.progress, job.cursor, job.result = locked.progress, locked.cursor, locked.result
            job.heartbeat_at, job.takeovers = locked.heartbeat_at, 0


# Ending ---------------------------------------------------------------------------------------


def finish(job: ClaimableJob, *, status: str = "done", **fields) -> bool:
    """Mark a held job finished (with `fields`, e.g. result=...); False when it was not
    running any more (cancelled meanwhile), so the caller tells nobody twice."""
    spec = get_runner(job.kind)
    now = timezone.now()
    done = (
        type(job)
        .objects.for_org(job.org_id)
        .filter(pk=job.pk, status=spec.running)
        .update(status=status, finished_at=now, heartbeat_at=now, claimed_by="", **fields)
    )
    if done:
        job.status, job.finished_at = status, now
        for name, value in fields.items():
            if not hasattr(value, "resolve_expression"):
                setattr(job, name, value)
    return bool(done)


FINAL_STATUSES = ("done", "failed", "cancelled", "undone")


def fail(job: ClaimableJob, message: str, *, status: str = "failed") -> bool:
    """Mark a job failed with `message` unless it already ended; True when this call did."""
    now = timezone.now()
    failed = (
        type(job)
        .objects.for_org(job.org_id)
        .filter(pk=job.pk)
        .exclude(status__in=FINAL_STATUSES)
        .update(status=status, finished_at=now, error=message, claimed_by="")
    )
    if failed:
        job.status, job.finished_at, job.error = status, now, message
    return bool(failed)


# The sweep --------------------------------------------------------------------------------------


def _stalled(model: type[ClaimableJob], specs: list[Runner], now) -> Q:
    waited = now - datetime.timedelta(seconds=RESEND_WAITING_AFTER_SECONDS)
    quiet = _stale(now)
    due = Q()
    for spec in specs:
        never_taken = Q(kind=spec.kind, status__in=spec.waiting, claimed_by="") & (
            Q(sent_at__isnull=True) | Q(sent_at__lt=waited)
        )
        went_quiet = (
            Q(kind=spec.kind, status__in=(*spec.waiting, spec.running), heartbeat_at__lt=quiet)
            & ~Q(claimed_by="")
            & (Q(sent_at__isnull=True) | Q(sent_at__lt=quiet))
        )
        due |= never_taken | went_quiet
    return due


def sweep_stalled() -> int:
    """Send the task again for every stalled job of every registered kind; how many.

    A job stalls when its message is lost (a broker restart, retries used up) or its worker
    died: the broker hands an unacknowledged message back only after its visibility timeout,
    an hour. The claim decides who runs a job, so an extra message is harmless."""
    now = timezone.now()
    by_model: dict[str, list[Runner]] = {}
    for spec in _RUNNERS.values():
        by_model.setdefault(spec.model_label, []).append(spec)
    sent = 0
    for label, specs in by_model.items():
        model = apps.get_model(label)
        # A sweep spans organizations: the audited exception to the tenant wall.
        with transaction.atomic(), rls.bypass("stalled-job sweep"):
            # A job whose worker is writing a chunk holds its row's lock: it is not stalled.
            stalled = list(
                model.objects.all_orgs()
                .filter(_stalled(model, specs, now))
                .select_for_update(skip_locked=True)
                .values_list("pk", "org_id", "kind")
            )
            model.objects.all_orgs().filter(pk__in=[pk for pk, _, _ in stalled]).update(sent_at=now)
            for pk, org_id, kind in stalled:
                transaction.on_commit(functools.partial(_send, kind, org_id, pk))
                logger.warning("job %s (%s) stalled; its task is sent again", pk, kind)
        sent += len(stalled)
    return sent
