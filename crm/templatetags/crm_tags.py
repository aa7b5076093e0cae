"""Template helpers shared by every app's pages."""

from __future__ import annotations

import json

from django import template

from crm.dates import format_datetime, format_day

register = template.Library()


@register.filter
def json_value(value) -> str:
    """`value` as a JSON literal, for JSON inside an HTML attribute such as hx-vals:
    hx-vals='{"field_key": {{ key|json_value }}}'. The result is not marked safe, so
    autoescaping turns its quotes into entities that the browser decodes back before htmx
    parses the JSON: no value can end the attribute or break the JSON. (escapejs is for
    JavaScript string literals, not for JSON in attributes.)"""
    return json.dumps(value)


# Dates and times: the one format (docs/glossary.md) ----------------------------------------


@register.filter(name="datetime", expects_localtime=False)
def datetime_filter(value) -> str:
    """{{ note.created_at|datetime }} → "Dec 3, 2026, 03:31", in the org's time zone."""
    return format_datetime(value)


@register.filter(name="day", expects_localtime=False)
def day_filter(value) -> str:
    """{{ invitation.expires_at|day }} → "Dec 3, 2026"."""
    return format_day(value)
