"""Exports of the contact list (CSV and JSON) for the current search, filter or view.

Constant memory at any size: one query read through a server-side cursor in chunks of 2,000
rows (`values()`, so no model instances), tags gathered in the same query by an array
subquery, and the file written to the response as it is read. The columns are the fields the
member may see (a hidden field has no column at all), custom fields included.

CSV cells go through `crm.csvutils.safe_cell` (inside `csv_response`), which neutralizes
text a spreadsheet would run as a formula. JSON is data for programs, not spreadsheets:
values stay exactly as stored ("+15551234567" is a phone number there, not a formula).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef

from crm import streaming

from .fields import FieldSpec
from .models import Tag

# Catalog fields that are not plain columns of the contact row, and how to read them.
_RELATED_PATHS = {"company": "company__name", "owner": "owner__email"}


@dataclass(frozen=True)
class Column:
    key: str  # the field's catalog key, also the JSON key ("custom.<key>" under "custom")
    label: str  # the CSV header
    spec: FieldSpec | None = None

    @property
    def custom_key(self) -> str | None:
        if self.spec is not None and self.spec.is_custom:
            return self.spec.key.split(".", 1)[1]
        return None


ID_COLUMN = Column("id", "ID")


def export_columns(catalog: Iterable[FieldSpec], policy) -> list[Column]:
    """The export's columns: the record id, then every field this member may see, in
    catalog order (standard fields, then custom ones)."""
    columns = [ID_COLUMN]
    for spec in catalog:
        if policy.can_see_field(spec.key):
            label = f"{spec.label} (custom)" if spec.is_custom else spec.label
            columns.append(Column(spec.key, label, spec))
    return columns


def export_values(queryset, columns: list[Column], order_by=()):
    """The queryset as plain dicts with exactly what the columns need, tags aggregated in
    the same query (no query per row or per chunk)."""
    paths = {"public_id"}
    annotations = {}
    for column in columns:
        spec = column.spec
        if spec is None:
            continue
        if spec.is_custom:
            paths.add("custom")
        elif spec.key == "tags":
            # The contact's own organization: the same tags, and the join stays within one org.
            tag_names = (
                Tag.objects.for_org(OuterRef("org_id"))
                .filter(contacts=OuterRef("pk"))
                .order_by("name")
                .values("name")
            )
            annotations["tag_names"] = ArraySubquery(tag_names)
        else:
            paths.add(_RELATED_PATHS.get(spec.key, spec.path))
    queryset = queryset.order_by(*order_by) if order_by else queryset.order_by("-created_at", "-id")
    return queryset.values(*sorted(paths), **annotations)


def _raw_value(row: dict, column: Column):
    spec = column.spec
    if spec is None:
        return str(row["public_id"])
    if spec.is_custom:
        return (row.get("custom") or {}).get(column.custom_key)
    if spec.key == "tags":
        return list(row.get("tag_names") or [])
    return row.get(_RELATED_PATHS.get(spec.key, spec.path))


_local = streaming.local_value


def csv_value(row: dict, column: Column, tz):
    """The cell's value before neutralization: choice labels, lists joined, local times."""
    value = _raw_value(row, column)
    spec = column.spec
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    if spec is not None and spec.choices and value not in (None, ""):
        return dict(spec.choices).get(value, value)
    return _local(value, tz)


def json_record(row: dict, columns: list[Column], tz) -> dict:
    """One contact as a JSON object: stored values as they are (choice keys, E.164 phones),
    custom fields together under "custom"."""
    return streaming.json_object(row, columns, tz, _raw_value)


def csv_rows(rows_queryset, columns: list[Column], tz) -> Iterator[list]:
    return streaming.csv_rows(rows_queryset, columns, tz, csv_value)


def csv_header(columns: list[Column]) -> list[str]:
    return [column.label for column in columns]


def json_stream(rows_queryset, columns: list[Column], tz) -> Iterator[str]:
    return streaming.json_array(rows_queryset, columns, tz, json_record)


def describe_columns(columns: list[Column]) -> list[str]:
    return [column.key for column in columns]
