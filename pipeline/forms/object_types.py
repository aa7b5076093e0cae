"""Forms of Settings → Custom objects: a type (name, plural, key, icon, description, and on
creation the label of its first field), a field of a type, and the confirmation that deletes a
type with its records.

Forms only shape the input; pipeline.services.object_types checks everything again (key
rules, limits, the field definition through contacts.custom_fields) and reports each problem
on its field. A type's key, and a field's key and kind, are fixed once created: the edit
forms show them disabled, so whatever a forged POST sends for them is ignored.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from contacts.custom_fields import parse_choices

from ..models import ObjectField, ObjectType
from ..services.object_types import (
    DEFAULT_ICON,
    DEFAULT_PRIMARY_LABEL,
    FIELD_HELP_MAX,
    FIELD_LABEL_MAX,
    FIELD_REGEX_MESSAGE_MAX,
    ICONS,
    KEY_MAX,
    TYPE_DESCRIPTION_MAX,
    TYPE_NAME_MAX,
    TYPE_PLURAL_MAX,
)

FIXED_HELP = "Fixed once created: exports, filters and integrations refer to it."


def _add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Each message next to its field; a fixed (disabled) field's or a general one above."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for key, messages in exc.message_dict.items():
        if key in form.fields and not form.fields[key].disabled:
            form.add_error(key, messages)
        else:
            form.add_error(None, messages)


class ObjectTypeForm(forms.Form):
    name = forms.CharField(
        max_length=TYPE_NAME_MAX,
        label="Name",
        help_text="One record, e.g. Course.",
        widget=forms.TextInput(attrs={"data-key-source": "type-key"}),
    )
    plural = forms.CharField(
        max_length=TYPE_PLURAL_MAX,
        required=False,
        label="Plural",
        help_text="e.g. Courses. Left empty, an “s” is added to the name.",
    )
    key = forms.CharField(
        max_length=KEY_MAX,
        required=False,
        label="Key",
        help_text="Lower-case letters, digits and underscores, e.g. course. Left empty, it is "
        "made from the name. " + FIXED_HELP,
        widget=forms.TextInput(attrs={"data-key-target": "type-key"}),
    )
    icon = forms.ChoiceField(choices=ICONS, initial=DEFAULT_ICON, label="Icon")
    description = forms.CharField(
        max_length=TYPE_DESCRIPTION_MAX,
        required=False,
        label="Description",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    primary_label = forms.CharField(
        max_length=FIELD_LABEL_MAX,
        initial=DEFAULT_PRIMARY_LABEL,
        label="First field",
        help_text="A required text field whose value names each record (you can pick another "
        "primary field later).",
    )

    def __init__(self, *args, instance: ObjectType | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": instance.name,
                    "plural": instance.plural,
                    "key": instance.key,
                    "icon": instance.icon,
                    "description": instance.description,
                },
            )
        super().__init__(*args, **kwargs)
        self.instance = instance
        if instance is not None:
            del self.fields["primary_label"]
            key = self.fields["key"]
            key.disabled = True
            key.help_text = FIXED_HELP
            key.widget.attrs.pop("data-key-target", None)
            self.fields["name"].widget.attrs.pop("data-key-source", None)

    def service_data(self) -> dict:
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if not self.fields[name].disabled
        }

    def add_service_errors(self, exc: ValidationError) -> None:
        _add_service_errors(self, exc)


class ObjectFieldForm(forms.Form):
    label = forms.CharField(
        max_length=FIELD_LABEL_MAX,
        label="Label",
        widget=forms.TextInput(attrs={"data-key-source": "field-key"}),
    )
    key = forms.CharField(
        max_length=KEY_MAX,
        required=False,
        label="Key",
        help_text="Lower-case letters, digits and underscores. Left empty, it is made from the "
        "label. " + FIXED_HELP,
        widget=forms.TextInput(attrs={"data-key-target": "field-key"}),
    )
    field_type = forms.ChoiceField(
        choices=ObjectField.FieldType.choices,
        label="Kind",
        help_text="Fixed once created.",
    )
    required = forms.BooleanField(required=False, label="Required")
    choices = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="List fields: one choice per line.",
    )
    currency = forms.CharField(
        max_length=3,
        required=False,
        help_text="Currency fields: ISO code, e.g. EUR (the organization's by default).",
    )
    regex = forms.CharField(
        max_length=300,
        required=False,
        label="Pattern (regular expression)",
        help_text="Text and Link fields: the whole value must match, e.g. [A-Z]{2}-\\d{4}.",
    )
    regex_message = forms.CharField(
        max_length=FIELD_REGEX_MESSAGE_MAX,
        required=False,
        label="Message when the pattern does not match",
    )
    help_text = forms.CharField(max_length=FIELD_HELP_MAX, required=False, label="Help text")

    def __init__(self, *args, instance: ObjectField | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "label": instance.label,
                    "key": instance.key,
                    "field_type": instance.field_type,
                    "required": instance.required,
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
            for name in ("key", "field_type"):
                self.fields[name].disabled = True
                self.fields[name].help_text = FIXED_HELP
            self.fields["key"].widget.attrs.pop("data-key-target", None)
            self.fields["label"].widget.attrs.pop("data-key-source", None)

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
        _add_service_errors(self, exc)


class ObjectTypeDeleteForm(forms.Form):
    delete_records = forms.BooleanField(required=False, label="Also delete its records")

    def __init__(self, *args, record_count: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        if record_count:
            noun = "record" if record_count == 1 else "records"
            self.fields[
                "delete_records"
            ].label = (
                f"Also delete its {record_count:,} {noun} and their links to contacts and deals"
            )
        else:
            del self.fields["delete_records"]

    def add_service_errors(self, exc: ValidationError) -> None:
        _add_service_errors(self, exc)
