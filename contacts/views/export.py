"""Export the contact list as it is shown (search, filters, view, archived) to CSV or JSON,
streamed. Needs the contacts export right; every export is audited with its row filter."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from crm.csvutils import csv_response
from crm.permissions import policy_for
from crm.selectors import org_timezone
from crm.services import audit

from ..bulk import clean_ids
from ..export import (
    csv_header,
    csv_rows,
    describe_columns,
    export_columns,
    export_values,
    json_stream,
)
from ..filters import describe_filters
from ..selectors import (
    contacts_for_state,
    list_state_from_request,
    request_catalog,
    sort_order,
)
from .common import actor, workspace_view


def _prepare(request, fmt: str):
    """The rows and columns to export, after recording the export in the audit log."""
    state = list_state_from_request(request)
    if state.error:
        return None, None, state.error
    catalog = request_catalog(request)
    columns = export_columns(catalog, policy_for(request))
    queryset = contacts_for_state(request, state)
    ids = clean_ids(request.GET.getlist("ids"))
    if ids:
        queryset = queryset.filter(public_id__in=ids)
    order = [
        key.resolved().desc(nulls_last=True)
        if key.descending
        else key.resolved().asc(nulls_last=True)
        for key in sort_order(state.sort, catalog)
    ]
    audit(
        org=request.org,
        actor=actor(request),
        verb="contacts.exported",
        object_type="contact",
        object_repr=f"Contacts {fmt.upper()} export",
        changes={
            "format": fmt,
            "search": state.q,
            "view": state.view.name if state.view is not None else "",
            "filters": describe_filters(state.filters or {}, catalog, org=request.org),
            "filter_spec": state.filters or {},
            "archived": state.archived,
            "selected_ids": len(ids),
            "columns": describe_columns(columns),
        },
    )
    return export_values(queryset, columns, order), columns, ""


def _refusal(request, error: str):
    """A 400 page for a filter that cannot be applied. The message repeats what the person
    typed (an unknown field's name), so it goes through a template, which escapes it: a link
    to this URL must never be able to put markup in the CRM's pages."""
    return render(request, "contacts/export_error.html", {"error": error}, status=400)


def _filename(request, ext: str) -> str:
    stamp = timezone.now().astimezone(org_timezone(request.org)).strftime("%Y%m%d-%H%M")
    return f"contacts-{request.org.slug}-{stamp}.{ext}"


@require_GET
@workspace_view("contacts", "export")
def export_csv(request):
    rows, columns, error = _prepare(request, "csv")
    if error:
        return _refusal(request, error)
    tz = org_timezone(request.org)
    return csv_response(csv_rows(rows, columns, tz), csv_header(columns), _filename(request, "csv"))


@require_GET
@workspace_view("contacts", "export")
def export_json(request):
    rows, columns, error = _prepare(request, "json")
    if error:
        return _refusal(request, error)
    tz = org_timezone(request.org)
    response = StreamingHttpResponse(
        json_stream(rows, columns, tz), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{_filename(request, "json")}"'
    response["Cache-Control"] = "no-store"
    return response
