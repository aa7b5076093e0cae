"""Forms for the contact record, companies, tasks, notes, quick-log and custom fields.

The contact and company forms are built from the field catalog for one member: hidden fields
are left out entirely, visible-only fields are rendered disabled (Django then ignores whatever
a forged POST sends for them), custom fields become real typed inputs. Forms only shape input;
the services check it again and do the writing.
"""

from __future__ import annotations

import functools
import zoneinfo

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Q
from django.urls import reverse

from crm.models import User

from .custom_fields import parse_choices
from .fields import (
    CUSTOM_PREFIX,
    GROUPS,
    FieldSpec,
    company_field_catalog,
    contact_field_catalog,
)
from .models import Activity, Company, Contact, CustomFieldDefinition, Task
from .normalize import country_choices, display_domain, format_phone
from .services import QUICK_LOG_TYPES, is_contact_admin
from .validators import URL_MAX_LENGTH, clean_url, pattern_problem

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
def _country_choices() -> list[tuple[str, str]]:
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


def _datetime_field(label: str, required=False, help_text="") -> forms.DateTimeField:
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


def _custom_initial(definition, value):
    if value is None:
        return None
    if definition.field_type == FieldType.CHECKBOX:
        return bool(value)
    return value


class CatalogForm(forms.Form):
    """Shared machinery: fields from catalog specs, grouped, mapped back to catalog keys."""

    required_css_class = "is-required"
    module = "contacts"

    def __init__(self, *args, specs, instance=None, **kwargs):
        self.instance = instance
        self.specs = {form_name(spec.key): spec for spec in specs}
        super().__init__(*args, **kwargs)

    def field_groups(self):
        """[(group, [bound fields])] in the catalog's group order, empty groups left out."""
        grouped: dict[str, list] = {}
        for name, spec in self.specs.items():
            if name in self.fields:
                grouped.setdefault(spec.group, []).append(self[name])
        return [(group, grouped[group]) for group in GROUPS if group in grouped]

    def service_data(self, *, changed_only: bool) -> dict:
        """{catalog key: value} of the fields the member may edit (disabled ones never)."""
        names = self.changed_data if changed_only else list(self.fields)
        out = {}
        for name in names:
            field = self.fields.get(name)
            if field is None or field.disabled or name not in self.cleaned_data:
                continue
            out[catalog_key(name)] = self.cleaned_data[name]
        return out

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put a service's ValidationError (keyed by catalog key) next to the fields."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            name = form_name(key)
            if name in self.fields and not self.fields[name].disabled and key != NON_FIELD_ERRORS:
                self.add_error(name, messages)
            else:
                label = self.specs[name].label if name in self.specs else key
                self.add_error(None, [f"{label}: {m}" for m in messages])


