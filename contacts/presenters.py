"""What the contact pages show, as HTML made in Python once per row or field.

A page of 100 contacts × a dozen columns is over a thousand cells. Through template tags,
includes and format_html each cell cost far more than the page's SQL, so the list's rows and
the record's field rows are written here, with each column's renderer chosen once per page
rather than once per cell. Every value is escaped with `html.escape`, the function Django's
`escape` wraps, so the markup is the same as the templates made.

    rows = list_rows(page.rows, columns=..., fields=..., tz=..., tag_names=..., selectable=True)
    rows[0]["html"]        # '<tr><td class="col-select">…</td><th scope="row" …>…</tr>'
    field_value(contact, spec)   # one catalog field's value, safe HTML
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from html import escape
from urllib.parse import quote

from django.urls import reverse
from django.utils import dateformat, formats
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from crm.dates import format_datetime

from .custom_fields import display_custom_value
from .fields import FieldSpec
from .models import Contact, CustomFieldDefinition
from .normalize import country_name, display_domain, format_phone
from .validators import safe_url

EMPTY = mark_safe('<span class="muted">—</span>')

# Stands in for the argument that changes per row or field, so reverse() runs once per page.
# A UUID, so it fits <uuid:…> routes as well as <str:…> ones.
_SLOT = "00000000-0000-0000-0000-000000000000"


def url_maker(name: str, arg: str = "public_id", **fixed) -> Callable[[object], str]:
    """value -> the URL of route `name` with `arg` set to `value` (and `fixed` as given)."""
    pattern = reverse(name, kwargs={**fixed, arg: _SLOT})
    return lambda value: pattern.replace(_SLOT, str(value))


# The contact list ---------------------------------------------------------------------------


def _row_name(contact: Contact, visible: Iterable[str]) -> str:
    """The row's name from the name parts the member may see (email as a fallback)."""
    parts = [getattr(contact, key) for key in ("first_name", "last_name") if key in visible]
    name = " ".join(p for p in parts if p).strip()
    if not name and "email" in visible:
        name = contact.email
    return name or "(no name)"


def _td(text: str, title: str = "", muted: bool = False) -> str:
    attrs = f' title="{escape(title)}"' if title else ""
    if muted:
        attrs += ' class="muted"'
    return f"<td{attrs}>{escape(text)}</td>"


def _day_formatter(tz) -> Callable[[dt.datetime], str]:
    """A moment -> its day in `tz` in the DATE_FORMAT (docs/glossary.md). A page shows the
    same few days many times, so each day is formatted once."""
    pattern = formats.get_format("DATE_FORMAT")
    days: dict[dt.date, str] = {}

    def day(value: dt.datetime) -> str:
        local = value.astimezone(tz)
        key = local.date()
        text = days.get(key)
        if text is None:
            text = days[key] = dateformat.format(local, pattern)
        return text

    return day


def _column(
    spec: FieldSpec, tz, company_url, tag_names: Mapping[int, list[str]]
) -> Callable[[Contact], str]:
    """The renderer of one column: contact -> its <td>."""
    key = spec.key
    if key == "tags":

        def tags(contact: Contact) -> str:
            badges = "".join(
                f'<span class="badge tag-badge">{escape(name)}</span> '
                for name in tag_names.get(contact.pk, ())
            )
            return f"<td>{badges}</td>"

        return tags
    if key == "company":

        def company(contact: Contact) -> str:
            found = contact.company
            if found is None:
                return "<td></td>"
            url = company_url(found.public_id)
            return f'<td><a href="{escape(url)}">{escape(found.name)}</a></td>'

        return company
    if key == "owner":

        def owner(contact: Contact) -> str:
            user = contact.owner
            return _td("No one", muted=True) if user is None else _td(user.display_name)

        return owner
    if spec.is_custom:
        custom_key = key.split(".", 1)[1]

        def custom(contact: Contact) -> str:
            value = (contact.custom or {}).get(custom_key)
            if isinstance(value, bool):
                return _td("Yes" if value else "No")
            return _td("" if value is None else str(value))

        return custom
    path = spec.path
    if spec.type == "datetime":
        day = _day_formatter(tz)

        def moment(contact: Contact) -> str:
            value = getattr(contact, path, None)
            return "<td></td>" if value is None else _td(day(value), value.isoformat())

        return moment
    if spec.type == "choice":
        labels = dict(spec.choices)

        def choice(contact: Contact) -> str:
            value = getattr(contact, path, None)
            return _td(str(labels.get(value, value or "")))

        return choice
    if spec.type == "bool":

        def yes_no(contact: Contact) -> str:
            value = getattr(contact, path, None)
            return _td("" if value is None else ("Yes" if value else "No"))

        return yes_no
    if spec.type == "emails":
        return lambda contact: _td(", ".join(getattr(contact, path, None) or []))

    def text(contact: Contact) -> str:
        value = getattr(contact, path, None)
        return _td("" if value is None else str(value))

    return text


