"""Deals as forecast lines: the one definition the weekly snapshot stores and "what changed"
compares the present with, computed in SQL so that each deal is rounded on its own.

A line has a status, a category, a close day (an open deal's expected close date, a closed
deal's close day in the organization's time zone), a value in the base currency (an open
deal at the rate in effect on the line's day, a closed one at the rate of its close day) and
a weighted value (value × probability, won 100 and lost 0). A deal whose currency has no
rate in effect has no line: it is reported as missing instead.

A deal's commit and weighted contributions to a period are read from its line:
- commit: a won deal that closed in the period, an open deal in commit (or closed)
  category expected to close in it;
- weighted: a won deal that closed in the period, an open deal not omitted expected in it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Case, Count, F, IntegerField, Q, Sum, Value, When
from django.db.models.functions import Coalesce, Round, TruncDate

from crm.selectors import start_of_day

from ..models import Deal, ForecastCategory
from ..money import ZERO
from .figures import COMMIT_CATEGORIES, effective_category_expression
from .periods import Period
from .rates import RateBook, rate_expression

# Closed deals stay in the snapshot this long after they closed, so that a deal won or lost
# between two snapshots up to this far apart is seen as won or lost.
RECENT_DAYS = 100
NO_DAY = dt.date(1, 1, 1)  # stands for "no close date" where SQL must compare dates


def probability_of_line():
    return Case(
        When(status=Deal.Status.WON, then=Value(100)),
        When(status=Deal.Status.LOST, then=Value(0)),
        default=Coalesce("probability", "stage__probability"),
        output_field=IntegerField(),
    )


def current_lines(deals, book: RateBook, *, today: dt.date, tz: dt.tzinfo, closed_since: dt.date):
    """`deals` (unarchived, of one organization) that are open or closed on or after
    `closed_since`, annotated as lines at the rates in effect on `today`: fc_rate (NULL
    when missing), fc_category, fc_probability, fc_close, fc_close_key, fc_value,
    fc_weighted."""
    rate = rate_expression(book, today=today, tz=tz, closed_since=closed_since, closed_until=today)
    return (
        in_window(deals, tz=tz, closed_since=closed_since)
        .annotate(
            fc_rate=rate,
            fc_category=effective_category_expression(),
            fc_probability=probability_of_line(),
            fc_close=Case(
                When(status=Deal.Status.OPEN, then=F("expected_close_date")),
                default=TruncDate("closed_at", tzinfo=tz),
            ),
        )
        .annotate(
            fc_close_key=Coalesce("fc_close", Value(NO_DAY)),
            fc_value=Round(F("value") * F("fc_rate"), 2),
        )
        .annotate(fc_weighted=Round(F("fc_value") * F("fc_probability") / Value(100), 2))
        .order_by()
    )


def missing_rates(lines, book: RateBook, closed_since: dt.date):
    """(currency, deals, amount) of `lines` (from current_lines) that have no rate. Only
    currencies that may lack one are looked at: a currency whose first rate took effect
    before the window has one on every day of it."""
    covered = [book.base_currency]
    for code in book.currencies():
        first = book.first_effective(code)
        if first is not None and first <= closed_since:
            covered.append(code)
    return (
        lines.exclude(currency__in=covered)
        .filter(fc_rate__isnull=True)
        .values("currency")
        .annotate(n=Count("id"), amount=Sum("value"))
        .order_by("currency")
    )


def in_window(deals, *, tz: dt.tzinfo, closed_since: dt.date):
    """The deals a line is made for: open, or closed on or after `closed_since`."""
    return deals.filter(
        Q(status=Deal.Status.OPEN) | Q(closed_at__gte=start_of_day(closed_since, tz))
    ).order_by()


def in_period(period: Period, tz: dt.tzinfo) -> Q:
    """Deals whose line falls in `period`, on the deal's own columns (so an index helps):
    open ones expected in it, closed ones closed in it."""
    return Q(
        status=Deal.Status.OPEN,
        expected_close_date__gte=period.start,
        expected_close_date__lte=period.end,
    ) | (
        ~Q(status=Deal.Status.OPEN)
        & Q(
            closed_at__gte=start_of_day(period.start, tz),
            closed_at__lt=start_of_day(period.end + dt.timedelta(days=1), tz),
        )
    )


def value_at(book: RateBook, *, day: dt.date, tz: dt.tzinfo, closed_since: dt.date, until):
    """A deal's value at the rates of `day` (closed deals at their close day's), rounded."""
    rate = rate_expression(book, today=day, tz=tz, closed_since=closed_since, closed_until=until)
    return Round(F("value") * rate, 2)


@dataclass(frozen=True)
class LineFields:
    """Where a queryset keeps a line's parts: a snapshot's lines or current_lines()."""

    status: str
    category: str
    close: str
    value: str
    weighted: str


SNAPSHOT_FIELDS = LineFields(
    "status", "category", "expected_close_date", "value_base", "weighted_base"
)
CURRENT_FIELDS = LineFields("status", "fc_category", "fc_close", "fc_value", "fc_weighted")


def _commit_q(f: LineFields, period: Period) -> Q:
    in_period = Q(**{f"{f.close}__gte": period.start, f"{f.close}__lte": period.end})
    counted = Q(**{f.status: Deal.Status.WON}) | Q(
        **{f.status: Deal.Status.OPEN, f"{f.category}__in": sorted(COMMIT_CATEGORIES)}
    )
    return in_period & counted


def _weighted_q(f: LineFields, period: Period) -> Q:
    in_period = Q(**{f"{f.close}__gte": period.start, f"{f.close}__lte": period.end})
    counted = Q(**{f.status: Deal.Status.WON}) | (
        Q(**{f.status: Deal.Status.OPEN}) & ~Q(**{f.category: ForecastCategory.OMITTED})
    )
    return in_period & counted


def period_totals(lines, fields: LineFields, period: Period) -> tuple[Decimal, Decimal]:
    """(commit, weighted) of `period` over `lines`, in one query."""
    totals = lines.aggregate(
        commit=Sum(fields.value, filter=_commit_q(fields, period), default=ZERO),
        weighted=Sum(fields.weighted, filter=_weighted_q(fields, period), default=ZERO),
    )
    return Decimal(totals["commit"]), Decimal(totals["weighted"])


@dataclass(frozen=True)
class LineState:
    status: str
    category: str
    close: dt.date | None
    value: Decimal
    weighted: Decimal

    def commit_in(self, period: Period) -> Decimal:
        if not period.contains(self.close):
            return ZERO
        if self.status == Deal.Status.WON:
            return self.value
        if self.status == Deal.Status.OPEN and self.category in COMMIT_CATEGORIES:
            return self.value
        return ZERO

    def weighted_in(self, period: Period) -> Decimal:
        if not period.contains(self.close):
            return ZERO
        if self.status == Deal.Status.WON:
            return self.value
        if self.status == Deal.Status.OPEN and self.category != ForecastCategory.OMITTED:
            return self.weighted
        return ZERO
