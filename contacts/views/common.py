"""What the contact, company, task and settings views share: the access decorator that also
switches to the organization's timezone, scoped look-ups (another org's or an out-of-scope
record is a 404), and small response helpers."""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from crm.decorators import member_required
from crm.permissions import policy_for
from crm.selectors import org_timezone
from crm.services import Actor

from ..models import Company, Contact, Tag, Task
from ..selectors.record import RECORD_DEFERRED


def workspace_view(module: str | None = None, action: str = "view"):
    """member_required(module, action), with dates shown and read in the org's timezone."""

    def decorator(view):
        @member_required(module, action)
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            with timezone.override(org_timezone(request.org)):
                return view(request, *args, **kwargs)

        return wrapped

    return decorator


def actor(request) -> Actor:
    return Actor.from_request(request)


def scoped_contacts(request):
    """The contacts of the request's org that the member may see."""
    policy = policy_for(request)
    return Contact.objects.for_org(request.org).filter(policy.scope_filter("contacts"))


def scoped_companies(request):
    policy = policy_for(request)
    return Company.objects.for_org(request.org).filter(policy.scope_filter("companies"))


def scoped_tasks(request):
    policy = policy_for(request)
    return Task.objects.for_org(request.org).filter(policy.scope_filter("tasks", "assignee"))


def get_contact(request, public_id, *, for_update=False) -> Contact:
    """The contact with its header data loaded in one go, or 404 when it belongs to another
    org or lies outside the member's scope."""
    queryset = scoped_contacts(request).select_related("company", "owner").defer(*RECORD_DEFERRED)
    if not for_update:
        queryset = queryset.prefetch_related(
            Prefetch("tags", queryset=Tag.objects.for_org(request.org).order_by("name"))
        )
    contact = get_object_or_404(queryset, public_id=public_id)
    contact.org = request.org  # the same row; saves a query wherever contact.org is read
    return contact


def get_company(request, public_id) -> Company:
    return get_object_or_404(scoped_companies(request).select_related("owner"), public_id=public_id)


def can_edit_contact(request, contact: Contact) -> bool:
    return policy_for(request).can_touch("contacts", "edit", contact.owner_id)


def require_contact_edit(request, contact: Contact) -> None:
    """403 for a member who may see the contact but not change it."""
    from django.core.exceptions import PermissionDenied

    if not can_edit_contact(request, contact):
        raise PermissionDenied("Your role may not change this contact.")


def safe_next(request, default: str) -> str:
    """A same-site `next` URL from the form, or `default`. Only a path ("/...") counts:
    redirect() would take any other word for a URL name and fail to reverse it."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def redirect_or_refresh(request, url: str):
    """After an action: a plain redirect, or for HTMX a client-side redirect."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


NOT_SAVED = object()


def submit(request, form, save):
    """A POSTed form handed to its service once it is valid: what `save()` returns, or
    NOT_SAVED when the request is not a POST, the form is invalid, or the service refused it
    (its ValidationError's messages, or the PermissionDenied's, are then on the form)."""
    if request.method != "POST" or not form.is_valid():
        return NOT_SAVED
    try:
        return save()
    except ValidationError as exc:
        form.add_service_errors(exc)
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
    return NOT_SAVED


def full_page(request) -> bool:
    return not request.htmx or request.htmx.history_restore_request or request.htmx.boosted


def not_found():
    raise Http404("Not found.")
