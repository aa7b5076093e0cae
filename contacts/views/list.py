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
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from crm.models import Membership
from crm.pagination import count_up_to, page
from crm.permissions import policy_for
from crm.selectors import org_timezone

from ..bulk import available_actions
from ..fields import catalog_by_key
from ..filters import OPERATORS, FilterError, builder_schema, describe_filters
from ..models import Contact, SmartView, Tag
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
from ..smart_views import (
    can_manage_view,
    can_share_views,
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


def _url_or_none(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


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


# Cells ------------------------------------------------------------------------------------


def _format_moment(value, tz) -> str:
    if value is None:
        return ""
    return formats.date_format(timezone.localtime(value, tz), "DATE_FORMAT")  # docs/glossary.md


_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


def _url_maker(name: str):
    """public_id -> URL of `name`, reversed once per page rather than once per row."""
    pattern = _url_or_none(name, _PLACEHOLDER)
    if pattern is None:
        return lambda public_id: None
    return lambda public_id: pattern.replace(_PLACEHOLDER, str(public_id))


def _cell(contact: Contact, spec, tz, company_url) -> dict:
    """One table cell as {"text", "url", "tags", "title", "muted"}."""
    key = spec.key
    if key == "tags":
        return {"tags": list(contact.tags.all())}
    if key == "company":
        company = contact.company
        if company is None:
            return {"text": ""}
        return {"text": company.name, "url": company_url(company.public_id)}
    if key == "owner":
        return {
            "text": contact.owner.display_name if contact.owner else "No one",
            "muted": contact.owner is None,
        }
    if spec.is_custom:
        value = (contact.custom or {}).get(key.split(".", 1)[1])
        if isinstance(value, bool):
            return {"text": "Yes" if value else "No"}
        return {"text": "" if value is None else str(value)}
    value = getattr(contact, spec.path, None)
    if spec.type == "datetime":
        return {"text": _format_moment(value, tz), "title": value.isoformat() if value else ""}
    if spec.type == "choice":
        return {"text": dict(spec.choices).get(value, value or "")}
    if spec.type == "bool":
        return {"text": "" if value is None else ("Yes" if value else "No")}
    if spec.type == "emails":
        return {"text": ", ".join(value or [])}
    return {"text": "" if value is None else str(value)}


def _cell_html(cell: dict) -> str:
    """The cell as escaped HTML. Built here rather than in the template: 50 rows × a dozen
    columns of template tags cost more than the page's SQL."""
    attrs = ""
    if cell.get("title"):
        attrs += format_html(' title="{}"', cell["title"])
    if cell.get("muted"):
        attrs += ' class="muted"'
    if "tags" in cell:
        inner = format_html_join(
            "", '<span class="badge tag-badge">{}</span> ', ((t.name,) for t in cell["tags"])
        )
    elif cell.get("url"):
        inner = format_html('<a href="{}">{}</a>', cell["url"], cell["text"])
    else:
        inner = conditional_escape(cell["text"])
    return format_html("<td{}>{}</td>", mark_safe(attrs), inner)


def _display_name(contact: Contact, fields) -> str:
    """The row's name from the name parts the member may see (email as a fallback)."""
    parts = [getattr(contact, key) for key in ("first_name", "last_name") if key in fields]
    name = " ".join(p for p in parts if p).strip()
    if not name and "email" in fields:
        name = contact.email
    return name or "(no name)"


def _rows(contacts, columns, fields, tz) -> list[dict]:
    contact_url = _url_maker("contacts:contact_detail")
    company_url = _url_maker("contacts:company_detail")
    rows = []
    for contact in contacts:
        cells = [_cell(contact, fields[key], tz, company_url) for key in columns]
        rows.append(
            {
                "contact": contact,
                "name": _display_name(contact, fields),
                "url": contact_url(contact.public_id),
                "cells": cells,
                "cells_html": mark_safe("".join(_cell_html(cell) for cell in cells)),
            }
        )
    return rows


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
        header = {"key": key, "label": label, "sortable": key in sortable}
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


def _pick_lists(request, fields) -> tuple[list, list]:
    """Tags and members for the panel and the builder (only when the member sees them)."""
    tags = (
        list(Tag.objects.for_org(request.org).order_by("name")[:MAX_PICK_TAGS])
        if "tags" in fields
        else []
    )
    members = (
        list(
            Membership.objects.for_org(request.org)
            .active()
            .select_related("user")
            .order_by("user__first_name", "user__email")
        )
        if "owner" in fields
        else []
    )
    return tags, members


def _panel_context(catalog, state: ListState, tags, members) -> dict:
    fields = catalog_by_key(catalog)
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
        "panel": state.panel,
        "panel_tags": tags,
        "panel_members": members,
        "panel_custom": custom,
    }


def _list_context(request, state: ListState, *, size: int) -> dict:
    policy = policy_for(request)
    catalog = request_catalog(request)
    fields = catalog_by_key(catalog)
    tz = org_timezone(request.org)
    sortable = sort_options(catalog)

    result = None
    rows = []
    if not state.error:
        try:
            qs = contacts_for_state(request, state).select_related("owner", "company")
            if "tags" in state.columns:
                qs = qs.prefetch_related("tags")
            result = page(qs, sort_order(state.sort, catalog), state.cursor or None, size)
        except FilterError as exc:  # the state was checked already; this is a safety net
            state.error, state.error_condition = exc.message, exc.condition
        else:
            rows = _rows(result.rows, state.columns, fields, tz)

    tags, members = _pick_lists(request, fields)
    views = list(smart_views_for(request.org, request.user))
    for view in views:
        view.can_manage = can_manage_view(policy, request.user, view)
    list_url = reverse("contacts:contact_list")
    export = {}
    for fmt in ("csv", "json"):
        url = _url_or_none(f"contacts:export_{fmt}")
        if url and policy.can("contacts", "export"):
            export[fmt] = f"{url}?{state.query_string()}"
    state_params = state.params()
    return {
        "state": state,
        "state_params": state_params,
        "state_query": state.query_string(),
        "page": result,
        "rows": rows,
        "headers": _headers(state, fields, sortable),
        "views": views,
        "active_view": state.view,
        "view_dirty": state.view is not None and state.explicit_filters,
        "can_manage_active_view": state.view is not None
        and can_manage_view(policy, request.user, state.view),
        "can_share_views": can_share_views(policy),
        "filter_summary": describe_filters(state.filters, catalog) if state.filters else "",
        "builder_json": json.dumps(state.builder),
        "builder_schema": _builder_schema(catalog, tags, members),
        "operators": OPERATORS,
        "column_choices": column_options(catalog),
        "catalog": catalog,
        "list_url": list_url,
        "export_urls": export,
        # Row checkboxes and the bulk bar only for a member who can do something with a
        # selection: a bulk action of this list (archived or not), or an export.
        "bulk_bar_available": _template_exists(BULK_BAR_TEMPLATE)
        and (
            bool(available_actions(policy, archived=state.archived))
            or policy.can("contacts", "export")
        ),
        "create_url": _url_or_none("contacts:contact_create")
        if policy.can("contacts", "create")
        else None,
        "count_url": f"{reverse('contacts:contact_count')}?{state.query_string()}",
        "page_size": size,
        "no_js_condition": _first_condition(state),
        **_panel_context(catalog, state, tags, members),
    }


def _builder_schema(catalog, tags, members) -> dict:
    """Fields and operators for the builder, plus the pick-lists its value inputs offer."""
    schema = builder_schema(catalog)
    schema["tags"] = [tag.name for tag in tags]
    schema["users"] = [[str(m.user.public_id), m.user.display_name] for m in members]
    return schema


def _first_condition(state: ListState) -> dict:
    """The single condition the no-JavaScript builder form edits."""
    groups = state.builder.get("groups") or []
    if len(groups) == 1 and len(groups[0]["conditions"]) == 1:
        return groups[0]["conditions"][0]
    return {}


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
    if not can_manage_view(policy_for(request), request.user, view):
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
                "can_share_views": can_share_views(policy),
                "summary": describe_filters(view.filters, request_catalog(request)),
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
                "can_share_views": can_share_views(policy),
                "summary": describe_filters(view.filters, request_catalog(request)),
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
