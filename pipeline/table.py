"""The deal table: its sort keys (keyset pagination along the deal indexes), its columns, the
table state (the filter state of `pipeline.filters` plus sort, columns and cursor), what one
page reads and shows, and the writes of saved deal views.

A page costs a fixed number of queries whatever its size: the page itself (with the related
rows its columns show joined), one for the page's tags when the tags column is on, plus the
page furniture (catalog, views, pick-lists). Nothing counts the whole table on a page: the
count comes separately and capped (`crm.pagination.count_up_to`), as on the contact list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from django.db.models import QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils.text import slugify

from contacts.custom_fields import display_custom_value
from contacts.fields import FieldSpec, catalog_by_key
from contacts.models import SmartView
from contacts.services.smart_views import ViewKind
from crm.dates import format_datetime, format_day
from crm.pagination import OrderKey

from .filters import (
    DealFilterState,
    custom_key,
    parse_filters,
    read_filter_state,
    visible_deal_catalog,
)
from .models import Deal, DealTag, ForecastCategory

TITLE_COLUMN = "title"
# Sorts that an index of `Deal` serves: (org, <key>, id).
SORTS = {
    "updated_at": "Updated",
    "created_at": "Created",
    "value": "Value",
    "expected_close_date": "Expected close",
    "closed_at": "Closed",
}
NULLABLE_SORTS = {"expected_close_date", "closed_at"}
DEFAULT_SORT = "-updated_at"
DEFAULT_COLUMNS = [
    "value",
    "stage",
    "status",
    "owner",
    "company",
    "expected_close_date",
    "updated_at",
]
MAX_COLUMNS = 20
MAX_VIEW_NAME = 120
# Columns read through a joined row.
_RELATED = {
    "pipeline": "pipeline",
    "stage": "stage",
    "probability": "stage",
    "forecast_category": "stage",
    "owner": "owner",
    "team": "team",
    "contact": "contact",
    "company": "company",
}


# Sorting -------------------------------------------------------------------------------------


def sort_options(visible_catalog) -> dict[str, str]:
    """{sort key: label} for the sortable fields this member sees."""
    fields = catalog_by_key(visible_catalog)
    return {key: label for key, label in SORTS.items() if key in fields}


def normalize_sort(sort, visible_catalog) -> str | None:
    text = str(sort or "").strip()
    name = text.lstrip("-")
    if name not in sort_options(visible_catalog):
        return None
    return ("-" if text.startswith("-") else "") + name


def sort_order(sort: str) -> list[OrderKey]:
    """The keyset order of a (normalized) sort: its column, then the id."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    return [
        OrderKey(name, descending=descending, nullable=name in NULLABLE_SORTS),
        OrderKey("id", descending=descending),
    ]


# Columns ---------------------------------------------------------------------------------------


def column_options(visible_catalog) -> list[FieldSpec]:
    """Every field the member sees may be a column; the title always is the first one."""
    return [spec for spec in visible_catalog if spec.key != TITLE_COLUMN]


def normalize_columns(columns, visible_catalog) -> list[str]:
    allowed = {spec.key for spec in column_options(visible_catalog)}
    out: list[str] = []
    for key in columns or []:
        if isinstance(key, str) and key in allowed and key not in out:
            out.append(key)
    return out[:MAX_COLUMNS]


# The table state ---------------------------------------------------------------------------------


@dataclass
class DealTableState(DealFilterState):
    sort: str = DEFAULT_SORT
    columns: list[str] = field(default_factory=lambda: list(DEFAULT_COLUMNS))
    explicit_columns: bool = False  # ?columns= given: the column chooser overrides the view
    cursor: str = ""

    def params(self, *, cursor: bool = False, **overrides) -> list[tuple[str, str]]:
        pairs = self.filter_params()
        if self.explicit_columns:
            pairs.append(("columns", ",".join(self.columns)))
        pairs.append(("sort", self.sort))
        if cursor and self.cursor:
            pairs.append(("cursor", self.cursor))
        for name, value in overrides.items():
            pairs = [(k, v) for k, v in pairs if k != name]
            if value not in (None, ""):
                pairs.append((name, str(value)))
        return pairs


def table_state(*, org, policy, params, catalog) -> DealTableState:
    """The table's state from GET (or the bulk form's POST) parameters."""
    state = cast(
        DealTableState,
        read_filter_state(
            org=org, policy=policy, params=params, catalog=catalog, state=DealTableState()
        ),
    )
    visible = visible_deal_catalog(catalog, policy)
    sort = normalize_sort(params.get("sort"), visible)
    if sort is None and state.view is not None:
        sort = normalize_sort(state.view.sort, visible)
    state.sort = sort or DEFAULT_SORT
    raw_columns = params.get("columns")
    if raw_columns is not None:
        state.explicit_columns = True
        state.columns = normalize_columns(str(raw_columns).split(","), visible)
    elif state.view is not None and state.view.columns:
        state.columns = normalize_columns(state.view.columns, visible)
    else:
        state.columns = normalize_columns(DEFAULT_COLUMNS, visible)
    state.cursor = str(params.get("cursor") or "")
    return state


# One page ----------------------------------------------------------------------------------------


