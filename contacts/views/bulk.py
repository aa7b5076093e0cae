"""The bulk bar of the contact list: its action menu, the "all N matching" count, and the
action endpoint (two-step confirmation for destructive actions, a background job for big
selections). The list page's form (id="bulk-form") posts here with the ticked ids and the
list state; "all matching" is re-evaluated on the server from that state."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from crm.permissions import policy_for
from crm.views.jobs import safe_return_url

from ..bulk import (
    INLINE_LIMIT,
    BulkError,
    Selection,
    assignable_members,
    available_actions,
    bulk_preview,
    bulk_start,
    clean_ids,
    confirm_texts,
    needs_confirmation,
    prepare,
)
from ..models import Contact, ContactList, Tag
from ..selectors import contacts_for_state, list_state_from_request
from .common import actor, workspace_view

BAR = "contacts/partials/bulk_bar.html"
TAG_SUGGESTIONS = 200
# The names the bar's own inputs use inside the list's form: prefixed, so they never mix
# with the list state's parameters (the filter panel has its own "stage", "owner", "tag").
ARGUMENT_INPUTS = {
    "owner": "bulk_owner",
    "tags": "bulk_tags",
    "list": "bulk_list",
    "new_list": "bulk_new_list",
    "stage": "bulk_stage",
}


def _list_url(state) -> str:
    base = reverse("contacts:contact_list")
    query = state.query_string()
    return f"{base}?{query}" if query else base


def _selection(request, state) -> Selection:
    if request.POST.get("bulk_all") == "1":
        return Selection(
            all_matching=True, search=state.q, filters=state.filters, archived=state.archived
        )
    return Selection(ids=clean_ids(request.POST.getlist("ids")))


def _arguments(request, action_key: str) -> dict:
    """The chosen action's own inputs. Every menu of the bar sits in the one list form, so
    each names its inputs after its action ("bulk_list.add_to_list") and the other menus'
    inputs, which travel along, are not read. A plain "bulk_list" (a script, an older page)
    counts when the action's own input is absent."""
    args = {}
    for name, field in ARGUMENT_INPUTS.items():
        value = request.POST.get(f"{field}.{action_key}")
        if value is None:
            value = request.POST.get(field)
        if value is not None:
            args[name] = value
    return args


def _message(request, text: str, *, level: str = "error", status: int = 200):
    """A note in the bar's dialog area (HTMX swaps only 2xx answers, so errors are 200)."""
    response = render(request, f"{BAR}#message", {"text": text, "level": level})
    response.status_code = status
    return response


@require_GET
@workspace_view("contacts", "view")
def bulk_actions(request):
    """The bar's action menu: only what this member may do, with the choices it needs."""
    policy = policy_for(request)
    archived = request.GET.get("bulk_archived") == "1"
    actions = available_actions(policy, archived=archived)
    keys = {action.key for action in actions}
    context = {
        "actions": actions,
        "stages": Contact.Stage.choices,
        "lists": list(ContactList.objects.for_org(request.org).only("public_id", "name"))
        if keys & {"add_to_list", "remove_from_list"}
        else [],
        "members": assignable_members(request.org) if "reassign" in keys else [],
        # Suggestions for "Remove tags" (the org's tags; typing any name works too).
        "tag_names": list(
            Tag.objects.for_org(request.org)
            .order_by("name")
            .values_list("name", flat=True)[:TAG_SUGGESTIONS]
        )
        if "remove_tags" in keys
        else [],
        "can_export": policy.can("contacts", "export"),
    }
    return render(request, f"{BAR}#actions", context)


@require_GET
@workspace_view("contacts", "view")
def bulk_count(request):
    """How many contacts the list state matches for this member (for "Select all N")."""
    state = list_state_from_request(request)
    if state.error:
        return JsonResponse({"count": 0, "label": "0", "error": state.error})
    count = contacts_for_state(request, state).count()
    return JsonResponse({"count": count, "label": f"{count:,}"})


@require_POST
@workspace_view("contacts", "view")
def bulk_action(request):
    policy = policy_for(request)
    state = list_state_from_request(request)
    return_url = safe_return_url(request, request.POST.get("return_url", "")) or _list_url(state)
    selection = _selection(request, state)
    # Rights first: a forged POST for an action the role lacks is a 403 whatever else it holds.
    try:
        action_key = request.POST.get("bulk_action", "")
        prepared = prepare(request.org, policy, action_key, _arguments(request, action_key))
    except BulkError as exc:
        return _message(request, str(exc))
    if selection.all_matching and state.error:
        return _message(request, f"Fix the filter first: {state.error}")
    if selection.is_empty:
        return _message(request, "Select at least one contact.")

    preview = bulk_preview(request.org, policy, prepared, selection)
    if preview.affected == 0:
        return _message(
            request,
            f"Nothing to do: none of the {preview.selected:,} selected contacts would change"
            + (" (some are outside what you may change)." if preview.skipped else "."),
            level="info",
        )
    # The confirmation names a number; it holds only while that number is still true.
    expected = request.POST.get("bulk_expected", "")
    confirmed = request.POST.get("bulk_confirmed") == "1" and expected == str(preview.affected)
    if needs_confirmation(prepared, preview) and not confirmed:
        question, confirm_label = confirm_texts(prepared, preview.affected)
        return render(
            request,
            f"{BAR}#confirm",
            {
                "prepared": prepared,
                "preview": preview,
                "question": question,
                "confirm_label": confirm_label,
                "changed_meanwhile": request.POST.get("bulk_confirmed") == "1",
                "confirm_vals": json.dumps(
                    {
                        "bulk_action": prepared.action.key,
                        "bulk_confirmed": "1",
                        "bulk_expected": str(preview.affected),
                    }
                ),
                "background": preview.selected > INLINE_LIMIT,
            },
        )
    started = bulk_start(
        org=request.org,
        actor=actor(request),
        policy=policy,
        prepared=prepared,
        selection=selection,
        return_url=return_url,
        selected_count=preview.selected,
    )
    if started.job is not None:
        if request.htmx:
            return render(
                request,
                "crm/partials/job_progress.html",
                {"job": started.job, "return_url": return_url},
            )
        return redirect("crm:job_progress", public_id=started.job.public_id)
    messages.success(request, started.summary)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = return_url
        return response
    return redirect(return_url)
