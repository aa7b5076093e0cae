"""The contact form's check while typing: as the member leaves an identity field, the form
asks which existing contacts the values so far look like and shows them as a note (the
same one the save shows, without "Save anyway": the save itself still checks)."""

from __future__ import annotations

import uuid

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from crm.permissions import policy_for

from ..dedup import form_warning
from .common import get_contact, workspace_view

TEMPLATE = "contacts/partials/duplicate_warning.html"


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Http404("No such contact.") from None


@require_GET
@workspace_view("contacts", "view")
def contact_duplicate_check(request):
    policy = policy_for(request)
    exclude = request.GET.get("exclude") or ""
    # The contact being edited: one this member may open (else 404), never named.
    exclude_id = get_contact(request, _uuid(exclude)).pk if exclude else None
    values = form_warning.values_from_query(request.GET, policy)
    warning = form_warning.find(request.org, policy, values, exclude_id=exclude_id)
    return render(request, TEMPLATE, {"duplicate_warning": warning, "confirmable": False})
