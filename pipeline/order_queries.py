"""Reads of the orders registry, limited to what a member may see.

An order is visible to a member who holds the Pipeline module's view right (orders follow the
Pipeline module's rights) when its contact is inside their contacts scope OR its deal is inside
their pipeline scope. Both halves are the existing scope helpers (contacts'
`scoped_contacts`, pipeline's `visible_deals`) used as subqueries, so a change to how either
scope is computed reaches orders too.

Also here: the Orders list's filters and sorts, totals per currency, the Orders sections of
contact and deal pages, and the rows of the CSV export.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet, Sum

from contacts.models import Contact
from contacts.selectors.record import scoped_contacts

from .models import DealContact, Order, OrderStatusChange
from .money import ISO_4217, to_decimal
from .selectors import visible_deals

# How many orders the Orders section of a contact or deal page lists.
SECTION_SHOWN = 10
SEARCH_MAX = 200
# The sorts of the Orders list: each a keyset order (all keys one way, the id last).
SORTS = {
    "-order_date": ("Newest first", ["-order_date", "-id"]),
    "order_date": ("Oldest first", ["order_date", "id"]),
    "-value": ("Highest value", ["-value", "-id"]),
    "value": ("Lowest value", ["value", "id"]),
}
DEFAULT_SORT = "-order_date"


# Scope ---------------------------------------------------------------------------------------


def order_scope_filter(org, policy) -> Q | None:
    """A Q limiting orders to those the member may see; None when they see every order of
    the organization (policy None is system work, which sees everything)."""
    if policy is None:
        return None
    if not policy.can("pipeline", "view"):
        return Q(pk__in=[])
    if _sees_every_contact(policy):
        return None  # contacts scope "all": every order's contact is visible
    contacts = scoped_contacts(org, policy).values("pk")
    deals = visible_deals(org, policy, archived=None).values("pk")
    return Q(contact_id__in=contacts) | Q(deal_id__in=deals)


def visible_orders(org, policy) -> QuerySet:
    """The organization's orders that the member may see (policy None: all of them)."""
    queryset = Order.objects.for_org(org)
    scope = order_scope_filter(org, policy)
    return queryset if scope is None else queryset.filter(scope)


def order_is_visible(org, policy, order: Order) -> bool:
    return visible_orders(org, policy).filter(pk=order.pk).exists()


def _sees_every_contact(policy) -> bool:
    return policy is None or (policy.can_access("contacts") and not policy.scope_filter("contacts"))


def linkable_contacts(org, policy) -> QuerySet:
    """The contacts an order may be given to by this member: the contacts they may see, and
    the contacts of the deals they may see (an order added on a deal for its contact)."""
    contacts = Contact.objects.for_org(org)
    if _sees_every_contact(policy):
        return contacts
    deals = visible_deals(org, policy, archived=None)
    on_deals = DealContact.objects.for_org(org).filter(deal__in=deals.values("pk"))
    return contacts.filter(
        Q(pk__in=scoped_contacts(org, policy).values("pk"))
        | Q(pk__in=deals.filter(contact__isnull=False).values("contact_id"))
        | Q(pk__in=on_deals.values("contact_id"))
    )


def deals_of_contact(org, policy, contact) -> QuerySet:
    """The deals the member may see that involve `contact` (primary or with a role), not
    archived: what an order of that contact may be linked to."""
    linked = DealContact.objects.for_org(org).filter(contact=contact).values("deal_id")
    return (
        visible_deals(org, policy, archived=False)
        .filter(Q(contact=contact) | Q(pk__in=linked))
        .order_by("-updated_at", "-id")
    )


def reachable_links(org, policy, orders) -> tuple[set[int], set[int]]:
    """(contact ids, deal ids) of `orders` whose pages the member may open: an order's
    contact or deal is a link only then (two queries whatever the number of orders)."""
    contact_ids = {o.contact_id for o in orders}
    deal_ids = {o.deal_id for o in orders if o.deal_id}
    if policy is not None and not policy.can("contacts", "view"):
        contacts: set[int] = set()
    elif _sees_every_contact(policy):
        contacts = contact_ids
    else:
        contacts = set(
            scoped_contacts(org, policy).filter(pk__in=contact_ids).values_list("pk", flat=True)
        )
    deals = (
        set(
            visible_deals(org, policy, archived=None)
            .filter(pk__in=deal_ids)
            .values_list("pk", flat=True)
        )
        if deal_ids
        else set()
    )
    return contacts, deals


# The list's filters --------------------------------------------------------------------------


