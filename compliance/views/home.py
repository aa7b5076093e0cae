"""Compliance → overview: the organization's privacy mode and what needs attention."""

from django.shortcuts import render
from django.utils import timezone

from contacts.views.common import workspace_view
from crm.permissions import policy_for

from ..models import DataRequest, Suppression
from ..selectors import privacy_settings


@workspace_view("compliance")
def compliance_home(request):
    org = request.org
    open_states = (DataRequest.Status.OPEN, DataRequest.Status.IN_PROGRESS)
    requests = DataRequest.objects.for_org(org).filter(status__in=open_states)
    context = {
        "settings": privacy_settings(org),
        "active_suppressions": Suppression.objects.for_org(org)
        .filter(lifted_at__isnull=True)
        .count(),
        "open_requests": requests.count(),
        "overdue_requests": requests.filter(due_at__lt=timezone.now()).count(),
        "policy": policy_for(request),
    }
    return render(request, "compliance/home.html", context)
