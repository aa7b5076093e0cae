"""The deal table: search, filter panel, the filter builder, saved deal views, chosen columns,
keyset pagination, bulk actions and exports, fast at a hundred thousand deals.

Every page costs a fixed number of queries whatever its size (see `pipeline.table`). The
member needs the pipeline view right; rows, counts, bulk actions and exports are limited to
the deals in their record scope, and fields hidden by the role's deal field rules are neither
columns, filters nor export columns. A saved view of another organization, or another
member's private view, is a 404.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from contacts.fields import catalog_by_key
from contacts.filters import OPERATORS, FilterError, describe_filters
from contacts.models import SmartView
from contacts.presenters import url_maker
from contacts.services import smart_views
from contacts.views.common import actor, safe_next, workspace_view
from crm.csvutils import csv_response
from crm.pagination import count_up_to, page
from crm.permissions import policy_for
from crm.selectors import org_timezone
from crm.services import audit
from crm.views.jobs import safe_return_url

from .. import bulk as deal_bulk
from .. import table as deal_table
from ..export import (
    csv_header,
    csv_rows,
    describe_columns,
    export_columns,
    export_values,
    json_stream,
)
from ..filters import (
    PANEL_INPUTS,
    apply_filter_state,
    deal_builder_schema,
    deal_field_catalog,
    deal_pick_lists,
    deal_views_for,
    visible_deal_catalog,
)
from ..selectors import visible_deals
from ..table import (
    TITLE_COLUMN,
    DealTableState,
    can_share_deal_views,
    column_options,
    deal_url_maker,
    for_page,
    sort_options,
    sort_order,
    table_rows,
    table_state,
    tag_names_by_deal,
)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
COUNT_CAP = 10_000
TEMPLATE = "pipeline/deal_list.html"
BULK = "pipeline/partials/deal_table_bulk.html"
# The bulk bar's own inputs, prefixed so they never mix with the table state's parameters.
ARGUMENT_INPUTS = {"owner": "bulk_owner", "stage": "bulk_stage", "tags": "bulk_tags"}


def _catalogs(request):
    """(every deal field, the fields this member sees), built once per request."""
    cached = getattr(request, "_deal_catalogs", None)
    if cached is None:
        full = deal_field_catalog(request.org)
        cached = (full, visible_deal_catalog(full, policy_for(request)))
        request._deal_catalogs = cached
    return cached


def _params(request):
    return request.POST if request.method == "POST" else request.GET


def _state(request) -> DealTableState:
    """The table state; the no-JavaScript builder's single condition (nf_field / nf_op /
    nf_value) becomes the filter JSON here."""
    params = _params(request)
    if params.get("nf_field") and "filters" not in params:
        params = params.copy()
        op = params.get("nf_op", "eq")
        value = params.get("nf_value", "")
        raw = [v.strip() for v in value.split(",") if v.strip()] if op == "any_of" else value
        condition = {"field": params.get("nf_field"), "op": op, "value": raw}
        params["filters"] = json.dumps({"groups": [{"conditions": [condition]}]})
        for name in ("nf_field", "nf_op", "nf_value"):
            params.pop(name, None)
    if len(params.getlist("columns")) > 1:  # the column chooser's checkboxes
        params = params.copy()
        params.setlist("columns", [",".join(params.getlist("columns"))])
    full, _visible = _catalogs(request)
    return table_state(org=request.org, policy=policy_for(request), params=params, catalog=full)


def _deals(request, state: DealTableState):
    """The member's deals as `state` filters them (none for an invalid filter)."""
    policy = policy_for(request)
    full, _visible = _catalogs(request)
    return apply_filter_state(
        visible_deals(request.org, policy, archived=None),
        state,
        org=request.org,
        policy=policy,
        catalog=full,
    )


def _page_size(request) -> int:
    try:
        size = int(request.GET.get("size", PAGE_SIZE))
    except ValueError:
        size = PAGE_SIZE
    return max(1, min(size, MAX_PAGE_SIZE))


def _list_url(state: DealTableState | None = None) -> str:
    base = reverse("pipeline:deal_list")
    query = state.query_string() if state is not None else ""
    return f"{base}?{query}" if query else base


# Context ----------------------------------------------------------------------------------


