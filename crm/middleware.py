import json
import sys

from django.contrib import messages
from django.http import FileResponse

from . import rls
from .models import Membership

SESSION_ORG_KEY = "active_org_id"


def _resolve_membership(request):
    """The membership this request works in, chosen among the user's active ones (read in
    one query and kept on `request.memberships` for the org switcher)."""
    user = request.user
    request.memberships = []
    if not user.is_authenticated:
        return None
    # A person's memberships span organizations: which one this request works in is what
    # is being decided here.
    memberships = list(
        Membership.objects.all_orgs()
        .active()
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


class TenantContextMiddleware:
    """Runs a member's view in one transaction working as their organization
    (`crm.rls.RequestScope`), so PostgreSQL's row-level security walls off every other
    organization even from a query that forgot `for_org`. Placed right after
    OrganizationMiddleware; requests without an organization (signed out, no membership)
    run as before.

    - The transaction opens just before the view (process_view: after the other middleware
      read the request, CSRF's reading of an upload included) and ends once the response is
      made. A view marked `crm.rls.outside_request_transaction` gets session settings
      instead, reset at the end.
    - A response of 500 or more rolls the request's writes back: an exception in the view
      reaches this middleware as that response, never as an exception.
    - A streamed body (the CSV and JSON exports) is produced after the view returned; it is
      produced in a transaction of its own in the same organization. Files and async
      bodies are sent as they are.
    - `transaction.on_commit` callbacks run when the request's transaction commits, after
      the view, outside the organization (as the connecting user)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        org = getattr(request, "org", None)
        if org is None:
            return self.get_response(request)
        scope = request.rls_scope = rls.RequestScope(org.id)
        try:
            response = self.get_response(request)
        except BaseException:
            scope.close(failed=True, exc_info=sys.exc_info())
            raise
        scope.close(failed=response.status_code >= 500)
        if response.streaming and not response.is_async and not isinstance(response, FileResponse):
            response.streaming_content = rls.streamed_in_tenant(response.streaming_content, org.id)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        scope = getattr(request, "rls_scope", None)
        if scope is not None:
            scope.open(outside_transaction=getattr(view_func, "rls_outside_transaction", False))


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
