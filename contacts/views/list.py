"""The contact list: search, filter panel, smart views, sortable user-chosen columns and
keyset pagination, fast at a million contacts.

Every list request costs a fixed number of queries whatever the page size: the page itself
(owner and company joined), one for the page's tags, plus the page furniture (views, members,
tags for the panel). Nothing counts the whole table: the total is fetched separately, on
demand, and capped (see `contact_count`).
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from crm.pagination import count_up_to, page
from crm.permissions import policy_for
from crm.selectors import org_timezone

from ..bulk import available_actions
from ..fields import catalog_by_key
from ..filters import OPERATORS, FilterError, builder_schema, describe_filters, with_related
from ..models import SmartView
from ..presenters import list_rows, rows_html
from ..selectors import (
    CUSTOM_PANEL_PREFIX,
    NAME_COLUMN,
    ListState,
    column_options,
    contacts_for_state,
    list_state_from_request,
    request_catalog,
    smart_views_for,
    sort_options,
    sort_order,
)
from ..selectors.list_page import for_list_page, panel_pick_lists, tag_names_by_contact
from ..services import (
    list_preference_save,
    smartview_create,
    smartview_delete,
    smartview_rename,
    smartview_update,
)
from .common import actor, safe_next, workspace_view

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
COUNT_CAP = 10_000
MAX_PICK_TAGS = 300
BULK_BAR_TEMPLATE = "contacts/partials/bulk_bar.html"


def _template_exists(name: str) -> bool:
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return False
    return True


def _page_size(request) -> int:
    try:
        size = int(request.GET.get("size", PAGE_SIZE))
    except ValueError:
        size = PAGE_SIZE
    return max(1, min(size, MAX_PAGE_SIZE))


# Context ----------------------------------------------------------------------------------


def _headers(state: ListState, fields, sortable) -> list[dict]:
    """Column headers with the sort link each one toggles to."""
    current = state.sort.lstrip("-")
    if current == "last_name":
        current = NAME_COLUMN
    descending = state.sort.startswith("-")
    headers = []
    for key in [NAME_COLUMN, *state.columns]:
        label = "Name" if key == NAME_COLUMN else fields[key].label
        header = {
            "key": key,
            "label": label,
            "sortable": key in sortable,
            "css": f"col-{slugify(key)}",
        }
        if header["sortable"]:
            is_current = current == key
            if is_current:
                next_sort = key if descending else f"-{key}"
            else:
                # Dates and scores read best newest / highest first; text A to Z.
                kind = fields[key].type if key in fields else "text"
                next_sort = f"-{key}" if kind in ("datetime", "date", "number") else key
            header.update(
                current=is_current,
                descending=is_current and descending,
                query=state.query_string(sort=next_sort),
                aria_sort=("descending" if descending else "ascending") if is_current else "none",
            )
        headers.append(header)
    return headers


def _picked(value, chosen) -> bool:
    """`value in chosen` as a template's `in` reads it: nothing chosen, or something that is
    not a collection, is False."""
    try:
        return chosen is not None and value in chosen
    except TypeError:
        return False


# The panel's checkbox groups: (catalog field, GET parameter, legend).
_PANEL_CHECKS = (
    ("status", "status", "Status"),
    ("lifecycle_stage", "stage", "Lifecycle stage"),
    ("consent_status", "consent", "Consent status"),
)


def _panel_context(catalog, state: ListState, tag_names, members) -> dict:
    """The filter panel's inputs with what is chosen in each worked out here, once: a
    template `{% if value in panel.x %}` per option costs more than the options."""
    fields = catalog_by_key(catalog)
    panel = state.panel
    checks = [
        {
            "legend": legend,
            "name": name,
            "options": [
                (value, label, _picked(value, panel.get(name)))
                for value, label in fields[key].choices
            ],
        }
        for key, name, legend in _PANEL_CHECKS
        if key in fields
    ]
    owner = panel.get("owner")
    owner_options = [
        (str(m.user.public_id), m.user.display_name, owner == str(m.user.public_id))
        for m in members
    ]
    custom = []
    for spec in catalog:
        if not spec.is_custom:
            continue
        base = CUSTOM_PANEL_PREFIX + spec.key.split(".", 1)[1]
        custom.append(
            {
                "spec": spec,
                "name": base,
                "value": state.panel.get(base, ""),
                "min": state.panel.get(f"{base}.min", ""),
                "max": state.panel.get(f"{base}.max", ""),
            }
        )
    date_ranges = [
        {
            "label": label,
            "from_name": f"{prefix}_from",
            "to_name": f"{prefix}_to",
            "from_value": state.panel.get(f"{prefix}_from", ""),
            "to_value": state.panel.get(f"{prefix}_to", ""),
        }
        for prefix, key, label in (
            ("created", "created_at", "Created"),
            ("contacted", "last_contacted_at", "Last contacted"),
            ("activity", "last_activity_at", "Last activity"),
        )
        if key in fields
    ]
    return {
        "panel_fields": fields,
        "panel_date_ranges": date_ranges,
        "panel": panel,
        "panel_tag_options": [(name, _picked(name, panel.get("tag"))) for name in tag_names],
        "panel_checks": checks,
        "panel_owner_options": owner_options,
        "panel_custom": custom,
    }


def _list_context(request, state: ListState, *, size: int) -> dict:
    policy = policy_for(request)
    catalog = request_catalog(request)
    fields = catalog_by_key(catalog)
    sortable = sort_options(catalog)
    # Row checkboxes and the bulk bar only for a member who can do something with a
    # selection: a bulk action of this list (archived or not), or an export.
    bulk_bar_available = _template_exists(BULK_BAR_TEMPLATE) and (
        bool(available_actions(policy, archived=state.archived)) or policy.can("contacts", "export")
    )

    result = None
    rows = []
    if not state.error:
        try:
            qs = for_list_page(
                contacts_for_state(request, state), state.columns, catalog, state.sort
            )
            result = page(qs, sort_order(state.sort, catalog), state.cursor or None, size)
        except FilterError as exc:  # the state was checked already; this is a safety net
            state.error, state.error_condition = exc.message, exc.condition
        else:
            tag_names = (
                tag_names_by_contact(request.org, [contact.pk for contact in result.rows])
                if "tags" in state.columns and result.rows
                else {}
            )
            rows = list_rows(
                result.rows,
                columns=state.columns,
                fields=fields,
                tz=org_timezone(request.org),
                tag_names=tag_names,
                selectable=bulk_bar_available,
            )

    tag_names, members = panel_pick_lists(request.org, fields, tag_limit=MAX_PICK_TAGS)
    views = list(smart_views_for(request.org, request.user))
    for view in views:
        view.can_manage = policy.can_manage_view(view)
    list_url = reverse("contacts:contact_list")
    export = {}
    for fmt in ("csv", "json"):
        if policy.can("contacts", "export"):
            export[fmt] = f"{reverse(f'contacts:export_{fmt}')}?{state.query_string()}"
    state_params = state.params()
    return {
        "state": state,
        "state_params": state_params,
        "state_query": state.query_string(),
        "page": result,
        "rows": rows,
        "rows_html": rows_html(rows),
        "headers": _headers(state, fields, sortable),
        "views": views,
        "active_view": state.view,
        "view_dirty": state.view is not None and state.explicit_filters,
        "can_manage_active_view": state.view is not None and policy.can_manage_view(state.view),
        "can_share_views": policy.can_share_views(),
        "filter_summary": (
            describe_filters(state.filters, catalog, org=request.org) if state.filters else ""
        ),
        "builder_json": json.dumps(state.builder),
        # With the conditions other apps register (orders, associated records).
        "builder_schema": with_related(
            _builder_schema(catalog, tag_names, members), request.org, policy
        ),
        "column_choices": [
            (spec.key, spec.label, spec.key in state.columns) for spec in column_options(catalog)
        ],
        "list_url": list_url,
        "export_urls": export,
        "bulk_bar_available": bulk_bar_available,
        "create_url": reverse("contacts:contact_create")
        if policy.can("contacts", "create")
        else None,
        "count_url": f"{reverse('contacts:contact_count')}?{state.query_string()}",
        "page_size": size,
        **_no_js_builder(catalog, state),
        **_panel_context(catalog, state, tag_names, members),
    }


def _builder_schema(catalog, tag_names, members) -> dict:
    """Fields and operators for the builder, plus the pick-lists its value inputs offer."""
    schema = builder_schema(catalog)
    schema["tags"] = list(tag_names)
    schema["users"] = [[str(m.user.public_id), m.user.display_name] for m in members]
    return schema


def _first_condition(state: ListState) -> dict:
    """The single condition the no-JavaScript builder form edits."""
    groups = state.builder.get("groups") or []
    if len(groups) == 1 and len(groups[0]["conditions"]) == 1:
        return groups[0]["conditions"][0]
    return {}


def _no_js_builder(catalog, state: ListState) -> dict:
    """The no-JavaScript builder's field and operator options, the chosen ones marked."""
    condition = _first_condition(state)
    field, op = condition.get("field"), condition.get("op")
    return {
        "no_js_condition": condition,
        "builder_field_options": [(spec.key, spec.label, spec.key == field) for spec in catalog],
        "operator_options": [(key, label, key == op) for key, label in OPERATORS.items()],
    }


