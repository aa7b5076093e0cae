"""What the contacts app's forms share: catalog keys as form names, the member picker, typed
inputs for custom fields, web-address and date-time fields, and the choice lists they offer."""

from __future__ import annotations

import functools
import zoneinfo

from django import forms
from django.db.models import Q

from crm.models import User

from ..models import CustomFieldDefinition
from ..normalize import country_choices
from ..validators import URL_MAX_LENGTH, clean_url

FieldType = CustomFieldDefinition.FieldType
BLANK = [("", "—")]
DATETIME_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


def form_name(key: str) -> str:
    """The HTML name of a catalog key ("custom.budget" → "custom__budget"): dots are awkward
    in ids and CSS selectors."""
    return key.replace(".", "__")


def catalog_key(name: str) -> str:
    return name.replace("__", ".", 1) if name.startswith("custom__") else name


@functools.cache
def timezone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


@functools.cache
def country_field_choices() -> list[tuple[str, str]]:
    return BLANK + country_choices()


def active_member_users(org, *, include=()):
    """Users with an active membership in `org` (plus `include` ids, e.g. a departed owner
    who still owns records, so the current value stays selectable)."""
    wanted = Q(memberships__org=org, memberships__is_active=True)
    extra = [pk for pk in include if pk]
    if extra:
        wanted |= Q(pk__in=extra)
    return User.objects.filter(wanted).distinct().order_by("first_name", "last_name", "email")


# The words of the member picker (docs/glossary.md): the empty choice, and the member who
# is filling in the form, listed first and once.
NO_ONE = "No one"


class MemberChoiceIterator(forms.models.ModelChoiceIterator):
    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        me = getattr(self.field.me, "pk", None)
        rows = list(self.queryset)  # the members of one organization
        rows.sort(key=lambda user: user.pk != me)  # stable: the rest keep their order
        for obj in rows:
            yield self.choice(obj)


class MemberChoiceField(forms.ModelChoiceField):
    """The one picker for a member (an owner, an assignee): "No one" when it may be empty,
    then "Me (name)" for the member filling in the form, then everyone else by name."""

    iterator = MemberChoiceIterator

    def __init__(self, *args, me=None, empty_label=NO_ONE, **kwargs):
        self.me = me
        super().__init__(*args, empty_label=empty_label, **kwargs)

    def label_from_instance(self, obj):
        if self.me is not None and obj.pk == self.me.pk:
            return f"Me ({obj.display_name})"
        return obj.display_name


def datetime_field(label: str, required=False, help_text="") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=required,
        help_text=help_text,
        input_formats=[DATETIME_INPUT_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_INPUT_FORMAT),
    )


class WebAddressField(forms.CharField):
    """A web address checked by the validator the services and the import use: http(s)
    only, https:// assumed when no scheme is typed. (Django's URLField would also let
    ftp:// through, for the service to refuse with another message.)"""

    widget = forms.URLInput

    def to_python(self, value):
        text = super().to_python(value)
        if self.disabled:
            # A read-only field shows the stored value and is never written: a value saved
            # before this check must not block the member's other changes.
            return text
        return clean_url(text, max_length=self.max_length or URL_MAX_LENGTH)


def custom_form_field(definition: CustomFieldDefinition) -> forms.Field:
    """A typed input for a custom field (the service checks the value again, regex included)."""
    common = {"label": definition.label, "required": False, "help_text": definition.help_text}
    kind = definition.field_type
    if kind == FieldType.NUMBER:
        return forms.DecimalField(**common)
    if kind == FieldType.CURRENCY:
        field = forms.DecimalField(decimal_places=2, **common)
        field.widget.attrs["step"] = "0.01"
        if definition.currency:
            field.help_text = (definition.help_text + f" Amount in {definition.currency}.").strip()
        return field
    if kind == FieldType.PERCENT:
        return forms.DecimalField(min_value=0, max_value=100, **common)
    if kind == FieldType.LINK:
        return WebAddressField(max_length=1000, **common)
    if kind == FieldType.DATE:
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if kind == FieldType.LIST:
        return forms.ChoiceField(choices=BLANK + [(c, c) for c in definition.choices], **common)
    if kind == FieldType.CHECKBOX:
        return forms.BooleanField(**common)
    field = forms.CharField(max_length=1000, **common)
    if definition.regex:
        field.widget.attrs["data-pattern-message"] = definition.regex_message
    return field


def custom_initial(definition, value):
    if value is None:
        return None
    if definition.field_type == FieldType.CHECKBOX:
        return bool(value)
    return value
