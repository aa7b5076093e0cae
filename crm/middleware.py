import json

from django.contrib import messages

from .models import Membership

SESSION_ORG_KEY = "active_org_id"


def _resolve_membership(request):
    user = request.user
    if not user.is_authenticated:
        return None
    memberships = Membership.objects.active().select_related("org", "role", "team")
    wanted = request.session.get(SESSION_ORG_KEY)
    if wanted:
        found = memberships.filter(user=user, org_id=wanted).first()
        if found:
            return found
    pref = getattr(user, "preference", None) if hasattr(user, "preference") else None
    if pref is not None and pref.last_org_id:
        found = memberships.filter(user=user, org_id=pref.last_org_id).first()
        if found:
            request.session[SESSION_ORG_KEY] = found.org_id
            return found
    found = memberships.filter(user=user).order_by("created_at").first()
    if found:
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
