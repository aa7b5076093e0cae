"""Contacts, companies and the things that hang off them.

Indexes follow the list page: every filter users use and every sort has an index that starts
with `org`, ending in `id` so keyset pagination can seek on (sort value, id).
"""

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Lower, Replace

from crm.tenancy import OrgScopedModel


class Company(OrgScopedModel):
    class Size(models.TextChoices):
        S1 = "1-10", "1–10"
        S2 = "11-50", "11–50"
        S3 = "51-200", "51–200"
        S4 = "201-500", "201–500"
        S5 = "501-1000", "501–1,000"
        S6 = "1001-5000", "1,001–5,000"
        S7 = "5001+", "5,001+"

    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=253, blank=True, help_text="e.g. acme.com")
    website = models.URLField(max_length=500, blank=True)
    industry = models.CharField(max_length=120, blank=True)
    size = models.CharField(max_length=20, choices=Size.choices, blank=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    custom = models.JSONField(default=dict, blank=True)
    is_archived = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    # A company merged into another is archived and points to it (contacts.services
    # .company_merge), so a later match by its domain or name lands on the one kept.
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
        editable=False,
    )
    updated_at = models.DateTimeField(auto_now=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("name", config="simple", weight="A")
        + SearchVector(Replace("domain", Value("."), Value(" ")), config="simple", weight="B"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        verbose_name_plural = "companies"
        constraints = [
            models.UniqueConstraint(
                "org", "domain", condition=~Q(domain=""), name="company_domain_per_org"
            ),
        ]
        indexes = [
            models.Index(fields=["org", "name", "id"], name="company_org_name"),
            models.Index("org", Lower("name"), name="company_org_lower_name"),
            GinIndex(fields=["search_vector"], name="company_search"),
        ]

    def __str__(self):
        return self.name


class Tag(OrgScopedModel):
    name = models.CharField(max_length=60)
    color = models.CharField(max_length=7, default="#6d8cff")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint("org", Lower("name"), name="tag_name_per_org")]

    def __str__(self):
        return self.name


class Contact(OrgScopedModel):
    class DealRole(models.TextChoices):
        DECISION_MAKER = "decision_maker", "Decision Maker"
        INFLUENCER = "influencer", "Influencer"
        CHAMPION = "champion", "Champion"
        BLOCKER = "blocker", "Blocker"
        END_USER = "end_user", "End User"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"

    class Stage(models.TextChoices):
        STAGE = "stage", "Stage"
        LEAD = "lead", "Lead"
        QUALIFIED = "qualified", "Qualified"
        OPPORTUNITY = "opportunity", "Opportunity"
        CUSTOMER = "customer", "Customer"
        ADVOCATE = "advocate", "Advocate"
        CHURNED = "churned", "Churned"

    class ConsentStatus(models.TextChoices):
        OPTED_IN = "opted_in", "Opted In"
        OPTED_OUT = "opted_out", "Opted Out"
        PENDING = "pending", "Pending"
        UNKNOWN = "unknown", "Unknown"

    class ConsentType(models.TextChoices):
        EXPLICIT = "explicit", "Explicit"
        IMPLIED = "implied", "Implied"
        IMPORTED = "imported", "Imported"

    class GdprBasis(models.TextChoices):
        CONSENT = "consent", "Consent"
        LEGITIMATE_INTEREST = "legitimate_interest", "Legitimate Interest"
        CONTRACT = "contract", "Contract"

    # Every index below starts with org, so the plain FK index would only slow writes.
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    # Core
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    email = models.CharField(max_length=254, blank=True)  # primary, stored lower-case
    other_emails = models.JSONField(default=list, blank=True)
    # E.164, except a number an import could not read: that one is kept as typed (up to
    # PHONE_AS_TYPED_MAX characters) and flagged unverified until someone corrects it.
    phone = models.CharField(max_length=64, blank=True)
    mobile = models.CharField(max_length=64, blank=True)
    phone_unverified = models.BooleanField(default=False, db_default=False)
    mobile_unverified = models.BooleanField(default=False, db_default=False)
    job_title = models.CharField(max_length=200, blank=True)
    department = models.CharField(max_length=120, blank=True)
    # contact_org_company and contact_org_owner (org first) serve every lookup by company
    # or owner, which always comes with the org; an index of their own would only be paid
    # for on every write (companies and users are archived or deactivated, not deleted).
    company = models.ForeignKey(
        Company,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contacts",
        db_index=False,
    )
    deal_role = models.CharField(max_length=20, choices=DealRole.choices, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    lifecycle_stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.LEAD)
    lead_score = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    source = models.CharField(max_length=120, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts", through="ContactTag")
    # Address and locale
    street = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=120, blank=True)
    region = models.CharField(max_length=120, blank=True)
    postal_code = models.CharField(max_length=32, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    language = models.CharField(max_length=16, blank=True)
    timezone = models.CharField(max_length=64, blank=True)
    # Social
    linkedin_url = models.URLField(max_length=500, blank=True)
    twitter_handle = models.CharField(max_length=50, blank=True)
    # Compliance
    consent_status = models.CharField(
        max_length=20, choices=ConsentStatus.choices, default=ConsentStatus.UNKNOWN
    )
    consent_type = models.CharField(max_length=20, choices=ConsentType.choices, blank=True)
    consent_date = models.DateTimeField(null=True, blank=True)
    consent_source = models.CharField(max_length=200, blank=True)
    gdpr_basis = models.CharField(max_length=30, choices=GdprBasis.choices, blank=True)
    consent_email = models.BooleanField(null=True, blank=True)
    consent_sms = models.BooleanField(null=True, blank=True)
    consent_phone = models.BooleanField(null=True, blank=True)
    consent_whatsapp = models.BooleanField(null=True, blank=True)
    consent_data_processing = models.BooleanField(null=True, blank=True)
    # CCPA: the person asked us not to sell or share their personal information.
    do_not_sell = models.BooleanField(default=False, db_default=False)
    # Exempt from retention rules and erasure while a legal matter needs the record.
    legal_hold = models.BooleanField(default=False, db_default=False)
    # When a retention rule anonymized the contact (compliance.services.anonymize).
    anonymized_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Custom fields: {definition.key: value} validated by contacts.custom_fields
    custom = models.JSONField(default=dict, blank=True)
    # Lifecycle
    is_archived = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    # A contact merged into another is archived and points to it (contacts.dedup.models).
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
        editable=False,
    )
    updated_at = models.DateTimeField(auto_now=True)
    last_contacted_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # The import that created the contact: its timeline starts with "Imported from <file>".
    # No index and no database constraint: nothing looks contacts up by import (an import
    # lists what it created on its parts), and imports are never deleted apart from their
    # organization, so the reference cannot dangle; a constraint would cost a look-up per
    # imported row.
    import_job = models.ForeignKey(
        "contacts.ImportJob",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
        editable=False,
    )
    # Full-text search over name and email (company names are searched through Company).
    search_vector = models.GeneratedField(
        expression=SearchVector("first_name", "last_name", config="simple", weight="A")
        + SearchVector(
            Replace(Replace("email", Value("@"), Value(" ")), Value("."), Value(" ")),
            config="simple",
            weight="B",
        ),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "org",
                Lower("email"),
                condition=Q(is_archived=False) & ~Q(email=""),
                name="contact_email_per_org_active",
                violation_error_message="Another active contact already has this email.",
            ),
            models.CheckConstraint(
                condition=Q(lead_score__gte=0) & Q(lead_score__lte=100), name="lead_score_0_100"
            ),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="contact_search"),
            GinIndex(fields=["custom"], name="contact_custom", opclasses=["jsonb_path_ops"]),
            models.Index(fields=["org", "last_name", "first_name", "id"], name="contact_org_name"),
            models.Index(fields=["org", "created_at", "id"], name="contact_org_created"),
            models.Index(fields=["org", "updated_at", "id"], name="contact_org_updated"),
            models.Index(fields=["org", "lead_score", "id"], name="contact_org_score"),
            models.Index(fields=["org", "last_activity_at", "id"], name="contact_org_activity"),
            models.Index(fields=["org", "last_contacted_at", "id"], name="contact_org_contacted"),
            models.Index(fields=["org", "owner", "id"], name="contact_org_owner"),
            models.Index(fields=["org", "company", "id"], name="contact_org_company"),
            models.Index(fields=["org", "status", "id"], name="contact_org_status"),
            models.Index(fields=["org", "lifecycle_stage", "id"], name="contact_org_stage"),
            # The lifecycle board of a member with "own" scope: their column, in order
            # (contact_org_stage serves everyone else's).
            models.Index(
                fields=["org", "owner", "lifecycle_stage", "id"],
                name="contact_board_own_column",
                condition=Q(is_archived=False),
            ),
            # The list of a member with "own" scope in its default order (newest first):
            # under a filter that few contacts pass, the walk reads only their contacts, not
            # everyone's (a rep's "Advanced" courses: 220 ms to 60 ms at a million contacts).
            models.Index(
                fields=["org", "owner", "created_at", "id"],
                name="contact_own_created",
                condition=Q(is_archived=False),
            ),
            models.Index(fields=["org", "consent_status", "id"], name="contact_org_consent"),
            models.Index(fields=["org", "source", "id"], name="contact_org_source"),
            models.Index(fields=["org", "country", "id"], name="contact_org_country"),
            # Only archived rows: the Archived view stays fast, active inserts skip it.
            models.Index(
                fields=["org", "id"], name="contact_org_archived", condition=Q(is_archived=True)
            ),
            # Only contacts with a phone: an import matching a row by its phone finds its
            # contact here whatever the statistics say (taken while an org's phones were
            # all empty, they once sent every look-up through the whole org).
            models.Index(fields=["org", "phone"], name="contact_org_phone", condition=~Q(phone="")),
            # Sorts the list page offers beyond the ones above (keyset: org, value, id).
            models.Index(
                fields=["org", "first_name", "last_name", "id"], name="contact_org_first_name"
            ),
            models.Index(fields=["org", "email", "id"], name="contact_org_email"),
            models.Index(fields=["org", "job_title", "id"], name="contact_org_job_title"),
            models.Index(fields=["org", "city", "id"], name="contact_org_city"),
        ]

    def __str__(self):
        return self.full_name

    @property
    def full_name(self):
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or "(no name)"


