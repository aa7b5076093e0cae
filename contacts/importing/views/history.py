"""The organization's import history, and the dashboard's panel of recent imports."""

from __future__ import annotations

from django.db.models import F
from django.shortcuts import render

from crm.pagination import page as keyset_page
from crm.permissions import policy_for

from .. import display
from .common import EDITABLE, import_access, visible_jobs

HISTORY_PAGE_SIZE = 25


@import_access
def import_history(request):
    jobs = visible_jobs(request)
    result = keyset_page(jobs, ["-created_at", "-id"], request.GET.get("cursor"), HISTORY_PAGE_SIZE)
    for job in result.rows:
        job.duration_text = display.duration_text(job)
    context = {"page": result}
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "contacts/import/history.html#rows", context)
    return render(request, "contacts/import/history.html", context)


DASHBOARD_IMPORTS = 5


def recent_imports_panel(request) -> dict | None:
    """Dashboard panel: the latest imports the member may see, for members who may import."""
    policy = policy_for(request)
    if not (policy.can("contacts", "create") or policy.can("contacts", "edit")):
        return None
    jobs = list(
        visible_jobs(request)
        .exclude(status__in=EDITABLE)
        .order_by(F("created_at").desc(), "-id")[:DASHBOARD_IMPORTS]
    )
    return {"template": "contacts/import/_dashboard_panel.html", "jobs": jobs}
