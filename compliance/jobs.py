"""Retention runs as background jobs, and the nightly schedule.

A run of one organization's enabled rules is a `BackgroundJob` of kind
`compliance.retention` on the platform's job runner (claim, heartbeat, progress, the
stalled-job sweep), in the organization's row-level-security context. Beat ticks once a
night (crm/settings.py); the tick queues one job per organization that has an enabled rule
and was not run since the start of the day (UTC), so a missed tick is made up by the next.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from crm import jobs, rls
from crm.jobs.background import fail_job, finish_job, queue_single_job
from crm.models import BackgroundJob, Organization
from crm.services import Actor

from .models import RetentionPolicy, RetentionRun
from .services import org_export
from .services.retention import run_policy

logger = logging.getLogger(__name__)

JOB_KIND = "compliance.retention"


def start_retention_job(org, actor: Actor, *, policy_ids: list[int] | None = None) -> BackgroundJob:
    """Queue a run of `org`'s enabled rules (or of `policy_ids` among them). A run still
    waiting or running is returned instead."""
    return queue_single_job(
        org, actor, kind=JOB_KIND, title="Retention rules", params={"policies": policy_ids}
    )


@jobs.runner(JOB_KIND, model="crm.BackgroundJob", give_up=fail_job)
def run_retention_job(job: BackgroundJob) -> None:
    """Run each enabled rule of the job's organization in turn; each leaves its report."""
    wanted = (job.params or {}).get("policies")
    with jobs.chunk_transaction(job):
        policies = RetentionPolicy.objects.for_org(job.org_id).filter(enabled=True)
        if wanted:
            policies = policies.filter(pk__in=wanted)
        policies = list(policies.order_by("id"))
    reports = []
    for policy in policies:

        def beat(done: int, policy=policy) -> bool:
            with jobs.chunk_transaction(job):
                return jobs.heartbeat(job, progress=done)

        run = run_policy(policy, heartbeat=beat)
        reports.append(f"{policy.name}: {run.affected:,}")
    summary = "; ".join(reports) if reports else "No retention rule is on."
    finish_job(job, summary, tell=bool(job.created_by_id))


def due_organizations(now: dt.datetime | None = None) -> list[Organization]:
    """Organizations with an enabled rule that did not run since the start of today (UTC)."""
    now = now or timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # The schedule looks at every organization by design: the audited exception.
    with transaction.atomic(), rls.bypass("retention schedule: which organizations are due"):
        with_rules = set(
            RetentionPolicy.objects.all_orgs().filter(enabled=True).values_list("org_id", flat=True)
        )
        ran_today = set(
            RetentionRun.objects.all_orgs()
            .filter(started_at__gte=day_start)
            .values_list("org_id", flat=True)
        )
    due_ids = sorted(with_rules - ran_today)
    return list(Organization.objects.filter(pk__in=due_ids).order_by("id"))


def queue_due_retention(now: dt.datetime | None = None) -> int:
    """Queue a retention job for each due organization; one failing does not stop the rest."""
    queued = 0
    for org in due_organizations(now):
        try:
            start_retention_job(org, Actor.system("retention schedule"))
            queued += 1
        except Exception:
            logger.exception("queueing retention for organization %s failed", org.id)
    return queued


def purge_expired_exports() -> int:
    """Delete the files of every organization's expired "Export all data" runs, one
    organization at a time in its own context. Returns how many files went."""
    purged = 0
    for org in Organization.objects.order_by("id"):
        with transaction.atomic(), rls.tenant(org.id):
            purged += org_export.purge_expired(org)
    return purged