class ContactForm(CatalogForm):
    """The contact's fields this member may see: editable ones as inputs, visible-only ones
    disabled. `only` limits it to some keys (the inline edit of one field)."""

    def __init__(
        self,
        data=None,
        *,
        org,
        policy,
        user,
        instance: Contact | None = None,
        only=None,
        catalog=None,
    ):
        self.org, self.policy, self.user = org, policy, user
        self.catalog = catalog if catalog is not None else contact_field_catalog(org)
        specs = []
        self.levels = {}
        for spec in self.catalog:
            if not spec.editable or (only is not None and spec.key not in only):
                continue
            level = policy.field_level(spec.key)
            if level == "hidden":
                continue
            self.levels[spec.key] = level
            specs.append(spec)
        super().__init__(data, specs=specs, instance=instance, initial=self._initial(instance))
        for name, spec in self.specs.items():
            self.fields[name] = self._make_field(spec)
            if self.levels[spec.key] != "editable":
                self.fields[name].disabled = True
                self.fields[name].help_text = "Your role may see but not change this field."

    # Building ----------------------------------------------------------------------------
    def _initial(self, contact: Contact | None) -> dict:
        if contact is None:
            return {"owner": self.user.public_id}
        initial = {}
        for spec in self.catalog:
            name = form_name(spec.key)
            if spec.is_custom:
                initial[name] = _custom_initial(
                    spec.definition, (contact.custom or {}).get(spec.definition.key)
                )
            elif spec.type == "tags":
                initial[name] = ", ".join(tag.name for tag in contact.tags.all())
            elif spec.type == "user":
                initial[name] = contact.owner.public_id if contact.owner_id else None
            elif spec.type == "company":
                initial[name] = contact.company.name if contact.company_id else ""
            elif spec.type == "phone":
                value = getattr(contact, spec.key)
                # A number kept as typed by an import is shown as it is, not reformatted.
                unverified = getattr(contact, f"{spec.key}_unverified", False)
                initial[name] = value if unverified else format_phone(value)
            elif spec.type == "emails":
                initial[name] = ", ".join(contact.other_emails or [])
            elif spec.editable:
                initial[name] = getattr(contact, spec.key)
        return initial

    def _make_field(self, spec: FieldSpec) -> forms.Field:
        if spec.is_custom:
            return custom_form_field(spec.definition)
        label, kind = spec.label, spec.type
        model_field = Contact._meta.get_field(spec.key)
        common = {"label": label, "required": False}
        if kind == "email":
            return forms.CharField(
                max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"}), **common
            )
        if kind == "emails":
            return forms.CharField(
                help_text="Separate several addresses with commas.",
                widget=forms.TextInput(attrs={"autocomplete": "off"}),
                **common,
            )
        if kind == "phone":
            return forms.CharField(
                max_length=model_field.max_length,  # room for a number kept as typed
                help_text="Include the country code; without a + the contact's country is used.",
                widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
                **common,
            )
        if kind == "choice":
            choices = list(spec.choices)
            if model_field.blank:
                choices = BLANK + choices
            return forms.ChoiceField(choices=choices, **common)
        if kind == "bool":
            return forms.NullBooleanField(widget=forms.NullBooleanSelect, **common)
        if kind == "datetime":
            return _datetime_field(label)
        if kind == "url":
            return WebAddressField(max_length=model_field.max_length, **common)
        if kind == "country":
            return forms.ChoiceField(choices=_country_choices(), **common)
        if kind == "user":
            admin = is_contact_admin(self.policy)
            current = self.instance.owner_id if self.instance else None
            if admin:
                queryset = active_member_users(self.org, include=[current])
            else:
                # Reps may claim or release; handing a contact to someone else is for admins.
                queryset = User.objects.filter(pk__in=[self.user.pk, current or self.user.pk])
            return MemberChoiceField(
                queryset=queryset,
                to_field_name="public_id",
                me=self.user,
                **common,
            )
        if kind == "company":
            attrs = {"list": "company-options", "autocomplete": "off"}
            if self.policy.can("companies", "view"):
                # Suggestions follow what is typed (the datalist is refilled by HTMX).
                attrs.update(
                    {
                        "hx-get": reverse("contacts:company_options"),
                        "hx-trigger": "input changed delay:250ms",
                        "hx-target": "#company-options",
                        "hx-swap": "innerHTML",
                    }
                )
            return forms.CharField(
                max_length=200,
                help_text="Pick a company or type a new name (or a domain) to add one.",
                widget=forms.TextInput(attrs=attrs),
                **common,
            )
        if kind == "tags":
            return forms.CharField(
                help_text="Separate tags with commas; new tags are created.",
                widget=forms.TextInput(attrs={"autocomplete": "off"}),
                **common,
            )
        if spec.key == "timezone":
            return forms.ChoiceField(choices=BLANK + timezone_choices(), **common)
        return forms.CharField(max_length=model_field.max_length, **common)

    # Cleaning ----------------------------------------------------------------------------
    def clean_tags(self):
        text = self.cleaned_data.get("tags") or ""
        return [part.strip() for part in text.split(",") if part.strip()]

    def clean_other_emails(self):
        return self.cleaned_data.get("other_emails") or ""

    def clean(self):
        cleaned = super().clean()
        identity = [
            name
            for name in ("first_name", "last_name", "email", "phone", "mobile")
            if name in self.fields and not self.fields[name].disabled
        ]
        if self.instance is None and identity and not any(cleaned.get(n) for n in identity):
            raise ValidationError("Give the contact at least a name, an email or a phone.")
        return cleaned

    def service_data(self, *, changed_only: bool) -> dict:
        data = super().service_data(changed_only=changed_only)
        if "tags" in data and changed_only and self.instance is not None:
            current = sorted(t.name.casefold() for t in self.instance.tags.all())
            if sorted(n.casefold() for n in data["tags"]) == current:
                data.pop("tags")
        if not changed_only:
            # A new contact: leave out what was left empty so defaults apply.
            data = {k: v for k, v in data.items() if v not in ("", None, []) or k == "owner"}
        return data


class CompanyForm(CatalogForm):
    module = "companies"

    def __init__(self, data=None, *, org, policy, user, instance: Company | None = None):
        self.org, self.policy, self.user = org, policy, user
        specs = [spec for spec in company_field_catalog(org) if spec.editable]
        super().__init__(data, specs=specs, instance=instance, initial=self._initial(instance))
        for name, spec in self.specs.items():
            self.fields[name] = self._make_field(spec)

    def _initial(self, company):
        if company is None:
            return {"owner": self.user.public_id}
        initial = {}
        for spec in company_field_catalog(self.org):
            name = form_name(spec.key)
            if spec.is_custom:
                initial[name] = _custom_initial(
                    spec.definition, (company.custom or {}).get(spec.definition.key)
                )
            elif spec.key == "owner":
                initial[name] = company.owner.public_id if company.owner_id else None
            elif spec.key == "domain":
                initial[name] = display_domain(company.domain)
            elif spec.editable:
                initial[name] = getattr(company, spec.key)
        return initial

    def _make_field(self, spec: FieldSpec) -> forms.Field:
        if spec.is_custom:
            return custom_form_field(spec.definition)
        common = {"label": spec.label, "required": False}
        if spec.key == "name":
            return forms.CharField(max_length=200, label=spec.label, required=True)
        if spec.key == "domain":
            return forms.CharField(
                max_length=253,
                help_text="For example acme.com; a pasted web address is trimmed to its domain.",
                **common,
            )
        if spec.key == "website":
            return WebAddressField(max_length=URL_MAX_LENGTH, **common)
        if spec.key == "size":
            return forms.ChoiceField(choices=BLANK + list(spec.choices), **common)
        if spec.key == "description":
            return forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), **common)
        if spec.key == "owner":
            current = self.instance.owner_id if self.instance else None
            return MemberChoiceField(
                queryset=active_member_users(self.org, include=[current]),
                to_field_name="public_id",
                me=self.user,
                **common,
            )
        return forms.CharField(max_length=Company._meta.get_field(spec.key).max_length, **common)


