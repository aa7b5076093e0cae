"""What every page of the import wizard shares: the access check, the job lookup within the
member's scope, the job's status groups, and service errors put on a form."""

from __future__ import annotations

from functools import wraps

from django.shortcuts import get_object_or_404
from django.utils import timezone

from crm.decorators import member_required
from crm.permissions import policy_for
from crm.selectors import org_timezone
from crm.services import Actor

from .. import selectors, services
from ..models import ImportJob

ACTIVE = (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
EDITABLE = (ImportJob.Status.UPLOADED, ImportJob.Status.MAPPED)
FINISHED = (
    ImportJob.Status.DONE,
    ImportJob.Status.FAILED,
    ImportJob.Status.CANCELLED,
    ImportJob.Status.UNDONE,
)


def import_access(view):
    """The member may work in contacts and import into them; dates in the org's timezone."""

    @member_required("contacts", "view")
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        services.require_import_rights(policy_for(request))
        with timezone.override(org_timezone(request.org)):
            return view(request, *args, **kwargs)

    return wrapped


def visible_jobs(request):
    """The imports this member may see: another's is a 404 on every page, like another org's."""
    return selectors.imports_in_scope(request.org, policy_for(request)).select_related("created_by")


def get_job(request, public_id) -> ImportJob:
    return get_object_or_404(visible_jobs(request), public_id=public_id)


def actor(request) -> Actor:
    return Actor.from_request(request)
