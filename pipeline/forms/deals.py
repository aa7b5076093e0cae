"""The deal form (create and edit), the forms of the deal page (close with a reason, a
contact with a role, a line item, a checklist and its steps, an attachment, a note) and
the Convert form.

The deal form is built for one member: fields that a field rule hides ("deal.<key>") are left
out entirely, locked ones are disabled (Django then ignores whatever a forged POST sends for
them), and the value is read-only while line items set it. Pipeline and stage are one choice,
the stage grouped by pipeline, so the two can never disagree. Forms only shape input; the
services check everything again.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.urls import reverse

from contacts.forms.activity import ContactPickField
from contacts.forms.common import (
    BLANK,
    MemberChoiceField,
    active_member_users,
    custom_form_field,
    custom_initial,
)
from contacts.models import Company, Contact, CustomFieldDefinition
from crm.models import Membership, Team, User

from ..fields import DEAL_FIELD_LABELS, hidden_deal_fields, locked_deal_fields
from ..models import Deal, DealReason, ForecastCategory, LineItem, Pipeline, Stage
from ..money import ISO_4217
from ..services.attachments import ACCEPT_ATTRIBUTE
from ..services.catalog import DESCRIPTION_MAX as PRODUCT_DESCRIPTION_MAX
from ..services.catalog import NAME_MAX as PRODUCT_NAME_MAX
from ..services.catalog import SKU_MAX as PRODUCT_SKU_MAX

CUSTOM_PREFIX = "custom__"
LOCKED_HELP = "Your role may see but not change this field."
CURRENCY_CHOICES = [(code, code) for code in sorted(ISO_4217)]


def _custom_definitions(org) -> list[CustomFieldDefinition]:
    return list(
        CustomFieldDefinition.objects.for_org(org)
        .filter(entity=CustomFieldDefinition.Entity.DEAL, is_active=True)
        .order_by("position", "label")
    )


def stage_choices(org) -> list:
    """[(pipeline name, [(stage public id, stage name), ...]), ...] for an optgroup select."""
    stages = (
        Stage.objects.for_org(org)
        .select_related("pipeline")
        .order_by("pipeline__position", "pipeline_id", "position", "id")
    )
    grouped: dict[int, tuple[str, list]] = {}
    for stage in stages:
        label = f"{stage.name} ({stage.probability}%)"
        grouped.setdefault(stage.pipeline_id, (stage.pipeline.name, []))[1].append(
            (str(stage.public_id), label)
        )
    return list(grouped.values())


class CompanyNameField(forms.CharField):
    """A company of the organization that the member may see, typed by name or domain (the
    input suggests names from contacts:company_options). Never creates one."""

    def __init__(self, *, queryset, **kwargs):
        self.queryset = queryset
        super().__init__(max_length=253, **kwargs)

    def clean(self, value):
        text = " ".join(str(super().clean(value) or "").split())
        if not text:
            return None
        named = list(self.queryset.filter(name__iexact=text).order_by("is_archived", "id")[:2])
        if not named and "." in text and " " not in text:
            named = list(self.queryset.filter(domain__iexact=text.lower())[:1])
        if len(named) > 1 and named[0].is_archived == named[1].is_archived:
            raise ValidationError(f"Several companies are called “{text}”: type its domain.")
        if not named:
            raise ValidationError(
                f"There is no company “{text}” you can see. Add it under Companies first."
            )
        return named[0]


class DealForm(forms.Form):
    required_css_class = "is-required"

    title = forms.CharField(max_length=200)
    stage = forms.ChoiceField(label="Pipeline and stage")
    value = forms.CharField(
        required=False,
        max_length=30,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    currency = forms.ChoiceField(choices=CURRENCY_CHOICES)
    probability = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=100,
        label="Probability (%)",
        help_text="Leave empty to use the stage's probability.",
    )
    priority = forms.ChoiceField(choices=Deal.Priority.choices, initial=Deal.Priority.NORMAL)
    owner = MemberChoiceField(queryset=User.objects.none(), required=False)
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, to_field_name="public_id", empty_label="—"
    )
    contact = ContactPickField(
        queryset=Contact.objects.none(), required=False, label="Primary contact"
    )
    contact_role = forms.ChoiceField(
        choices=BLANK + list(Contact.DealRole.choices), required=False, label="Their role"
    )
    company = CompanyNameField(queryset=Company.objects.none(), required=False)
    expected_close_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    source = forms.CharField(required=False, max_length=120)
    forecast_category = forms.ChoiceField(
        required=False,
        choices=[("", "Follow the stage"), *ForecastCategory.choices],
        help_text="Where the forecast counts this deal; by default its stage decides.",
    )
    tags = forms.CharField(required=False, max_length=2000, help_text="Separate tags with commas.")

    # Keys of the form's fields as the services know them (the rule key for field rules).
    RULE_OF = {"contact_role": "contact"}

    def __init__(
        self,
        data=None,
        *,
        org,
        policy,
        user,
        instance: Deal | None = None,
        prefill: dict | None = None,
        contact_queryset=None,
        company_queryset=None,
        contact_options=(),
    ):
        self.org, self.policy, self.user, self.instance = org, policy, user, instance
        self.definitions = _custom_definitions(org)
        super().__init__(data, initial=self._initial(instance, prefill or {}))
        for definition in self.definitions:
            self.fields[CUSTOM_PREFIX + definition.key] = custom_form_field(definition)
        self.fields["stage"].choices = stage_choices(org)
        self.fields["currency"].initial = org.base_currency
        self._setup_people(contact_queryset, company_queryset, contact_options)
        self.hidden = hidden_deal_fields(policy)
        self._apply_field_rules()
        if instance is not None and not instance.value_is_manual:
            for name in ("value", "currency"):
                if name in self.fields:
                    self.fields[name].disabled = True
                    self.fields[name].help_text = "Set by the line items: change them instead."

    # Building ------------------------------------------------------------------------------
    def _initial(self, deal: Deal | None, prefill: dict) -> dict:
        if deal is None:
            initial = {"owner": self.user.public_id, "priority": Deal.Priority.NORMAL}
            initial["currency"] = self.org.base_currency
            initial.update({k: v for k, v in prefill.items() if v not in (None, "")})
            return initial
        initial = {
            "title": deal.title,
            "stage": str(deal.stage.public_id),
            "value": f"{deal.value}",
            "currency": deal.currency,
            "probability": deal.probability,
            "priority": deal.priority,
            "owner": deal.owner.public_id if deal.owner_id else None,
            "team": deal.team.public_id if deal.team_id else None,
            "contact": str(deal.contact.public_id) if deal.contact_id else "",
            "company": deal.company.name if deal.company_id else "",
            "expected_close_date": deal.expected_close_date,
            "source": deal.source,
            "forecast_category": deal.forecast_category,
            "tags": ", ".join(tag.name for tag in deal.tags.all()),
        }
        for definition in self.definitions:
            initial[CUSTOM_PREFIX + definition.key] = custom_initial(
                definition, (deal.custom or {}).get(definition.key)
            )
        return initial

    def _setup_people(self, contact_queryset, company_queryset, contact_options) -> None:
        owner = self.fields["owner"]
        owner.me = self.user
        owner.to_field_name = "public_id"
        current = self.instance.owner_id if self.instance else None
        scope = self.policy.scope("pipeline") if self.policy is not None else "all"
        if scope == "own":
            owner.queryset = User.objects.filter(pk__in=[self.user.pk, current or self.user.pk])
            owner.required = True
            owner.empty_label = None
        elif scope == "team" and self.policy.membership.team_id:
            teammates = Membership.objects.for_org(self.org).filter(
                team_id=self.policy.membership.team_id, is_active=True
            )
            owner.queryset = User.objects.filter(
                pk__in=[*teammates.values_list("user_id", flat=True), self.user.pk, current or 0]
            ).order_by("first_name", "last_name", "email")
        else:
            owner.queryset = active_member_users(self.org, include=[current])
        self.fields["team"].queryset = Team.objects.for_org(self.org).order_by("name")
        # Without the right to see contacts (or companies) there is nothing to pick from:
        # the field is left out, and the deal keeps what it has.
        if contact_queryset is None:
            del self.fields["contact"]
            del self.fields["contact_role"]
        else:
            self.fields["contact"].queryset = contact_queryset
            self.fields["contact"].set_options(contact_options)
        if company_queryset is None:
            del self.fields["company"]
        else:
            company = self.fields["company"]
            company.queryset = company_queryset
            company.help_text = "Pick one of the companies you can see, by name or domain."
            # Suggestions follow what is typed (the datalist is refilled by HTMX).
            company.widget.attrs.update(
                {
                    "list": "company-options",
                    "autocomplete": "off",
                    "hx-get": reverse("contacts:company_options"),
                    "hx-trigger": "input changed delay:250ms",
                    "hx-target": "#company-options",
                    "hx-swap": "innerHTML",
                }
            )

    def rule_key(self, name: str) -> str:
        if name.startswith(CUSTOM_PREFIX):
            return "custom"
        return self.RULE_OF.get(name, name)

    def _apply_field_rules(self) -> None:
        for name in list(self.fields):
            key = self.rule_key(name)
            if key in self.hidden:
                del self.fields[name]
                continue
            if locked_deal_fields(self.policy, [key]):
                self.fields[name].disabled = True
                self.fields[name].help_text = LOCKED_HELP

    # Reading back ----------------------------------------------------------------------------
    def custom_fields(self):
        return [self[name] for name in self.fields if name.startswith(CUSTOM_PREFIX)]

    def main_fields(self):
        skip = {"contact", "contact_role", "company"}
        return [
            self[name]
            for name in self.fields
            if not name.startswith(CUSTOM_PREFIX) and name not in skip
        ]

    def clean_stage(self):
        value = self.cleaned_data.get("stage")
        stage = (
            Stage.objects.for_org(self.org)
            .select_related("pipeline")
            .filter(public_id=value)
            .first()
        )
        if stage is None:
            raise ValidationError("Choose a stage.")
        return stage

    def clean_tags(self):
        text = self.cleaned_data.get("tags") or ""
        names = []
        for part in text.split(","):
            name = " ".join(part.split())
            if name and name.casefold() not in {n.casefold() for n in names}:
                names.append(name)
        return names

    def service_data(self, *, changed_only: bool) -> dict:
        """What deal_create / deal_update take, from the fields the member may change."""
        names = self.changed_data if changed_only else list(self.fields)
        data: dict = {}
        custom: dict = {}
        for name in names:
            field = self.fields.get(name)
            if field is None or field.disabled or name not in self.cleaned_data:
                continue
            value = self.cleaned_data[name]
            if name.startswith(CUSTOM_PREFIX):
                custom[name[len(CUSTOM_PREFIX) :]] = value
            elif name == "contact_role":
                continue  # the link's role, set apart (see contact_role_value)
            elif name == "stage":
                data["stage"] = value
                data["pipeline"] = value.pipeline
            elif name == "probability":
                data["probability"] = "" if value is None else value
            elif name == "value":
                data["value"] = value or "0"
            else:
                data[name] = value
        if custom:
            data["custom"] = custom
        return data

    def contact_role_value(self) -> str | None:
        if "contact_role" not in self.fields or self.fields["contact_role"].disabled:
            return None
        return self.cleaned_data.get("contact_role") or ""

    def add_service_errors(self, exc: ValidationError) -> None:
        """A service's ValidationError next to its field ("custom.budget" → custom__budget)."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            name = key.replace("custom.", CUSTOM_PREFIX, 1)
            if key == "pipeline":
                name = "stage"
            if name in self.fields and not self.fields[name].disabled and key != NON_FIELD_ERRORS:
                self.add_error(name, messages)
            else:
                label = DEAL_FIELD_LABELS.get(key, "" if key == NON_FIELD_ERRORS else key)
                self.add_error(None, [f"{label}: {m}" if label else m for m in messages])