# Views ------------------------------------------------------------------------------------


@require_GET
@workspace_view("contacts", "view")
def contact_list(request):
    state = _state_with_simple_condition(request)
    context = _list_context(request, state, size=_page_size(request))
    if request.htmx and not request.htmx.history_restore_request:
        target = request.htmx.target or ""
        fragment = "table" if target == "contact-table" else "list"
        context["oob_builder_error"] = fragment == "table"
        return render(request, f"contacts/contact_list.html#{fragment}", context)
    return render(request, "contacts/contact_list.html", context)


def _state_with_simple_condition(request) -> ListState:
    """The list state; the no-JavaScript builder sends one condition as nf_field / nf_op /
    nf_value, which becomes the filter JSON here."""
    field = request.GET.get("nf_field")
    if field and "filters" not in request.GET:
        params = request.GET.copy()
        op = request.GET.get("nf_op", "eq")
        value = request.GET.get("nf_value", "")
        raw_value = [v.strip() for v in value.split(",") if v.strip()] if op == "any_of" else value
        condition = {"field": field, "op": op, "value": raw_value}
        params["filters"] = json.dumps({"groups": [{"conditions": [condition]}]})
        for name in ("nf_field", "nf_op", "nf_value"):
            params.pop(name, None)
        request.GET = params
    return list_state_from_request(request)