def list_rows(
    contacts: Iterable[Contact],
    *,
    columns: list[str],
    fields: Mapping[str, FieldSpec],
    tz,
    tag_names: Mapping[int, list[str]],
    selectable: bool,
) -> list[dict]:
    """The list's rows: {"contact", "name", "url", "html"}, "html" being the whole <tr>.

    `fields` holds the catalog fields the member may see; `tag_names` the names of each
    contact's tags, by contact id, in the order they show; `selectable` adds the row's
    checkbox for the bulk bar."""
    contact_url = url_maker("contacts:contact_detail")
    company_url = url_maker("contacts:company_detail")
    renderers = [_column(fields[key], tz, company_url, tag_names) for key in columns]
    rows = []
    for contact in contacts:
        name = _row_name(contact, fields)
        url = contact_url(contact.public_id)
        archived = contact.is_archived
        shown = escape(name)
        parts = ['<tr class="is-archived">' if archived else "<tr>"]
        if selectable:
            parts.append(
                f'<td class="col-select"><input type="checkbox" name="ids" '
                f'value="{contact.public_id}" aria-label="Select {shown}"></td>'
            )
        parts.append(f'<th scope="row" class="col-name"><a href="{escape(url)}">{shown}</a>')
        parts.append(' <span class="badge">Archived</span></th>' if archived else "</th>")
        parts.extend(render(contact) for render in renderers)
        parts.append("</tr>")
        rows.append({"contact": contact, "name": name, "url": url, "html": "".join(parts)})
    return rows


def rows_html(rows: list[dict]) -> SafeString:
    """The rows' markup as one string for the template (every value in it escaped above)."""
    return mark_safe("".join(row["html"] for row in rows))


# Field values (the record's details, the company page) -------------------------------------


def _link(url: str, text: str | None = None):
    """A link to a stored address; text only when it is not an http(s) link (a value from
    before the validators, say), so it never runs as javascript: or data:."""
    href = safe_url(url)
    if not href:
        return format_html("{}", text or url)
    return format_html(
        '<a href="{}" rel="nofollow noopener" target="_blank">{}</a>', href, text or url
    )


def _custom_display(spec: FieldSpec, custom: dict):
    definition = spec.definition
    assert definition is not None  # a custom spec always carries its definition
    value = (custom or {}).get(definition.key)
    if value is None or value == "":
        return EMPTY
    if definition.field_type == CustomFieldDefinition.FieldType.LINK:
        return _link(str(value))
    return display_custom_value(definition, value)


_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def tag_color(value) -> str:
    """A tag's colour when it is a plain #rrggbb, else the theme's accent (never raw CSS)."""
    return value if isinstance(value, str) and _HEX_COLOR.fullmatch(value) else "var(--accent)"


def field_value(obj, spec: FieldSpec):
    """The value of catalog field `spec` on a contact or company, ready to show."""
    if spec.is_custom:
        return _custom_display(spec, obj.custom)
    kind = spec.type
    if kind == "tags":
        tags = list(obj.tags.all())
        if not tags:
            return EMPTY
        return format_html_join(
            " ",
            '<span class="tag-chip" data-tag-color="{}">{}</span>',
            ((tag_color(t.color), t.name) for t in tags),
        )
    value = getattr(obj, spec.key, None)
    if value is None or value == "" or value == []:
        return EMPTY
    if kind == "choice":
        return getattr(obj, f"get_{spec.key}_display")()
    if kind == "user":
        return value.display_name
    if kind == "company":
        url = reverse("contacts:company_detail", kwargs={"public_id": value.public_id})
        return format_html('<a href="{}">{}</a>', url, value.name)
    if kind == "email":
        return format_html('<a href="mailto:{}">{}</a>', value, value)
    if kind == "emails":
        return format_html_join(", ", '<a href="mailto:{}">{}</a>', ((e, e) for e in value))
    if kind == "phone":
        if getattr(obj, f"{spec.key}_unverified", False):
            # Kept as typed by an import: shown as it is, and never dialled.
            return format_html(
                '<span class="phone-unverified">{}</span> <span class="badge badge-warning" '
                'title="Imported as typed; it could not be checked as a phone number.">'
                "Unverified</span>",
                value,
            )
        return format_html('<a href="tel:{}">{}</a>', value, format_phone(value))
    if kind == "url":
        return _link(value)
    if kind == "bool":
        return "Yes" if value else "No"
    if kind == "datetime":
        return format_datetime(value)
    if kind == "country":
        return f"{country_name(value)} ({value})"
    if spec.key == "domain":
        return display_domain(value)
    if spec.key == "twitter_handle":
        # One path segment, whatever was typed ("../", "?", "#").
        return _link(f"https://x.com/{quote(value, safe='')}", f"@{value}")
    return value


def field_row_html(contact: Contact, item: dict) -> SafeString:
    """One row of the record's details tab: the label, the value and, for a field this
    member may change, the inline "Edit" link (contacts/partials/field_row.html shows it)."""
    spec = item["spec"]
    label = escape(spec.label)
    dom_id = escape(item["dom_id"])
    edit = ""
    if item["editable"]:
        url = escape(item["edit_url"])
        edit = (
            f'<a class="inline-edit" href="{url}" hx-get="{url}" hx-target="#{dom_id}" '
            f'hx-swap="outerHTML">Edit<span class="visually-hidden"> {label}</span></a>'
        )
    value = conditional_escape(field_value(contact, spec))
    return mark_safe(
        f'<div class="field-row" id="{dom_id}">\n  <dt>{label}</dt>\n  <dd>\n'
        f'    <span class="field-value">{value}</span>\n    {edit}\n  </dd>\n</div>\n'
    )
