"""Template helpers for contact pages: phone and domain display, notes as safe HTML, one
way to show any catalog field's value, and the one filter for links made of user data."""

from __future__ import annotations

import re

from django import template
from django.utils.dateparse import parse_datetime
from django.utils.html import escape
from django.utils.safestring import mark_safe

from crm.dates import format_datetime

from .. import presenters
from ..normalize import country_name, display_domain, format_phone
from ..presenters import EMPTY
from ..validators import safe_url as _safe_url

register = template.Library()


@register.filter
def phone(value) -> str:
    """An E.164 number in international format: "+442079460958" → "+44 20 7946 0958"."""
    return format_phone(value)


@register.filter
def domain(value) -> str:
    """A stored punycode domain as people write it."""
    return display_domain(value)


@register.filter
def country(value) -> str:
    return country_name(value)


@register.filter
def safe_url(value) -> str:
    """The value when it is an http(s) link, else "": every href or src made of something a
    person typed goes through this, and the template shows the text when it is "".

        {% with href=contact.linkedin_url|safe_url %}
        {% if href %}<a href="{{ href }}">…</a>{% else %}{{ contact.linkedin_url }}{% endif %}
    """
    return _safe_url(value)


# Notes ------------------------------------------------------------------------------------

# http(s) URLs in text that is already HTML-escaped; "&amp;" stays part of the URL.
_URL = re.compile(r"\bhttps?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def _linkify_escaped(text: str) -> str:
    def replace(match: re.Match) -> str:
        url = match.group(0)
        tail = ""
        # Punctuation that ends a sentence is not part of the link, but a ")" closing a
        # "(" inside the URL (Wikipedia style) is.
        while url and url[-1] in _TRAILING:
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            if url.endswith("&amp;"):
                break
            tail = url[-1] + tail
            url = url[:-1]
        if url.endswith("&amp"):  # a cut-off entity belongs to the text, not the link
            url, tail = url[:-4], "&amp" + tail
        return f'<a href="{url}" rel="nofollow noopener ugc" target="_blank">{url}</a>{tail}'

    return _URL.sub(replace, text)


def render_note(text) -> str:
    """Plain text → safe HTML: escaped first, then paragraphs (blank lines), line breaks and
    clickable http(s) links. Whatever HTML a person typed is shown as text, never run."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return ""
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]
    html_parts = []
    for paragraph in paragraphs:
        escaped = _linkify_escaped(escape(paragraph))
        html_parts.append("<p>" + escaped.replace("\n", "<br>") + "</p>")
    return mark_safe("".join(html_parts))


@register.filter
def note_html(text) -> str:
    return render_note(text)


# Field values -----------------------------------------------------------------------------


def _datetime(value) -> str:
    return format_datetime(value)


@register.filter
def tag_color(value) -> str:
    """A tag's colour when it is a plain #rrggbb, else the theme's accent (never raw CSS)."""
    return presenters.tag_color(value)


@register.simple_tag
def field_value(obj, spec):
    """The value of catalog field `spec` on a contact or company, ready to show."""
    return presenters.field_value(obj, spec)


@register.filter
def change_value(value, kind: str = ""):
    """One side of a timeline field change as text; empty shows as a dash. Datetimes are
    stored as ISO text and shown in the viewer's time zone, phones in international form."""
    if value is None or value == "" or value == []:
        return EMPTY
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if kind == "datetime" and isinstance(value, str):
        moment = parse_datetime(value)
        return _datetime(moment) if moment is not None else value
    if kind == "phone" and isinstance(value, str):
        return format_phone(value) or value
    if kind == "country" and isinstance(value, str):
        name = country_name(value)
        return f"{name} ({value})" if name and name != value else value
    return str(value)


@register.filter
def form_field_name(key: str) -> str:
    """The form/HTML name of a catalog key (custom.budget → custom__budget)."""
    return key.replace(".", "__")


@register.filter
def activity_kind(activity_type: str) -> str:
    """A CSS modifier that groups timeline types by colour."""
    if activity_type.startswith("email"):
        return "email"
    if activity_type.startswith("deal"):
        return "deal"
    if activity_type in {"call", "meeting", "sms", "note", "form_submit"}:
        return activity_type
    if activity_type in {"task_completed"}:
        return "task"
    return "system"