@dataclass
class OrderFilters:
    """The Orders list's state as read from the query string. A value that cannot be read
    is left out of the filtering and reported in `errors` (by parameter), never a 500."""

    statuses: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    value_min: Decimal | None = None
    value_max: Decimal | None = None
    currency: str = ""
    q: str = ""
    contact: uuid.UUID | None = None
    deal: uuid.UUID | None = None
    sort: str = DEFAULT_SORT
    raw: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def is_filtered(self) -> bool:
        return bool(
            self.statuses
            or self.sources
            or self.date_from
            or self.date_to
            or self.value_min is not None
            or self.value_max is not None
            or self.currency
            or self.q
            or self.contact
            or self.deal
        )

    @property
    def panel_count(self) -> int:
        """How many of the filter panel's filters are set (for its badge)."""
        return sum(
            bool(x)
            for x in (
                self.statuses,
                self.sources,
                self.date_from or self.date_to,
                self.value_min is not None or self.value_max is not None,
                self.currency,
            )
        )

    def params(self, *, sort: str | None = None) -> list[tuple[str, str]]:
        """The state as query parameters (for links that keep it), without the cursor."""
        out: list[tuple[str, str]] = [("status", s) for s in self.statuses]
        out += [("source", s) for s in self.sources]
        for name in ("date_from", "date_to", "value_min", "value_max"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, str(value)))
        for name in ("currency", "q"):
            if getattr(self, name):
                out.append((name, getattr(self, name)))
        for name in ("contact", "deal"):
            if getattr(self, name):
                out.append((name, str(getattr(self, name))))
        chosen = self.sort if sort is None else sort
        if chosen != DEFAULT_SORT:
            out.append(("sort", chosen))
        return out

    def query_string(self, **kwargs) -> str:
        return urlencode(self.params(**kwargs))


def _day(raw: str, label: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw.strip()[:10])
    except ValueError:
        raise ValidationError(f"{label}: use a date such as 2025-01-31.") from None


def _uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        return None


def read_filters(params) -> OrderFilters:
    """The list state from a QueryDict (GET)."""
    state = OrderFilters()
    statuses = [s for s in params.getlist("status") if s]
    state.statuses = [s for s in dict.fromkeys(statuses) if s in Order.Status.values]
    if len(state.statuses) != len(set(statuses)):
        state.errors["status"] = "Choose statuses from the list."
    sources = [s for s in params.getlist("source") if s]
    state.sources = [s for s in dict.fromkeys(sources) if s in Order.Source.values]
    if len(state.sources) != len(set(sources)):
        state.errors["source"] = "Choose sources from the list."
    for name, label in (("date_from", "Order date from"), ("date_to", "Order date to")):
        raw = (params.get(name) or "").strip()
        state.raw[name] = raw[:40]
        if raw:
            try:
                setattr(state, name, _day(raw, label))
            except ValidationError as exc:
                state.errors[name] = exc.messages[0]
    for name, label in (("value_min", "Value from"), ("value_max", "Value to")):
        raw = (params.get(name) or "").strip()
        state.raw[name] = raw[:40]
        if raw:
            try:
                setattr(state, name, to_decimal(raw, label))
            except ValidationError as exc:
                state.errors[name] = exc.messages[0]
    currency = (params.get("currency") or "").strip().upper()
    if currency and currency not in ISO_4217:
        state.errors["currency"] = "Choose a currency from the list."
    else:
        state.currency = currency
    # NUL can't reach PostgreSQL text; nobody types it into a search box on purpose.
    state.q = " ".join((params.get("q") or "").replace("\x00", "").split())[:SEARCH_MAX]
    for name in ("contact", "deal"):
        raw = (params.get(name) or "").strip()
        if raw:
            value = _uuid(raw)
            if value is None:
                state.errors[name] = f"That {name} link is broken; showing every {name}'s orders."
            setattr(state, name, value)
    sort = params.get("sort") or DEFAULT_SORT
    state.sort = sort if sort in SORTS else DEFAULT_SORT
    return state


