"""The app's one way to print a date or a moment (docs/glossary.md). The format itself is
crm/formats/<lang>/formats.py; the time zone is the active one (the organization's, see
crm.timezones). Templates use the `datetime` and `day` filters of crm_tags."""

from __future__ import annotations

import datetime as dt

from django.utils import formats, timezone


def format_datetime(value) -> str:
    """A moment as "Dec 3, 2026, 03:31" in the active time zone (the organization's: see
    crm.timezones); "" for no value. Python code that shows a moment uses this too."""
    if value in (None, ""):
        return ""
    if isinstance(value, dt.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return formats.date_format(value, "DATETIME_FORMAT")
    if isinstance(value, dt.date):
        return formats.date_format(value, "DATE_FORMAT")
    return str(value)


def format_day(value) -> str:
    """A day as "Dec 3, 2026" (a moment is taken in the active time zone first)."""
    if value in (None, ""):
        return ""
    if isinstance(value, dt.datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    if isinstance(value, dt.date):
        return formats.date_format(value, "DATE_FORMAT")
    return str(value)
