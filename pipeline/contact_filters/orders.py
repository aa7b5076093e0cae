"""Contact filter conditions over a contact's orders: "has an order" (with status, source
and period) and its negation, total paid in one currency, and the number of orders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q, Sum

from contacts.filters import RelatedCondition, RelatedValueError
from crm.optional_modules import is_enabled

from ..models import ExchangeRate, Order, OrderRollup
from ..money import MAX_AMOUNT, cents, clean_currency, to_decimal
from .common import (
    MAX_COUNT,
    MAX_DAYS,
    NOTHING,
    as_object,
    day,
    known_keys,
    linked_contacts,
    picks,
    shown,
    whole,
)

ORDER_OPTIONS = ("status", "source", "days", "from", "to")
STATUS_LABELS = dict(Order.Status.choices)
SOURCE_LABELS = dict(Order.Source.choices)
ORDERS_OFF = (
    "The Orders module is off for your organization, so contacts cannot be filtered by "
    "their orders."
)
ORDERS_DENIED = "Your role cannot see orders, so it cannot filter contacts by them."


def _orders_available(org, policy) -> str | None:
    if not is_enabled(org, "orders"):
        return ORDERS_OFF
    if policy is not None and not policy.can("pipeline", "view"):
        return ORDERS_DENIED
    return None


def _parse_order_options(value: Mapping) -> dict:
    out: dict = {}
    if value.get("status") not in (None, "", []):
        out["status"] = picks(value["status"], STATUS_LABELS, "status")
    if value.get("source") not in (None, "", []):
        out["source"] = picks(value["source"], SOURCE_LABELS, "source")
    days = value.get("days")
    start, end = value.get("from"), value.get("to")
    if days not in (None, ""):
        if start not in (None, "") or end not in (None, ""):
            raise RelatedValueError("takes either a number of days or dates, not both.")
        out["days"] = whole(days, "a number of days", 1, MAX_DAYS)
    if start not in (None, ""):
        out["from"] = day(start, "a start date")
    if end not in (None, ""):
        out["to"] = day(end, "an end date")
    if "from" in out and "to" in out and out["from"] > out["to"]:
        raise RelatedValueError("has a start date after its end date.")
    return out


def _parse_has_order(op, value, given) -> dict:
    value = as_object(value, '{"status": ["paid"], "days": 90}')
    known_keys(value, ORDER_OPTIONS)
    return _parse_order_options(value)


def _order_match(value: dict, ctx) -> Q:
    """The orders an option set picks (status, source, period), as a Q over orders."""
    match = Q()
    if value.get("status"):
        match &= Q(status__in=value["status"])
    if value.get("source"):
        match &= Q(source__in=value["source"])
    if value.get("days"):
        today = ctx.today
        match &= Q(order_date__gte=today - dt.timedelta(days=value["days"]))
        match &= Q(order_date__lte=today)
    if value.get("from"):
        match &= Q(order_date__gte=dt.date.fromisoformat(value["from"]))
    if value.get("to"):
        match &= Q(order_date__lte=dt.date.fromisoformat(value["to"]))
    return match


def _compile_has_order(op, value, ctx) -> Q:
    orders = Order.objects.for_org(ctx.org).filter(_order_match(value or {}, ctx))
    return linked_contacts(orders, op == "has")


def _either(keys, labels: dict) -> str:
    names = [labels.get(k, k) for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _describe_options(value) -> str:
    value = value if isinstance(value, Mapping) else {}
    parts = []
    if value.get("status"):
        parts.append(f"with status {_either(value['status'], STATUS_LABELS)}")
    if value.get("source"):
        parts.append(f"from {_either(value['source'], SOURCE_LABELS)}")
    if value.get("days"):
        days = value["days"]
        parts.append(f"in the last {days} day{'s' if days != 1 else ''}")
    start, end = value.get("from"), value.get("to")
    if start and end:
        parts.append(f"between {start} and {end}")
    elif start:
        parts.append(f"on or after {start}")
    elif end:
        parts.append(f"on or before {end}")
    return "".join(f" {part}" for part in parts)


def _describe_has_order(op, value, org) -> str:
    lead = "has an order" if op == "has" else "has no order"
    return lead + _describe_options(value)


def _orders_builder(org, policy) -> dict:
    currencies = [org.base_currency]
    rates = ExchangeRate.objects.for_org(org).values_list("currency", flat=True).distinct()
    currencies += sorted(set(rates) - {org.base_currency})
    return {
        "statuses": [[k, str(v)] for k, v in Order.Status.choices],
        "sources": [[k, str(v)] for k, v in Order.Source.choices],
        "currencies": currencies,
        "base_currency": org.base_currency,
    }


# Total paid and number of orders: sets of contacts by a sum or count of their orders. A
# predicate true for 0 (less than, a range from 0) is the complement of the contacts whose
# figure fails it, so that contacts without any order are in.


def _by_figure(rows, figure, test: Q, holds_for_zero: bool) -> Q:
    """Contacts whose `figure` (over their `rows`, 0 without any) passes `test`.

    `figure` is an aggregate over the rows grouped per contact, or None where `rows` holds
    one row per contact with the figure in its `figure` column already."""
    if figure is not None:
        rows = rows.order_by().values("contact_id").annotate(figure=figure)
    if holds_for_zero:
        return linked_contacts(rows.exclude(test), positive=False)
    return linked_contacts(rows.filter(test), positive=True)


def _amount(value, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise RelatedValueError(f"needs {what} (a number).")
    try:
        amount = to_decimal(value, what)
    except ValidationError as exc:
        raise RelatedValueError(f"needs {what} of 0 or more, up to {MAX_AMOUNT:,}.") from exc
    return str(cents(amount))


def _parse_total_paid(op, value, given) -> dict:
    if op == "between":
        value = as_object(value, '{"min": 100, "max": 1000, "currency": "EUR"}')
        known_keys(value, ("min", "max", "currency"))
        out = {"min": _amount(value.get("min"), "a lowest amount")}
        out["max"] = _amount(value.get("max"), "a highest amount")
        if Decimal(out["min"]) > Decimal(out["max"]):
            raise RelatedValueError("has a lowest amount above its highest amount.")
    else:
        value = as_object(value, '{"amount": 1000, "currency": "EUR"}')
        known_keys(value, ("amount", "currency"))
        out = {"amount": _amount(value.get("amount"), "an amount")}
    currency = value.get("currency")
    if currency in (None, ""):
        currency = given.org.base_currency
    if not isinstance(currency, str):
        raise RelatedValueError("needs a currency code such as EUR.")
    try:
        out["currency"] = clean_currency(currency)
    except ValidationError:
        raise RelatedValueError(
            f"has an unknown currency {shown(currency)!r}; use a code such as EUR."
        ) from None
    return out


def _compile_total_paid(op, value, ctx) -> Q:
    # One rollup row per contact with paid orders in the currency (pipeline.models.OrderRollup).
    paid = OrderRollup.objects.for_org(ctx.org).filter(
        status=Order.Status.PAID, currency=value["currency"]
    )
    paid = paid.annotate(figure=F("total"))
    if op == "gt":
        return _by_figure(paid, None, Q(figure__gt=Decimal(value["amount"])), False)
    if op == "lt":
        amount = Decimal(value["amount"])
        if amount <= 0:
            return NOTHING
        return _by_figure(paid, None, Q(figure__lt=amount), True)
    low, high = Decimal(value["min"]), Decimal(value["max"])
    inside = Q(figure__gte=low) & Q(figure__lte=high)
    return _by_figure(paid, None, inside, low <= 0)


def _money(amount, currency) -> str:
    try:
        return f"{Decimal(str(amount)):,.2f} {currency}"
    except ArithmeticError:
        return f"{amount} {currency}"


def _describe_total_paid(op, value, org) -> str:
    value = value if isinstance(value, Mapping) else {}
    currency = value.get("currency", "")
    note = f" ({currency} orders only, not converted)"
    if op == "between":
        low = _money(value.get("min"), "").strip()
        return f"total paid between {low} and {_money(value.get('max'), currency)}" + note
    words = {"gt": "greater than", "lt": "less than"}.get(op, op)
    return f"total paid {words} {_money(value.get('amount'), currency)}" + note


def _parse_order_count(op, value, given) -> dict:
    value = as_object(value, '{"count": 3, "status": ["paid"]}')
    known_keys(value, ("count", *ORDER_OPTIONS))
    out = {"count": whole(value.get("count"), "a number of orders", 0, MAX_COUNT)}
    out.update(_parse_order_options(value))
    return out


def _counted(value: dict, ctx):
    """(rows, figure) whose figure is each contact's number of orders that `value` picks.

    By status alone (or none), the counts are read from the rollup: one row per contact for
    one status or all orders, a few per contact for several statuses. A source or a period
    needs the orders themselves."""
    if value.get("source") or value.get("days") or value.get("from") or value.get("to"):
        return Order.objects.for_org(ctx.org).filter(_order_match(value, ctx)), Count("*")
    rollup = OrderRollup.objects.for_org(ctx.org).filter(currency=OrderRollup.ALL)
    statuses = value.get("status") or [OrderRollup.ALL]
    if len(statuses) == 1:
        return rollup.filter(status=statuses[0]).annotate(figure=F("order_count")), None
    return rollup.filter(status__in=statuses), Sum("order_count")


def _compile_order_count(op, value, ctx) -> Q:
    rows, figure = _counted(value, ctx)
    count = value["count"]
    if op == "gt":
        return _by_figure(rows, figure, Q(figure__gt=count), False)
    if op == "lt":
        return NOTHING if count <= 0 else _by_figure(rows, figure, Q(figure__lt=count), True)
    return _by_figure(rows, figure, Q(figure=count), count == 0)


def _describe_order_count(op, value, org) -> str:
    value = value if isinstance(value, Mapping) else {}
    count = value.get("count", 0)
    words = {"gt": "more than", "lt": "fewer than", "eq": "exactly"}.get(op, op)
    noun = "order" if count == 1 else "orders"
    return f"has {words} {count} {noun}" + _describe_options(value)


ORDER_CONDITIONS = [
    RelatedCondition(
        key="orders",
        label="Orders",
        group="Orders",
        ops=(("has", "has an order"), ("has_none", "has no order")),
        parse=_parse_has_order,
        compile=_compile_has_order,
        describe=_describe_has_order,
        available=_orders_available,
        builder=_orders_builder,
        value_optional=True,
    ),
    RelatedCondition(
        key="orders.total_paid",
        label="Total paid",
        group="Orders",
        ops=(("gt", "greater than"), ("lt", "less than"), ("between", "between")),
        parse=_parse_total_paid,
        compile=_compile_total_paid,
        describe=_describe_total_paid,
        available=_orders_available,
        builder=_orders_builder,
    ),
    RelatedCondition(
        key="orders.count",
        label="Number of orders",
        group="Orders",
        ops=(("gt", "more than"), ("lt", "fewer than"), ("eq", "exactly")),
        parse=_parse_order_count,
        compile=_compile_order_count,
        describe=_describe_order_count,
        available=_orders_available,
        builder=_orders_builder,
    ),
]
