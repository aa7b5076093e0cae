"""Pipelines, stages and deals, with what hangs off a deal (contacts with roles, the stage
history, line items from the catalog, checklists, attachments) and what the forecast needs
(exchange rates, quotas, weekly snapshots).

Money is Decimal with an ISO 4217 code everywhere. Every table carries `org`; the keys
between tenant tables are written so that they can carry `org` on both sides later.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from crm.tenancy import OrgScopedModel

MONEY = {"max_digits": 14, "decimal_places": 2}
ZERO = Decimal("0.00")


class ForecastCategory(models.TextChoices):
    PIPELINE = "pipeline", "Pipeline"
    BEST_CASE = "best_case", "Best case"
    COMMIT = "commit", "Commit"
    CLOSED = "closed", "Closed"
    OMITTED = "omitted", "Omitted"


class Pipeline(OrgScopedModel):
    name = models.CharField(max_length=120)
    # The template it was created from (pipeline.templates), kept for the settings page.
    template = models.CharField(max_length=40, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    is_default = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint("org", Lower("name"), name="pipeline_name_per_org"),
            models.UniqueConstraint(
                "org", condition=Q(is_default=True), name="one_default_pipeline_per_org"
            ),
        ]

    def __str__(self):
        return self.name


class Stage(OrgScopedModel):
    """An open stage of a pipeline. Won and lost are a deal's status, not stages: a deal
    keeps the stage it was closed in, and counts at 100% (won) or 0% (lost)."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=80)
    color = models.CharField(max_length=7, default="#64748b")  # #rrggbb
    position = models.PositiveSmallIntegerField(default=0)
    probability = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    # A deal left in this stage longer than this is "rotting" (None: never).
    rotting_days = models.PositiveSmallIntegerField(null=True, blank=True)
    forecast_category = models.CharField(
        max_length=20, choices=ForecastCategory.choices, default=ForecastCategory.PIPELINE
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pipeline", "position", "id"]
        constraints = [
            models.UniqueConstraint("pipeline", Lower("name"), name="stage_name_per_pipeline"),
            models.CheckConstraint(
                condition=Q(probability__gte=0) & Q(probability__lte=100),
                name="stage_probability_0_100",
            ),
        ]

    def __str__(self):
        return self.name


class DealReason(OrgScopedModel):
    """An organization's list of reasons a deal is won or lost."""

    class Kind(models.TextChoices):
        WON = "won", "Won"
        LOST = "lost", "Lost"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=120)
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["kind", "position", "id"]
        constraints = [
            models.UniqueConstraint("org", "kind", Lower("name"), name="deal_reason_per_kind")
        ]

    def __str__(self):
        return self.name