@require_GET
@workspace_view("contacts", "view")
def contact_count(request):
    """The number of matching contacts, exact up to COUNT_CAP (then "10,000+"): loaded after
    the page, so the list itself never waits on a count."""
    state = list_state_from_request(request)
    count, exact = (
        (0, True) if state.error else count_up_to(contacts_for_state(request, state), COUNT_CAP)
    )
    return render(
        request,
        "contacts/partials/list_count.html",
        {"count": count, "exact": exact, "state": state},
    )


@require_POST
@workspace_view("contacts", "view")
def save_columns(request):
    """Remember the member's columns (the column chooser) and show the list with them."""
    policy = policy_for(request)
    columns = request.POST.getlist("columns")
    pref = list_preference_save(org=request.org, user=request.user, policy=policy, columns=columns)
    state = list_state_from_request(request)
    query = state.query_string(columns=",".join(pref.columns) or None)
    messages.success(request, "Columns saved.")
    return redirect(f"{reverse('contacts:contact_list')}?{query}")


# Smart views ---------------------------------------------------------------------------------


def _render_list_with_error(request, state: ListState, *, status=400, form_errors=None):
    context = _list_context(request, state, size=PAGE_SIZE)
    context["save_errors"] = form_errors or {}
    context["save_name"] = request.POST.get("name", "")
    context["save_shared"] = bool(request.POST.get("is_shared"))
    return render(request, "contacts/contact_list.html", context, status=status)