class ContactTag(models.Model):
    """A tag on a contact (the table Django would make for the many-to-many relation).

    The tag side has no database foreign key: an import links thousands of contacts per
    second to the same few tags, and a key check locks the tag row for every link; with two
    merge lanes those locks are shared between transactions, which cost an import about a
    tenth of its time. Tags are deleted through Django, which removes their links first, and
    a link to a tag that is gone would only be dropped by the joins that read links. The
    contact side keeps its key."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, db_index=False)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, db_constraint=False)

    class Meta:
        db_table = "contacts_contact_tags"
        # (contact, tag) first serves every look-up by contact.
        unique_together = [("contact", "tag")]

    def __str__(self):
        return f"{self.contact_id} · {self.tag_id}"


class ContactList(OrgScopedModel):
    """A static segment: contacts are added and removed explicitly."""

    name = models.CharField(max_length=120)
    description = models.CharField(max_length=300, blank=True)
    contacts = models.ManyToManyField(Contact, blank=True, related_name="lists")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint("org", Lower("name"), name="list_name_per_org")]

    def __str__(self):
        return self.name


class SmartView(OrgScopedModel):
    """A saved filter (validated JSON, see contacts.filters) with its columns and sort, for
    the contact list or for deals (the deal table and the board share a deal's views)."""

    class Entity(models.TextChoices):
        CONTACT = "contact", "Contacts"
        DEAL = "deal", "Deals"

    entity = models.CharField(
        max_length=20, choices=Entity.choices, default=Entity.CONTACT, db_default=Entity.CONTACT
    )
    name = models.CharField(max_length=120)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="smart_views"
    )
    is_shared = models.BooleanField(default=False, help_text="Visible to the whole team.")
    filters = models.JSONField(default=dict)
    columns = models.JSONField(default=list, blank=True)
    sort = models.CharField(max_length=60, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]
        indexes = [models.Index(fields=["org", "owner"], name="smartview_org_owner")]

    def __str__(self):
        return self.name


