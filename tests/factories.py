"""factory-boy factories. Every tenant factory needs an org: pass one, or get a fresh one."""

import datetime as dt
import hashlib
import secrets

import factory
from django.utils import timezone

from contacts import models as contacts_models
from contacts.importing.models import ImportJob, SavedMapping
from crm import secrets as crm_secrets
from crm.models import (
    AuditEvent,
    BackgroundJob,
    Invitation,
    Membership,
    Notification,
    Organization,
    OutboxDelivery,
    OutboxEvent,
    Role,
    Team,
    User,
)
from crm.services.orgs import ensure_builtin_roles

PASSWORD = "demo-pass-2026"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(self, create, extracted, **kwargs):
        """Users made here have a verified primary email, so allauth lets them log in."""
        if not create:
            return
        from allauth.account.models import EmailAddress

        self.save()
        EmailAddress.objects.get_or_create(
            user=self, email=self.email, defaults={"verified": True, "primary": True}
        )


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create:
            ensure_builtin_roles(self)


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Team {n}")


def role(org, key: str) -> Role:
    return Role.objects.get(org=org, key=key)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    org = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = factory.LazyAttribute(lambda o: role(o.org, "team"))


def member(org, role_key: str = "owner", **kwargs) -> Membership:
    """A user who is an active member of `org` with the built-in role `role_key`."""
    return MembershipFactory(org=org, role=role(org, role_key), **kwargs)


def now():
    return timezone.now()


# Core tenant rows the other factories do not cover ---------------------------------------


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    org = factory.SubFactory(OrganizationFactory)
    actor_type = AuditEvent.ActorType.SYSTEM
    actor_label = "test job"
    verb = "test.recorded"
    object_type = "test"
    object_repr = factory.Sequence(lambda n: f"Test object {n}")


class OutboxEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboxEvent

    org = factory.SubFactory(OrganizationFactory)
    event_type = "test.happened"
    payload = factory.LazyFunction(dict)


class OutboxDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboxDelivery

    org = factory.SubFactory(OrganizationFactory)
    event = factory.SubFactory(OutboxEventFactory, org=factory.SelfAttribute("..org"))
    consumer = "notifications"


def custom_role(org, **kwargs) -> Role:
    """A non-built-in role, the kind admins may edit and delete."""
    n = Role.objects.for_org(org).count() + 1
    fields = {"key": f"custom-{n}", "name": f"Custom role {n}", "permissions": {}}
    fields.update(kwargs)
    return Role.objects.create(org=org, **fields)


def pending_invitation(org, email: str = "", role_key: str = "team") -> Invitation:
    """An unexpired invite; the link's raw token is returned on `.raw_token` for tests."""
    raw_token = secrets.token_urlsafe(24)
    invitation = Invitation.objects.create(
        org=org,
        email=email or f"invitee-{secrets.token_hex(3)}@example.test",
        role=role(org, role_key),
        token_hash=hashlib.sha256(raw_token.encode()).hexdigest(),
        expires_at=timezone.now() + dt.timedelta(days=7),
    )
    invitation.raw_token = raw_token
    return invitation


# Factory registry ---------------------------------------------------------------------
# The URL-walking tenancy test builds one row of every OrgScopedModel. It finds a model's
# factory here: first FACTORY_FOR_MODEL (for models that need more than `Factory(org=org)`),
# then any DjangoModelFactory defined in this module for that model. A new model without
# either makes that test fail with the model's name, so no model escapes the walk.

FACTORY_FOR_MODEL = {
    Role: custom_role,
    Invitation: pending_invitation,
}


def _module_factories() -> dict:
    found = {}
    for value in list(globals().values()):
        if (
            isinstance(value, type)
            and issubclass(value, factory.django.DjangoModelFactory)
            and getattr(value._meta, "model", None) is not None
        ):
            found.setdefault(value._meta.model, value)
    return found


