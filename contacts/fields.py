"""The catalog of contact (and company) fields: one description that forms, filters, smart
views, list columns, exports, import mapping and field visibility all read.

Standard fields are keyed by their model field name; custom fields by "custom.<key>", so a
custom key can never shadow a standard field, now or when new standard fields are added.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import Company, Contact, CustomFieldDefinition

CUSTOM_PREFIX = "custom."

GROUPS = ["Core", "Personal", "Address", "Social", "Company", "Compliance", "Custom", "System"]


@dataclass(frozen=True)
class FieldSpec:
    key: str
    label: str
    group: str
    type: str  # text email phone url choice number date datetime bool user company tags
    path: str  # ORM path used to filter and sort
    choices: tuple = ()
    sortable: bool = False
    editable: bool = True
    definition: CustomFieldDefinition | None = field(default=None, compare=False)

    @property
    def is_custom(self) -> bool:
        return self.key.startswith(CUSTOM_PREFIX)


def _choices(enum) -> tuple:
    return tuple(enum.choices)


_YES_NO_UNKNOWN = (("true", "Yes"), ("false", "No"))

CONTACT_FIELDS: list[FieldSpec] = [
    FieldSpec("first_name", "First name", "Core", "text", "first_name", sortable=True),
    FieldSpec("last_name", "Last name", "Core", "text", "last_name", sortable=True),
    FieldSpec("email", "Email", "Core", "email", "email", sortable=True),
    FieldSpec("other_emails", "Other emails", "Core", "emails", "other_emails"),
    FieldSpec("phone", "Phone", "Core", "phone", "phone"),
    FieldSpec("mobile", "Mobile", "Core", "phone", "mobile"),
    FieldSpec("job_title", "Job title", "Core", "text", "job_title", sortable=True),
    FieldSpec("department", "Department", "Core", "text", "department"),
    FieldSpec("status", "Status", "Core", "choice", "status", _choices(Contact.Status), True),
    FieldSpec(
        "lifecycle_stage",
        "Lifecycle stage",
        "Core",
        "choice",
        "lifecycle_stage",
        _choices(Contact.Stage),
        True,
    ),
    FieldSpec(
        "lead_score", "Lead score", "Core", "number", "lead_score", sortable=True, editable=False
    ),
    FieldSpec("source", "Source", "Core", "text", "source", sortable=True),
    FieldSpec("owner", "Owner", "Core", "user", "owner"),
    FieldSpec("tags", "Tags", "Core", "tags", "tags"),
    FieldSpec("language", "Language", "Personal", "text", "language"),
    FieldSpec("timezone", "Time zone", "Personal", "text", "timezone"),
    FieldSpec("street", "Street", "Address", "text", "street"),
    FieldSpec("city", "City", "Address", "text", "city", sortable=True),
    FieldSpec("region", "State / region", "Address", "text", "region"),
    FieldSpec("postal_code", "Postal code", "Address", "text", "postal_code"),
    FieldSpec("country", "Country", "Address", "country", "country", sortable=True),
    FieldSpec("linkedin_url", "LinkedIn", "Social", "url", "linkedin_url"),
    FieldSpec("twitter_handle", "Twitter", "Social", "text", "twitter_handle"),
    FieldSpec("company", "Company", "Company", "company", "company"),
    FieldSpec(
        "deal_role", "Role in deal", "Company", "choice", "deal_role", _choices(Contact.DealRole)
    ),
    FieldSpec(
        "consent_status",
        "Consent status",
        "Compliance",
        "choice",
        "consent_status",
        _choices(Contact.ConsentStatus),
    ),
    FieldSpec(
        "consent_type",
        "Consent type",
        "Compliance",
        "choice",
        "consent_type",
        _choices(Contact.ConsentType),
    ),
    FieldSpec("consent_date", "Consent date", "Compliance", "datetime", "consent_date"),
    FieldSpec("consent_source", "Consent source", "Compliance", "text", "consent_source"),
    FieldSpec(
        "gdpr_basis",
        "GDPR basis",
        "Compliance",
        "choice",
        "gdpr_basis",
        _choices(Contact.GdprBasis),
    ),
    FieldSpec("consent_email", "Email consent", "Compliance", "bool", "consent_email"),
    FieldSpec("consent_sms", "SMS consent", "Compliance", "bool", "consent_sms"),
    FieldSpec("consent_phone", "Phone consent", "Compliance", "bool", "consent_phone"),
    FieldSpec("consent_whatsapp", "WhatsApp consent", "Compliance", "bool", "consent_whatsapp"),
    FieldSpec(
        "consent_data_processing",
        "Data processing consent",
        "Compliance",
        "bool",
        "consent_data_processing",
    ),
    FieldSpec("do_not_sell", "Do not sell or share", "Compliance", "bool", "do_not_sell"),
    FieldSpec("legal_hold", "Legal hold", "Compliance", "bool", "legal_hold", editable=False),
    FieldSpec(
        "created_at", "Created", "System", "datetime", "created_at", sortable=True, editable=False
    ),
    FieldSpec(
        "updated_at", "Updated", "System", "datetime", "updated_at", sortable=True, editable=False
    ),
    FieldSpec(
        "last_contacted_at",
        "Last contacted",
        "System",
        "datetime",
        "last_contacted_at",
        sortable=True,
        editable=False,
    ),
    FieldSpec(
        "last_activity_at",
        "Last activity",
        "System",
        "datetime",
        "last_activity_at",
        sortable=True,
        editable=False,
    ),
    FieldSpec("is_archived", "Archived", "System", "bool", "is_archived", editable=False),
]
CONTACT_FIELD_KEYS = {spec.key for spec in CONTACT_FIELDS}

COMPANY_FIELDS: list[FieldSpec] = [
    FieldSpec("name", "Name", "Core", "text", "name", sortable=True),
    FieldSpec("domain", "Domain", "Core", "text", "domain", sortable=True),
    FieldSpec("website", "Website", "Core", "url", "website"),
    FieldSpec("industry", "Industry", "Core", "text", "industry", sortable=True),
    FieldSpec("size", "Size", "Core", "choice", "size", _choices(Company.Size)),
    FieldSpec("description", "Description", "Core", "longtext", "description"),
    FieldSpec("owner", "Owner", "Core", "user", "owner"),
    FieldSpec(
        "created_at", "Created", "System", "datetime", "created_at", sortable=True, editable=False
    ),
]
COMPANY_FIELD_KEYS = {spec.key for spec in COMPANY_FIELDS}

# What a custom field's type means for filters and inputs.
CUSTOM_TYPE_MAP = {
    CustomFieldDefinition.FieldType.TEXT: "text",
    CustomFieldDefinition.FieldType.NUMBER: "number",
    CustomFieldDefinition.FieldType.CURRENCY: "number",
    CustomFieldDefinition.FieldType.PERCENT: "number",
    CustomFieldDefinition.FieldType.LINK: "url",
    CustomFieldDefinition.FieldType.DATE: "date",
    CustomFieldDefinition.FieldType.LIST: "choice",
    CustomFieldDefinition.FieldType.CHECKBOX: "bool",
}


def custom_spec(definition: CustomFieldDefinition) -> FieldSpec:
    return FieldSpec(
        key=CUSTOM_PREFIX + definition.key,
        label=definition.label,
        group="Custom",
        type=CUSTOM_TYPE_MAP[definition.field_type],
        path=f"custom__{definition.key}",
        choices=tuple((c, c) for c in definition.choices or ()),
        sortable=True,
        editable=True,
        definition=definition,
    )


def custom_definitions(org, entity: str = CustomFieldDefinition.Entity.CONTACT):
    return CustomFieldDefinition.objects.for_org(org).filter(entity=entity, is_active=True)


def contact_field_catalog(org) -> list[FieldSpec]:
    """Every contact field of `org`: the standard ones, then its active custom fields."""
    return [*CONTACT_FIELDS, *(custom_spec(d) for d in custom_definitions(org))]


def company_field_catalog(org) -> list[FieldSpec]:
    return [
        *COMPANY_FIELDS,
        *(custom_spec(d) for d in custom_definitions(org, CustomFieldDefinition.Entity.COMPANY)),
    ]


def catalog_by_key(specs) -> dict[str, FieldSpec]:
    return {spec.key: spec for spec in specs}
