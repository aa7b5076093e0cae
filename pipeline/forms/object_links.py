"""The forms that link custom object records to contacts and deals (pipeline.views.object_links).

Each picker is a select whose options an HTMX search fills (thousands of records never render
as options); cleaning looks the chosen public id up in the queryset the view gives, which holds
only what the member may reach, so a forged id of anything else is just "not found". Forms
only shape input; pipeline.services.object_links checks everything again.
"""

from __future__ import annotations

import uuid

from django import forms
from django.core.exceptions import ValidationError

from contacts.forms.common import BLANK

from ..services.object_links import LABEL_MAX

DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
LABEL_HELP = "Optional: the role of this link, for example “student” or “guardian”."
QUERY_MAX = 200


def clean_query(text) -> str:
    """What was typed into a search box, as a search term: trimmed, bounded, no NUL (which
    PostgreSQL refuses)."""
    return (text or "").replace("\x00", "").strip()[:QUERY_MAX]


def as_uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


class PickField(forms.Field):
    """A row chosen by public id from `queryset`; `set_options` fills the select."""

    widget = forms.Select
    missing = "Choose one from the list."

    def __init__(self, *, queryset, **kwargs):
        self.queryset = queryset
        super().__init__(**kwargs)

    def set_options(self, options):
        """`options`: (public id, label) pairs."""
        self.widget.choices = BLANK + [(str(public_id), label) for public_id, label in options]

    def to_python(self, value):
        if value in self.empty_values:
            return None
        public_id = as_uuid(value)
        row = self.queryset.filter(public_id=public_id).first() if public_id else None
        if row is None:
            raise ValidationError(self.missing)
        return row


class LinkFieldsForm(forms.Form):
    """The label and date of a link."""

    label = forms.CharField(
        max_length=LABEL_MAX,
        required=False,
        help_text=LABEL_HELP,
        widget=forms.TextInput(attrs={"placeholder": "e.g. student"}),
    )
    associated_on = forms.DateField(required=False, label="Date", widget=DATE_WIDGET)


class LinkEditForm(LinkFieldsForm):
    """Change one link's label and date (one per row, ids kept apart by auto_id)."""


class PickLinkForm(LinkFieldsForm):
    """A link's label and date, and the row to link: `pick_field`, chosen from `queryset`,
    the select offering `options` until a search fills it."""

    pick_field = ""
    pick_label = ""
    pick_missing = "Choose one from the list."

    def __init__(self, *args, queryset, options=(), **kwargs):
        super().__init__(*args, **kwargs)
        field = PickField(queryset=queryset, label=self.pick_label)
        field.missing = self.pick_missing
        field.set_options(options)
        self.fields[self.pick_field] = field
        self.order_fields([self.pick_field, "label", "associated_on"])


class AssociateRecordForm(PickLinkForm):
    """On a contact's or a deal's page: the record to link."""

    pick_field, pick_label = "record", "Record"
    pick_missing = "Choose a record from the list."


class LinkContactForm(PickLinkForm):
    """On a record's page: the contact to link it to."""

    pick_field, pick_label = "contact", "Contact"
    pick_missing = "Choose a contact from the list."


class LinkDealForm(PickLinkForm):
    """On a record's page: the deal to link it to."""

    pick_field, pick_label = "deal", "Deal"
    pick_missing = "Choose a deal from the list."


class FindRecordForm(forms.Form):
    """The search above a record picker: a type and a part of a record's name. It works as
    a plain GET form (the section's page, filtered) and drives the HTMX picker."""

    object_type = forms.ChoiceField(required=False, label="Type")
    q = forms.CharField(required=False, label="Find a record", max_length=QUERY_MAX)

    def __init__(self, *args, types=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.types = list(types)
        self.fields["object_type"].choices = [("", "All types")] + [
            (str(t.public_id), t.name) for t in self.types
        ]
        self.fields["q"].widget.attrs.update(
            {"type": "search", "autocomplete": "off", "placeholder": "Type a name"}
        )

    def chosen(self) -> tuple:
        """(object type or None, search text) from what was sent, ignoring what is invalid."""
        data = self.data if self.is_bound else {}
        wanted = as_uuid(data.get("object_type"))
        object_type = next((t for t in self.types if t.public_id == wanted), None)
        return object_type, clean_query(data.get("q"))
