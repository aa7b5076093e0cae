"""Compliance → Export all data: the page that starts an export of the whole organization,
follows it while it runs (its row polls itself through HTMX) and lists past exports with
their download links.

Every view needs the Compliance export right (Owners hold it always); without it, 403. An
export is seen and downloaded by the member who started it and by Owners; anyone else, and
any other organization, gets a 404, as for an export that does not exist.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from contacts.views.common import actor, workspace_view
from crm.models import BackgroundJob
from crm.permissions import policy_for

from ..services import org_export as service

PAGE_SIZE = 50


def _row(job: BackgroundJob) -> dict:
    """What the page shows of one export."""
    expired = service.is_expired(job)
    done = job.status == BackgroundJob.Status.DONE
    ready = done and not expired and service.zip_path(job).exists()
    return {
        "job": job,
        "expires_at": service.expires_at(job),
        "expired": expired,
        "missing": done and not expired and not ready,
        "size": (job.result or {}).get("size"),
        "token": service.download_token(job) if ready else "",
        "phase": (job.result or {}).get("phase", service.WRITING),
    }


def _own_export(request, public_id) -> BackgroundJob:
    job = get_object_or_404(
        BackgroundJob.objects.for_org(request.org)
        .filter(kind=service.JOB_KIND)
        .select_related("created_by"),
        public_id=public_id,
    )
    if not service.may_download(policy_for(request), job):
        raise Http404("No such export.")
    return job


@workspace_view("compliance", "export")
@require_GET
def org_export_page(request):
    policy = policy_for(request)
    service.purge_expired(request.org)
    exports = list(service.exports_for(request.org, policy)[:PAGE_SIZE])
    running = any(not job.is_finished for job in exports)
    context = {
        "rows": [_row(job) for job in exports],
        "running": running,
        "is_owner": policy.is_owner,
        "days": service.EXPORT_DAYS,
        "sections": service.SECTION_NAMES,
    }
    return render(request, "compliance/org_export/page.html", context)


@workspace_view("compliance", "export")
@require_POST
def org_export_start(request):
    try:
        service.start_org_export(org=request.org, actor=actor(request), policy=policy_for(request))
    except service.OrgExportError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "The export has started. It runs in the background: you can leave this page, "
            "and you will get an email when the file is ready.",
        )
    return redirect("compliance:org_export")


@workspace_view("compliance", "export")
@require_GET
def org_export_progress(request, public_id):
    """One export's row, for the page's polling (and as a page of its own without HTMX)."""
    job = _own_export(request, public_id)
    context = {
        "row": _row(job),
        "is_owner": policy_for(request).is_owner,
        "days": service.EXPORT_DAYS,
    }
    if request.htmx:
        return render(request, "compliance/org_export/_row.html", context)
    return redirect("compliance:org_export")


@workspace_view("compliance", "export")
@require_GET
def org_export_download(request, token):
    """The ZIP, for the starter or an Owner, until the link's expiry."""
    link = service.read_download_token(token)
    if link is None:
        raise Http404("This download link is not valid.")
    job = _own_export(request, link.job_public_id)
    if job.status != BackgroundJob.Status.DONE:
        raise Http404("This export has no file.")
    if service.is_expired(job) or link.expires_at <= timezone.now():
        context = {"job": job, "expires_at": service.expires_at(job), "days": service.EXPORT_DAYS}
        return render(request, "compliance/org_export/expired.html", context, status=410)
    try:
        handle = open(service.zip_path(job), "rb")  # noqa: SIM115 (FileResponse closes it)
    except OSError:
        raise Http404("This export's file is no longer stored.") from None
    service.record_download(job, actor(request))
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=service.download_file_name(job),
        content_type="application/zip",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
