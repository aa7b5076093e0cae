"""Conversion to the organization's base currency with dated exchange rates.

An ExchangeRate says how many units of the base currency one unit of its currency is worth,
from its effective date until the next rate of the same currency. So the rate in effect on
a day is the latest one whose effective date is on or before that day; the base currency is
worth 1 on every day. A currency with no rate in effect is never counted as if it were
worth 1: the amount is reported as missing and left out of every total, and the page says
so beside the figures.

`RateBook` holds an organization's rates (one query); `Converter` converts amounts with it
and remembers which rates it used and what it could not convert, for the footnote and the
warnings. `rate_expression` is the same rule as a SQL CASE, for the places that must round
each deal on its own (the snapshot and "what changed").
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Case, DecimalField, Q, Value, When

from crm.selectors import start_of_day

from ..models import ExchangeRate
from ..money import ZERO

ONE = Decimal(1)
RATE_FIELD: DecimalField = DecimalField(max_digits=20, decimal_places=10)


def plain_rate(rate) -> str:
    """A rate without trailing zeros: "1.08", not "1.0800000000"."""
    return format(Decimal(rate).normalize(), "f")


@dataclass(frozen=True)
class UsedRate:
    currency: str
    rate: Decimal
    effective_date: dt.date

    @property
    def plain(self) -> str:
        return plain_rate(self.rate)


@dataclass
class MissingRate:
    """Amounts in one currency that could not be converted."""

    currency: str
    deals: int = 0
    amount: Decimal = ZERO
    first_effective: dt.date | None = None  # the currency's first rate, if it has any

    @property
    def message(self) -> str:
        deals = f"{self.deals} deal{'s' if self.deals != 1 else ''}"
        text = (
            f"{deals} in {self.currency} ({self.currency} {self.amount:,.2f}) "
            "left out of the totals: "
        )
        if self.first_effective is None:
            return text + f"there is no exchange rate for {self.currency}."
        return text + (
            f"the first {self.currency} rate takes effect on {self.first_effective:%Y-%m-%d}, "
            "after the dates these deals are counted on."
        )


class RateBook:
    """An organization's exchange rates, by currency, ordered by effective date."""

    def __init__(self, base_currency: str, rates=()):
        self.base_currency = base_currency
        by_currency: dict[str, list[tuple[dt.date, Decimal]]] = defaultdict(list)
        for currency, rate, effective_date in rates:
            if currency != base_currency:
                by_currency[currency].append((effective_date, Decimal(rate)))
        self._rates = {cur: sorted(items) for cur, items in by_currency.items()}
        self._dates = {cur: [day for day, _ in items] for cur, items in self._rates.items()}

    @classmethod
    def load(cls, org) -> RateBook:
        rows = ExchangeRate.objects.for_org(org).values_list("currency", "rate", "effective_date")
        return cls(org.base_currency, rows)

    def currencies(self) -> list[str]:
        return sorted(self._rates)

    def entry_on(self, currency: str, day: dt.date) -> tuple[dt.date, Decimal] | None:
        """(effective date, rate) of the rate in effect on `day`, or None."""
        if currency == self.base_currency:
            return (dt.date.min, ONE)
        dates = self._dates.get(currency)
        if not dates:
            return None
        index = bisect.bisect_right(dates, day) - 1
        return self._rates[currency][index] if index >= 0 else None

    def rate_on(self, currency: str, day: dt.date) -> Decimal | None:
        entry = self.entry_on(currency, day)
        return None if entry is None else entry[1]

    def rates_on(self, day: dt.date) -> dict[str, Decimal]:
        """Every currency's rate in effect on `day` (the base currency included)."""
        out = {self.base_currency: ONE}
        for currency in self._rates:
            rate = self.rate_on(currency, day)
            if rate is not None:
                out[currency] = rate
        return out

    def first_effective(self, currency: str) -> dt.date | None:
        dates = self._dates.get(currency)
        return dates[0] if dates else None

    def segments(
        self, currency: str, since: dt.date, until: dt.date
    ) -> list[tuple[dt.date, dt.date | None, Decimal]]:
        """The rates of `currency` in effect at some day of [since, until], each as
        (first day, first day of the next rate or None, rate)."""
        items = self._rates.get(currency, [])
        out = []
        for index, (start, rate) in enumerate(items):
            end = items[index + 1][0] if index + 1 < len(items) else None
            if start > until or (end is not None and end <= since):
                continue
            out.append((start, end, rate))
        return out


class Converter:
    """Converts amounts with a RateBook, noting the rates used and what was left out."""

    def __init__(self, book: RateBook):
        self.book = book
        self._used: dict[tuple[str, dt.date], Decimal] = {}
        self._missing: dict[str, MissingRate] = {}

    @property
    def base_currency(self) -> str:
        return self.book.base_currency

    def rate(self, currency: str, day: dt.date, *, deals: int = 0, amount=ZERO) -> Decimal | None:
        """The rate for `currency` on `day`; None (and the amount noted as missing) when
        there is none. `deals` and `amount` describe what the rate is asked for."""
        entry = self.book.entry_on(currency, day)
        if entry is None:
            missing = self._missing.get(currency)
            if missing is None:
                missing = self._missing[currency] = MissingRate(
                    currency, first_effective=self.book.first_effective(currency)
                )
            missing.deals += deals
            missing.amount += Decimal(amount or 0)
            return None
        if currency != self.book.base_currency:
            self._used[currency, entry[0]] = entry[1]
        return entry[1]

    def convert(self, amount, currency: str, day: dt.date, *, deals: int = 1) -> Decimal | None:
        """`amount` of `currency` in the base currency on `day`, unrounded; None when no
        rate is in effect (then it is noted as missing)."""
        rate = self.rate(currency, day, deals=deals, amount=amount)
        return None if rate is None else Decimal(amount) * rate

    def rates_used(self) -> list[UsedRate]:
        return [
            UsedRate(currency, rate, day) for (currency, day), rate in sorted(self._used.items())
        ]

    def missing(self) -> list[MissingRate]:
        return [self._missing[cur] for cur in sorted(self._missing)]


def rate_expression(
    book: RateBook,
    *,
    today: dt.date,
    tz: dt.tzinfo,
    closed_since: dt.date,
    closed_until: dt.date,
    prefix: str = "",
):
    """A SQL expression of the rate each deal converts at: an open deal at the rate in
    effect on `today`, a won or lost deal at the rate of the day it closed (closed deals
    are only asked about between `closed_since` and `closed_until`). NULL where no rate is
    in effect. `prefix` reaches the deal through a relation ("deal__")."""
    currency, status, closed_at = f"{prefix}currency", f"{prefix}status", f"{prefix}closed_at"
    whens = [When(Q(**{currency: book.base_currency}), then=Value(ONE))]
    for code in book.currencies():
        rate = book.rate_on(code, today)
        if rate is not None:
            whens.append(When(Q(**{currency: code, status: "open"}), then=Value(rate)))
    for code in book.currencies():
        for start, end, rate in book.segments(code, closed_since, closed_until):
            condition = Q(**{currency: code, f"{closed_at}__gte": start_of_day(start, tz)})
            condition &= ~Q(**{status: "open"})
            if end is not None:
                condition &= Q(**{f"{closed_at}__lt": start_of_day(end, tz)})
            whens.append(When(condition, then=Value(rate)))
    return Case(*whens, default=Value(None, output_field=RATE_FIELD), output_field=RATE_FIELD)
