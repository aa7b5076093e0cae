"""Progress of a background job (bulk action, rescoring, import...): a page that polls its
own partial every second through HTMX until the job has finished."""

from __future__ import annotations

import json

from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils.http import url_has_allowed_host_and_scheme

from ..decorators import member_required
from ..models import BackgroundJob
from ..permissions import policy_for


def _may_follow(request, job: BackgroundJob) -> bool:
    """The member who started a job follows it; so do those who run the organization."""
    return job.created_by_id == request.user.pk or policy_for(request).can("settings", "view")


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
    if not _may_follow(request, job):
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