# The deal page's small forms -------------------------------------------------------------------


class CloseForm(forms.Form):
    """Won or lost, with a reason from the organization's list."""

    status = forms.ChoiceField(
        choices=[(Deal.Status.WON, "Won"), (Deal.Status.LOST, "Lost")],
        widget=forms.RadioSelect,
        label="Outcome",
    )
    reason = forms.ChoiceField(label="Reason")
    note = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}), label="Note"
    )

    def __init__(self, *args, org, status: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        reasons = list(
            DealReason.objects.for_org(org)
            .filter(is_active=True)
            .order_by("kind", "position", "id")
        )
        self.reasons = reasons
        groups = []
        for kind, label in (
            (DealReason.Kind.WON, "Won because"),
            (DealReason.Kind.LOST, "Lost because"),
        ):
            if status and status != kind:
                continue
            options = [(str(r.public_id), r.name) for r in reasons if r.kind == kind]
            if options:
                groups.append((label, options))
        self.fields["reason"].choices = BLANK + groups
        if status in (Deal.Status.WON, Deal.Status.LOST):
            self.fields["status"].initial = status
            self.fields["status"].widget = forms.HiddenInput()

    def has_reasons(self, status: str = "") -> bool:
        return any(r.kind == status or not status for r in self.reasons)

    def clean(self):
        data = super().clean()
        status, reason = data.get("status"), data.get("reason")
        if status and reason:
            chosen = next((r for r in self.reasons if str(r.public_id) == reason), None)
            if chosen is None or chosen.kind != status:
                self.add_error("reason", f"Choose one of the reasons a deal is {status}.")
        return data


class DealContactForm(forms.Form):
    contact = ContactPickField(queryset=Contact.objects.none(), label="Contact")
    role = forms.ChoiceField(choices=BLANK + list(Contact.DealRole.choices), required=False)

    def __init__(self, *args, contact_queryset, contact_options=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contact"].queryset = contact_queryset
        self.fields["contact"].set_options(contact_options)


class LineItemForm(forms.Form):
    """A line from the catalog (product) or one-off (name and unit price)."""

    product = forms.ChoiceField(required=False, label="Product")
    name = forms.CharField(
        required=False, max_length=200, help_text="For a one-off line; a product brings its own."
    )
    quantity = forms.CharField(
        initial="1", max_length=20, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    unit_price = forms.CharField(
        required=False,
        max_length=30,
        label="Unit price",
        help_text="Leave empty to take the product's price.",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )
    discount_kind = forms.ChoiceField(
        choices=LineItem.DiscountKind.choices, initial=LineItem.DiscountKind.NONE, label="Discount"
    )
    discount = forms.CharField(
        required=False,
        max_length=30,
        label="Discount amount or %",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )
    currency = forms.ChoiceField(
        choices=CURRENCY_CHOICES,
        required=False,
        help_text="One-off lines only; a deal has one currency.",
    )

    def __init__(
        self,
        *args,
        products=(),
        currency: str = "",
        editing: bool = False,
        has_lines: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.products = {str(p.public_id): p for p in products}
        if editing:
            for name in ("product", "currency"):
                del self.fields[name]
            self.fields["name"].required = True
            self.fields["name"].help_text = ""
            self.fields["unit_price"].required = True
            self.fields["unit_price"].help_text = ""
        else:
            self.fields["product"].choices = [("", "One-off line")] + [
                (key, f"{p.name} · {p.unit_price} {p.currency}") for key, p in self.products.items()
            ]
            self.fields["currency"].initial = currency
            if has_lines:
                # The first line set the deal's currency: every further line is in it.
                del self.fields["currency"]

    def clean_product(self):
        value = self.cleaned_data.get("product")
        if not value:
            return None
        product = self.products.get(value)
        if product is None:
            raise ValidationError("Choose an active product of the catalog.")
        return product

    def clean(self):
        data = super().clean()
        if "product" in self.fields and data.get("product") is None and not self.errors:
            if not (data.get("name") or "").strip():
                self.add_error("name", "Name the line, or pick a product.")
            if not (data.get("unit_price") or "").strip():
                self.add_error("unit_price", "A one-off line needs a unit price.")
        return data

    def line_data(self) -> dict:
        data = {k: v for k, v in self.cleaned_data.items() if k not in ("product",)}
        if self.cleaned_data.get("product") is not None:
            data.pop("currency", None)
            if not (data.get("name") or "").strip():
                data.pop("name", None)
        return data


class ChecklistForm(forms.Form):
    title = forms.CharField(max_length=200, label="Checklist name")


class ChecklistItemForm(forms.Form):
    text = forms.CharField(max_length=300, label="Step")


class AttachmentForm(forms.Form):
    file = forms.FileField(
        label="File",
        allow_empty_file=True,  # the service says "is empty" in its own words
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPT_ATTRIBUTE}),
    )


class DealNoteForm(forms.Form):
    body = forms.CharField(
        label="Note",
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Write a note about this deal."}),
    )


class ConvertForm(forms.Form):
    """Convert a lead: the deal to create and, when the contact has none, its company."""

    company_name = forms.CharField(
        required=False,
        max_length=200,
        label="Company",
        help_text="An existing company with this name is used; otherwise it is added.",
    )
    use_email_domain = forms.BooleanField(
        required=False, label="Use the contact's email domain as the company's domain"
    )
    title = forms.CharField(max_length=200, label="Deal title")
    stage = forms.ChoiceField(label="Pipeline and stage")
    value = forms.CharField(
        required=False, max_length=30, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    currency = forms.ChoiceField(choices=CURRENCY_CHOICES)
    expected_close_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, org, policy, has_company: bool, email_domain: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.org = org
        self.fields["stage"].choices = stage_choices(org)
        self.fields["currency"].initial = org.base_currency
        if has_company:
            del self.fields["company_name"]
            del self.fields["use_email_domain"]
        elif not email_domain:
            del self.fields["use_email_domain"]
        else:
            self.fields["use_email_domain"].label = f"Use {email_domain} as the company's domain"
        hidden = hidden_deal_fields(policy)
        for name in ("value", "currency", "expected_close_date"):
            if name in hidden and name in self.fields:
                del self.fields[name]
            elif name in self.fields and locked_deal_fields(policy, [name]):
                del self.fields[name]  # the deal starts with the defaults

    def clean_stage(self):
        stage = (
            Stage.objects.for_org(self.org)
            .select_related("pipeline")
            .filter(public_id=self.cleaned_data.get("stage"))
            .first()
        )
        if stage is None:
            raise ValidationError("Choose a stage.")
        return stage

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        stage = data.pop("stage")
        data["stage"] = stage
        data["pipeline"] = stage.pipeline
        return data


class ProductForm(forms.Form):
    """A product of the catalog (Settings → Products)."""

    name = forms.CharField(max_length=PRODUCT_NAME_MAX)
    sku = forms.CharField(max_length=PRODUCT_SKU_MAX, required=False, label="SKU")
    unit_price = forms.CharField(
        max_length=30, label="Unit price", widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    currency = forms.ChoiceField(choices=[(code, code) for code in sorted(ISO_4217)])
    description = forms.CharField(
        required=False,
        max_length=PRODUCT_DESCRIPTION_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


def default_stage(org, pipeline: Pipeline | None = None) -> Stage | None:
    """The first stage of `pipeline`, or of the default pipeline."""
    if pipeline is None:
        pipeline = Pipeline.objects.for_org(org).order_by("-is_default", "position", "id").first()
    if pipeline is None:
        return None
    return Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position", "id").first()
