"""Custom object records: the Objects page (the types a member can use), a type's record list
(filters per field, sorts, keyset pages, CSV export), a record's page, and its forms.

Rights are the Custom objects module's: view to read, create / edit / delete / export for
those actions, with record scope by the record's owner: a record outside the member's scope
is a 404 like one that does not exist, and lists, counts and exports hold only records in
scope. The module must be on for the organization (404 otherwise).

The list pages with keyset pagination (crm.pagination): at 100,000 records of one type, a
page by name or by last update is an index range scan of object_record_name /
object_record_updated, the same cost on page 1 and page 2,000, where OFFSET grows with the
page number.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from contacts.custom_fields import display_custom_value
from contacts.forms.common import active_member_users
from contacts.views.common import (
    NOT_SAVED,
    actor,
    full_page,
    redirect_or_refresh,
    submit,
    workspace_view,
)
from crm import streaming
from crm.csvutils import csv_response
from crm.decorators import module_enabled
from crm.pagination import count_up_to, page
from crm.permissions import policy_for
from crm.selectors import org_timezone
from crm.services import audit

from ..forms.object_filters import (
    ObjectRecordFilterForm,
    clean_sort,
    sort_options,
    sort_order,
)
from ..forms.object_records import ObjectRecordForm
from ..models import ObjectField, ObjectRecord, ObjectType
from ..services import object_records as services
from ..services.object_fields import fields_of
from ..services.object_types import icon_for
from .object_links import record_links_context

MODULE = services.MODULE
PAGE_SIZE = 50
COUNT_CAP = 10_000
# Fields shown as list columns besides the name; the record's page shows them all.
LIST_COLUMNS = 5
LIST_TEMPLATE = "pipeline/objects/record_list.html"


def _posted(request):
    """The form data of a POST (even an empty one: an unticked box sends nothing), else None."""
    return request.POST if request.method == "POST" else None


def _type(request, object_type_public_id) -> ObjectType:
    return get_object_or_404(
        ObjectType.objects.for_org(request.org), public_id=object_type_public_id
    )


def _record(request, objectrecord_public_id) -> ObjectRecord:
    queryset = services.scoped_records(request.org, policy_for(request)).select_related(
        "object_type", "owner", "created_by"
    )
    return get_object_or_404(queryset, public_id=objectrecord_public_id)


def _list_url(object_type: ObjectType) -> str:
    return reverse("pipeline:object_record_list", args=[object_type.public_id])


def _detail_url(record: ObjectRecord) -> str:
    return reverse("pipeline:object_record_detail", args=[record.public_id])


def _rights(request) -> dict:
    policy = policy_for(request)
    return {action: policy.can(MODULE, action) for action in ("create", "export")}


# The Objects page --------------------------------------------------------------------------


@workspace_view(MODULE, "view")
@module_enabled(MODULE)
def object_index(request):
    """Every type of the organization with how many of its records the member sees."""
    types = list(ObjectType.objects.for_org(request.org).order_by("position", "name"))
    counts = dict(
        services.scoped_records(request.org, policy_for(request))
        .order_by()
        .values("object_type")
        .annotate(n=Count("id"))
        .values_list("object_type", "n")
    )
    for object_type in types:
        object_type.record_count = counts.get(object_type.pk, 0)
        object_type.icon_key = icon_for(object_type)
    policy = policy_for(request)
    return render(
        request,
        "pipeline/objects/index.html",
        {
            "types": types,
            "can_manage_types": policy.can("settings", "edit"),
        },
    )


# A type's records ----------------------------------------------------------------------------


def _owner_choices(request) -> list[tuple[str, str]]:
    people = [(str(user.public_id), user.display_name) for user in active_member_users(request.org)]
    return [("me", "Me"), ("none", "No owner"), *people]


def _filtered(request, object_type: ObjectType, fields: list[ObjectField]):
    """(filter form, cleaned sort, the member's records of the type as filtered)."""
    filters = ObjectRecordFilterForm(
        request.GET, fields=fields, owner_choices=_owner_choices(request)
    )
    sort = clean_sort(request.GET.get("sort"), fields)
    records = services.scoped_records(request.org, policy_for(request), object_type)
    return filters, sort, filters.apply(records, request.user)


def _state_query(request, sort: str) -> str:
    """The list's query string without its cursor, for the pager and the export link."""
    pairs = [
        (name, value)
        for name, values in request.GET.lists()
        if name not in ("cursor", "sort")
        for value in values
    ]
    return urlencode([*pairs, ("sort", sort)])


def _row(record: ObjectRecord, columns: list[ObjectField]) -> dict:
    values = record.values or {}
    return {
        "record": record,
        "cells": [display_custom_value(field, values.get(field.key)) for field in columns],
    }


@workspace_view(MODULE, "view")
@module_enabled(MODULE)
@require_GET
def object_record_list(request, object_type_public_id):
    object_type = _type(request, object_type_public_id)
    fields = list(fields_of(object_type))
    filters, sort, records = _filtered(request, object_type, fields)
    result = page(
        records.select_related("owner"),
        sort_order(sort, fields),
        request.GET.get("cursor"),
        PAGE_SIZE,
    )
    columns = [f for f in fields if f.key != object_type.primary_field_key][:LIST_COLUMNS]
    total, exact = count_up_to(records, COUNT_CAP)
    state_query = _state_query(request, sort)
    context = {
        "object_type": object_type,
        "icon": icon_for(object_type),
        "filters": filters,
        "filter_count": filters.active_count(),
        "sort": sort,
        "sort_options": sort_options(fields),
        "columns": columns,
        "rows": [_row(record, columns) for record in result.rows],
        "page": result,
        "total": total,
        "total_label": f"{total:,}{'' if exact else '+'}",
        "total_exact": exact,
        "is_filtered": bool(filters.cleaned()),
        "list_url": _list_url(object_type),
        "state_query": state_query,
        "export_query": state_query,
        "rights": _rights(request),
        "can_manage_types": policy_for(request).can("settings", "edit"),
    }
    template = LIST_TEMPLATE if full_page(request) else LIST_TEMPLATE + "#results"
    return render(request, template, context)


def _export_filename(request, object_type: ObjectType) -> str:
    stamp = timezone.now().astimezone(org_timezone(request.org)).strftime("%Y%m%d-%H%M")
    return f"{object_type.key}-{request.org.slug}-{stamp}.csv"


@workspace_view(MODULE, "export")
@module_enabled(MODULE)
@require_GET
def object_record_export(request, object_type_public_id):
    """The list as filtered, every record in the member's scope, as CSV: streamed in
    constant memory, cells neutralized against spreadsheet formulas (crm.csvutils), and
    audited."""
    object_type = _type(request, object_type_public_id)
    fields = list(fields_of(object_type))
    filters, sort, records = _filtered(request, object_type, fields)
    order = [
        key.resolved().desc(nulls_last=True)
        if key.descending
        else key.resolved().asc(nulls_last=True)
        for key in sort_order(sort, fields)
    ]
    header = [
        "ID",
        "Name",
        *[field.label for field in fields],
        "Owner (email)",
        "External id",
        "Created",
        "Updated",
    ]
    audit(
        org=request.org,
        actor=actor(request),
        verb="object_records.exported",
        obj=object_type,
        object_repr=f"{object_type.plural} CSV export",
        changes={
            "format": "csv",
            "filters": {k: str(v) for k, v in filters.cleaned().items()},
            "sort": sort,
            "columns": ["id", "name", *[field.key for field in fields]],
        },
    )
    rows = records.order_by(*order).values(
        "public_id",
        "display_name",
        "values",
        "owner__email",
        "external_id",
        "created_at",
        "updated_at",
    )
    tz = org_timezone(request.org)

    def cells(row: dict) -> list:
        values = row["values"] or {}
        return [
            str(row["public_id"]),
            row["display_name"],
            *[values.get(field.key) for field in fields],
            row["owner__email"] or "",
            row["external_id"],
            streaming.local_value(row["created_at"], tz),
            streaming.local_value(row["updated_at"], tz),
        ]

    lines = (cells(row) for row in streaming.streamed(rows))
    return csv_response(lines, header, _export_filename(request, object_type))


# One record ----------------------------------------------------------------------------------


@workspace_view(MODULE, "view")
@module_enabled(MODULE)
def object_record_detail(request, objectrecord_public_id):
    record = _record(request, objectrecord_public_id)
    object_type = record.object_type
    values = record.values or {}
    rows = [
        {
            "field": field,
            "text": display_custom_value(field, values.get(field.key)),
            "is_link": field.field_type == ObjectField.FieldType.LINK,
        }
        for field in fields_of(object_type)
    ]
    policy = policy_for(request)
    return render(
        request,
        "pipeline/objects/record_detail.html",
        {
            "record": record,
            "object_type": object_type,
            "icon": icon_for(object_type),
            "rows": rows,
            "can_edit": policy.can_touch(MODULE, "edit", record.owner_id),
            "can_delete": policy.can_touch(MODULE, "delete", record.owner_id),
            **record_links_context(request, record),
        },
    )


def _form(request, object_type: ObjectType, record: ObjectRecord | None = None):
    return ObjectRecordForm(
        _posted(request),
        fields=list(fields_of(object_type)),
        org=request.org,
        user=request.user,
        policy=policy_for(request),
        record=record,
    )


@workspace_view(MODULE, "create")
@module_enabled(MODULE)
@require_http_methods(["GET", "POST"])
def object_record_create(request, object_type_public_id):
    object_type = _type(request, object_type_public_id)
    form = _form(request, object_type)
    record = submit(
        request,
        form,
        lambda: services.record_create(
            org=request.org,
            object_type=object_type,
            actor=actor(request),
            data=form.service_data(),
            policy=policy_for(request),
        ),
    )
    if record is not NOT_SAVED:
        messages.success(request, f"{object_type.name} “{record.display_name}” was added.")
        return redirect_or_refresh(request, _detail_url(record))
    return render(
        request,
        "pipeline/objects/record_form.html",
        {"form": form, "object_type": object_type, "record": None},
    )


@workspace_view(MODULE, "edit")
@module_enabled(MODULE)
@require_http_methods(["GET", "POST"])
def object_record_edit(request, objectrecord_public_id):
    record = _record(request, objectrecord_public_id)
    object_type = record.object_type
    form = _form(request, object_type, record)
    saved = submit(
        request,
        form,
        lambda: services.record_update(
            record=record,
            actor=actor(request),
            data=form.service_data(),
            policy=policy_for(request),
        ),
    )
    if saved is not NOT_SAVED:
        messages.success(request, "Saved.")
        return redirect_or_refresh(request, _detail_url(record))
    return render(
        request,
        "pipeline/objects/record_form.html",
        {"form": form, "object_type": object_type, "record": record},
    )


@workspace_view(MODULE, "delete")
@module_enabled(MODULE)
@require_POST
def object_record_delete(request, objectrecord_public_id):
    record = _record(request, objectrecord_public_id)
    object_type = record.object_type
    services.record_delete(record=record, actor=actor(request), policy=policy_for(request))
    messages.success(request, f"{object_type.name} “{record.display_name}” was deleted.")
    return redirect_or_refresh(request, _list_url(object_type))
