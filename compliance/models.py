"""Privacy and compliance: the consent ledger, suppression, the organization's privacy mode,
double opt-in confirmations, data subject requests, erasure tombstones and retention rules.

The consent fields on Contact (consent_email … consent_data_processing, consent_status,
do_not_sell) are the current state; ConsentRecord is the history that state is derived from.
Only compliance.services.consent writes either, and it writes both in one transaction.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from crm.tenancy import OrgScopedModel

# Countries whose residents GDPR (or its UK and Swiss twins) covers: the EEA, the UK and
# Switzerland. ISO 3166-1 alpha-2, as Contact.country stores them.
GDPR_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
        "GB",
        "CH",
    ]
)
CCPA_COUNTRIES = frozenset({"US"})


class Channel(models.TextChoices):
    """A way of reaching a person. Each has a consent field on Contact."""

    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PHONE = "phone", "Calls"
    WHATSAPP = "whatsapp", "WhatsApp"


class Purpose(models.TextChoices):
    MARKETING = "marketing", "Marketing"
    TRANSACTIONAL = "transactional", "Transactional"


class LegalBasis(models.TextChoices):
    CONSENT = "consent", "Consent"
    LEGITIMATE_INTEREST = "legitimate_interest", "Legitimate interest"
    CONTRACT = "contract", "Contract"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation"


class PrivacySettings(OrgScopedModel):
    """An organization's privacy mode (Settings → Privacy). Without a row, the defaults apply:
    mode "off", no double opt-in."""

    class Mode(models.TextChoices):
        OFF = "off", "Off"
        GDPR = "gdpr", "GDPR"
        CCPA = "ccpa", "CCPA"
        BOTH = "both", "GDPR and CCPA, by the contact's country"

    org = models.OneToOneField(
        "crm.Organization", on_delete=models.CASCADE, related_name="privacy_settings"
    )
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.OFF)
    # Hours a double opt-in link stays valid.
    confirmation_hours = models.PositiveSmallIntegerField(default=72)
    # What a person agrees to when they opt in to marketing email, and its version; each
    # ledger row of a confirmation keeps the text and version it was shown.
    consent_text = models.TextField(
        default="I agree to receive marketing email. I can unsubscribe at any time.", blank=True
    )
    consent_text_version = models.CharField(max_length=40, default="1", blank=True)
    # The name and colour the public preference center shows.
    brand_name = models.CharField(max_length=120, blank=True)
    brand_color = models.CharField(max_length=7, default="#2563eb", blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Privacy settings of {self.org_id}"


class ConsentRecord(OrgScopedModel):
    """One change to one consent of one contact: the ledger. Append-only: a database trigger
    refuses UPDATE, DELETE and TRUNCATE (migration 0001), except where an erasure or the
    test suite says so on its own connection."""

    class Field(models.TextChoices):
        EMAIL = "consent_email", "Email consent"
        SMS = "consent_sms", "SMS consent"
        PHONE = "consent_phone", "Phone consent"
        WHATSAPP = "consent_whatsapp", "WhatsApp consent"
        DATA_PROCESSING = "consent_data_processing", "Data processing consent"
        STATUS = "consent_status", "Consent status"
        DO_NOT_SELL = "do_not_sell", "Do not sell or share"

    class ActorKind(models.TextChoices):
        MEMBER = "member", "Member"
        IMPORT = "import", "Import"
        API = "api", "API"
        PREFERENCE_CENTER = "preference_center", "Preference center"
        DOUBLE_OPT_IN = "double_opt_in", "Double opt-in"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe link"
        MERGE = "merge", "Merge"
        SYSTEM = "system", "System"

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="consent_records"
    )
    field = models.CharField(max_length=32, choices=Field.choices)
    # Values as text: "true", "false" or "" (unknown) for the yes/no consents, the status key
    # for consent_status.
    old_value = models.CharField(max_length=20, blank=True)
    new_value = models.CharField(max_length=20, blank=True)
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, blank=True)
    # Where it happened, in words: "Contact form", "Import of leads.csv", "Preference center".
    source = models.CharField(max_length=200, blank=True)
    legal_basis = models.CharField(max_length=24, choices=LegalBasis.choices, blank=True)
    # Evidence: the form, the person's IP and browser, the text they agreed to and its version.
    form = models.CharField(max_length=120, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    consent_text = models.TextField(blank=True)
    consent_text_version = models.CharField(max_length=40, blank=True)
    # Anything else worth keeping: the import's id and file, the confirmation's id…
    evidence = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["org", "contact", "-occurred_at"], name="consent_contact_time"),
        ]

    def __str__(self):
        return f"{self.field}: {self.old_value or '–'} → {self.new_value or '–'}"


class Suppression(OrgScopedModel):
    """An address that must not be contacted on a channel. Active while `lifted_at` is
    empty; lifting needs a note and keeps the row, so the history stays."""

    class Reason(models.TextChoices):
        UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
        BOUNCE = "bounce", "Bounced"
        COMPLAINT = "complaint", "Spam complaint"
        MANUAL = "manual", "Added by hand"
        DO_NOT_CONTACT = "do_not_contact", "Do not contact"

    class Scope(models.TextChoices):
        MARKETING = "marketing", "Marketing only"
        ALL = "all", "All messages"

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # The email address in lower case, or the phone number in E.164.
    address = models.CharField(max_length=254)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="suppressions",
    )
    source = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
    )
    lift_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "channel", "address"],
                condition=models.Q(lifted_at__isnull=True),
                name="suppression_one_active",
            )
        ]
        indexes = [
            models.Index(
                fields=["org", "address"],
                condition=models.Q(lifted_at__isnull=True),
                name="suppression_active_address",
            ),
            models.Index(fields=["org", "-created_at", "-id"], name="suppression_org_time"),
            models.Index(
                fields=["org", "contact"],
                condition=models.Q(contact__isnull=False),
                name="suppression_contact",
            ),
        ]

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None

    def __str__(self):
        return f"{self.get_channel_display()} {self.address} ({self.get_reason_display()})"


class OptInConfirmation(OrgScopedModel):
    """A double opt-in email sent and waiting for its click. The link carries this row's
    public_id, signed; the first click confirms, a replay finds it used and changes nothing."""

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="opt_in_confirmations"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    address = models.CharField(max_length=254)
    consent_text = models.TextField(blank=True)
    consent_text_version = models.CharField(max_length=40, blank=True)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_ip = models.GenericIPAddressField(null=True, blank=True)
    confirmed_user_agent = models.CharField(max_length=400, blank=True)

    class Meta:
        indexes = [models.Index(fields=["org", "contact"], name="optin_contact")]

    def __str__(self):
        return f"Opt-in confirmation for {self.address}"


class DataRequest(OrgScopedModel):
    """A data subject request: access, erasure, rectification or do-not-sell."""

    class Kind(models.TextChoices):
        ACCESS = "access", "Access (right to know)"
        ERASURE = "erasure", "Erasure"
        RECTIFICATION = "rectification", "Rectification"
        DO_NOT_SELL = "do_not_sell", "Do not sell or share"

    class Regime(models.TextChoices):
        GDPR = "gdpr", "GDPR"
        CCPA = "ccpa", "CCPA"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"
        REJECTED = "rejected", "Rejected"

    # Days the law gives to answer.
    DUE_DAYS = {Regime.GDPR: 30, Regime.CCPA: 45}

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    regime = models.CharField(max_length=8, choices=Regime.choices, default=Regime.GDPR)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    # The contact is cleared by an erasure; the request keeps no personal data of its own
    # beyond what the requester wrote, which the erasure also clears.
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="data_requests",
    )
    requester_email = models.CharField(max_length=254, blank=True)
    details = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["org", "status", "due_at"], name="datarequest_queue")]

    @property
    def is_overdue(self) -> bool:
        open_states = (self.Status.OPEN, self.Status.IN_PROGRESS)
        return self.status in open_states and self.due_at < timezone.now()

    def __str__(self):
        return f"{self.get_kind_display()} request"


class ErasureTombstone(OrgScopedModel):
    """What is left of an erased person: keyed hashes of their email and phone, so an import
    or a sync does not bring them back. No personal data in clear."""

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    # HMAC-SHA256 (hex) of the normalized value under the deployment's secret.
    email_hash = models.CharField(max_length=64, blank=True)
    phone_hash = models.CharField(max_length=64, blank=True)
    request = models.ForeignKey(
        DataRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(
                fields=["org", "email_hash"],
                condition=~models.Q(email_hash=""),
                name="tombstone_email",
            ),
            models.Index(
                fields=["org", "phone_hash"],
                condition=~models.Q(phone_hash=""),
                name="tombstone_phone",
            ),
        ]

    def __str__(self):
        return "Erased person"


class RetentionPolicy(OrgScopedModel):
    """A rule such as "delete leads with no activity for 24 months"."""

    class Action(models.TextChoices):
        DELETE = "delete", "Delete"
        ANONYMIZE = "anonymize", "Anonymize"

    class Condition(models.TextChoices):
        NO_ACTIVITY = "no_activity", "No activity for"
        ARCHIVED = "archived", "Archived for more than"
        CREATED = "created", "Created more than"

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    name = models.CharField(max_length=120)
    action = models.CharField(max_length=10, choices=Action.choices)
    condition = models.CharField(max_length=12, choices=Condition.choices)
    months = models.PositiveSmallIntegerField()
    # Only contacts at this lifecycle stage ("lead"); empty for every stage.
    lifecycle_stage = models.CharField(max_length=20, blank=True)
    enabled = models.BooleanField(default=False)
    # What the preview counted when the policy was last enabled.
    previewed_count = models.PositiveIntegerField(null=True, blank=True)
    previewed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="+",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    @property
    def stage_label(self) -> str:
        from contacts.models import Contact

        return dict(Contact.Stage.choices).get(self.lifecycle_stage, self.lifecycle_stage)

    def __str__(self):
        return self.name


class RetentionRun(OrgScopedModel):
    """One run of one policy: its report."""

    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    policy = models.ForeignKey(RetentionPolicy, on_delete=models.CASCADE, related_name="runs")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    affected = models.PositiveIntegerField(default=0)
    skipped_on_hold = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["org", "policy", "-started_at"], name="retention_runs")]

    def __str__(self):
        return f"Run of {self.policy_id}"
