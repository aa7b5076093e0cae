"""Template helpers shared by every app's pages."""

from __future__ import annotations

import json

from django import template

register = template.Library()


@register.filter
def json_value(value) -> str:
    """`value` as a JSON literal, for JSON inside an HTML attribute such as hx-vals:
    hx-vals='{"field_key": {{ key|json_value }}}'. The result is not marked safe, so
    autoescaping turns its quotes into entities that the browser decodes back before htmx
    parses the JSON: no value can end the attribute or break the JSON. (escapejs is for
    JavaScript string literals, not for JSON in attributes.)"""
    return json.dumps(value)