def _headers(state: DealTableState, fields, sortable) -> list[dict]:
    current = state.sort.lstrip("-")
    descending = state.sort.startswith("-")
    headers = [{"key": TITLE_COLUMN, "label": "Title", "sortable": False, "css": "col-title"}]
    for key in state.columns:
        header = {
            "key": key,
            "label": fields[key].label,
            "sortable": key in sortable,
            "css": f"col-{key.replace('.', '-').replace('_', '-')}",
        }
        if header["sortable"]:
            is_current = current == key
            if is_current:
                next_sort = key if descending else f"-{key}"
            else:
                next_sort = f"-{key}" if key != "expected_close_date" else key
            header.update(
                current=is_current,
                descending=is_current and descending,
                query=state.query_string(sort=next_sort),
                aria_sort=("descending" if descending else "ascending") if is_current else "none",
            )
        headers.append(header)
    return headers


def _picked(value, chosen) -> bool:
    if chosen is None:
        return False
    return value in chosen if isinstance(chosen, list) else value == chosen


def _panel_context(fields, state: DealTableState, tag_names, members) -> dict:
    """The filter panel's inputs, with what is chosen in each worked out here, once."""
    panel = state.panel
    selects = []
    for panel_input in PANEL_INPUTS:
        spec = fields.get(panel_input.field)
        if spec is None or panel_input.kind:
            continue
        if panel_input.field == "tags":
            options = [(name, name) for name in tag_names]
        elif panel_input.field == "owner":
            options = [("me", "Mine"), ("unclaimed", "No one")] + [
                (str(m.user.public_id), m.user.display_name) for m in members
            ]
        else:
            options = list(spec.choices)
        if not options:
            continue
        chosen = panel.get(panel_input.name)
        selects.append(
            {
                "name": panel_input.name,
                "label": spec.label,
                "many": panel_input.many,
                "options": [(str(v), label, _picked(str(v), chosen)) for v, label in options],
            }
        )
    ranges = []
    for low, high, field_key, label, kind in (
        ("value_min", "value_max", "value", "Value", "number"),
        ("close_from", "close_to", "expected_close_date", "Expected close", "date"),
    ):
        if field_key in fields:
            ranges.append(
                {
                    "label": label,
                    "kind": kind,
                    "low_name": low,
                    "high_name": high,
                    "low": panel.get(low, ""),
                    "high": panel.get(high, ""),
                }
            )
    return {"panel_selects": selects, "panel_ranges": ranges}


def _links(request) -> dict:
    policy = policy_for(request)
    links = {"deal": deal_url_maker()}
    if policy.can("contacts", "view"):
        links["contact"] = url_maker("contacts:contact_detail")
    if policy.can("companies", "view"):
        links["company"] = url_maker("contacts:company_detail")
    return links


def _table_context(request, state: DealTableState, *, size: int) -> dict:
    policy = policy_for(request)
    full, visible = _catalogs(request)
    fields = catalog_by_key(visible)
    sortable = sort_options(visible)
    actions = deal_bulk.available_actions(policy, archived=state.archived)
    result = None
    rows: list[dict] = []
    if not state.error:
        try:
            queryset = for_page(_deals(request, state), state.columns)
            result = page(queryset, sort_order(state.sort), state.cursor or None, size)
        except FilterError as exc:  # the state was checked already; a safety net
            state.error, state.error_condition = exc.message, exc.condition
        else:
            ids = [deal.pk for deal in result.rows]
            tag_names = (
                tag_names_by_deal(request.org, ids) if "tags" in state.columns and ids else {}
            )
            rows = table_rows(
                result.rows,
                columns=state.columns,
                fields=fields,
                tag_names=tag_names,
                links=_links(request),
            )
    tag_names_all, members = deal_pick_lists(request.org, fields)
    views = list(deal_views_for(request.org, request.user))
    for view in views:
        view.can_manage = policy.can_manage_view(view)
    export_urls = {}
    if policy.can("pipeline", "export"):
        base = reverse("pipeline:deal_export")
        for fmt in ("csv", "json"):
            export_urls[fmt] = f"{base}?{state.query_string(format=fmt)}"
    builder = _first_condition(state)
    return {
        "state": state,
        "state_params": state.params(),
        "state_query": state.query_string(),
        "page": result,
        "rows": rows,
        "headers": _headers(state, fields, sortable),
        "views": views,
        "active_view": state.view,
        "view_dirty": state.view is not None and state.explicit_filters,
        "can_manage_active_view": state.view is not None and policy.can_manage_view(state.view),
        "can_share_views": can_share_deal_views(policy),
        "filter_summary": describe_filters(state.filters, full) if state.filters else "",
        "builder_json": json.dumps(state.builder),
        "builder_schema": deal_builder_schema(visible, tag_names_all, members),
        "no_js_condition": builder,
        "builder_field_options": [
            (spec.key, spec.label, spec.key == builder.get("field")) for spec in visible
        ],
        "operator_options": [
            (key, label, key == builder.get("op")) for key, label in OPERATORS.items()
        ],
        "column_choices": [
            (spec.key, spec.label, spec.key in state.columns) for spec in column_options(visible)
        ],
        "list_url": reverse("pipeline:deal_list"),
        "export_urls": export_urls,
        "bulk_actions": actions,
        "selectable": bool(actions),
        "bulk_members": deal_bulk.assignable_members(request.org)
        if any(a.argument == "owner" for a in actions)
        else [],
        "bulk_stages": fields["stage"].choices
        if any(a.argument == "stage" for a in actions)
        else (),
        "bulk_tag_names": tag_names_all,
        "count_url": f"{reverse('pipeline:deal_list_count')}?{state.query_string()}",
        "create_url": reverse("pipeline:deal_create")
        if policy.can("pipeline", "create") and _has_route("pipeline:deal_create")
        else None,
        "page_size": size,
        "section": "deals",
        **_panel_context(fields, state, tag_names_all, members),
    }