class Deal(OrgScopedModel):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    title = models.CharField(max_length=200)
    # The deal's amount in `currency`. While it has line items the services keep it equal to
    # their sum (value_is_manual False); without lines it is whatever the member typed.
    value = models.DecimalField(**MONEY, default=ZERO)
    currency = models.CharField(max_length=3)
    value_is_manual = models.BooleanField(default=True)
    pipeline = models.ForeignKey(
        Pipeline, on_delete=models.PROTECT, related_name="deals", db_index=False
    )
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="deals", db_index=False)
    # Order of the card inside its column: smaller first. Moves take the midpoint of their
    # neighbours; the services renumber a column when two neighbours get too close.
    position = models.FloatField(default=0)
    # None: the stage's probability. Won deals count 100, lost 0, whatever this says.
    probability = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    team = models.ForeignKey(
        "crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="primary_deals",
        db_index=False,
    )
    company = models.ForeignKey(
        "contacts.Company",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deals",
        db_index=False,
    )
    expected_close_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.ForeignKey(
        DealReason, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    close_note = models.TextField(blank=True)
    source = models.CharField(max_length=120, blank=True)
    # None: the stage's forecast category (closed when won, omitted when lost).
    forecast_category = models.CharField(
        max_length=20, choices=ForecastCategory.choices, blank=True
    )
    tags = models.ManyToManyField("contacts.Tag", blank=True, related_name="+", through="DealTag")
    # Custom fields of the Deal entity: {definition.key: value}, see contacts.custom_fields.
    custom = models.JSONField(default=dict, blank=True)
    stage_entered_at = models.DateTimeField()
    last_activity_at = models.DateTimeField(null=True, blank=True)
    is_archived = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Search by title: a stored column with its own GIN index. An expression index on
    # to_tsvector(title) is not used under the row-level-security policies (the planner
    # will not push a non-leakproof function below them), a plain column is.
    search_vector = models.GeneratedField(
        expression=SearchVector("title", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(value__gte=0), name="deal_value_not_negative"),
            models.CheckConstraint(
                condition=Q(probability__isnull=True)
                | (Q(probability__gte=0) & Q(probability__lte=100)),
                name="deal_probability_0_100",
            ),
            models.CheckConstraint(
                condition=Q(status="open") | Q(closed_at__isnull=False),
                name="closed_deal_has_a_date",
            ),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="deal_search"),
            # The board: a column's cards in order.
            models.Index(
                fields=["org", "stage", "position", "id"],
                name="deal_board_column",
                condition=Q(status="open", is_archived=False),
            ),
            # The board's column totals, read from the index alone.
            models.Index(
                fields=["org", "stage", "currency", "probability"],
                include=["value", "owner"],
                name="deal_board_totals",
                condition=Q(status="open", is_archived=False),
            ),
            # The board of a member with "own" scope: their cards of a column, in order.
            models.Index(
                fields=["org", "owner", "stage", "position", "id"],
                name="deal_board_own_column",
                condition=Q(status="open", is_archived=False),
            ),
            models.Index(fields=["org", "pipeline", "status", "id"], name="deal_org_pipeline"),
            models.Index(fields=["org", "owner", "status", "id"], name="deal_org_owner"),
            models.Index(fields=["org", "expected_close_date", "id"], name="deal_org_close_date"),
            models.Index(fields=["org", "closed_at", "id"], name="deal_org_closed_at"),
            models.Index(fields=["org", "updated_at", "id"], name="deal_org_updated"),
            models.Index(fields=["org", "created_at", "id"], name="deal_org_created"),
            models.Index(fields=["org", "value", "id"], name="deal_org_value"),
            models.Index(fields=["org", "contact", "id"], name="deal_org_contact"),
            models.Index(fields=["org", "company", "id"], name="deal_org_company"),
        ]

    def __str__(self):
        return self.title

    @property
    def effective_probability(self) -> int:
        if self.status == self.Status.WON:
            return 100
        if self.status == self.Status.LOST:
            return 0
        if self.probability is not None:
            return self.probability
        return self.stage.probability

    @property
    def effective_forecast_category(self) -> str:
        if self.status == self.Status.WON:
            return ForecastCategory.CLOSED
        if self.status == self.Status.LOST:
            return ForecastCategory.OMITTED
        return self.forecast_category or self.stage.forecast_category

    @property
    def weighted_value(self) -> Decimal:
        return (self.value * self.effective_probability / 100).quantize(Decimal("0.01"))


class DealTag(models.Model):
    """A tag on a deal (the many-to-many table, with the organization on the row)."""

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, db_index=False)
    tag = models.ForeignKey("contacts.Tag", on_delete=models.CASCADE, related_name="+")

    class Meta:
        unique_together = [("deal", "tag")]

    def __str__(self):
        return f"{self.deal_id} · {self.tag_id}"


class DealContact(OrgScopedModel):
    """A contact on a deal besides (or as well as) its primary contact, with a role."""

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="deal_contacts")
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="deal_links"
    )
    role = models.CharField(max_length=20, blank=True)  # contacts.Contact.DealRole

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint("deal", "contact", name="deal_contact_once"),
        ]

    def __str__(self):
        return f"{self.deal_id} · {self.contact_id}"


class StageHistory(OrgScopedModel):
    """One move of a deal: into a stage, between stages, or to won/lost (and back).
    `seconds_in_from_stage` is how long the deal had been in `from_stage`, so the median
    time in a stage is one query."""

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="stage_history")
    # SET_NULL: deleting a pipeline (after its deals moved elsewhere) keeps their history.
    pipeline = models.ForeignKey(
        Pipeline, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10)
    seconds_in_from_stage = models.PositiveIntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name_plural = "stage history"
        indexes = [
            models.Index(fields=["deal", "-occurred_at"], name="stagehistory_deal_time"),
            models.Index(fields=["org", "pipeline", "occurred_at"], name="stagehistory_pipeline"),
        ]

    def __str__(self):
        return f"{self.deal_id}: {self.from_stage_id} → {self.to_stage_id}"


class Product(OrgScopedModel):
    """The catalog: what line items are picked from (their name and price are copied)."""

    name = models.CharField(max_length=200)
    sku = models.CharField(max_length=64, blank=True)
    description = models.TextField(blank=True)
    unit_price = models.DecimalField(**MONEY, validators=[MinValueValidator(ZERO)])
    currency = models.CharField(max_length=3)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                "org", Lower("sku"), condition=~Q(sku=""), name="product_sku_per_org"
            ),
        ]

    def __str__(self):
        return self.name


