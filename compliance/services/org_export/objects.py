"""The objects of Export all data ("sections"): for each, the organization's rows, whose
primary keys the job walks in chunks, the file header, and how a chunk becomes CSV cells and
JSON records. This is where a non-Owner's role narrows the export: hidden contact and deal
fields have no column at all (the same rules as the contact list export and the deal pages).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import GeneratedField, Model, QuerySet

from contacts.export import csv_value as contact_csv_value
from contacts.export import export_columns, export_values
from contacts.export import json_record as contact_json_record
from contacts.fields import contact_field_catalog
from contacts.models import (
    Activity,
    Company,
    Contact,
    ContactList,
    ContactTag,
    CustomFieldDefinition,
    Note,
    Tag,
    Task,
)
from crm import jobs
from crm.csvutils import safe_cell
from crm.models import AuditEvent
from crm.permissions import Policy
from crm.selectors import org_timezone
from crm.streaming import local_value
from pipeline.models import (
    Deal,
    DealContact,
    DealTag,
    ObjectAssociation,
    ObjectField,
    ObjectRecord,
    ObjectType,
    Order,
)

from ...models import ConsentRecord, DataRequest, Suppression

CHUNK_ROWS = 2000


@dataclass(frozen=True)
class Column:
    header: str  # CSV header and JSON key
    path: str  # the `values()` path that reads it


@dataclass
class Section:
    """One object of the export: its files' name, its rows' ids, and how a chunk of them
    becomes CSV cells and JSON records."""

    name: str
    base: QuerySet  # the org's rows, whose primary keys the chunks walk
    header: list[str]
    read: Callable[[list[int]], Iterable[tuple[list, dict]]]
    hidden: list[str] = field(default_factory=list)

    def next_ids(self, cursor: int) -> list[int]:
        return jobs.ids_after(self.base, cursor, CHUNK_ROWS)

    def count(self) -> int:
        return self.base.count()


def _user_model():
    return get_user_model()


def model_columns(model: type[Model], *, skip: Iterable[str] = ()) -> list[Column]:
    """Every stored field of `model` as a column: its public id as "id", a member as their
    email, another record as its public id ("<name>_id"); the integer keys, the
    organization and generated search columns are left out."""
    skipped = {"id", "org", *skip}
    columns: list[Column] = []
    for model_field in model._meta.concrete_fields:
        name = model_field.name
        if name in skipped or isinstance(model_field, GeneratedField):
            continue
        if name == "public_id":
            columns.insert(0, Column("id", "public_id"))
        elif model_field.is_relation:
            related = model_field.related_model
            if not isinstance(related, type):  # "self" is resolved by the time this runs
                related = model
            if related is _user_model():
                columns.append(Column(name, f"{name}__email"))
            elif any(f.name == "public_id" for f in related._meta.concrete_fields):
                columns.append(Column(f"{name}_id", f"{name}__public_id"))
            else:
                columns.append(Column(f"{name}_id", model_field.attname))
        else:
            columns.append(Column(name, name))
    return columns


def _csv_cell(value):
    """A cell from a value already in the org's time: JSON for lists and objects, and
    nothing a spreadsheet would run as a formula."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)
    return safe_cell(value)


def model_section(
    name: str,
    base,
    columns: list[Column],
    tz,
    *,
    transform: Callable[[dict], dict] | None = None,
    hidden: Iterable[str] = (),
) -> Section:
    paths = [column.path for column in columns]
    headers = [column.header for column in columns]

    def read(ids: list[int]) -> Iterator[tuple[list, dict]]:
        for row in base.filter(pk__in=ids).order_by("pk").values(*paths):
            if transform is not None:
                row = transform(row)
            # Each value converted once, for both files.
            values = [local_value(row[path], tz) for path in paths]
            yield [_csv_cell(value) for value in values], dict(zip(headers, values, strict=True))

    return Section(name, base, headers, read, list(hidden))


def contact_section(org, policy: Policy, tz) -> Section:
    """Contacts through the contact list export's own columns: every field of the catalog
    (custom fields as columns) that the member may see, values read the same way."""
    catalog = contact_field_catalog(org)
    columns = export_columns(catalog, policy)
    shown = {column.key for column in columns}
    hidden = [spec.key for spec in catalog if spec.key not in shown]
    base = Contact.objects.for_org(org)

    def read(ids: list[int]) -> Iterator[tuple[list, dict]]:
        for row in export_values(base.filter(pk__in=ids), columns, order_by=("id",)):
            cells = [safe_cell(contact_csv_value(row, column, tz)) for column in columns]
            yield cells, contact_json_record(row, columns, tz)

    return Section("contacts", base, [c.label for c in columns], read, hidden)