def _has_route(name: str) -> bool:
    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


def _first_condition(state: DealTableState) -> dict:
    """The single condition the no-JavaScript builder form edits."""
    groups = state.builder.get("groups") or []
    if len(groups) == 1 and len(groups[0]["conditions"]) == 1:
        return groups[0]["conditions"][0]
    return {}


# The table ------------------------------------------------------------------------------------


@require_GET
@workspace_view("pipeline", "view")
def deal_list(request):
    state = _state(request)
    context = _table_context(request, state, size=_page_size(request))
    if request.htmx and not request.htmx.history_restore_request:
        fragment = "table" if (request.htmx.target or "") == "deal-table" else "list"
        context["oob_builder_error"] = fragment == "table"
        return render(request, f"{TEMPLATE}#{fragment}", context)
    return render(request, TEMPLATE, context)


@require_GET
@workspace_view("pipeline", "view")
def deal_list_count(request):
    """How many deals match, exact up to COUNT_CAP (then "more than 10,000"): loaded after
    the page, so the table never waits on a count."""
    state = _state(request)
    count, exact = (0, True) if state.error else count_up_to(_deals(request, state), COUNT_CAP)
    return render(
        request,
        "pipeline/partials/deal_table_count.html",
        {"count": count, "exact": exact},
    )


@require_GET
@workspace_view("pipeline", "view")
def deal_list_bulk_count(request):
    """How many deals the table state matches for this member (the bulk bar's "Select all N
    matching"): JSON."""
    state = _state(request)
    if state.error:
        return JsonResponse({"count": 0, "label": "0", "error": state.error})
    count = _deals(request, state).count()
    return JsonResponse({"count": count, "label": f"{count:,}"})


# Bulk actions -----------------------------------------------------------------------------------


def _selection(request, state: DealTableState) -> deal_bulk.Selection:
    if request.POST.get("bulk_all") == "1":
        return deal_bulk.Selection(all_matching=True, params=tuple(state.resolved_params()))
    return deal_bulk.Selection(ids=deal_bulk.clean_ids(request.POST.getlist("ids")))


def _arguments(request, action_key: str) -> dict:
    """The chosen action's own inputs ("bulk_tags.add_tags"), or the plain name ("bulk_tags")
    when the action's own input is absent."""
    args = {}
    for name, input_name in ARGUMENT_INPUTS.items():
        value = request.POST.get(f"{input_name}.{action_key}")
        if value is None:
            value = request.POST.get(input_name)
        if value is not None:
            args[name] = value
    return args


def _message(request, text: str, *, level: str = "error"):
    """A note in the bar's dialog area (HTMX swaps only 2xx answers, so errors are 200)."""
    if not request.htmx:
        getattr(messages, "error" if level == "error" else "info")(request, text)
        return redirect(_list_url(_state(request)))
    return render(request, f"{BULK}#message", {"text": text, "level": level})


