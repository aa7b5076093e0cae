"""The form that defines a custom field (Settings → Custom fields): its label, key, type,
choices, currency and pattern; the key, type and entity are fixed once the field exists."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from ..custom_fields import parse_choices
from ..models import CustomFieldDefinition
from ..validators import pattern_problem
from .common import FieldType


class CustomFieldDefinitionForm(forms.Form):
    entity = forms.ChoiceField(
        choices=[
            (CustomFieldDefinition.Entity.CONTACT, "Contacts"),
            (CustomFieldDefinition.Entity.COMPANY, "Companies"),
            (CustomFieldDefinition.Entity.DEAL, "Deals"),
        ],
        label="Used on",
    )
    label = forms.CharField(max_length=120)
    key = forms.CharField(
        max_length=60,
        help_text="Stable name for filters, exports and the API, e.g. contract_value. "
        "It cannot change later.",
    )
    field_type = forms.ChoiceField(choices=FieldType.choices, label="Type")
    choices = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="List fields: one choice per line.",
    )
    currency = forms.CharField(
        max_length=3, required=False, help_text="Currency fields: ISO code, e.g. EUR."
    )
    regex = forms.CharField(
        max_length=300,
        required=False,
        label="Pattern (regular expression)",
        help_text="Text and Link fields: the whole value must match, e.g. [A-Z]{2}-\\d{4}.",
    )
    regex_message = forms.CharField(
        max_length=200,
        required=False,
        label="Message when the pattern does not match",
    )
    help_text = forms.CharField(max_length=200, required=False, label="Help text")

    def __init__(self, *args, instance: CustomFieldDefinition | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "entity": instance.entity,
                    "label": instance.label,
                    "key": instance.key,
                    "field_type": instance.field_type,
                    "choices": "\n".join(instance.choices or []),
                    "currency": instance.currency,
                    "regex": instance.regex,
                    "regex_message": instance.regex_message,
                    "help_text": instance.help_text,
                },
            )
        super().__init__(*args, **kwargs)
        self.instance = instance
        if instance is not None:
            for name in ("entity", "key", "field_type"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed once the field exists."
            problem = pattern_problem(instance.regex) if instance.regex else None
            if problem:
                # Saved before patterns were checked: values are not checked against it.
                note = f"{problem} Values are not checked against it until you change it."
                self.fields["regex"].help_text = note

    def service_data(self) -> dict:
        data = {
            name: value
            for name, value in self.cleaned_data.items()
            if not self.fields[name].disabled
        }
        if "choices" in data:
            data["choices"] = parse_choices(data["choices"])
        return data

    def add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            if key in self.fields and not self.fields[key].disabled:
                self.add_error(key, messages)
            else:
                self.add_error(None, messages)
