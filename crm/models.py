import uuid
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from .jobs.models import ClaimableJob
from .tenancy import OrgQuerySet, OrgScopedModel


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person who can sign in. Email is the login; there is no username."""

    # Email is the login: Django's username column is removed.
    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    # Our manager creates users by email; django-stubs types AbstractUser's as its own.
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self):
        return self.get_full_name() or self.email

    @property
    def display_name(self):
        return self.get_full_name() or self.email


class Organization(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    base_currency = models.CharField(max_length=3, default="USD")
    timezone = models.CharField(max_length=64, default="UTC")
    locale = models.CharField(max_length=16, default="en-us")
    # Whether column names and sample values of an import may go to the deployment's AI
    # provider for mapping suggestions. Off until an admin opts in (Settings → Organization).
    ai_send_samples = models.BooleanField("Send samples to the AI provider", default=False)
    # Keys of crm.optional_modules an admin turned on ("orders", "custom_objects").
    enabled_modules = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class Team(OrgScopedModel):
    name = models.CharField(max_length=120)

    class Meta:
        constraints = [models.UniqueConstraint("org", Lower("name"), name="team_name_per_org")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class Role(OrgScopedModel):
    """A named permission set. `permissions` maps module -> {access, actions..., scope};
    `field_rules` maps a contact field key -> "editable" | "visible" | "hidden".
    The shape is owned by crm.permissions, which validates and reads it."""

    key = models.SlugField(max_length=60)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=240, blank=True)
    is_builtin = models.BooleanField(default=False)
    permissions = models.JSONField(default=dict)
    field_rules = models.JSONField(default=dict, blank=True)
    position = models.PositiveSmallIntegerField(default=100)

    class Meta:
        constraints = [
            models.UniqueConstraint("org", "key", name="role_key_per_org"),
            models.UniqueConstraint("org", Lower("name"), name="role_name_per_org"),
        ]
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    @property
    def is_owner(self):
        return self.is_builtin and self.key == "owner"


class MembershipQuerySet(OrgQuerySet):
    def active(self):
        return self.filter(is_active=True)


class Membership(OrgScopedModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="memberships")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="memberships"
    )
    is_active = models.BooleanField(default=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint("org", "user", name="membership_user_per_org")]
        ordering = ["user__email"]

    def __str__(self):
        return f"{self.user} @ {self.org} ({self.role})"


class InvitationQuerySet(OrgQuerySet):
    def pending(self):
        return self.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )


class Invitation(OrgScopedModel):
    """An emailed invite. Only a SHA-256 of the link's token is stored."""

    email = models.EmailField()
    role = models.ForeignKey(Role, on_delete=models.PROTECT)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    @property
    def status(self):
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class AuditEvent(OrgScopedModel):
    """Append-only record of a write. A database trigger (see migration) refuses UPDATE and
    DELETE on this table, so history cannot be rewritten even by buggy code."""

    class ActorType(models.TextChoices):
        USER = "user", "User"
        API_KEY = "api_key", "API key"
        SYSTEM = "system", "System job"
        AI = "ai", "AI"

    # audit_org_time starts with org; a separate FK index would only slow every write.
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, blank=True)
    verb = models.CharField(max_length=80)
    object_type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["org", "-created_at"], name="audit_org_time"),
            models.Index(fields=["org", "verb"], name="audit_org_verb"),
            models.Index(fields=["org", "object_type", "object_id"], name="audit_org_object"),
        ]

    def __str__(self):
        return f"{self.actor_label} {self.verb} {self.object_type} {self.object_repr}"


class OutboxEvent(OrgScopedModel):
    """A domain event written in the same transaction as the change it describes.
    Consumers (webhooks, timeline, notifications) read from here, so nothing is lost."""

    event_type = models.CharField(max_length=80)
    payload = models.JSONField(default=dict)
    # Set by the relay (crm.outbox) once every consumer that wants the event is done with it.
    processed_at = models.DateTimeField(null=True, blank=True)
    # While a consumer waits out its backoff, the relay leaves the event alone until then
    # (null: as soon as possible).
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"],
                name="outbox_unprocessed",
                condition=models.Q(processed_at__isnull=True),
            )
        ]


class OutboxDelivery(OrgScopedModel):
    """One consumer's progress on one outbox event. The relay (crm.outbox) writes it in the
    transaction of the consumer's own work, so a consumer that succeeded is never handed the
    event again while another one that failed is retried (attempts, backoff, last error).
    A delivery that failed MAX_ATTEMPTS times is given up: logged, and no longer holding
    back its organization's later events."""

    # Never addressed by a URL, and there is one row per event and consumer: a uuid index
    # would be pure write cost.
    public_id = None  # type: ignore[assignment]
    # No index of its own: every read names the events (outbox_delivery_once) or looks for
    # failures (outbox_delivery_owed); deleting an organization scans the table once.
    org = models.ForeignKey("crm.Organization", on_delete=models.CASCADE, db_index=False)
    event = models.ForeignKey(
        OutboxEvent, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    consumer = models.CharField(max_length=80)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    gave_up_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["event_id", "consumer"]
        constraints = [
            # Event first: the relay looks deliveries up by event, and deleting an event
            # (retention) makes PostgreSQL look for deliveries that still point at it.
            models.UniqueConstraint("event", "consumer", "org", name="outbox_delivery_once")
        ]
        indexes = [
            # The failures still being retried: the relay reads them to keep each
            # consumer's events of an organization in order, /healthz counts them.
            models.Index(
                fields=["org", "consumer", "event"],
                name="outbox_delivery_owed",
                condition=models.Q(processed_at__isnull=True, gave_up_at__isnull=True),
            )
        ]

    def __str__(self):
        return f"{self.consumer} · event {self.event_id}"


class UserPreference(models.Model):
    THEMES = [
        ("midnight", "Midnight", "dark"),
        ("graphite", "Graphite", "dark"),
        ("ocean", "Ocean", "dark"),
        ("forest", "Forest", "dark"),
        ("aubergine", "Aubergine", "dark"),
        ("ember", "Ember", "dark"),
        ("contrast", "High contrast", "dark"),
        ("daylight", "Daylight", "light"),
        ("paper", "Paper", "light"),
    ]
    THEME_CHOICES = [(key, label) for key, label, _ in THEMES]
    DEFAULT_THEME = "midnight"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    theme = models.CharField(max_length=20, choices=THEME_CHOICES, default=DEFAULT_THEME)
    last_org = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self):
        return f"{self.user} ({self.theme})"


class BackgroundJob(ClaimableJob):
    """A long job of the contacts module or the administration (a bulk action, a rescore...)
    whose progress a page polls; the runner in `crm.jobs` claims, runs and sweeps it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    params = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "-created_at"], name="job_org_time")]

    def __str__(self):
        return f"{self.kind} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return super().percent

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED}


class Notification(OrgScopedModel):
    """An in-app message for one member (an import finished, a job failed...)."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        SUCCESS = "success", "Success"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["user", "org", "-created_at"],
                name="notification_unread",
                condition=models.Q(read_at__isnull=True),
            )
        ]

    def __str__(self):
        return self.title
