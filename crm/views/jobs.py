"""Progress of a background job (bulk action, rescoring, import...): a page that polls its
own partial every second through HTMX until the job has finished."""

from __future__ import annotations

import json

from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils.http import url_has_allowed_host_and_scheme

from ..decorators import member_required
from ..models import BackgroundJob
from ..permissions import MODULE_KEYS, policy_for


def job_module(job: BackgroundJob) -> str:
    """The module a job works in, named by its kind ("contacts.bulk": contacts); a kind that
    names none is an administration job."""
    module = job.kind.split(".", 1)[0]
    return module if module in MODULE_KEYS else "settings"


def may_follow(request, job: BackgroundJob) -> bool:
    """A job is its starter's, as a record is its owner's: they follow it, and so do members
    whose record scope in the job's module covers them (their team lead; those who see all).
    Anyone else gets a 404, as for a job that does not exist."""
    return job.created_by_id == request.user.pk or policy_for(request).owns_in_scope(
        job_module(job), job.created_by_id
    )


def safe_return_url(request, url: str) -> str:
    """`url` when it points inside this site, else "" (never an open redirect)."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return ""


@member_required()
def job_progress(request, public_id):
    job = get_object_or_404(
        BackgroundJob.objects.for_org(request.org).select_related("created_by"),
        public_id=public_id,
    )
    if not may_follow(request, job):
        raise Http404("No such job.")
    context = {
        "job": job,
        "return_url": safe_return_url(request, (job.params or {}).get("return_url", "")),
    }
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "crm/partials/job_progress.html", context)
        if job.is_finished:
            # Lets the page that started the job refresh what the job changed.
            response["HX-Trigger"] = json.dumps(
                {"jobFinished": {"job": str(job.public_id), "status": job.status}}
            )
        return response
    return render(request, "crm/job_detail.html", context)
