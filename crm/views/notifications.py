from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ..decorators import member_required
from ..models import Notification
from ..services.notifications import mark_read

PAGE_SIZE = 50


@member_required()
def notifications(request):
    """The member's notifications in this organization, newest first."""
    items = list(
        Notification.objects.for_org(request.org).filter(user=request.user)[: PAGE_SIZE + 1]
    )
    return render(
        request,
        "crm/notifications.html",
        {"items": items[:PAGE_SIZE], "truncated": len(items) > PAGE_SIZE},
    )


@member_required()
@require_POST
def notifications_read(request):
    ids = request.POST.getlist("id") or None
    count = mark_read(org=request.org, user=request.user, ids=ids)
    if count:
        messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} read.")
    return redirect("crm:notifications")
