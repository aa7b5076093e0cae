"""Running a bulk action: in the request for a small selection, else as a background job of the
job runner (crm.jobs), chunk by chunk from its stored cursor."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction

from crm import jobs
from crm.jobs.background import fail_job, finish_job, starter_policy
from crm.models import BackgroundJob
from crm.permissions import Policy
from crm.services import Actor, audit

from .actions import (
    CHUNK_SIZE,
    INLINE_LIMIT,
    JOB_KIND,
    BulkError,
    Prepared,
    Selection,
    prepare,
    selection_queryset,
)
from .writes import Outcome, _audit_summary, _process_chunk, _start_run, summary_text

logger = logging.getLogger(__name__)


def bulk_apply_inline(
    *, org, actor: Actor, policy: Policy, prepared: Prepared, selection: Selection
) -> Outcome:
    """Run the action now, chunk by chunk (for small selections)."""
    run = _start_run(org, actor, policy, prepared)
    queryset = selection_queryset(org, policy, selection)
    outcome = Outcome()
    jobs.each_chunk(
        lambda cursor: jobs.ids_after(queryset, cursor, CHUNK_SIZE),
        lambda ids: outcome.add(_process_chunk(run, ids)),
    )
    with transaction.atomic():
        _audit_summary(run, outcome, selection)
    return outcome


@dataclass
class Started:
    """What `bulk_start` did: ran it (outcome) or queued a job."""

    outcome: Outcome | None = None
    job: BackgroundJob | None = None
    summary: str = ""


def bulk_start(
    *,
    org,
    actor: Actor,
    policy: Policy,
    prepared: Prepared,
    selection: Selection,
    return_url: str = "",
    selected_count: int | None = None,
) -> Started:
    """Run small selections in the request, queue large ones as a background job."""
    if selection.is_empty:
        raise BulkError("Select at least one contact.")
    if selected_count is None:
        selected_count = selection_queryset(org, policy, selection).count()
    if selected_count <= INLINE_LIMIT:
        outcome = bulk_apply_inline(
            org=org, actor=actor, policy=policy, prepared=prepared, selection=selection
        )
        return Started(outcome=outcome, summary=summary_text(prepared, outcome))
    with transaction.atomic():
        job = BackgroundJob.objects.for_org(org).create(
            org=org,
            kind=JOB_KIND,
            created_by=actor.user,
            total=selected_count,
            params={
                "action": prepared.action.key,
                "args": prepared.args,
                "selection": selection.to_params(),
                "title": f"{prepared.action.label} {selected_count:,} contacts",
                "return_url": return_url,
                "ip": actor.ip,
            },
        )
        audit(
            org=org,
            actor=actor,
            verb="job.queued",
            obj=job,
            object_repr=job.params["title"],
            changes={"action": prepared.action.key, "total": selected_count},
        )
        jobs.enqueue(job)
    return Started(job=job, summary=f"{job.params['title']}: running in the background.")


# The background job -------------------------------------------------------------------------------


@jobs.runner(JOB_KIND, model="crm.BackgroundJob", give_up=fail_job)
def run_bulk_job(job: BackgroundJob) -> None:
    """Run a claimed bulk job to the end (resuming from its cursor)."""
    policy = starter_policy(job)
    if policy is None:
        fail_job(job, "The member who started this job is no longer active.")
        return
    params = job.params
    try:
        prepared = prepare(job.org, policy, params.get("action"), params.get("args"))
    except (BulkError, PermissionDenied) as exc:
        fail_job(job, str(exc))
        return
    actor = Actor.for_user(job.created_by, ip=params.get("ip"))
    selection = Selection.from_params(params.get("selection") or {})
    run = _start_run(job.org, actor, policy, prepared)
    queryset = selection_queryset(job.org, policy, selection)
    finished = jobs.run_chunks(
        job,
        next_ids=lambda cursor: jobs.ids_after(queryset, cursor, CHUNK_SIZE),
        process=lambda ids: _process_chunk(run, ids),
    )
    if not finished:
        return
    outcome = Outcome()
    outcome.add(BackgroundJob.objects.for_org(job.org_id).get(pk=job.pk).result)
    summary = summary_text(prepared, outcome)
    with transaction.atomic():
        _audit_summary(run, outcome, selection)
        finish_job(job, summary)