class LineItem(OrgScopedModel):
    class DiscountKind(models.TextChoices):
        NONE = "none", "No discount"
        FIXED = "fixed", "Amount off"
        PERCENT = "percent", "Percent off"

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="line_items")
    # Where it was picked from; the name and price below are a snapshot taken then.
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200)
    quantity = models.DecimalField(
        max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))]
    )
    unit_price = models.DecimalField(**MONEY, validators=[MinValueValidator(ZERO)])
    discount_kind = models.CharField(
        max_length=10, choices=DiscountKind.choices, default=DiscountKind.NONE
    )
    discount = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    # quantity × unit price − discount, rounded to cents, never below zero.
    total = models.DecimalField(**MONEY, default=ZERO)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gte=0), name="line_total_not_negative"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="line_quantity_positive"),
            models.CheckConstraint(condition=Q(discount__gte=0), name="line_discount_positive"),
        ]

    def __str__(self):
        return self.name


class Checklist(OrgScopedModel):
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="checklists")
    title = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.title


class ChecklistItem(OrgScopedModel):
    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="items")
    text = models.CharField(max_length=300)
    is_done = models.BooleanField(default=False)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.text


def attachment_path(instance, filename):
    # The stored name is the row's uuid: the user's file name is only shown, never a path.
    return f"attachments/{instance.org_id}/{instance.public_id}"


class Attachment(OrgScopedModel):
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=300)
    file_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=120)
    size = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.file_name


class ExchangeRate(OrgScopedModel):
    """How many units of the organization's base currency one unit of `currency` is worth,
    from `effective_date` until the next rate of the same currency."""

    currency = models.CharField(max_length=3)
    rate = models.DecimalField(
        max_digits=20, decimal_places=10, validators=[MinValueValidator(Decimal("0.0000000001"))]
    )
    effective_date = models.DateField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["currency", "-effective_date"]
        constraints = [
            models.UniqueConstraint(
                "org", "currency", "effective_date", name="one_rate_per_currency_and_day"
            ),
            models.CheckConstraint(condition=Q(rate__gt=0), name="rate_positive"),
        ]

    def __str__(self):
        return f"{self.currency} {self.rate} from {self.effective_date}"


class Quota(OrgScopedModel):
    """A rep's target of closed-won value, in the base currency, for one period."""

    class Period(models.TextChoices):
        MONTH = "month", "Month"
        QUARTER = "quarter", "Quarter"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.QUARTER)
    period_start = models.DateField()
    amount = models.DecimalField(**MONEY, validators=[MinValueValidator(ZERO)])

    class Meta:
        ordering = ["-period_start", "user_id"]
        constraints = [
            models.UniqueConstraint(
                "org", "user", "period", "period_start", name="one_quota_per_rep_and_period"
            ),
        ]

    def __str__(self):
        return f"{self.user_id} {self.period} {self.period_start}: {self.amount}"


class ForecastSnapshot(OrgScopedModel):
    """The forecast as it stood when taken (weekly, by beat): its totals, and one line per
    open or recently closed deal so that "what changed" can compare two snapshots."""

    taken_at = models.DateTimeField()
    base_currency = models.CharField(max_length=3)
    totals = models.JSONField(default=dict)

    class Meta:
        ordering = ["-taken_at", "-id"]
        indexes = [models.Index(fields=["org", "-taken_at"], name="snapshot_org_time")]

    def __str__(self):
        return f"Forecast of {self.taken_at:%Y-%m-%d}"


class ForecastSnapshotLine(models.Model):
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    snapshot = models.ForeignKey(ForecastSnapshot, on_delete=models.CASCADE, related_name="lines")
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="+", db_index=False)
    pipeline_id_at = models.BigIntegerField()
    stage_id_at = models.BigIntegerField()
    owner_id_at = models.BigIntegerField(null=True)
    status = models.CharField(max_length=10)
    category = models.CharField(max_length=20)
    expected_close_date = models.DateField(null=True)
    value_base = models.DecimalField(**MONEY)
    weighted_base = models.DecimalField(**MONEY)

    class Meta:
        indexes = [models.Index(fields=["snapshot", "deal"], name="snapshotline_deal")]

    def __str__(self):
        return f"{self.snapshot_id} · {self.deal_id}"


# The orders registry and custom objects, each in its own module (imported here so that
# Django finds them and `from pipeline.models import Order` works).
from .objects import ObjectAssociation, ObjectField, ObjectRecord, ObjectType  # noqa: E402, F401
from .orders import (  # noqa: E402, F401
    Order,
    OrderDelivery,
    OrderInbound,
    OrderRollup,
    OrderStatusChange,
)