def factory_for(model):
    """The callable that makes a `model` row for an org, or None when there is none."""
    return FACTORY_FOR_MODEL.get(model) or _module_factories().get(model)


def make_instance(model, org):
    """One saved row of `model` belonging to `org`."""
    maker = factory_for(model)
    if maker is None:
        raise LookupError(
            f"No factory for {model._meta.label}: add a factory-boy factory for it to "
            "tests/factories.py (or an entry in FACTORY_FOR_MODEL)."
        )
    return maker(org=org)


# The user fields that say whose a row is (its owner, author, assignee, creator...).
# Tables a database trigger keeps append-only: give_to() leaves the row as it was written.
APPEND_ONLY = {"compliance.ConsentRecord"}
OWNER_FIELDS = ("owner", "created_by", "author", "assignee", "user", "actor", "actor_user")


def give_to(row, user):
    """Make `user` the owner of `row` and of the tenant rows it hangs off (a note's contact,
    a task's company), so the record-scope walk has rows that are someone else's. Written
    with UPDATE, so no save() logic runs. A membership is left alone: its user is who it is."""
    if isinstance(row, Membership):
        return row
    changes = {}
    for f in row._meta.concrete_fields:
        if not f.many_to_one or f.name == "org":
            continue
        if f.related_model is User and f.name in OWNER_FIELDS:
            changes[f.name] = user
        elif getattr(row, f.attname, None) is not None and f.related_model not in (
            Organization,
            Membership,
            Role,
            Team,
        ):
            give_to(getattr(row, f.name), user)
    if row._meta.label in APPEND_ONLY:
        return row  # its contact was given above; the row itself cannot be rewritten
    if changes:
        type(row).objects.filter(pk=row.pk).update(**changes)
        for name, value in changes.items():
            setattr(row, name, value)
    return row


# Contact list: smart views and remembered list preferences ------------------------------


class SmartViewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contacts.SmartView"

    org = factory.SubFactory(OrganizationFactory)
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"View {n}")
    filters = factory.LazyFunction(lambda: {"groups": []})


class ListPreferenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contacts.ListPreference"

    org = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    list_key = "contacts"
    columns = factory.LazyFunction(lambda: ["email", "company"])


FACTORY_FOR_MODEL.update(
    {
        SmartViewFactory._meta.get_model_class(): SmartViewFactory,
        ListPreferenceFactory._meta.get_model_class(): ListPreferenceFactory,
    }
)


# Jobs, notifications and imports ------------------------------------------------------


class BackgroundJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BackgroundJob

    org = factory.SubFactory(OrganizationFactory)
    kind = "contacts.bulk"
    total = 10


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification

    org = factory.SubFactory(OrganizationFactory)
    user = factory.LazyAttribute(lambda o: member(o.org, "team").user)
    title = "Import finished"


class ImportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImportJob

    org = factory.SubFactory(OrganizationFactory)
    file = factory.django.FileField(filename="people.csv", data=b"Email\na@example.com\n")
    file_name = "people.csv"
    headers = factory.LazyFunction(lambda: ["Email"])
    mapping = factory.LazyFunction(lambda: {"Email": "email"})


class SavedMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SavedMapping

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Mapping {n}")
    headers_signature = "0" * 64


# Contacts, companies and what hangs off them ---------------------------------------------


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.Company

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Company {n}")
    domain = factory.Sequence(lambda n: f"company{n}.example")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.Tag

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"tag-{n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.Contact
        skip_postgeneration_save = True

    org = factory.SubFactory(OrganizationFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"contact{n}@people.example")

    @factory.post_generation
    def tags(self, create, extracted, **kwargs):
        """ContactFactory(org=org, tags=[tag, ...]) links existing tags."""
        if create and extracted:
            self.tags.set(extracted)


class CustomFieldDefinitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.CustomFieldDefinition

    org = factory.SubFactory(OrganizationFactory)
    entity = "contact"
    key = factory.Sequence(lambda n: f"field_{n}")
    label = factory.Sequence(lambda n: f"Field {n}")
    field_type = "text"


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.Activity

    org = factory.SubFactory(OrganizationFactory)
    contact = factory.SubFactory(ContactFactory, org=factory.SelfAttribute("..org"))
    type = "call"
    subject = factory.Sequence(lambda n: f"Call {n}")
    occurred_at = factory.LazyFunction(timezone.now)


class NoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.Note

    org = factory.SubFactory(OrganizationFactory)
    contact = factory.SubFactory(ContactFactory, org=factory.SelfAttribute("..org"))
    body = factory.Sequence(lambda n: f"Note number {n}")


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.Task

    org = factory.SubFactory(OrganizationFactory)
    title = factory.Sequence(lambda n: f"Follow up {n}")


# Static lists and lead scoring --------------------------------------------------------------


class ContactListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.ContactList

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"List {n}")


class ScoringRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.ScoringRule

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Rule {n}")
    condition = factory.LazyFunction(
        lambda: {"field": "job_title", "op": "contains", "value": "VP"}
    )
    points = 10


# Pipelines and deals ------------------------------------------------------------------------

from pipeline import models as pipeline_models  # noqa: E402
from pipeline.services import order_inbound  # noqa: E402


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.Pipeline

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Pipeline {n}")


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.Stage

    org = factory.SubFactory(OrganizationFactory)
    pipeline = factory.SubFactory(PipelineFactory, org=factory.SelfAttribute("..org"))
    name = factory.Sequence(lambda n: f"Stage {n}")
    position = factory.Sequence(lambda n: n)
    probability = 20


class DealReasonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.DealReason

    org = factory.SubFactory(OrganizationFactory)
    kind = "lost"
    name = factory.Sequence(lambda n: f"Reason {n}")


class DealFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.Deal
        skip_postgeneration_save = True

    org = factory.SubFactory(OrganizationFactory)
    title = factory.Sequence(lambda n: f"Deal {n}")
    stage = factory.SubFactory(StageFactory, org=factory.SelfAttribute("..org"))
    pipeline = factory.SelfAttribute("stage.pipeline")
    value = 1000
    currency = "USD"
    stage_entered_at = factory.LazyFunction(timezone.now)
    position = factory.Sequence(lambda n: float(n))


class DealContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.DealContact

    org = factory.SubFactory(OrganizationFactory)
    deal = factory.SubFactory(DealFactory, org=factory.SelfAttribute("..org"))
    contact = factory.SubFactory(ContactFactory, org=factory.SelfAttribute("..org"))
    role = "influencer"


class StageHistoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.StageHistory

    org = factory.SubFactory(OrganizationFactory)
    deal = factory.SubFactory(DealFactory, org=factory.SelfAttribute("..org"))
    pipeline = factory.SelfAttribute("deal.pipeline")
    to_stage = factory.SelfAttribute("deal.stage")
    to_status = "open"
    occurred_at = factory.LazyFunction(timezone.now)


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.Product

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Product {n}")
    unit_price = 100
    currency = "USD"


class LineItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.LineItem

    org = factory.SubFactory(OrganizationFactory)
    deal = factory.SubFactory(DealFactory, org=factory.SelfAttribute("..org"))
    name = factory.Sequence(lambda n: f"Line {n}")
    quantity = 1
    unit_price = 100
    total = 100


class ChecklistFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.Checklist

    org = factory.SubFactory(OrganizationFactory)
    deal = factory.SubFactory(DealFactory, org=factory.SelfAttribute("..org"))
    title = factory.Sequence(lambda n: f"Checklist {n}")


class ChecklistItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.ChecklistItem

    org = factory.SubFactory(OrganizationFactory)
    checklist = factory.SubFactory(ChecklistFactory, org=factory.SelfAttribute("..org"))
    text = factory.Sequence(lambda n: f"Step {n}")


class AttachmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.Attachment

    org = factory.SubFactory(OrganizationFactory)
    deal = factory.SubFactory(DealFactory, org=factory.SelfAttribute("..org"))
    file = factory.django.FileField(filename="proposal.pdf", data=b"%PDF-1.4 probe")
    file_name = factory.Sequence(lambda n: f"proposal-{n}.pdf")
    content_type = "application/pdf"
    size = 14


class ExchangeRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.ExchangeRate

    org = factory.SubFactory(OrganizationFactory)
    currency = "EUR"
    rate = "1.0800000000"
    effective_date = factory.Sequence(lambda n: dt.date(2026, 1, 1) + dt.timedelta(days=n))


class QuotaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.Quota

    org = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    period = "quarter"
    period_start = factory.Sequence(lambda n: dt.date(2020 + n // 4, 1 + 3 * (n % 4), 1))
    amount = 50000


class ForecastSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.ForecastSnapshot

    org = factory.SubFactory(OrganizationFactory)
    taken_at = factory.LazyFunction(timezone.now)
    base_currency = "USD"


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.Order

    org = factory.SubFactory(OrganizationFactory)
    contact = factory.SubFactory(ContactFactory, org=factory.SelfAttribute("..org"))
    title = factory.Sequence(lambda n: f"Order {n}")
    value = 100
    currency = "USD"
    status = pipeline_models.Order.Status.PAID
    order_date = factory.LazyFunction(lambda: timezone.localdate())


class OrderStatusChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.OrderStatusChange

    org = factory.SubFactory(OrganizationFactory)
    order = factory.SubFactory(OrderFactory, org=factory.SelfAttribute("..org"))
    from_status = ""
    to_status = factory.SelfAttribute("order.status")


class OrderInboundFactory(factory.django.DjangoModelFactory):
    """Built with known secrets: `url_token` and `signing_secret` are the clear values."""

    class Meta:
        model = pipeline_models.OrderInbound
        exclude = ["url_token", "signing_secret"]

    org = factory.SubFactory(OrganizationFactory)
    url_token = factory.Sequence(lambda n: f"ordin_test_token_{n}_{secrets.token_hex(8)}")
    signing_secret = factory.LazyFunction(lambda: order_inbound.new_signing_secret())
    url_token_digest = factory.LazyAttribute(
        lambda o: hashlib.sha256(o.url_token.encode()).hexdigest()
    )
    url_token_encrypted = factory.LazyAttribute(lambda o: crm_secrets.encrypt(o.url_token))
    signing_secret_encrypted = factory.LazyAttribute(
        lambda o: crm_secrets.encrypt(o.signing_secret)
    )


class OrderDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.OrderDelivery

    org = factory.SubFactory(OrganizationFactory)
    outcome = pipeline_models.OrderDelivery.Outcome.ACCEPTED
    status_code = 200
    items = 1
    created = 1


class ObjectTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.ObjectType

    org = factory.SubFactory(OrganizationFactory)
    key = factory.Sequence(lambda n: f"object_{n}")
    name = factory.Sequence(lambda n: f"Object {n}")
    plural = factory.LazyAttribute(lambda o: f"{o.name}s")
    primary_field_key = "name"


class ObjectFieldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.ObjectField

    org = factory.SubFactory(OrganizationFactory)
    object_type = factory.SubFactory(ObjectTypeFactory, org=factory.SelfAttribute("..org"))
    key = "name"
    label = "Name"
    field_type = pipeline_models.ObjectField.FieldType.TEXT


class ObjectRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.ObjectRecord

    org = factory.SubFactory(OrganizationFactory)
    object_type = factory.SubFactory(ObjectTypeFactory, org=factory.SelfAttribute("..org"))
    display_name = factory.Sequence(lambda n: f"Record {n}")
    values = factory.LazyAttribute(lambda o: {"name": o.display_name})


class ObjectAssociationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = pipeline_models.ObjectAssociation

    org = factory.SubFactory(OrganizationFactory)
    record = factory.SubFactory(ObjectRecordFactory, org=factory.SelfAttribute("..org"))
    object_type = factory.SelfAttribute("record.object_type")
    contact = factory.SubFactory(ContactFactory, org=factory.SelfAttribute("..org"))


def order_rollup(org):
    """A contact's rollup row: the database triggers write it when an order is added."""
    order = OrderFactory(org=org)
    return pipeline_models.OrderRollup.objects.for_org(org).get(
        contact=order.contact, status="", currency=""
    )


FACTORY_FOR_MODEL[pipeline_models.OrderRollup] = order_rollup


# Duplicates and merges ----------------------------------------------------------------------


class DedupSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = contacts_models.DedupSettings

    org = factory.SubFactory(OrganizationFactory)


def _ordered_contacts(org):
    first, second = ContactFactory(org=org), ContactFactory(org=org)
    return (first, second) if first.pk < second.pk else (second, first)


def duplicate_pair(org, **fields):
    """A probable pair of two new contacts of `org` (stored lower id first)."""
    first, second = _ordered_contacts(org)
    values = {"score": 0.97, "band": "probable", "reasons": ["same email"], **fields}
    return contacts_models.DuplicatePair.objects.for_org(org).create(
        org=org, contact_a=first, contact_b=second, **values
    )


def duplicate_dismissal(org):
    first, second = _ordered_contacts(org)
    return contacts_models.DuplicateDismissal.objects.for_org(org).create(
        org=org, contact_a=first, contact_b=second
    )


def merge_record(org):
    """A merge of two new contacts of `org`, made by the merge service."""
    from contacts.services.merge import merge_contacts
    from crm.services import Actor

    primary, secondary = _ordered_contacts(org)
    return merge_contacts(primary=primary, secondary=secondary, actor=Actor.system("tests"))


FACTORY_FOR_MODEL.update(
    {
        contacts_models.DuplicatePair: duplicate_pair,
        contacts_models.DuplicateDismissal: duplicate_dismissal,
        contacts_models.MergeRecord: merge_record,
    }
)


# Compliance ---------------------------------------------------------------------------------

from compliance import models as compliance_models  # noqa: E402


class PrivacySettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = compliance_models.PrivacySettings

    org = factory.SubFactory(OrganizationFactory)


class ConsentRecordFactory(factory.django.DjangoModelFactory):
    """A ledger row written directly (the triggers write the real ones)."""

    class Meta:
        model = compliance_models.ConsentRecord

    org = factory.SubFactory(OrganizationFactory)
    contact = factory.LazyAttribute(lambda o: ContactFactory(org=o.org))
    field = "consent_email"
    old_value = ""
    new_value = "true"
    actor_kind = "system"
    source = "Test"


class SuppressionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = compliance_models.Suppression

    org = factory.SubFactory(OrganizationFactory)
    channel = "email"
    address = factory.Sequence(lambda n: f"suppressed{n}@example.com")
    reason = "manual"


class OptInConfirmationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = compliance_models.OptInConfirmation

    org = factory.SubFactory(OrganizationFactory)
    contact = factory.LazyAttribute(lambda o: ContactFactory(org=o.org))
    address = factory.LazyAttribute(lambda o: o.contact.email or "someone@example.com")
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(hours=72))


class DataRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = compliance_models.DataRequest

    org = factory.SubFactory(OrganizationFactory)
    kind = "access"
    due_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=30))


class ErasureTombstoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = compliance_models.ErasureTombstone

    org = factory.SubFactory(OrganizationFactory)
    email_hash = factory.Sequence(lambda n: hashlib.sha256(f"e{n}".encode()).hexdigest())


class RetentionPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = compliance_models.RetentionPolicy

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Retention rule {n}")
    action = "anonymize"
    condition = "archived"
    months = 12


class RetentionRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = compliance_models.RetentionRun

    org = factory.SubFactory(OrganizationFactory)
    policy = factory.LazyAttribute(lambda o: RetentionPolicyFactory(org=o.org))
