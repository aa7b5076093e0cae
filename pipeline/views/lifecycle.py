"""The contact lifecycle board: a column per lifecycle stage (Stage → Lead → … → Churned),
a card per contact.

The contact's `lifecycle_stage` is the only thing the board reads and the only thing a move
writes (through contacts' own contact_update, which puts the change on the timeline and
emits the event), so the board and the contact record can never disagree: a stage changed
anywhere simply shows in its new column on the next look."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from contacts.services.contacts import contact_update
from contacts.views.common import actor, safe_next, workspace_view
from crm.permissions import policy_for

from ..board import (
    LIFECYCLE_LABELS,
    LIFECYCLE_STAGES,
    ContactCard,
    ContactColumn,
    board_contacts,
    contact_cards,
    lifecycle_column_page,
    lifecycle_counts,
    load_lifecycle_board,
)
from .board import fragment, json_error, url_maker, wants_json


def _can_move(policy) -> bool:
    """Moving a card changes the contact's lifecycle stage: contacts edit, and the field
    editable for the member's role. Record scope is checked per contact."""
    return policy.can("contacts", "edit") and policy.can_edit_field("lifecycle_stage")


def _board_url() -> str:
    return reverse("pipeline:lifecycle")


def link_contact_cards(cards: list[ContactCard]) -> list[ContactCard]:
    detail = url_maker("contacts:contact_detail")
    move = url_maker("pipeline:lifecycle_move")
    page_query = urlencode({"next": _board_url()})
    for card in cards:
        public_id = card.contact.public_id
        card.detail_url = detail(public_id)
        card.move_url = move(public_id)
        card.move_page_url = f"{card.move_url}?{page_query}"
    return cards


def _context(policy, **extra) -> dict:
    return {
        "can_move": _can_move(policy),
        "next_url": _board_url(),
        "section": "lifecycle",
        "move_label": "Lifecycle stage",
        "move_options": LIFECYCLE_STAGES,
        "close_options": [],
        "with_position": False,
        **extra,
    }


@workspace_view("contacts")
@require_GET
def lifecycle(request):
    policy = policy_for(request)
    columns = load_lifecycle_board(request.org, policy)
    link_contact_cards([card for column in columns for card in column.cards])
    return render(
        request,
        "pipeline/lifecycle.html",
        _context(policy, columns=columns, total=sum(c.count for c in columns)),
    )


@workspace_view("contacts")
@require_GET
def lifecycle_column(request, stage):
    """A lifecycle column's next cards after ?cursor=… (HTMX), or the column as a page."""
    if stage not in LIFECYCLE_LABELS:
        raise Http404("No such lifecycle stage.")
    policy = policy_for(request)
    cursor = request.GET.get("cursor")
    cards, next_cursor = lifecycle_column_page(request.org, policy, stage, cursor)
    link_contact_cards(cards)
    label = LIFECYCLE_LABELS[stage]
    context = _context(policy, value=stage, label=label, cards=cards, next_cursor=next_cursor)
    if request.htmx:
        return fragment(request, "pipeline/partials/board_contact_cards.html", context)
    count, exact = lifecycle_counts(board_contacts(request.org, policy), [stage])[stage]
    column = ContactColumn(
        value=stage,
        label=label,
        cards=cards,
        next_cursor=next_cursor,
        count=count,
        count_exact=exact,
    )
    context.update(columns=[column], column_mode=True, total=count)
    return render(request, "pipeline/lifecycle.html", context)


@workspace_view("contacts")
@require_http_methods(["GET", "POST"])
def lifecycle_move(request, public_id):
    """POST puts a contact in another lifecycle stage (`stage`, one of Contact.Stage); GET is
    the "Move to…" form as a page, for a browser without JavaScript."""
    policy = policy_for(request)
    as_json = wants_json(request)
    contact = get_object_or_404(
        board_contacts(request.org, policy).select_related("owner", "company"),
        public_id=public_id,
    )
    if not (_can_move(policy) and policy.owns_in_scope("contacts", contact.owner_id)):
        message = "Your role may not change this contact's lifecycle stage."
        if as_json:
            return json_error(message, status=403)
        raise PermissionDenied(message)
    back = safe_next(request, _board_url())
    card = contact_cards([contact], policy)[0]
    if request.method == "GET":
        context = _context(
            policy,
            title=card.name,
            action=reverse("pipeline:lifecycle_move", args=[contact.public_id]),
            current=contact.lifecycle_stage,
            next_url=back,
        )
        return render(request, "pipeline/partials/board_move_page.html", context)
    old = contact.lifecycle_stage
    new = request.POST.get("stage", "").strip()
    contact.org = request.org
    try:
        if new not in LIFECYCLE_LABELS:
            raise ValidationError("Choose a lifecycle stage.")
        contact_update(
            contact=contact, actor=actor(request), data={"lifecycle_stage": new}, policy=policy
        )
    except ValidationError as exc:
        message = " ".join(str(m) for m in exc.messages)
        if as_json:
            return json_error(message)
        messages.error(request, message)
        return redirect(back)
    contact.lifecycle_stage = new
    text = f"{card.name} moved to {LIFECYCLE_LABELS[new]}."
    if not as_json:
        messages.success(request, text)
        return redirect(back)
    link_contact_cards([card])
    card_html = render_to_string(
        "pipeline/partials/board_contact_card.html", {"card": card, **_context(policy)}
    )
    counts = lifecycle_counts(board_contacts(request.org, policy), sorted({old, new}))
    columns = [
        {
            "stage": value,
            "count": count,
            "html": render_to_string(
                "pipeline/partials/board_contact_count.html",
                {"value": value, "count": count, "exact": exact},
            ),
        }
        for value, (count, exact) in counts.items()
    ]
    return JsonResponse(
        {
            "ok": True,
            "message": text,
            "contact": str(contact.public_id),
            "stage": new,
            "card": card_html,
            "columns": columns,
        }
    )
