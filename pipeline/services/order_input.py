"""Checking an order's fields, the one place every way in shares: the order form, the inbound
order URL and (later) the API.

`clean_order_fields` takes raw values (form strings, JSON numbers and strings) and returns the
values to store and the errors per field, so that a caller can keep what is good and report
the rest where the sender is. It never raises for bad input.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.field_sizes import char_max_length
from crm.selectors import org_timezone

from ..models import Order
from ..money import cents, clean_currency, to_decimal

TITLE_MAX = char_max_length(Order, "title")
EXTERNAL_ID_MAX = char_max_length(Order, "external_id")
NOTE_MAX = 5000
# What the fields are called in messages, and the keys a caller may send.
FIELD_LABELS = {
    "title": "Title",
    "value": "Value",
    "currency": "Currency",
    "status": "Status",
    "order_date": "Order date",
    "paid_date": "Paid date",
    "external_id": "External id",
    "note": "Note",
}
STATUS_WORDS = {
    **{value: value for value in Order.Status.values},
    **{label.casefold(): value for value, label in Order.Status.choices},
    # Spellings shops and payment tools use for the same states.
    "partially-paid": Order.Status.PARTIALLY_PAID,
    "partial": Order.Status.PARTIALLY_PAID,
    "cancelled": Order.Status.CANCELED,
    "completed": Order.Status.PAID,
    "succeeded": Order.Status.PAID,
    "processing": Order.Status.PENDING,
    "on-hold": Order.Status.PENDING,
}


def _text(raw) -> str:
    return "" if raw is None else str(raw).strip()


def _date(raw, label: str) -> dt.date | None:
    """A date from a date, an ISO date, or an ISO date-time (its date part)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    text = _text(raw)
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise ValidationError(f"{label}: “{text[:40]}” is not a date; use YYYY-MM-DD.") from None


def clean_status(raw) -> str:
    text = _text(raw).casefold().replace(" ", "_")
    status = STATUS_WORDS.get(text) or STATUS_WORDS.get(text.replace("_", "-"))
    if status is None:
        allowed = ", ".join(Order.Status.values)
        raise ValidationError(f"“{_text(raw)[:40]}” is not an order status (use one of {allowed}).")
    return status


def clean_order_fields(org, data: dict, *, partial: bool = False) -> tuple[dict, dict]:
    """(values, errors) for the order fields present in `data`.

    With partial=False (a new order) title and value are required, currency defaults to the
    organization's base currency, status to pending and the order date to today in the
    organization's time zone. With partial=True (a change) only the given keys are checked.
    Errors map a field key to one message."""
    values: dict = {}
    errors: dict[str, str] = {}

    def check(key, fn):
        if key not in data:
            return
        try:
            values[key] = fn(data[key])
        except ValidationError as exc:
            errors[key] = exc.messages[0]

    def title(raw):
        text = _text(raw)
        if not text:
            raise ValidationError("Give the order a title.")
        if len(text) > TITLE_MAX:
            raise ValidationError(f"A title has at most {TITLE_MAX} characters.")
        return text

    def value(raw):
        if isinstance(raw, bool):
            raise ValidationError("Value must be a number.")
        return cents(to_decimal(raw, "Value"))

    def external_id(raw):
        text = _text(raw)
        if len(text) > EXTERNAL_ID_MAX:
            raise ValidationError(f"An external id has at most {EXTERNAL_ID_MAX} characters.")
        return text

    def note(raw):
        text = _text(raw)
        if len(text) > NOTE_MAX:
            raise ValidationError(f"A note has at most {NOTE_MAX} characters.")
        return text

    check("title", title)
    check("value", value)
    check("currency", clean_currency)
    check("status", clean_status)
    check("order_date", lambda raw: _date(raw, "Order date"))
    check("paid_date", lambda raw: _date(raw, "Paid date"))
    check("external_id", external_id)
    check("note", note)

    if not partial:
        if "title" not in data and "title" not in errors:
            errors["title"] = "Give the order a title."
        if "value" not in data and "value" not in errors:
            errors["value"] = "Value is required."
        if not values.get("currency") and "currency" not in errors:
            values["currency"] = org.base_currency or "USD"
        values.setdefault("status", Order.Status.PENDING)
        if values.get("order_date") is None and "order_date" not in errors:
            values["order_date"] = _today(org)
    elif "order_date" in values and values["order_date"] is None:
        errors["order_date"] = "An order needs an order date."
    return values, errors


def _today(org) -> dt.date:
    return timezone.localdate(timezone=org_timezone(org))
