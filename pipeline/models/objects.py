"""Custom objects: the kinds of records each business defines for itself (courses,
properties, licenses), their fields, their records and the records' links to contacts and
deals.

A record's values live in one JSON column, keyed by the field's key, in the same stored
forms as custom fields (contacts.custom_fields), with a GIN index for containment filters.
`display_name` repeats the primary field's value as text, so lists sort and search it with
a plain index.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from crm.tenancy import OrgScopedModel


class ObjectType(OrgScopedModel):
    # Stable key for exports, filters and the API ("course").
    key = models.SlugField(max_length=60)
    name = models.CharField(max_length=80)
    plural = models.CharField(max_length=80)
    icon = models.CharField(max_length=30, default="clipboard")
    description = models.CharField(max_length=300, blank=True)
    # The key of the ObjectField whose value names a record everywhere.
    primary_field_key = models.CharField(max_length=60, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint("org", "key", name="object_type_key_per_org"),
            models.UniqueConstraint("org", Lower("name"), name="object_type_name_per_org"),
        ]

    def __str__(self):
        return self.name


class ObjectField(OrgScopedModel):
    """A field of an object type. Its kinds and checks are those of custom fields (the same
    attribute names, so contacts.custom_fields checks its values), plus `required`."""

    class FieldType(models.TextChoices):
        TEXT = "text", "Text"
        NUMBER = "number", "Number"
        CURRENCY = "currency", "Currency"
        PERCENT = "percent", "Percent"
        LINK = "link", "Link"
        DATE = "date", "Date"
        LIST = "list", "List (choices)"
        CHECKBOX = "checkbox", "Yes/no"

    object_type = models.ForeignKey(ObjectType, on_delete=models.CASCADE, related_name="fields")
    key = models.SlugField(max_length=60)
    label = models.CharField(max_length=120)
    field_type = models.CharField(max_length=20, choices=FieldType.choices)
    choices = models.JSONField(default=list, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    regex = models.CharField(max_length=300, blank=True)
    regex_message = models.CharField(max_length=200, blank=True)
    help_text = models.CharField(max_length=200, blank=True)
    required = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint("org", "object_type", "key", name="object_field_key_per_type"),
        ]

    def __str__(self):
        return self.label


class ObjectRecord(OrgScopedModel):
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    object_type = models.ForeignKey(
        ObjectType, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    values = models.JSONField(default=dict, blank=True)
    display_name = models.CharField(max_length=300, blank=True)
    external_id = models.CharField(max_length=200, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name", "id"]
        constraints = [
            models.UniqueConstraint(
                "org",
                "object_type",
                "external_id",
                condition=~Q(external_id=""),
                name="object_record_external_id_per_type",
            ),
        ]
        indexes = [
            models.Index(
                "org", "object_type", Lower("display_name"), "id", name="object_record_name"
            ),
            models.Index(
                fields=["org", "object_type", "updated_at", "id"], name="object_record_updated"
            ),
            models.Index(fields=["org", "object_type", "owner", "id"], name="object_record_owner"),
            GinIndex(fields=["values"], name="object_record_values", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self):
        return self.display_name or f"{self.object_type.name} {self.public_id}"


class ObjectAssociation(OrgScopedModel):
    """A record linked to one contact or one deal, at most once per pair, with an optional
    label ("student", "guardian") and date. `object_type` repeats the record's type so that
    "contacts associated with a record of type X" reads one index."""

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    record = models.ForeignKey(
        ObjectRecord, on_delete=models.CASCADE, related_name="associations", db_index=False
    )
    object_type = models.ForeignKey(
        ObjectType, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="object_associations",
        db_index=False,
    )
    deal = models.ForeignKey(
        "pipeline.Deal",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="object_associations",
        db_index=False,
    )
    label = models.CharField(max_length=80, blank=True)
    associated_on = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(contact__isnull=False) & Q(deal__isnull=True))
                | (Q(contact__isnull=True) & Q(deal__isnull=False)),
                name="object_association_one_target",
            ),
            models.UniqueConstraint(
                "org",
                "record",
                "contact",
                condition=Q(contact__isnull=False),
                name="object_association_once_per_contact",
            ),
            models.UniqueConstraint(
                "org",
                "record",
                "deal",
                condition=Q(deal__isnull=False),
                name="object_association_once_per_deal",
            ),
        ]
        indexes = [
            # Contacts with a record of type X (the filter), and a contact's records by type.
            models.Index(
                fields=["org", "object_type", "contact"],
                name="object_assoc_type_contact",
                condition=Q(contact__isnull=False),
            ),
            models.Index(
                fields=["org", "contact", "object_type"],
                name="object_assoc_contact",
                condition=Q(contact__isnull=False),
            ),
            models.Index(
                fields=["org", "deal", "object_type"],
                name="object_assoc_deal",
                condition=Q(deal__isnull=False),
            ),
        ]