def deal_section(org, policy: Policy, tz) -> Section:
    """Deals with their pipeline and stage by name; a non-Owner's hidden deal fields
    (field rules under "deal.") have no column, and hidden custom deal fields are dropped
    from the custom values."""
    by_name = {
        "pipeline_id": Column("pipeline", "pipeline__name"),
        "stage_id": Column("stage", "stage__name"),
    }
    columns = [by_name.get(column.header, column) for column in model_columns(Deal)]
    if policy.is_owner:
        return model_section("deals", Deal.objects.for_org(org), columns, tz)

    def rule_key(column: Column) -> str:
        return (
            column.header.removesuffix("_id")
            if column.path.endswith("__public_id")
            else column.header
        )

    shown = [
        c for c in columns if c.header == "id" or policy.can_see_field(rule_key(c), "pipeline")
    ]
    hidden = [c.header for c in columns if c not in shown]

    def visible_custom(row: dict) -> dict:
        custom = row.get("custom")
        if isinstance(custom, dict):
            row["custom"] = {
                key: value
                for key, value in custom.items()
                if policy.can_see_field(f"custom.{key}", "pipeline")
            }
        return row

    return model_section(
        "deals", Deal.objects.for_org(org), shown, tz, transform=visible_custom, hidden=hidden
    )


def build_sections(org, policy: Policy) -> list[Section]:
    """Every object of the export, in the order of the files in the ZIP."""
    tz = org_timezone(org)

    def plain(name, model, *, skip=(), extra=(), transform=None, hidden=()):
        base = model.objects.for_org(org)
        columns = model_columns(model, skip=skip) + list(extra)
        return model_section(name, base, columns, tz, transform=transform, hidden=hidden)

    masks = _address_masks(policy)

    # Link tables that are not tenant models: two reached through their contact, the deal
    # tags by the organization they carry.
    contact_tags = ContactTag.objects.filter(contact__org=org)
    memberships = ContactList.contacts.through.objects.filter(contactlist__org=org)
    deal_tags = DealTag.objects.filter(org=org)
    sections = [
        contact_section(org, policy, tz),
        plain("companies", Company),
        deal_section(org, policy, tz),
        plain("deal_contacts", DealContact),
        plain("activities", Activity),
        plain("notes", Note),
        plain("tasks", Task),
        plain("tags", Tag),
        model_section(
            "contact_tags",
            contact_tags,
            [Column("contact_id", "contact__public_id"), Column("tag", "tag__name")],
            tz,
        ),
        model_section(
            "deal_tags",
            deal_tags,
            [Column("deal_id", "deal__public_id"), Column("tag", "tag__name")],
            tz,
        ),
        plain("lists", ContactList),
        model_section(
            "list_memberships",
            memberships,
            [
                Column("list_id", "contactlist__public_id"),
                Column("list", "contactlist__name"),
                Column("contact_id", "contact__public_id"),
            ],
            tz,
        ),
        plain("custom_field_definitions", CustomFieldDefinition),
        plain("orders", Order),
        plain("custom_object_types", ObjectType),
        plain("custom_object_fields", ObjectField),
        plain("custom_object_records", ObjectRecord),
        plain("custom_object_associations", ObjectAssociation),
        plain("consent_records", ConsentRecord),
        plain(
            "suppressions",
            Suppression,
            transform=_masked_suppression(masks),
            hidden=sorted({"address" for hidden in masks.values() if hidden}),
        ),
        plain(
            "data_requests",
            DataRequest,
            transform=_masked_request(masks),
            hidden=["requester_email"] if masks["email"] else [],
        ),
        plain("audit_log", AuditEvent),
    ]
    if policy.is_owner:
        return sections
    return [s for s in sections if policy.can(SECTION_MODULES.get(s.name, "contacts"), "view")]


# The module whose view right a non-Owner needs for each object; the others follow the
# contacts module. The audit log is read under the settings right, as on its page.
SECTION_MODULES = {
    "companies": "companies",
    "deals": "pipeline",
    "deal_contacts": "pipeline",
    "deal_tags": "pipeline",
    "orders": "pipeline",
    "tasks": "tasks",
    "custom_object_types": "custom_objects",
    "custom_object_fields": "custom_objects",
    "custom_object_records": "custom_objects",
    "custom_object_associations": "custom_objects",
    "consent_records": "compliance",
    "suppressions": "compliance",
    "data_requests": "compliance",
    "audit_log": "settings",
}
MASKED = "(hidden)"


def _address_masks(policy: Policy) -> dict[str, bool]:
    """Which kinds of address the member's field rules hide: suppressions and data requests
    name the same emails and numbers as the contact fields do."""
    if policy.is_owner:
        return {"email": False, "phone": False}
    return {
        "email": not policy.can_see_field("email"),
        "phone": not (policy.can_see_field("phone") and policy.can_see_field("mobile")),
    }


def _masked_suppression(masks: dict[str, bool]):
    def transform(row: dict) -> dict:
        kind = "email" if row.get("channel") == "email" else "phone"
        if masks[kind] and row.get("address"):
            row = {**row, "address": MASKED}
        return row

    return transform if any(masks.values()) else None


def _masked_request(masks: dict[str, bool]):
    def transform(row: dict) -> dict:
        if row.get("requester_email"):
            row = {**row, "requester_email": MASKED}
        return row

    return transform if masks["email"] else None


SECTION_NAMES = [
    "contacts",
    "companies",
    "deals",
    "deal_contacts",
    "activities",
    "notes",
    "tasks",
    "tags",
    "contact_tags",
    "deal_tags",
    "lists",
    "list_memberships",
    "custom_field_definitions",
    "orders",
    "custom_object_types",
    "custom_object_fields",
    "custom_object_records",
    "custom_object_associations",
    "consent_records",
    "suppressions",
    "data_requests",
    "audit_log",
]