def for_page(queryset: QuerySet, columns: list[str]) -> QuerySet:
    """`queryset` with the related rows its columns show, read in one query per relation
    for the whole page. Not joined: under row-level security every joined tenant table
    brings its policy along, and the planner then re-reads the deals once per stage (80 ms
    instead of 2 for a rep's deals at 100k); a page's 50 ids look its rows up directly."""
    related = sorted({_RELATED[key] for key in columns if key in _RELATED})
    return queryset.prefetch_related(*related) if related else queryset


def tag_names_by_deal(org, deal_ids) -> dict[int, list[str]]:
    """{deal id: its tag names A to Z} for a page of deals, in one query."""
    names: dict[int, list[str]] = {}
    links = (
        DealTag.objects.filter(org=org, deal_id__in=list(deal_ids))
        .order_by("tag__name", "tag_id")
        .values_list("deal_id", "tag__name")
    )
    for deal_id, name in links:
        names.setdefault(deal_id, []).append(name)
    return names


def deal_url_maker():
    """public id -> the deal page's URL, or None while the deal page has no route."""
    try:
        slot = "00000000-0000-0000-0000-000000000000"
        pattern = reverse("pipeline:deal_detail", args=[slot])
    except NoReverseMatch:
        return None
    return lambda public_id: pattern.replace(slot, str(public_id))


def _money(value, currency: str) -> str:
    return f"{value:,.2f} {currency}".strip()


def _cell(key: str, text="", *, url: str = "", tags=None, muted: bool = False) -> dict:
    return {
        "key": key,
        "css": f"col-{slugify(key)}",
        "text": "" if text is None else str(text),
        "url": url,
        "tags": tags,
        "muted": muted,
    }


def _label(enum, value) -> str:
    try:
        return str(enum(value).label)
    except ValueError:
        return str(value or "")


def cell_for(deal: Deal, key: str, spec: FieldSpec, *, tag_names, links) -> dict:
    """One cell of a deal's row (text; escaped by the template)."""
    if spec.is_custom:
        value = (deal.custom or {}).get(custom_key(spec))
        return _cell(key, display_custom_value(spec.definition, value) if spec.definition else "")
    if key == "value":
        return _cell(key, _money(deal.value, deal.currency))
    if key == "probability":
        return _cell(key, f"{deal.effective_probability}%")
    if key == "forecast_category":
        return _cell(key, _label(ForecastCategory, deal.effective_forecast_category))
    if key == "status":
        return _cell(key, _label(Deal.Status, deal.status))
    if key == "priority":
        return _cell(key, _label(Deal.Priority, deal.priority))
    if key in ("pipeline", "stage", "team"):
        related = getattr(deal, key)
        return _cell(key, related.name if related is not None else "")
    if key == "owner":
        return _cell(key, deal.owner.display_name if deal.owner is not None else "No one")
    if key == "contact":
        contact = deal.contact
        if contact is None:
            return _cell(key)
        url = links["contact"](contact.public_id) if links.get("contact") else ""
        return _cell(key, contact.full_name or contact.email or "(no name)", url=url)
    if key == "company":
        company = deal.company
        if company is None:
            return _cell(key)
        url = links["company"](company.public_id) if links.get("company") else ""
        return _cell(key, company.name, url=url)
    if key == "tags":
        return _cell(key, tags=tag_names.get(deal.pk, []))
    if key == "expected_close_date":
        return _cell(key, format_day(deal.expected_close_date))
    if key in ("closed_at", "created_at", "updated_at"):
        return _cell(key, format_datetime(getattr(deal, key)))
    return _cell(key, getattr(deal, spec.path, ""))


def table_rows(deals, *, columns, fields, tag_names, links) -> list[dict]:
    """The page's rows: id, title, its link, and one cell per column."""
    deal_url = links.get("deal")
    rows = []
    for deal in deals:
        rows.append(
            {
                "public_id": str(deal.public_id),
                "title": deal.title,
                "url": deal_url(deal.public_id) if deal_url else "",
                "archived": deal.is_archived,
                "cells": [
                    cell_for(deal, key, fields[key], tag_names=tag_names, links=links)
                    for key in columns
                ],
            }
        )
    return rows


# Saved deal views ------------------------------------------------------------------------------
# A deal view is a contacts.SmartView with entity "deal": the contact list's view services
# write it, validated against the deal catalog and its author's deal field rules.


def can_share_deal_views(policy) -> bool:
    """Shared views appear for everyone, so sharing is for those who work the deals."""
    return policy.can("pipeline", "edit") or policy.is_settings_admin()


def deal_views(catalog) -> ViewKind:
    """The kind of saved view the deal table and the board keep, over `catalog`."""

    def clean_layout(org, policy, columns, sort):
        visible = visible_deal_catalog(catalog, policy)
        return normalize_columns(columns or [], visible), normalize_sort(sort or "", visible) or ""

    return ViewKind(
        entity=SmartView.Entity.DEAL,
        noun="deal view",
        verb="deal_view",
        module="pipeline",
        clean_filters=lambda org, policy, filters: parse_filters(filters, catalog, policy=policy),
        clean_layout=clean_layout,
        may_share=can_share_deal_views,
    )
