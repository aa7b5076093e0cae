"""The orders registry: what each contact bought, a log and never a payment system.

An order belongs to a contact and may belong to a deal. Orders from integrations carry an
external id, unique per organization and source, so that a repeat updates instead of
duplicating. Every status change is kept (who or what, when, from, to). Each organization has
one signed inbound URL for shops and payment tools, and a log of every request to it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from crm.tenancy import OrgScopedModel

MONEY = {"max_digits": 14, "decimal_places": 2}


class Order(OrgScopedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        PARTIALLY_PAID = "partially_paid", "Partially paid"
        OVERDUE = "overdue", "Overdue"
        REFUNDED = "refunded", "Refunded"
        CANCELED = "canceled", "Canceled"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        MANUAL = "manual", "Manual"
        WEBHOOK = "webhook", "Webhook"
        API = "api", "API"
        PAYMENTS = "payments", "Payments"
        COMMERCE = "commerce", "Commerce"

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="orders", db_index=False
    )
    deal = models.ForeignKey(
        "pipeline.Deal",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
        db_index=False,
    )
    title = models.CharField(max_length=200)
    value = models.DecimalField(**MONEY, default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    order_date = models.DateField()
    paid_date = models.DateField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    # The sender's id for the order; unique per organization and source when given.
    external_id = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-order_date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(value__gte=0), name="order_value_not_negative"),
            models.UniqueConstraint(
                "org",
                "source",
                "external_id",
                condition=~Q(external_id=""),
                name="order_external_id_per_source",
            ),
        ]
        indexes = [
            # A contact's orders (its page), and "has an order with status X since D".
            models.Index(
                fields=["org", "contact", "status", "order_date"], name="order_contact_status"
            ),
            # "Total paid > X EUR": the sums per contact, read from the index alone.
            models.Index(
                fields=["org", "status", "currency", "contact"],
                include=["value"],
                name="order_status_totals",
            ),
            models.Index(fields=["org", "deal", "order_date"], name="order_deal"),
            models.Index(fields=["org", "order_date", "id"], name="order_org_date"),
            # The list by status, and "has an order with status X (from source Y) since D":
            # the contacts are read from the index alone.
            models.Index(
                fields=["org", "status", "order_date", "id"],
                include=["contact", "source"],
                name="order_org_status",
            ),
        ]

    def __str__(self):
        return self.title


class OrderRollup(OrgScopedModel):
    """A contact's orders counted and added up, kept by database triggers on pipeline_order
    (migration 0005), so that "total paid > 1,000 EUR" and "more than 8 orders" read one row
    per contact instead of summing every order of the organization on each request.

    Rows per contact: one per (status, currency) it has orders in, with their count and
    total; one per status with currency "" (the count over all currencies); one with status
    and currency "" (all its orders). Totals are kept only where the currency is one: a sum
    across currencies means nothing, and those rows hold 0. A row whose count falls to 0 is
    deleted. Never written by the app: an insert, update or delete of orders (the ORM, COPY,
    raw SQL, a cascade) keeps it right in the same transaction.
    """

    ALL = ""

    # One row per key: no public id or creation time (the triggers write these rows).
    public_id = None
    created_at = None
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    # Deleting a contact deletes its orders, and with them these rows (the triggers).
    contact = models.ForeignKey(
        "contacts.Contact",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    status = models.CharField(max_length=20, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    order_count = models.IntegerField()
    total = models.DecimalField(max_digits=24, decimal_places=2)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "contact", "status", "currency"], name="order_rollup_key"
            ),
        ]
        indexes = [
            models.Index(
                fields=["org", "status", "currency", "total"],
                include=["contact"],
                name="order_rollup_total",
            ),
            models.Index(
                fields=["org", "status", "currency", "order_count"],
                include=["contact"],
                name="order_rollup_count",
            ),
        ]

    def __str__(self):
        return f"{self.contact_id} {self.status or 'all'} {self.currency or 'all'}"


class OrderStatusChange(OrgScopedModel):
    """One change of an order's status; the first row of an order has no `from_status`."""

    class Via(models.TextChoices):
        MEMBER = "member", "A member"
        WEBHOOK = "webhook", "The inbound webhook"
        API = "api", "The API"
        SYSTEM = "system", "The system"

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="status_changes", db_index=False
    )
    from_status = models.CharField(max_length=20, choices=Order.Status.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=Order.Status.choices)
    via = models.CharField(max_length=20, choices=Via.choices, default=Via.MEMBER)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["changed_at", "id"]
        indexes = [
            models.Index(fields=["org", "order", "changed_at"], name="order_status_history"),
        ]


class OrderInbound(OrgScopedModel):
    """The organization's inbound order URL: a secret token in the path (looked up by its
    digest, kept encrypted so the settings page can show the URL) and a signing secret for
    the HMAC header, encrypted at rest (crm.secrets)."""

    url_token_digest = models.CharField(max_length=64, unique=True)
    url_token_encrypted = models.TextField()
    signing_secret_encrypted = models.TextField()
    # Whether an order for an unknown email creates the contact (else the item is refused).
    create_contacts = models.BooleanField(default=False)
    rotated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint("org", name="order_inbound_one_per_org")]


class OrderDelivery(OrgScopedModel):
    """One request to the inbound order URL and what came of it."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        PARTIAL = "partial", "Partly accepted"
        REJECTED = "rejected", "Rejected (bad input)"
        REFUSED = "refused", "Refused (signature)"
        ERROR = "error", "Failed (our side)"

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    received_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField()
    message_id = models.CharField(max_length=200, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    items = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # The first errors per item ([{"index": 3, "errors": {"value": "..."}}]), bounded.
    errors = models.JSONField(default=list, blank=True)
    remote_ip = models.GenericIPAddressField(null=True, blank=True)
    body_bytes = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["org", "received_at", "id"], name="order_delivery_org_time"),
            models.Index(fields=["org", "outcome", "received_at"], name="order_delivery_outcome"),
        ]
