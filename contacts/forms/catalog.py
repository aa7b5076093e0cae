"""The contact and company forms, built from the field catalog for one member: hidden fields
are left out entirely, visible-only fields are rendered disabled (Django then ignores whatever a
forged POST sends for them), custom fields become real typed inputs."""

from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.urls import reverse

from crm.models import User

from ..fields import GROUPS, FieldSpec, company_field_catalog, contact_field_catalog
from ..models import Company, Contact
from ..normalize import display_domain, format_phone
from ..validators import URL_MAX_LENGTH
from .common import (
    BLANK,
    MemberChoiceField,
    WebAddressField,
    active_member_users,
    catalog_key,
    country_field_choices,
    custom_form_field,
    custom_initial,
    datetime_field,
    form_name,
    timezone_choices,
)


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
                initial[name] = custom_initial(
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
            return datetime_field(label)
        if kind == "url":
            return WebAddressField(max_length=model_field.max_length, **common)
        if kind == "country":
            return forms.ChoiceField(choices=country_field_choices(), **common)
        if kind == "user":
            admin = self.policy.is_contact_admin()
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
                initial[name] = custom_initial(
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