@require_POST
@workspace_view("pipeline", "view")
def deal_list_bulk(request):
    """Run a bulk action on the ticked deals or on all the table's filter matches."""
    policy = policy_for(request)
    state = _state(request)
    list_url = _list_url(state)
    return_url = safe_return_url(request, request.POST.get("bulk_return_url", "")) or list_url
    action_key = request.POST.get("bulk_action", "")
    # Rights first: a forged POST for an action the role lacks is a 403 whatever else it holds.
    try:
        prepared = deal_bulk.prepare(
            request.org, policy, action_key, _arguments(request, action_key)
        )
    except deal_bulk.BulkError as exc:
        return _message(request, str(exc))
    selection = _selection(request, state)
    if selection.all_matching and state.error:
        return _message(request, f"Fix the filter first: {state.error}")
    if selection.is_empty:
        return _message(request, "Select at least one deal.")
    preview = deal_bulk.bulk_preview(request.org, policy, selection)
    if preview.selected == 0:
        return _message(request, "No deal matches this selection.", level="info")
    expected = request.POST.get("bulk_expected", "")
    confirmed = request.POST.get("bulk_confirmed") == "1" and expected == str(preview.selected)
    if prepared.action.destructive and not confirmed:
        question, confirm_label = deal_bulk.confirm_texts(prepared, preview.selected)
        return render(
            request,
            f"{BULK}#confirm",
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
                        "bulk_expected": str(preview.selected),
                    }
                ),
                "background": preview.found > deal_bulk.INLINE_LIMIT,
            },
        )
    started = deal_bulk.bulk_start(
        org=request.org,
        actor=actor(request),
        policy=policy,
        prepared=prepared,
        selection=selection,
        preview=preview,
        return_url=return_url,
    )
    if started.job is not None:
        if request.htmx:
            return render(
                request,
                "crm/partials/job_progress.html",
                {"job": started.job, "return_url": return_url},
            )
        return redirect("crm:job_progress", public_id=started.job.public_id)
    if not request.htmx:
        messages.success(request, started.summary)
        return redirect(return_url)
    links = _links(request)
    return render(
        request,
        f"{BULK}#results",
        {
            "summary": started.summary,
            "outcome": started.outcome,
            "results": [
                {
                    "title": result.title,
                    "url": links["deal"](result.public_id)
                    if links.get("deal") and result.title
                    else "",
                    "outcome": result.outcome,
                    "reason": result.reason,
                }
                for result in started.outcome.results
            ],
            "return_url": return_url,
        },
    )


# Export -----------------------------------------------------------------------------------------


def _filename(request, ext: str) -> str:
    stamp = timezone.now().astimezone(org_timezone(request.org)).strftime("%Y%m%d-%H%M")
    return f"deals-{request.org.slug}-{stamp}.{ext}"