class ListPreference(OrgScopedModel):
    """A member's remembered columns and sort for one list page (e.g. "contacts")."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="list_preferences"
    )
    list_key = models.CharField(max_length=40)
    columns = models.JSONField(default=list, blank=True)
    sort = models.CharField(max_length=80, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("org", "user", "list_key", name="list_preference_per_user")
        ]

    def __str__(self):
        return f"{self.user} · {self.list_key}"


class CustomFieldDefinition(OrgScopedModel):
    class Entity(models.TextChoices):
        CONTACT = "contact", "Contact"
        COMPANY = "company", "Company"
        DEAL = "deal", "Deal"

    class FieldType(models.TextChoices):
        TEXT = "text", "Text"
        NUMBER = "number", "Number"
        CURRENCY = "currency", "Currency"
        PERCENT = "percent", "Percent"
        LINK = "link", "Link"
        DATE = "date", "Date"
        LIST = "list", "List (choices)"
        CHECKBOX = "checkbox", "Checkbox"

    entity = models.CharField(max_length=20, choices=Entity.choices, default=Entity.CONTACT)
    key = models.SlugField(max_length=60, help_text="Stable key used in filters, exports, API.")
    label = models.CharField(max_length=120)
    field_type = models.CharField(max_length=20, choices=FieldType.choices)
    choices = models.JSONField(default=list, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    regex = models.CharField(max_length=300, blank=True)
    regex_message = models.CharField(max_length=200, blank=True)
    help_text = models.CharField(max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["entity", "position", "label"]
        constraints = [
            models.UniqueConstraint("org", "entity", "key", name="customfield_key_per_entity")
        ]

    def __str__(self):
        return self.label


class Activity(OrgScopedModel):
    """One entry of a contact's (or company's) timeline."""

    class Type(models.TextChoices):
        NOTE = "note", "Note"
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        EMAIL_SENT = "email_sent", "Email sent"
        EMAIL_RECEIVED = "email_received", "Email received"
        EMAIL_OPENED = "email_opened", "Email opened"
        EMAIL_CLICKED = "email_clicked", "Email clicked"
        SMS = "sms", "SMS"
        FORM_SUBMIT = "form_submit", "Form submitted"
        STAGE_CHANGE = "stage_change", "Stage changed"
        DEAL_CREATED = "deal_created", "Deal created"
        DEAL_WON = "deal_won", "Deal won"
        DEAL_LOST = "deal_lost", "Deal lost"
        DEAL_STAGE_CHANGED = "deal_stage_changed", "Deal stage changed"
        DEAL_REOPENED = "deal_reopened", "Deal reopened"
        TASK_COMPLETED = "task_completed", "Task completed"
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        IMPORTED = "imported", "Imported"
        MERGED = "merged", "Merged"
        OWNER_CHANGED = "owner_changed", "Owner changed"
        ARCHIVED = "archived", "Archived"
        RESTORED = "restored", "Restored"

    # The timeline is the most written table (imports add a row per contact): only the
    # composite indexes in Meta, which also serve the foreign keys' look-ups.
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    type = models.CharField(max_length=30, choices=Type.choices)
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="activities",
        db_index=False,
    )
    company = models.ForeignKey(
        Company,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="activities",
        db_index=False,
    )
    deal = models.ForeignKey(
        "pipeline.Deal",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="activities",
        db_index=False,
    )
    # Who acted; people are deactivated, never deleted, so nothing looks rows up by actor.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "activities"
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["contact", "-occurred_at", "-id"], name="activity_contact_time"),
            models.Index(
                fields=["company", "-occurred_at", "-id"],
                name="activity_company_time",
                condition=Q(company__isnull=False),
            ),
            models.Index(fields=["org", "-occurred_at"], name="activity_org_time"),
            models.Index(
                fields=["deal", "-occurred_at", "-id"],
                name="activity_deal_time",
                condition=Q(deal__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.get_type_display()}: {self.subject}"


class Note(OrgScopedModel):
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="notes"
    )
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.CASCADE, related_name="notes"
    )
    deal = models.ForeignKey(
        "pipeline.Deal", null=True, blank=True, on_delete=models.CASCADE, related_name="notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["contact", "-created_at"], name="note_contact_time")]

    def __str__(self):
        return self.body[:60]


class Task(OrgScopedModel):
    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    deal = models.ForeignKey(
        "pipeline.Deal", null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            models.Index(fields=["org", "assignee", "status", "due_at"], name="task_assignee_due"),
            models.Index(fields=["contact", "status"], name="task_contact_status"),
        ]

    def __str__(self):
        return self.title


class ScoringRule(OrgScopedModel):
    """Field condition → points. `condition` is one condition of the smart-view filter
    language (contacts.filters), so scoring and views share one compiler."""

    name = models.CharField(max_length=120)
    condition = models.JSONField()
    points = models.SmallIntegerField(validators=[MinValueValidator(-100), MaxValueValidator(100)])
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return f"{self.name} ({self.points:+d})"


# The import and duplicate models live beside their code; importing them here registers them.
from .dedup.models import (  # noqa: E402
    DedupSettings,
    DuplicateDismissal,
    DuplicatePair,
    MergeRecord,
)
from .importing.models import (  # noqa: E402
    ImportJob,
    ImportPart,
    ImportRecord,
    ImportRowError,
    SavedMapping,
)

__all__ = [
    "Activity",
    "Company",
    "Contact",
    "ContactList",
    "CustomFieldDefinition",
    "DedupSettings",
    "DuplicateDismissal",
    "DuplicatePair",
    "ImportJob",
    "ImportPart",
    "ImportRecord",
    "ImportRowError",
    "ListPreference",
    "MergeRecord",
    "Note",
    "SavedMapping",
    "ScoringRule",
    "SmartView",
    "Tag",
    "Task",
]