def _errors_of(exc: ValidationError) -> dict:
    if hasattr(exc, "message_dict"):
        return {
            ("general" if key == "__all__" else key): " ".join(messages_)
            for key, messages_ in exc.message_dict.items()
        }
    return {"general": " ".join(exc.messages)}


@require_POST
@workspace_view("contacts", "view")
def smart_view_create(request):
    """Save the list's current filter (view or builder, plus panel), columns and sort."""
    policy = policy_for(request)
    state = list_state_from_request(request)
    if state.error:
        return _render_list_with_error(request, state)
    try:
        view = smartview_create(
            org=request.org,
            actor=actor(request),
            policy=policy,
            owner=request.user,
            name=request.POST.get("name", ""),
            filters=state.filters or {"groups": []},
            is_shared=bool(request.POST.get("is_shared")),
            columns=state.columns,
            sort=state.sort,
        )
    except FilterError as exc:
        state.error, state.error_condition = exc.message, exc.condition
        return _render_list_with_error(request, state)
    except ValidationError as exc:
        return _render_list_with_error(request, state, form_errors=_errors_of(exc))
    messages.success(request, f"View “{view.name}” saved.")
    return redirect(f"{reverse('contacts:contact_list')}?view={view.public_id}")


def _managed_view(request, public_id) -> SmartView:
    view = get_object_or_404(smart_views_for(request.org, request.user), public_id=public_id)
    if not policy_for(request).can_manage_view(view):
        raise PermissionDenied(
            "Only the view's author (or an admin, for shared views) may change it."
        )
    return view


@workspace_view("contacts", "view")
def smart_view_edit(request, public_id):
    """GET: the rename / share form. POST: rename and share, or (with `update_filters`) replace
    the view's filter, columns and sort with the list's current ones."""
    view = _managed_view(request, public_id)
    policy = policy_for(request)
    list_url = f"{reverse('contacts:contact_list')}?view={view.public_id}"
    if request.method == "GET":
        return render(
            request,
            "contacts/partials/smart_view_form.html",
            {
                "view": view,
                "errors": {},
                "can_share_views": policy.can_share_views(),
                "summary": describe_filters(
                    view.filters, request_catalog(request), org=request.org
                ),
            },
        )
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    if request.POST.get("update_filters"):
        state = list_state_from_request(request)
        if state.error:
            return _render_list_with_error(request, state)
        try:
            smartview_update(
                view=view,
                actor=actor(request),
                policy=policy,
                filters=state.filters or {"groups": []},
                columns=state.columns,
                sort=state.sort,
            )
        except FilterError as exc:
            state.error, state.error_condition = exc.message, exc.condition
            return _render_list_with_error(request, state)
        messages.success(request, f"View “{view.name}” updated.")
        return redirect(list_url)
    try:
        smartview_rename(
            view=view,
            actor=actor(request),
            policy=policy,
            name=request.POST.get("name", ""),
            is_shared=bool(request.POST.get("is_shared")),
        )
    except ValidationError as exc:
        view.refresh_from_db()
        return render(
            request,
            "contacts/partials/smart_view_form.html",
            {
                "view": view,
                "errors": _errors_of(exc),
                "name": request.POST.get("name", ""),
                "can_share_views": policy.can_share_views(),
                "summary": describe_filters(
                    view.filters, request_catalog(request), org=request.org
                ),
            },
            status=400,
        )
    messages.success(request, f"View renamed to “{view.name}”.")
    return redirect(safe_next(request, list_url))


@workspace_view("contacts", "view")
def smart_view_delete(request, public_id):
    """GET: confirm. POST: delete the view (never any contact)."""
    view = _managed_view(request, public_id)
    if request.method == "GET":
        return render(request, "contacts/partials/smart_view_delete.html", {"view": view})
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    name = view.name
    smartview_delete(view=view, actor=actor(request), policy=policy_for(request))
    messages.success(request, f"View “{name}” deleted.")
    return redirect(reverse("contacts:contact_list"))
