import json

from django.contrib import messages

from .models import Membership

SESSION_ORG_KEY = "active_org_id"


def _resolve_membership(request):
    """The membership this request works in, chosen among the user's active ones (read in
    one query and kept on `request.memberships` for the org switcher)."""
    user = request.user
    request.memberships = []
    if not user.is_authenticated:
        return None
    memberships = list(
        Membership.objects.active()
        .filter(user=user)
        .select_related("org", "role", "team")
        .order_by("created_at")
    )
    request.memberships = memberships
    if not memberships:
        return None
    by_org = {m.org_id: m for m in memberships}
    wanted = request.session.get(SESSION_ORG_KEY)
    if wanted in by_org:
        return by_org[wanted]
    pref = getattr(user, "preference", None) if hasattr(user, "preference") else None
    found = by_org.get(pref.last_org_id) if pref is not None else None
    found = found or memberships[0]
    request.session[SESSION_ORG_KEY] = found.org_id
    return found


class OrganizationMiddleware:
    """Puts the one organization this request works in on `request.org`
    (and the member's `request.membership`). Deactivated memberships never count."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        membership = _resolve_membership(request)
        request.membership = membership
        request.org = membership.org if membership else None
        return self.get_response(request)


class HtmxMessagesMiddleware:
    """For HTMX requests, hand Django messages to the page as an HX-Trigger "toast" event,
    so every action gets its toast without a full reload."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not getattr(request, "htmx", False) or 300 <= response.status_code < 400:
            return response
        if "HX-Redirect" in response or "HX-Location" in response:
            return response
        storage = messages.get_messages(request)
        toasts = [{"level": m.level_tag, "text": str(m)} for m in storage]
        if not toasts:
            return response
        trigger = {}
        if response.get("HX-Trigger"):
            try:
                trigger = json.loads(response["HX-Trigger"])
            except ValueError:
                trigger = {response["HX-Trigger"]: None}
        trigger["toast"] = toasts
        response["HX-Trigger"] = json.dumps(trigger)
        return response
