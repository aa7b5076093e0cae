"""Duplicate scans as background jobs, and when they are due.

A scan runs as a `BackgroundJob` of kind `contacts.dedup_scan` on the platform's job runner
(claim, heartbeat, progress the page shows, the stalled-job sweep), in the organization's
row-level-security context. The schedule: every night at 02:00 in the organization's own
time zone, an incremental scan (the contacts changed since the last scan); on Sunday at
02:00, a full scan instead. Beat ticks every quarter hour (`due_scans` picks the
organizations whose local time is 02:xx and that were not scanned since local midnight, or
since the start of this local Sunday for the full scan), so half- and quarter-hour offsets
(India, Nepal) are served too and a missed tick is made up by the next one within the hour.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from crm import jobs, rls
from crm.jobs.background import fail_job, finish_job, queue_single_job
from crm.models import BackgroundJob, Organization
from crm.selectors import org_timezone, start_of_day
from crm.services import Actor

from .models import DedupSettings
from .scan import ScanStopped, scan_full, scan_incremental

logger = logging.getLogger(__name__)

JOB_KIND = "contacts.dedup_scan"
SCAN_HOUR = 2  # local time
SUNDAY = 6  # datetime.weekday()
# The job's progress in thousandths: reading, comparing, writing.
_STAGES = {"read": (0, 400), "compare": (400, 550), "write": (950, 50)}
_PERMILLE = 1000


def start_scan_job(org, actor: Actor, *, full: bool = True) -> BackgroundJob:
    """Queue a duplicate scan of `org` (full, or incremental). A scan of the org that is
    still waiting or running is returned instead: it will find what a second one would."""
    title = "Full duplicate scan" if full else "Duplicate scan of changed contacts"
    return queue_single_job(
        org, actor, kind=JOB_KIND, title=title, params={"full": full}, total=_PERMILLE
    )


@jobs.runner(JOB_KIND, model="crm.BackgroundJob", give_up=fail_job)
def run_scan_job(job: BackgroundJob) -> None:
    """Run a claimed scan; its progress is stored with each heartbeat. A job cancelled or
    taken over meanwhile stops at its next report, before writing anything."""

    def progress(stage: str, done: int, total: int) -> bool:
        start, span = _STAGES[stage]
        value = start + int(span * done / max(1, total))
        with jobs.chunk_transaction(job):
            return jobs.heartbeat(job, progress=min(value, _PERMILLE))

    full = bool((job.params or {}).get("full", True))
    try:
        if full:
            result = scan_full(job.org, progress=progress)
        else:
            result = scan_incremental(job.org, progress=progress)
    except ScanStopped:
        logger.info("duplicate scan job %s stopped: no longer this worker's", job.pk)
        return
    finish_job(job, result.summary(), tell=bool(job.created_by_id))


# The schedule ------------------------------------------------------------------------------


def _week_start(local: dt.datetime) -> dt.datetime:
    """The start of the local Sunday of `local`'s week (weeks here start on Sunday)."""
    days_since_sunday = (local.weekday() - SUNDAY) % 7
    return start_of_day(local.date() - dt.timedelta(days=days_since_sunday), local.tzinfo)


def due_scans(now: dt.datetime | None = None) -> list[tuple[Organization, bool]]:
    """The organizations whose scan is due at `now`, each with whether it is the full one:
    local time 02:xx, and not scanned since local midnight (nightly) or since the start of
    this local Sunday (weekly full scan)."""
    now = now or timezone.now()
    # The schedule looks at every organization by design: the audited exception.
    with transaction.atomic(), rls.bypass("duplicate scan schedule: which organizations are due"):
        done = {
            org_id: (last_scan, last_full)
            for org_id, last_scan, last_full in DedupSettings.objects.all_orgs().values_list(
                "org_id", "last_scan_at", "last_full_scan_at"
            )
        }
    due = []
    for org in Organization.objects.order_by("id"):
        local = now.astimezone(org_timezone(org))
        if local.hour != SCAN_HOUR:
            continue
        last_scan, last_full = done.get(org.id, (None, None))
        if local.weekday() == SUNDAY:
            if last_full is None or last_full < _week_start(local):
                due.append((org, True))
        elif last_scan is None or last_scan < start_of_day(local.date(), local.tzinfo):
            due.append((org, False))
    return due


def queue_due_scans(now: dt.datetime | None = None) -> int:
    """Queue the scans `due_scans` names; one organization failing does not stop the
    others. Returns how many were queued (or already pending)."""
    queued = 0
    for org, full in due_scans(now):
        try:
            start_scan_job(org, Actor.system("duplicate scan schedule"), full=full)
            queued += 1
        except Exception:
            logger.exception("queueing the duplicate scan of organization %s failed", org.id)
    return queued