def apply_filters(queryset: QuerySet, state: OrderFilters) -> QuerySet:
    if state.statuses:
        queryset = queryset.filter(status__in=state.statuses)
    if state.sources:
        queryset = queryset.filter(source__in=state.sources)
    if state.date_from:
        queryset = queryset.filter(order_date__gte=state.date_from)
    if state.date_to:
        queryset = queryset.filter(order_date__lte=state.date_to)
    if state.value_min is not None:
        queryset = queryset.filter(value__gte=state.value_min)
    if state.value_max is not None:
        queryset = queryset.filter(value__lte=state.value_max)
    if state.currency:
        queryset = queryset.filter(currency=state.currency)
    if state.q:
        queryset = queryset.filter(Q(title__icontains=state.q) | Q(external_id__icontains=state.q))
    if state.contact:
        queryset = queryset.filter(contact__public_id=state.contact)
    if state.deal:
        queryset = queryset.filter(deal__public_id=state.deal)
    return queryset


def sort_order(state: OrderFilters) -> list[str]:
    return SORTS[state.sort][1]


# Totals --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    count: int
    total: Decimal
    paid_count: int
    paid_total: Decimal


def totals_by_currency(queryset: QuerySet) -> list[CurrencyTotal]:
    """Per currency (amounts in different currencies are never added up): how many orders,
    their value, and how many of them are paid and for how much. "Paid" is the status paid;
    a partially paid order's value is what was ordered, not what came in, so it is not
    counted as paid."""
    paid = Q(status=Order.Status.PAID)
    rows = (
        queryset.order_by()
        .values("currency")
        .annotate(
            n=Count("id"),
            total=Sum("value"),
            paid_n=Count("id", filter=paid),
            paid_total=Sum("value", filter=paid),
        )
        .order_by("currency")
    )
    zero = Decimal("0.00")
    return [
        CurrencyTotal(
            currency=row["currency"],
            count=row["n"],
            total=row["total"] or zero,
            paid_count=row["paid_n"],
            paid_total=row["paid_total"] or zero,
        )
        for row in rows
    ]


# Sections of contact and deal pages -----------------------------------------------------------


@dataclass
class OrderSection:
    orders: list[Order]
    count: int
    totals: list[CurrencyTotal]


def order_section(queryset: QuerySet) -> OrderSection:
    """The latest orders of `queryset` (one contact's or deal's visible orders), their number
    and totals per currency."""
    totals = totals_by_currency(queryset)
    latest = list(
        queryset.select_related("contact", "deal").order_by("-order_date", "-id")[:SECTION_SHOWN]
    )
    return OrderSection(orders=latest, count=sum(t.count for t in totals), totals=totals)


# The order page ------------------------------------------------------------------------------


def status_history(org, order: Order) -> QuerySet:
    """The order's status changes, newest first, with who made each."""
    return (
        OrderStatusChange.objects.for_org(org)
        .filter(order=order)
        .select_related("changed_by")
        .order_by("-changed_at", "-id")
    )


# Export --------------------------------------------------------------------------------------

EXPORT_FIELDS = [
    ("public_id", "ID"),
    ("title", "Title"),
    ("status", "Status"),
    ("value", "Value"),
    ("currency", "Currency"),
    ("order_date", "Order date"),
    ("paid_date", "Paid date"),
    ("source", "Source"),
    ("external_id", "External id"),
    ("contact__first_name", "Contact first name"),
    ("contact__last_name", "Contact last name"),
    ("contact__email", "Contact email"),
    ("deal__title", "Deal"),
    ("note", "Note"),
    ("created_at", "Created"),
]
# Contact columns follow the role's contact field rules: a hidden field has no column.
_CONTACT_FIELD_OF = {
    "contact__first_name": "first_name",
    "contact__last_name": "last_name",
    "contact__email": "email",
}
_LABELS = {
    "status": dict(Order.Status.choices),
    "source": dict(Order.Source.choices),
}


def export_columns(policy) -> list[tuple[str, str]]:
    return [
        (path, label)
        for path, label in EXPORT_FIELDS
        if path not in _CONTACT_FIELD_OF or policy.can_see_field(_CONTACT_FIELD_OF[path])
    ]


def export_cells(row: dict, columns: list[tuple[str, str]], tz) -> list:
    """One CSV row (crm.csvutils.csv_response neutralizes formula-looking text)."""
    cells = []
    for path, _label in columns:
        value = row.get(path)
        if path in _LABELS:
            value = _LABELS[path].get(str(value), value)
        elif isinstance(value, dt.datetime):
            value = value.astimezone(tz).isoformat(timespec="seconds")
        elif isinstance(value, uuid.UUID):
            value = str(value)
        cells.append(value)
    return cells


def export_rows(queryset: QuerySet, columns: list[tuple[str, str]], order: list[str]) -> QuerySet:
    """The rows to stream: plain values, no model instances, in the list's order."""
    return queryset.order_by(*order).values(*[path for path, _ in columns])
