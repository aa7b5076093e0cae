"""Exports of the deal table (CSV and JSON) for its current search, filter or saved view.

Constant memory at any size: one query read through a server-side cursor in chunks of 2,000
rows (`values()`, so no model instances), the related names joined and the tags gathered in
the same query by an array subquery, and the file written to the response as it is read.
The columns are the deal fields the member may see: a field hidden by the role's pipeline
field rules has no column at all (a hidden value takes its currency with it).

CSV cells go through `crm.csvutils.safe_cell` (inside `csv_response`), which neutralizes text a
spreadsheet would run as a formula. JSON is data for programs: values stay as stored (choice
keys, amounts as decimal strings), custom fields together under "custom".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef, Value
from django.db.models.functions import Concat, Trim

from contacts.fields import FieldSpec
from crm import streaming

from .filters import (
    CATEGORY_NOW,
    PROBABILITY_NOW,
    effective_category_expression,
    effective_probability_expression,
)
from .models import DealTag, ForecastCategory

# Catalog fields that are not plain columns of the deal row, and what is exported for them.
_RELATED_PATHS = {
    "pipeline": "pipeline__name",
    "stage": "stage__name",
    "owner": "owner__email",
    "team": "team__name",
    "contact": "contact_name",
    "company": "company__name",
    "probability": PROBABILITY_NOW,
    "forecast_category": CATEGORY_NOW,
}
_LABELS = {"owner": "Owner (email)"}
_CLOSE_REASON = "close_reason__name"


@dataclass(frozen=True)
class Column:
    key: str  # the field's catalog key, also the JSON key (custom fields under "custom")
    label: str  # the CSV header
    spec: FieldSpec | None = None
    path: str = ""

    @property
    def custom_key(self) -> str | None:
        if self.spec is not None and self.spec.is_custom:
            return self.spec.key.split(".", 1)[1]
        return None


ID_COLUMN = Column("id", "ID", path="public_id")
CLOSE_REASON_COLUMN = Column("close_reason", "Close reason", path=_CLOSE_REASON)


def export_columns(visible_catalog: Iterable[FieldSpec]) -> list[Column]:
    """The export's columns: the deal's id, every field the member may see (catalog order:
    standard fields, then custom ones), and the won/lost reason."""
    columns = [ID_COLUMN]
    for spec in visible_catalog:
        if spec.is_custom:
            columns.append(Column(spec.key, f"{spec.label} (custom)", spec, "custom"))
        elif spec.key == "tags":
            columns.append(Column(spec.key, spec.label, spec, "tag_names"))
        else:
            label = _LABELS.get(spec.key, spec.label)
            columns.append(Column(spec.key, label, spec, _RELATED_PATHS.get(spec.key, spec.path)))
        if spec.key == "status":
            columns.append(CLOSE_REASON_COLUMN)
    return columns


def export_values(queryset, columns: list[Column], order_by=()):
    """The deals as plain dicts holding exactly what the columns need: one query, read in
    chunks, with no query per row or per chunk."""
    paths = {"public_id"}
    annotations = {}
    for column in columns:
        if column.path == "tag_names":
            # The deal's own organization: the join stays within one org.
            tag_names = (
                DealTag.objects.filter(org_id=OuterRef("org_id"), deal_id=OuterRef("pk"))
                .order_by("tag__name")
                .values("tag__name")
            )
            annotations["tag_names"] = ArraySubquery(tag_names)
        elif column.path == "contact_name":
            annotations["contact_name"] = Trim(
                Concat("contact__first_name", Value(" "), "contact__last_name")
            )
        elif column.path == PROBABILITY_NOW:
            annotations[PROBABILITY_NOW] = effective_probability_expression()
        elif column.path == CATEGORY_NOW:
            annotations[CATEGORY_NOW] = effective_category_expression()
        elif column.path:
            paths.add(column.path)
    queryset = queryset.order_by(*order_by) if order_by else queryset.order_by("-updated_at", "-id")
    return queryset.values(*sorted(paths), **annotations)


_local = streaming.local_value


def _raw_value(row: dict, column: Column):
    if column.custom_key is not None:
        return (row.get("custom") or {}).get(column.custom_key)
    if column.path == "tag_names":
        return list(row.get("tag_names") or [])
    value = row.get(column.path)
    if column.path == "public_id":
        return str(value)
    return value


def csv_value(row: dict, column: Column, tz):
    """The cell's value before neutralization: choice labels, lists joined, local times."""
    value = _raw_value(row, column)
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    if column.key == "forecast_category" and value:
        return dict(ForecastCategory.choices).get(value, value)
    spec = column.spec
    if spec is not None and spec.choices and not spec.is_custom and value not in (None, ""):
        return dict(spec.choices).get(value, value)
    return _local(value, tz)


def json_record(row: dict, columns: list[Column], tz) -> dict:
    """One deal as a JSON object: stored values as they are, custom fields under "custom"."""
    return streaming.json_object(row, columns, tz, _raw_value)


def csv_rows(rows_queryset, columns: list[Column], tz) -> Iterator[list]:
    return streaming.csv_rows(rows_queryset, columns, tz, csv_value)


def csv_header(columns: list[Column]) -> list[str]:
    return [column.label for column in columns]


def json_stream(rows_queryset, columns: list[Column], tz) -> Iterator[str]:
    return streaming.json_array(rows_queryset, columns, tz, json_record)


def describe_columns(columns: list[Column]) -> list[str]:
    return [column.key for column in columns]