@require_GET
@workspace_view("pipeline", "export")
def deal_export(request):
    """The table as it is filtered (search, view, filters, archived), every deal in the
    member's scope, as CSV (default) or JSON (?format=json), streamed and audited."""
    fmt = request.GET.get("format", "csv")
    if fmt not in ("csv", "json"):
        return render(
            request,
            "pipeline/partials/deal_table_export_error.html",
            {"error": "Choose CSV or JSON.", "list_url": _list_url()},
            status=400,
        )
    state = _state(request)
    if state.error:
        return render(
            request,
            "pipeline/partials/deal_table_export_error.html",
            {"error": state.error, "list_url": _list_url()},
            status=400,
        )
    full, visible = _catalogs(request)
    columns = export_columns(visible)
    queryset = _deals(request, state)
    ids = deal_bulk.clean_ids(request.GET.getlist("ids"))
    if ids:
        queryset = queryset.filter(public_id__in=ids)
    order = [
        key.resolved().desc(nulls_last=True)
        if key.descending
        else key.resolved().asc(nulls_last=True)
        for key in sort_order(state.sort)
    ]
    audit(
        org=request.org,
        actor=actor(request),
        verb="deals.exported",
        object_type="deal",
        object_repr=f"Deals {fmt.upper()} export",
        changes={
            "format": fmt,
            "search": state.q,
            "view": state.view.name if state.view is not None else "",
            "filters": describe_filters(state.filters or {}, full),
            "filter_spec": state.filters or {},
            "archived": state.archived,
            "selected_ids": len(ids),
            "columns": describe_columns(columns),
        },
    )
    rows = export_values(queryset, columns, order)
    tz = org_timezone(request.org)
    if fmt == "csv":
        return csv_response(
            csv_rows(rows, columns, tz), csv_header(columns), _filename(request, "csv")
        )
    response = StreamingHttpResponse(
        json_stream(rows, columns, tz), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{_filename(request, "json")}"'
    response["Cache-Control"] = "no-store"
    return response


# Saved deal views -------------------------------------------------------------------------------


def _errors_of(exc: ValidationError) -> dict:
    if hasattr(exc, "message_dict"):
        return {
            ("general" if key == "__all__" else key): " ".join(texts)
            for key, texts in exc.message_dict.items()
        }
    return {"general": " ".join(exc.messages)}


def _render_with_error(request, state: DealTableState, *, form_errors=None):
    context = _table_context(request, state, size=PAGE_SIZE)
    context["save_errors"] = form_errors or {}
    context["save_name"] = request.POST.get("name", "")
    context["save_shared"] = bool(request.POST.get("is_shared"))
    return render(request, TEMPLATE, context, status=400)


@require_POST
@workspace_view("pipeline", "view")
def deal_view_create(request):
    """Save the table's current filter (view or builder, plus panel), columns and sort."""
    state = _state(request)
    if state.error:
        return _render_with_error(request, state)
    full, _visible = _catalogs(request)
    try:
        view = smart_views.smartview_create(
            org=request.org,
            actor=actor(request),
            policy=policy_for(request),
            owner=request.user,
            name=request.POST.get("name", ""),
            filters=state.filters or {"groups": []},
            is_shared=bool(request.POST.get("is_shared")),
            columns=state.columns,
            sort=state.sort,
            kind=deal_table.deal_views(full),
        )
    except FilterError as exc:
        state.error, state.error_condition = exc.message, exc.condition
        return _render_with_error(request, state)
    except ValidationError as exc:
        return _render_with_error(request, state, form_errors=_errors_of(exc))
    messages.success(request, f"View “{view.name}” saved.")
    return redirect(f"{reverse('pipeline:deal_list')}?view={view.public_id}")


def _managed_view(request, public_id) -> SmartView:
    view = get_object_or_404(deal_views_for(request.org, request.user), public_id=public_id)
    if not policy_for(request).can_manage_view(view):
        raise PermissionDenied(smart_views.MANAGE_DENIED)
    return view


def _view_form(request, view: SmartView, *, errors=None, status=200):
    full, _visible = _catalogs(request)
    return render(
        request,
        "pipeline/partials/deal_table_view_form.html",
        {
            "view": view,
            "errors": errors or {},
            "name": request.POST.get("name", "") if errors else "",
            "can_share_views": can_share_deal_views(policy_for(request)),
            "summary": describe_filters(view.filters, full),
        },
        status=status,
    )


@workspace_view("pipeline", "view")
def deal_view_edit(request, public_id):
    """GET: the rename / share form. POST: rename and share, or (with `update_filters`)
    replace the view's filter, columns and sort with the table's current ones."""
    view = _managed_view(request, public_id)
    if request.method == "GET":
        return _view_form(request, view)
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    policy = policy_for(request)
    view_url = f"{reverse('pipeline:deal_list')}?view={view.public_id}"
    if request.POST.get("update_filters"):
        state = _state(request)
        if state.error:
            return _render_with_error(request, state)
        full, _visible = _catalogs(request)
        try:
            smart_views.smartview_update(
                view=view,
                actor=actor(request),
                policy=policy,
                filters=state.filters or {"groups": []},
                columns=state.columns,
                sort=state.sort,
                kind=deal_table.deal_views(full),
            )
        except FilterError as exc:
            state.error, state.error_condition = exc.message, exc.condition
            return _render_with_error(request, state)
        messages.success(request, f"View “{view.name}” updated.")
        return redirect(view_url)
    full, _visible = _catalogs(request)
    try:
        smart_views.smartview_rename(
            view=view,
            actor=actor(request),
            policy=policy,
            name=request.POST.get("name", ""),
            is_shared=bool(request.POST.get("is_shared")),
            kind=deal_table.deal_views(full),
        )
    except ValidationError as exc:
        view.refresh_from_db()
        return _view_form(request, view, errors=_errors_of(exc), status=400)
    messages.success(request, f"View renamed to “{view.name}”.")
    return redirect(safe_next(request, view_url))


@workspace_view("pipeline", "view")
def deal_view_delete(request, public_id):
    """GET: confirm. POST: delete the view (never a deal)."""
    view = _managed_view(request, public_id)
    if request.method == "GET":
        return render(request, "pipeline/partials/deal_table_view_delete.html", {"view": view})
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    name = view.name
    smart_views.smartview_delete(
        view=view,
        actor=actor(request),
        policy=policy_for(request),
        kind=deal_table.deal_views(_catalogs(request)[0]),
    )
    messages.success(request, f"View “{name}” deleted.")
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("pipeline:deal_list")
        return response
    return redirect(reverse("pipeline:deal_list"))