class ContactPickField(forms.Field):
    """A contact chosen by public id from the contacts the member may see.

    The widget is a select filled by an HTMX search (a million contacts never render as
    options); cleaning looks the id up in `queryset`, so a forged id of an unreachable
    contact is simply "not found"."""

    widget = forms.Select

    def __init__(self, *, queryset, **kwargs):
        self.queryset = queryset
        super().__init__(**kwargs)

    def set_options(self, contacts):
        self.widget.choices = BLANK + [(str(c.public_id), _contact_label(c)) for c in contacts]

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self.queryset.get(public_id=value)
        except (Contact.DoesNotExist, ValidationError, ValueError):
            raise ValidationError("Choose a contact from the list.") from None


def _contact_label(contact: Contact) -> str:
    if contact.email and contact.full_name != contact.email:
        return f"{contact.full_name} · {contact.email}"
    return contact.full_name


class TaskForm(forms.Form):
    title = forms.CharField(max_length=300)
    due_at = _datetime_field("Due", help_text="Leave empty for no due date.")
    priority = forms.ChoiceField(choices=Task.Priority.choices, initial=Task.Priority.NORMAL)
    assignee = MemberChoiceField(queryset=User.objects.none(), required=False)
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Details"
    )

    def __init__(self, *args, org, policy, user, instance: Task | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "title": instance.title,
                    "due_at": instance.due_at,
                    "priority": instance.priority,
                    "assignee": instance.assignee.public_id if instance.assignee_id else None,
                    "description": instance.description,
                },
            )
        super().__init__(*args, **kwargs)
        self.instance = instance
        current = instance.assignee_id if instance else None
        assignee = self.fields["assignee"]
        assignee.me = user
        if policy.scope("tasks") == "own":
            # Own-scope members work only their own tasks: giving one away (or to no one)
            # would lose it.
            assignee.queryset = User.objects.filter(pk__in=[user.pk, current or user.pk])
            assignee.required = True
            assignee.empty_label = None
        else:
            assignee.queryset = active_member_users(org, include=[current])
        assignee.to_field_name = "public_id"
        if instance is None:
            # A new task is the creator's unless they pick someone else (or No one).
            self.initial.setdefault("assignee", user.public_id)

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        if self.instance is None and "assignee" not in self.data:
            data.pop("assignee", None)  # a post without the field: the service assigns the creator
        return data


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Note",
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "Write a note. Links become clickable."}
        ),
        max_length=20000,
    )


class QuickLogForm(forms.Form):
    type = forms.ChoiceField(
        choices=[(t.value, t.label) for t in QUICK_LOG_TYPES],
        initial=Activity.Type.CALL,
        widget=forms.RadioSelect,
        label="Log a",
    )
    subject = forms.CharField(
        max_length=300, required=False, label="Summary", help_text="e.g. Discussed renewal"
    )
    occurred_at = _datetime_field("When", help_text="Leave empty for now.")
    body = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Details"
    )

    def __init__(self, *args, contact_queryset=None, **kwargs):
        super().__init__(*args, **kwargs)
        if contact_queryset is not None:
            self.fields = {
                "contact": ContactPickField(queryset=contact_queryset, label="Contact"),
                **self.fields,
            }

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("subject") or "").strip() and not (cleaned.get("body") or "").strip():
            self.add_error("subject", "Say in a few words what happened.")
        return cleaned


class CustomFieldDefinitionForm(forms.Form):
    entity = forms.ChoiceField(
        choices=[
            (CustomFieldDefinition.Entity.CONTACT, "Contacts"),
            (CustomFieldDefinition.Entity.COMPANY, "Companies"),
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


__all__ = [
    "CUSTOM_PREFIX",
    "CompanyForm",
    "ContactForm",
    "ContactPickField",
    "CustomFieldDefinitionForm",
    "NoteForm",
    "QuickLogForm",
    "TaskForm",
    "active_member_users",
    "catalog_key",
    "form_name",
]
