"""Starting Export all data, and the exports a member sees on the page. A start checks the
right, takes the organization's advisory lock so two starts cannot both pass the "already
running" check, records who started it (audit log and domain event), and hands the job to
crm.jobs once the transaction commits.
"""

from __future__ import annotations

from django.db import connection, transaction

from crm import jobs
from crm.models import BackgroundJob
from crm.permissions import Policy
from crm.services import Actor, audit, emit_event

from ._base import JOB_KIND, TITLE, WRITING

# The advisory lock key's first half (the second is the organization): one start at a time.
LOCK_NAMESPACE = 17_005
ACTIVE_STATUSES = (BackgroundJob.Status.QUEUED, BackgroundJob.Status.RUNNING)


class OrgExportError(Exception):
    """A start that is refused, with the reason to show the member."""


def start_org_export(*, org, actor: Actor, policy: Policy) -> BackgroundJob:
    """Queue an export of all the organization's data for `actor`; runs in the background.

    Raises RightMissing (a PermissionDenied) without the right, and OrgExportError while
    another export of the organization is still running (one at a time: each reads every
    table)."""
    policy.require("compliance", "export")
    with transaction.atomic():
        # Two starts at once: the second waits here, then sees the first one's job.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, org.pk])
        running = (
            BackgroundJob.objects.for_org(org)
            .filter(kind=JOB_KIND, status__in=ACTIVE_STATUSES)
            .select_related("created_by")
            .first()
        )
        if running is not None:
            who = running.created_by.email if running.created_by else "someone"
            raise OrgExportError(
                f"An export of all data is already running (started by {who}). "
                "Wait for it to finish before starting another."
            )
        job = BackgroundJob.objects.for_org(org).create(
            org=org,
            kind=JOB_KIND,
            created_by=actor.user,
            params={"title": TITLE, "ip": actor.ip},
            result={"phase": WRITING, "section": 0, "csv_bytes": 0, "jsonl_bytes": 0},
        )
        audit(
            org=org,
            actor=actor,
            verb="compliance.org_export_started",
            obj=job,
            object_repr=TITLE,
            changes={"owner": policy.is_owner},
        )
        emit_event(
            org=org,
            event_type="compliance.org_export_started",
            payload={"job": str(job.public_id), "by": actor.label},
        )
        jobs.enqueue(job)
    return job


def exports_for(org, policy: Policy):
    """The exports a member sees on the page: all of the organization's for an Owner, their
    own for anyone else."""
    queryset = (
        BackgroundJob.objects.for_org(org)
        .filter(kind=JOB_KIND)
        .select_related("created_by")
        .order_by("-created_at", "-id")
    )
    if policy.is_owner:
        return queryset
    user_id = policy.membership.user_id if policy.membership is not None else None
    return queryset.filter(created_by_id=user_id)
