"""What every `BackgroundJob` (bulk actions, rescores: jobs a page follows by its public id)
does when it ends, and whose rights it runs with."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.urls import reverse

from crm import rls
from crm.models import BackgroundJob, Membership
from crm.permissions import Policy
from crm.services import Actor, audit
from crm.services.notifications import notify

from . import core as runner


def queue_single_job(
    org, actor: Actor, *, kind: str, title: str, params: dict, total: int = 0
) -> BackgroundJob:
    """Queue a job of `kind` for `org`, one at a time: a job of that kind still waiting or
    running is returned instead (it will do what a second one would). Audited as queued."""
    with transaction.atomic(), rls.tenant(org.id):
        pending = (
            BackgroundJob.objects.for_org(org)
            .filter(
                kind=kind, status__in=[BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING]
            )
            .first()
        )
        if pending is not None:
            return pending
        job = BackgroundJob.objects.for_org(org).create(
            org=org,
            kind=kind,
            created_by=actor.user,
            total=total,
            params={"title": title, **params},
        )
        audit(org=org, actor=actor, verb="job.queued", obj=job, object_repr=title)
        runner.enqueue(job)
    return job


def _tell_starter(job: BackgroundJob, title: str, body: str, level: str) -> None:
    """An in-app notification for whoever started the job (they may have left the page)."""
    if not job.created_by_id:
        return
    notify(
        org=job.org,
        user=job.created_by,
        title=title,
        body=body,
        url=reverse("crm:job_progress", args=[job.public_id]),
        level=level,
    )


def _title(job: BackgroundJob) -> str:
    return (job.params or {}).get("title") or "Background job"


def finish_job(job: BackgroundJob, summary: str, *, tell: bool = True) -> None:
    """The job is done: its summary stored, its progress full, its starter told."""
    with transaction.atomic():
        result = {**(job.result or {}), "summary": summary}
        if runner.finish(job, progress=F("total"), result=result) and tell:
            _tell_starter(job, f"Done: {_title(job)}", summary, "success")


def fail_job(job: BackgroundJob, message: str) -> None:
    """The job stopped on `message`; its starter is told once."""
    with transaction.atomic():
        if runner.fail(job, message):
            _tell_starter(job, f"Failed: {_title(job)}", message, "error")


def starter_policy(job: BackgroundJob) -> Policy | None:
    """The policy of the member who started the job, as it is now: a member whose rights were
    taken away meanwhile does not keep them through a queued job."""
    membership = (
        Membership.objects.for_org(job.org_id)
        .active()
        .select_related("role", "team")
        .filter(user_id=job.created_by_id)
        .first()
    )
    return Policy(membership) if membership is not None else None
