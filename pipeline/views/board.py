"""The deal board: a pipeline's open deals in columns, dragged between and within columns
(static/js/kanban.js) or moved with the keyboard ("Move to…": a dialog, or without
JavaScript a small page whose form posts to the same address as a drag), created in a
column, and won or lost with a reason.

Drags and the dialogs post with `Accept: application/json` and get JSON back (the card,
re-rendered, and the fresh totals of the columns it touched); the same forms posted without
JavaScript redirect back to the board with a message. Fragments are rendered without the
page's context processors (they need none of the shell), which keeps a move cheap."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.template.response import SimpleTemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from contacts.views.common import actor, safe_next, workspace_view
from crm.permissions import policy_for

from ..board import (
    MICRO,
    DealCard,
    DealColumn,
    board_deals,
    column_edge,
    columns_totals,
    deal_card,
    deal_column_page,
    load_deal_board,
    stages_of,
)
from ..fields import hidden_deal_fields
from ..filters import PANEL_NAMES, deal_views_for, filter_deals
from ..forecast.rates import Converter, RateBook
from ..models import Deal, DealReason, Pipeline, Stage
from ..selectors import deal_for_request, pipelines_of
from ..services.deals import deal_close, deal_create, deal_move, require
from ..services.pipelines import ensure_default_pipeline

CLOSE_STATUSES = (Deal.Status.WON, Deal.Status.LOST)
CLOSE_OPTIONS = [("won", "Won…"), ("lost", "Lost…")]
# Query parameters a board link does not carry on: a column's cursor, the reason form's own
# (`status`, `next`), and the filters that mean nothing on a board of open, current deals.
NOT_CARRIED = ("cursor", "status", "next", "archived")
# The parameters that make the board filtered (pipeline.filters reads them).
FILTER_PARAMS = ("q", "view", "filters", *sorted(PANEL_NAMES - {"pipeline", "status"}))
_PLACEHOLDER = uuid.UUID(int=0)


# Helpers ------------------------------------------------------------------------------------


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def json_error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"ok": False, "error": message}, status=status)


def fragment(request, template: str, context: dict, status: int = 200):
    """A piece of a page, rendered from its template without the shell's context
    processors (the sidebar, the theme: a fragment needs none of them)."""
    context = {**context, "csrf_token": get_token(request)}
    return SimpleTemplateResponse(template, context, status=status)


def url_maker(name: str):
    """public_id -> the URL of `name`, reversed once instead of once per card."""
    template = reverse(name, args=[_PLACEHOLDER])
    marker = str(_PLACEHOLDER)
    return lambda public_id: template.replace(marker, str(public_id))


def with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


def _messages_of(exc: ValidationError) -> list[str]:
    return [str(m) for m in exc.messages]


def _field_errors(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {key: [str(m) for m in value] for key, value in exc.message_dict.items()}
    return {"form": _messages_of(exc)}


def _quick_errors(exc: ValidationError) -> dict:
    """A quick-create's errors: title and value by their inputs, anything else above them."""
    errors = _field_errors(exc)
    other = [m for key, ms in errors.items() if key not in ("title", "value") for m in ms]
    return {"title": errors.get("title", []), "value": errors.get("value", []), "other": other}


