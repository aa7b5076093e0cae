"""The order forms: a new order (with its contact and optional deal), an order's edit form,
and the change of status with an optional note.

Forms only shape input. The order's fields are checked by the one checker every way in
shares (pipeline.services.order_input.clean_order_fields, called by the services), so the
fields here are plain text boxes and selects that pass what was typed on; the services'
ValidationErrors come back onto the fields they name (`add_service_errors`). The contact and
the deal are picked by public id among the records the member may reach; a forged id is
simply not found.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, ValidationError

from contacts.forms.common import BLANK

from ..models import Deal, Order
from ..money import ISO_4217
from ..services.order_input import FIELD_LABELS
from ..services.orders import EDITABLE_KEYS, STATUS_NOTE_MAX

CURRENCY_CHOICES = [(code, code) for code in sorted(ISO_4217)]
DATE = {"type": "date"}


class _PickField(forms.Field):
    """A record chosen by public id from `queryset` (a select whose options the view fills)."""

    widget = forms.Select
    not_found = "Choose one from the list."

    def __init__(self, *, queryset=None, **kwargs):
        self.queryset = queryset
        super().__init__(required=False, **kwargs)

    def set_options(self, options) -> None:
        """options: [(public id, label), ...]."""
        self.widget.choices = BLANK + [(str(pid), label) for pid, label in options]

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if self.queryset is None:
            raise ValidationError(self.not_found)
        try:
            return self.queryset.get(public_id=value)
        except (ObjectDoesNotExist, ValidationError, ValueError):
            raise ValidationError(self.not_found) from None


class ContactChoice(_PickField):
    not_found = "Choose a contact from the list."


class DealChoice(_PickField):
    not_found = "Choose a deal from the list."


def _text(label: str, **attrs) -> forms.CharField:
    return forms.CharField(
        required=False, label=label, strip=False, widget=forms.TextInput(attrs=attrs)
    )


class OrderForm(forms.Form):
    """A new order (`instance` None) or the edit of one. Status is set on a new order only;
    an existing order's status changes through OrderStatusForm, which keeps a note."""

    contact = ContactChoice(label="Contact")
    deal = DealChoice(label="Deal", help_text="Optional: one of the contact's deals.")
    title = _text(FIELD_LABELS["title"], maxlength=200, autocomplete="off")
    value = _text(FIELD_LABELS["value"], inputmode="decimal", autocomplete="off")
    currency = forms.CharField(
        required=False,
        label=FIELD_LABELS["currency"],
        widget=forms.Select(choices=CURRENCY_CHOICES),
    )
    status = forms.CharField(
        required=False,
        label=FIELD_LABELS["status"],
        widget=forms.Select(choices=Order.Status.choices),
    )
    order_date = forms.CharField(
        required=False, label=FIELD_LABELS["order_date"], widget=forms.DateInput(attrs=DATE)
    )
    paid_date = forms.CharField(
        required=False,
        label=FIELD_LABELS["paid_date"],
        widget=forms.DateInput(attrs=DATE),
        help_text="Left empty, marking the order paid sets it to that day.",
    )
    external_id = _text(
        FIELD_LABELS["external_id"], maxlength=200, autocomplete="off", spellcheck="false"
    )
    note = forms.CharField(
        required=False, label=FIELD_LABELS["note"], widget=forms.Textarea(attrs={"rows": 3})
    )

    MAIN = ("title", "value", "currency", "status", "order_date", "paid_date", "external_id")

    def __init__(
        self,
        data=None,
        *,
        org,
        instance: Order | None = None,
        prefill: dict | None = None,
        contact_queryset=None,
        deal_queryset=None,
        contact_options=(),
        deal_options=(),
    ):
        self.org, self.instance = org, instance
        super().__init__(data, initial=self._initial(org, instance, prefill or {}))
        self.fields["contact"].queryset = contact_queryset
        self.fields["contact"].set_options(contact_options)
        self.fields["deal"].queryset = deal_queryset
        self.fields["deal"].set_options(deal_options)
        self.fields[
            "external_id"
        ].help_text = (
            "Optional: the order's number in your shop or books. Unique among manual orders."
        )
        if instance is not None:
            del self.fields["status"]
            if instance.source != Order.Source.MANUAL:
                field = self.fields["external_id"]
                field.disabled = True
                field.help_text = (
                    f"Set by {instance.get_source_display()}, which finds the order by it."
                )

    @staticmethod
    def _initial(org, order: Order | None, prefill: dict) -> dict:
        if order is None:
            return {
                "currency": org.base_currency or "USD",
                "status": Order.Status.PENDING,
                **prefill,
            }
        return {
            "contact": str(order.contact.public_id),
            "deal": str(order.deal.public_id) if order.deal_id else "",
            "title": order.title,
            "value": f"{order.value}",
            "currency": order.currency,
            "order_date": order.order_date.isoformat() if order.order_date else "",
            "paid_date": order.paid_date.isoformat() if order.paid_date else "",
            "external_id": order.external_id,
            "note": order.note,
        }

    def main_fields(self):
        return [self[name] for name in self.MAIN if name in self.fields]

    def service_data(self) -> dict:
        """The raw field values the services take. On a new order, an empty currency, status
        or order date is left out so that the defaults apply (base currency, pending, today)."""
        keys = EDITABLE_KEYS if self.instance is not None else (*EDITABLE_KEYS, "status")
        data = {}
        for key in keys:
            field = self.fields.get(key)
            if field is None or field.disabled:
                continue
            value = self.cleaned_data.get(key, "")
            defaulted = self.instance is None and key in ("currency", "status", "order_date")
            if defaulted and not str(value).strip():
                continue
            data[key] = value
        return data

    def chosen(self, name: str):
        return self.cleaned_data.get(name)

    def add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            target = key if key in self.fields and not self.fields[key].disabled else None
            if key == NON_FIELD_ERRORS:
                target = None
            if target is None and key in FIELD_LABELS:
                messages = [f"{FIELD_LABELS[key]}: {m}" for m in messages]
            self.add_error(target, messages)


class OrderStatusForm(forms.Form):
    status = forms.CharField(
        label="New status", widget=forms.Select(choices=Order.Status.choices), required=False
    )
    note = forms.CharField(
        required=False,
        label="Note (optional)",
        strip=False,
        widget=forms.TextInput(attrs={"maxlength": STATUS_NOTE_MAX, "autocomplete": "off"}),
        help_text="Kept in the order's history, e.g. “refunded in the shop on May 3”.",
    )

    def add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            self.add_error(key if key in self.fields else None, messages)


def deal_label(deal: Deal) -> str:
    return f"{deal.title} (archived)" if deal.is_archived else deal.title


__all__ = [
    "ContactChoice",
    "DealChoice",
    "OrderForm",
    "OrderStatusForm",
    "deal_label",
]
