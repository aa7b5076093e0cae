"""The periods a forecast is read for: calendar months and quarters, or a custom range.

Every period is a range of whole days, both ends included, in the organization's time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import formats

PERIOD_CHOICES = [
    ("this_month", "This month"),
    ("this_quarter", "This quarter"),
    ("next_quarter", "Next quarter"),
    ("custom", "Custom range"),
]
DEFAULT_PERIOD = "this_quarter"
# A custom range may cover up to this many days: the month breakdown stays readable.
MAX_CUSTOM_DAYS = 731


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after the month of `day`."""
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_end(day: dt.date) -> dt.date:
    return add_months(day, 1) - dt.timedelta(days=1)


def quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def quarter_end(day: dt.date) -> dt.date:
    return add_months(quarter_start(day), 3) - dt.timedelta(days=1)


def quarter_label(start: dt.date) -> str:
    return f"Q{(start.month - 1) // 3 + 1} {start.year}"


def month_label(start: dt.date) -> str:
    return formats.date_format(start, "M Y")


@dataclass(frozen=True)
class Period:
    key: str
    start: dt.date
    end: dt.date  # included
    label: str

    def contains(self, day: dt.date | None) -> bool:
        return day is not None and self.start <= day <= self.end

    def months(self) -> list[dt.date]:
        """The first day of every month the period touches, in order."""
        out, current = [], month_start(self.start)
        while current <= self.end:
            out.append(current)
            current = add_months(current, 1)
        return out

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def range_text(self) -> str:
        return _range(self.start, self.end)


def named_period(key: str, today: dt.date) -> Period:
    """One of the picker's named periods around `today` (an unknown key: this quarter)."""
    if key == "this_month":
        start = month_start(today)
        return Period(key, start, month_end(today), month_label(start))
    if key == "next_quarter":
        start = add_months(quarter_start(today), 3)
        return Period(key, start, quarter_end(start), quarter_label(start))
    start = quarter_start(today)
    return Period("this_quarter", start, quarter_end(today), quarter_label(start))


def custom_period(start: dt.date, end: dt.date) -> Period:
    """A custom range; the caller has checked that start <= end and the span is allowed."""
    return Period("custom", start, end, _range(start, end))


def _range(start: dt.date, end: dt.date) -> str:
    first = formats.date_format(start, "DATE_FORMAT")
    return f"{first} – {formats.date_format(end, 'DATE_FORMAT')}"


def period_of(day: dt.date | None, granularity: str) -> tuple[int, int] | None:
    """A sortable key of the month or quarter `day` falls in (None: no date)."""
    if day is None:
        return None
    if granularity == "month":
        return (day.year, day.month)
    return (day.year, (day.month - 1) // 3 + 1)


def quota_period_end(kind: str, start: dt.date) -> dt.date:
    return month_end(start) if kind == "month" else quarter_end(start)


def quota_period_label(kind: str, start: dt.date) -> str:
    return month_label(start) if kind == "month" else quarter_label(start)