def _url_or_empty(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _pipeline_of(request) -> Pipeline:
    """The pipeline the board shows: ?pipeline=<public id> of the member's organization
    (anything else is not found), or the default one, made on the first visit."""
    raw = request.GET.get("pipeline") or ""
    if not raw:
        return ensure_default_pipeline(request.org, actor=actor(request))
    try:
        uuid.UUID(str(raw))
    except ValueError:
        raise Http404("No such pipeline.") from None
    return get_object_or_404(Pipeline.objects.for_org(request.org), public_id=raw)


def _board_query(request, pipeline: Pipeline) -> str:
    """The board's query string (pipeline and filters), carried by column pages and forms."""
    params = request.GET.copy()
    for key in NOT_CARRIED:
        params.pop(key, None)
    params["pipeline"] = str(pipeline.public_id)
    return params.urlencode()


def _board_url(pipeline: Pipeline, query: str = "") -> str:
    query = query or urlencode({"pipeline": pipeline.public_id})
    return with_query(reverse("pipeline:board"), query)


def _filter(request, policy):
    """(deals, filter state): the open deals the board shows to this member (record scope
    applied), narrowed by the deal filter engine's parameters and saved view when the
    address has any (the same ones the deals table reads). State None: no filter."""
    deals = board_deals(request.org, policy)
    if not any(request.GET.getlist(key) for key in FILTER_PARAMS):
        return deals, None
    params = request.GET.copy()
    for key in NOT_CARRIED:
        params.pop(key, None)
    return filter_deals(deals, org=request.org, policy=policy, params=params)


def _filtered_deals(request, policy):
    return _filter(request, policy)[0]


def _stage_of(request, stage_id) -> Stage:
    return get_object_or_404(
        Stage.objects.for_org(request.org).select_related("pipeline"), public_id=stage_id
    )


def _rights(policy) -> dict:
    hidden = hidden_deal_fields(policy)
    return {
        "can_move": policy.can("pipeline", "edit"),
        "can_create": policy.can("pipeline", "create"),
        "can_set_value": policy.can_edit_field("value", "pipeline"),
        "hidden": hidden,
        "show_values": "value" not in hidden,
        "show_weighted": "value" not in hidden and "probability" not in hidden,
    }


def link_cards(cards: list[DealCard], *, query: str, next_url: str) -> list[DealCard]:
    """Fill in each card's addresses: its page, where a drag posts (with the board's filter,
    so the totals in the answer are the board's), and the no-JavaScript "Move to…" page."""
    detail = url_maker("pipeline:deal_detail")
    move = url_maker("pipeline:deal_move")
    close = url_maker("pipeline:board_close")
    page_query = urlencode({"next": next_url})
    for card in cards:
        public_id = card.deal.public_id
        card.detail_url = detail(public_id)
        card.move_url = with_query(move(public_id), query)
        card.move_page_url = f"{card.move_url}{'&' if query else '?'}{page_query}"
        card.close_url = with_query(close(public_id), query)
    return cards


def _move_dialog_context(stages) -> dict:
    return {
        "move_label": "Stage",
        "move_options": [(str(stage.public_id), stage.name) for stage in stages],
        "close_options": CLOSE_OPTIONS,
        "with_position": True,
    }


def move_deltas(org, policy, deal: Deal, old_stage: Stage, new_stage: Stage):
    """What a move does to the two columns' totals: the moved deal's count, value and
    weighted value (in the base currency at today's rate) out of one column and into the
    other. The board adds them to the totals it shows (static/js/kanban.js), so a move
    never sums two whole columns again. None when the deal's currency has no rate: then
    the caller sends the columns' totals recomputed."""
    rights = _rights(policy)
    rate = Decimal(1)
    if rights["show_values"]:
        rate = Converter(RateBook.load(org)).rate(deal.currency, timezone.localdate())
        if rate is None:
            return None
    amount = deal.value * rate

    def delta(stage: Stage, sign: int) -> dict:
        entry: dict = {"stage": str(stage.public_id), "count": sign}
        if rights["show_values"]:
            entry["value"] = f"{(sign * amount).quantize(MICRO):f}"
        if rights["show_weighted"]:
            odds = deal.probability if deal.probability is not None else stage.probability
            entry["weighted"] = f"{(sign * amount * odds / 100).quantize(MICRO):f}"
        return entry

    return [delta(old_stage, -1), delta(new_stage, 1)]


def _totals_payload(request, policy, stages_touched) -> list[dict]:
    """The re-rendered totals of the columns a change touched (under the board's filter,
    which the forms carry in their query string)."""
    unique = {stage.pk: stage for stage in stages_touched}
    queryset = _filtered_deals(request, policy)
    totals = columns_totals(request.org, policy, list(unique.values()), queryset=queryset)
    rights = _rights(policy)
    out = []
    for pk, stage in unique.items():
        html = render_to_string(
            "pipeline/partials/board_totals.html",
            {"stage": stage, "totals": totals[pk], **rights},
        )
        out.append({"stage": str(stage.public_id), "count": totals[pk].count, "html": html})
    return out


# The board ----------------------------------------------------------------------------------


def _board_context(request, pipeline: Pipeline, *, quick: dict | None = None) -> dict:
    policy = policy_for(request)
    deals, state = _filter(request, policy)
    board = load_deal_board(request.org, policy, pipeline, queryset=deals)
    query = _board_query(request, pipeline)
    next_url = _board_url(pipeline, query)
    link_cards(
        [card for column in board.columns for card in column.cards],
        query=query,
        next_url=next_url,
    )
    deal_list_url = _url_or_empty("pipeline:deal_list")
    return {
        "filter_state": state,
        "views": list(deal_views_for(request.org, request.user)),
        "table_url": with_query(deal_list_url, query) if deal_list_url else "",
        "board": board,
        "pipeline": pipeline,
        "pipelines": list(pipelines_of(request.org)),
        "columns": board.columns,
        "stages": board.stages,
        "board_query": query,
        "next_url": next_url,
        "quick": quick or {},
        "section": "board",
        **_move_dialog_context(board.stages),
        **_rights(policy),
    }


@workspace_view("pipeline")
@require_GET
def board(request):
    pipeline = _pipeline_of(request)
    return render(request, "pipeline/board.html", _board_context(request, pipeline))


@workspace_view("pipeline")
@require_GET
def board_column(request, stage_id):
    """A column's next cards after ?cursor=…: for HTMX the cards and the next "load more"
    sentinel; as a page (no JavaScript) the column on its own, with a link further on."""
    policy = policy_for(request)
    stage = _stage_of(request, stage_id)
    pipeline = stage.pipeline
    queryset = _filtered_deals(request, policy)
    cards, next_cursor = deal_column_page(
        request.org, policy, stage, request.GET.get("cursor"), queryset=queryset
    )
    query = _board_query(request, pipeline)
    next_url = _board_url(pipeline, query)
    link_cards(cards, query=query, next_url=next_url)
    context = {
        "stage": stage,
        "cards": cards,
        "next_cursor": next_cursor,
        "board_query": query,
        "next_url": next_url,
        "pipeline": pipeline,
        **_rights(policy),
    }
    if request.htmx:
        return fragment(request, "pipeline/partials/board_cards.html", context)
    totals = columns_totals(request.org, policy, [stage], queryset=queryset)[stage.pk]
    column = DealColumn(stage=stage, cards=cards, next_cursor=next_cursor, totals=totals)
    stages = stages_of(request.org, pipeline)
    context.update(
        columns=[column],
        column_mode=True,
        stages=stages,
        quick={},
        section="board",
        **_move_dialog_context(stages),
    )
    return render(request, "pipeline/board.html", context)


@workspace_view("pipeline", "create")
@require_POST
def board_quick_create(request, stage_id):
    """A deal made at the top of a column from its title (and value)."""
    policy = policy_for(request)
    stage = _stage_of(request, stage_id)
    pipeline = stage.pipeline
    title = request.POST.get("title", "")
    value = request.POST.get("value", "").strip()
    data: dict = {"title": title, "stage": stage}
    if value:
        data["value"] = value
    query = _board_query(request, pipeline)
    back = safe_next(request, _board_url(pipeline, query))
    base = {"stage": stage, "next_url": back, "board_query": query, **_rights(policy)}
    try:
        deal = deal_create(
            org=request.org, actor=actor(request), data=data, policy=policy, position="top"
        )
    except ValidationError as exc:
        quick = {"stage": stage.pk, "title": title, "value": value, "errors": _quick_errors(exc)}
        if request.htmx:
            context = {**base, "quick": quick}
            return fragment(request, "pipeline/partials/board_quick_create.html", context)
        context = _board_context(request, pipeline, quick=quick)
        return render(request, "pipeline/board.html", context, status=400)
    if not request.htmx:
        messages.success(request, f"Deal “{deal.title}” added to {stage.name}.")
        return redirect(back)
    card = link_cards([deal_card(request.org, policy, deal)], query=query, next_url=back)[0]
    queryset = _filtered_deals(request, policy)
    context = {
        **base,
        "quick": {},
        "card": card,
        "totals": columns_totals(request.org, policy, [stage], queryset=queryset)[stage.pk],
    }
    return fragment(request, "pipeline/partials/board_quick_created.html", context)


# Moving and closing ---------------------------------------------------------------------


def _close_url(deal: Deal, status: str, back: str) -> str:
    base = reverse("pipeline:board_close", args=[deal.public_id])
    return f"{base}?{urlencode({'status': status, 'next': back})}"


def _target_stage(request, deal: Deal, raw: str) -> Stage:
    try:
        uuid.UUID(raw)
    except ValueError:
        raise ValidationError("Choose a stage to move the deal to.") from None
    stage = Stage.objects.for_org(request.org).filter(public_id=raw).first()
    if stage is None or stage.pipeline_id != deal.pipeline_id:
        raise ValidationError("Choose a stage of the deal's pipeline.")
    return stage


def _neighbours(request, deal: Deal, stage: Stage, position: str):
    """(before, after) for "to the top" / "to the bottom" of a column."""
    edge = column_edge(request.org, stage, position, exclude_pk=deal.pk)
    return (None, edge) if position == "top" else (edge, None)


@workspace_view("pipeline")
@require_http_methods(["GET", "POST"])
def deal_move_view(request, public_id):
    """POST moves an open deal: to `stage` between the cards `before` and `after` (public ids
    of its new neighbours, from a drag), or to the `position` top/bottom of `stage` ("Move
    to…"). "won" or "lost" as the stage goes on to the reason form. GET is the "Move to…"
    form as a page, for a browser without JavaScript."""
    policy = policy_for(request)
    deal = deal_for_request(request, public_id, archived=False)
    as_json = wants_json(request)
    try:
        require(policy, "edit", deal)
    except PermissionDenied as exc:
        if as_json:
            return json_error(str(exc), status=403)
        raise
    query = _board_query(request, deal.pipeline)
    back = safe_next(request, _board_url(deal.pipeline, query))
    if request.method == "GET":
        stages = stages_of(request.org, deal.pipeline)
        context = {
            "title": deal.title,
            "action": with_query(reverse("pipeline:deal_move", args=[deal.public_id]), query),
            "current": str(deal.stage.public_id),
            "next_url": back,
            **_move_dialog_context(stages),
        }
        return render(request, "pipeline/partials/board_move_page.html", context)
    raw_stage = request.POST.get("stage", "").strip()
    if raw_stage in CLOSE_STATUSES:
        url = _close_url(deal, raw_stage, back)
        return JsonResponse({"ok": False, "close_url": url}) if as_json else redirect(url)
    old_stage = deal.stage
    position = request.POST.get("position", "")
    before = request.POST.get("before") or None
    after = request.POST.get("after") or None
    try:
        target = _target_stage(request, deal, raw_stage) if raw_stage else old_stage
        if position in ("top", "bottom"):
            before, after = _neighbours(request, deal, target, position)
        moved = deal_move(
            deal=deal,
            actor=actor(request),
            stage=target,
            before=before,
            after=after,
            policy=policy,
        )
    except ValidationError as exc:
        message = " ".join(_messages_of(exc))
        if as_json:
            return json_error(message)
        messages.error(request, message)
        return redirect(back)
    moved.stage, moved.pipeline, moved.owner = target, deal.pipeline, deal.owner
    if target.pk != old_stage.pk:
        text = f"Moved “{moved.title}” to {target.name}."
    else:
        text = f"Moved “{moved.title}” within {target.name}."
    if not as_json:
        messages.success(request, text)
        return redirect(back)
    card = link_cards([deal_card(request.org, policy, moved)], query=query, next_url=back)[0]
    card_html = render_to_string(
        "pipeline/partials/deal_card.html", {"card": card, **_rights(policy)}
    )
    payload = {
        "ok": True,
        "message": text,
        "deal": str(moved.public_id),
        "stage": str(target.public_id),
        "card": card_html,
        "columns": [],
        "deltas": [],
    }
    if target.pk != old_stage.pk:  # a move within a column changes no total
        deltas = move_deltas(request.org, policy, moved, old_stage, target)
        if deltas is None:
            payload["columns"] = _totals_payload(request, policy, [old_stage, target])
        else:
            payload["deltas"] = deltas
    return JsonResponse(payload)


def _close_context(request, deal: Deal, status: str, back: str, **extra) -> dict:
    reasons = list(
        DealReason.objects.for_org(request.org)
        .filter(is_active=True, **({"kind": status} if status in CLOSE_STATUSES else {}))
        .order_by("kind", "position", "id")
    )
    return {
        "deal": deal,
        "status": status if status in CLOSE_STATUSES else "",
        "won_reasons": [r for r in reasons if r.kind == DealReason.Kind.WON],
        "lost_reasons": [r for r in reasons if r.kind == DealReason.Kind.LOST],
        "next_url": back,
        "board_query": _board_query(request, deal.pipeline),
        "errors": {},
        "chosen_reason": "",
        "note": "",
        **extra,
    }


@workspace_view("pipeline")
@require_http_methods(["GET", "POST"])
def deal_close_view(request, public_id):
    """Win or lose a deal from the board, with a reason from the organization's list (and a
    note). GET is the form (?status=won|lost picks one; without it the form asks), as a
    fragment for the board's dialog or as a page; POST closes."""
    policy = policy_for(request)
    deal = deal_for_request(request, public_id, archived=False)
    as_json = wants_json(request)
    try:
        require(policy, "edit", deal)
    except PermissionDenied as exc:
        if as_json:
            return json_error(str(exc), status=403)
        raise
    back = safe_next(request, _board_url(deal.pipeline))
    source = request.POST if request.method == "POST" else request.GET
    status = source.get("status", "")
    in_dialog = bool(request.htmx) or as_json

    def form(context, code=200):
        if in_dialog:
            return fragment(request, "pipeline/partials/close_dialog.html", context, code)
        return render(request, "pipeline/partials/board_close_page.html", context, status=code)

    if deal.status != Deal.Status.OPEN:
        done = {"form": [f"This deal is already {deal.get_status_display().lower()}."]}
        return form(_close_context(request, deal, status, back, errors=done), 400)
    if request.method == "GET":
        return form(_close_context(request, deal, status, back))
    old_stage = deal.stage
    reason = request.POST.get("reason", "")
    note = request.POST.get("note", "")
    try:
        closed = deal_close(
            deal=deal,
            actor=actor(request),
            status=status,
            reason=reason,
            note=note,
            policy=policy,
        )
    except ValidationError as exc:
        context = _close_context(
            request,
            deal,
            status,
            back,
            errors=_field_errors(exc),
            chosen_reason=reason,
            note=note,
        )
        return form(context, 400)
    label = "won" if closed.status == Deal.Status.WON else "lost"
    text = f"“{closed.title}” marked as {label} ({closed.close_reason.name})."
    if not as_json:
        messages.success(request, text)
        return redirect(back)
    return JsonResponse(
        {
            "ok": True,
            "message": text,
            "deal": str(closed.public_id),
            "status": closed.status,
            "columns": _totals_payload(request, policy, [old_stage]),
        }
    )
