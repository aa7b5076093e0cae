import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from contacts import services
from contacts.models import Activity, Company, Contact, ScoringRule, Tag
from contacts.services import contacts as contact_services
from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from tests.factories import (
    CompanyFactory,
    ContactFactory,
    CustomFieldDefinitionFactory,
    OrganizationFactory,
    TaskFactory,
    member,
    role,
)


def policy_of(membership) -> Policy:
    membership.refresh_from_db()
    return Policy(membership)


def create(membership, **data):
    return services.contact_create(
        org=membership.org,
        actor=Actor.for_user(membership.user),
        data=data,
        policy=policy_of(membership),
    )


def update(membership, contact, **data):
    return services.contact_update(
        contact=contact,
        actor=Actor.for_user(membership.user),
        data=data,
        policy=policy_of(membership),
    )


# Creating and normalizing ----------------------------------------------------------------


def test_create_normalizes_email_and_phone_and_makes_the_creator_owner(owner):
    contact = create(owner, first_name="Ada", email=" Ada@Example.COM ", phone="+44 20 7946 0958")

    assert contact.email == "ada@example.com"
    assert contact.phone == "+442079460958"
    assert contact.owner == owner.user


def test_phone_without_plus_is_read_in_the_contacts_country_then_the_orgs(owner):
    german = create(owner, first_name="Jo", country="DE", phone="030 901820")
    assert german.phone == "+4930901820"

    owner.org.locale = "en-us"
    owner.org.save()
    american = create(owner, first_name="Al", mobile="(415) 555-2671")
    assert american.mobile == "+14155552671"


def test_phone_without_plus_and_no_known_country_is_a_field_error(owner):
    owner.org.locale = "en"
    owner.org.save()
    with pytest.raises(ValidationError) as exc:
        create(owner, first_name="Al", phone="415 555 2671")
    assert "country code" in exc.value.message_dict["phone"][0]


def test_a_contact_needs_a_name_email_or_phone(owner):
    with pytest.raises(ValidationError) as exc:
        create(owner, job_title="CEO")
    assert "at least a name" in exc.value.messages[0]
    assert not Contact.objects.for_org(owner.org).exists()


def test_create_records_audit_event_activity_and_outbox(owner):
    contact = create(owner, first_name="Ada", lifecycle_stage="qualified")

    event = AuditEvent.objects.for_org(owner.org).get(verb="contact.created")
    assert event.object_id == str(contact.public_id)
    assert event.changes["lifecycle_stage"] == [None, "qualified"]
    assert OutboxEvent.objects.for_org(owner.org).filter(event_type="contact.created").exists()
    assert contact.activities.filter(type=Activity.Type.CREATED).count() == 1


def test_tags_by_name_are_created_once_ignoring_case(owner):
    Tag.objects.create(org=owner.org, name="VIP")
    contact = create(owner, first_name="Ada", tags=["vip", "Trade show 2026", "trade show 2026"])

    assert sorted(t.name for t in contact.tags.all()) == ["Trade show 2026", "VIP"]
    assert Tag.objects.for_org(owner.org).count() == 2


def test_company_by_name_or_domain_is_found_or_created(owner):
    acme = CompanyFactory(org=owner.org, name="Acme", domain="acme.com")

    by_domain = create(owner, first_name="A", company="https://www.ACME.com/about")
    by_name = create(owner, first_name="B", company="acme")
    new = create(owner, first_name="C", company="Globex Corp")

    assert by_domain.company == acme
    assert by_name.company == acme
    assert new.company.name == "Globex Corp"
    assert Company.objects.for_org(owner.org).count() == 2


def test_member_without_company_create_right_cannot_create_one_through_a_contact(org, members):
    support = members["support"]  # edits contacts, only views companies
    contact = ContactFactory(org=org)
    with pytest.raises(ValidationError) as exc:
        update(support, contact, company="Brand New Inc")
    assert "may not add companies" in exc.value.message_dict["company"][0]


def test_custom_values_are_checked_with_the_admins_regex_message(owner):
    CustomFieldDefinitionFactory(
        org=owner.org,
        key="account_code",
        label="Account code",
        regex=r"[A-Z]{2}-\d{4}",
        regex_message="Use two letters, a dash and four digits.",
    )
    with pytest.raises(ValidationError) as exc:
        create(owner, first_name="Ada", **{"custom.account_code": "12"})
    assert exc.value.message_dict["custom.account_code"] == [
        "Use two letters, a dash and four digits."
    ]

    contact = create(owner, first_name="Ada", **{"custom.account_code": "AB-1234"})
    assert contact.custom == {"account_code": "AB-1234"}


# Email uniqueness ------------------------------------------------------------------------


def test_duplicate_email_in_the_org_is_a_field_error_ignoring_case(owner):
    create(owner, email="ada@example.com")
    with pytest.raises(ValidationError) as exc:
        create(owner, email="ADA@example.com")
    assert exc.value.message_dict["email"] == [services.EMAIL_TAKEN]


def test_archived_contacts_do_not_hold_their_email(owner):
    old = create(owner, email="ada@example.com")
    services.contact_archive(contact=old, actor=Actor.for_user(owner.user))

    fresh = create(owner, email="ada@example.com")
    assert fresh.email == "ada@example.com"


def test_another_org_may_reuse_an_email(owner, other_org):
    create(owner, email="ada@example.com")
    other_owner = member(other_org, "owner")

    assert create(other_owner, email="ada@example.com").org == other_org


def test_update_to_a_taken_email_is_a_field_error(owner):
    create(owner, email="ada@example.com")
    bob = create(owner, email="bob@example.com")
    with pytest.raises(ValidationError) as exc:
        update(owner, bob, email="Ada@Example.com")
    assert "email" in exc.value.message_dict
    bob.refresh_from_db()
    assert bob.email == "bob@example.com"


def test_lost_race_on_the_email_constraint_is_still_a_field_error(owner, monkeypatch):
    create(owner, email="ada@example.com")
    monkeypatch.setattr(contact_services, "_check_email_free", lambda *args, **kwargs: None)
    with pytest.raises(ValidationError) as exc:
        create(owner, email="ada@example.com")
    assert exc.value.message_dict["email"] == [services.EMAIL_TAKEN]


def test_restore_refuses_when_an_active_contact_took_the_email(owner):
    old = create(owner, email="ada@example.com")
    services.contact_archive(contact=old, actor=Actor.for_user(owner.user))
    create(owner, email="ada@example.com")

    with pytest.raises(ValidationError) as exc:
        services.contact_restore(contact=old, actor=Actor.for_user(owner.user))
    assert "now uses ada@example.com" in exc.value.messages[0]
    old.refresh_from_db()
    assert old.is_archived


# Field-level rights ----------------------------------------------------------------------


@pytest.fixture
def restricted_rep(org):
    """An executive (edits all contacts) whose role shows email read-only and hides phone."""
    executive = role(org, "executive")
    executive.field_rules = {"email": "visible", "phone": "hidden"}
    executive.save()
    return member(org, "executive")


def test_visible_only_field_in_the_input_is_refused_not_dropped(org, restricted_rep):
    contact = ContactFactory(org=org, email="ada@example.com")
    with pytest.raises(services.FieldNotEditable) as exc:
        update(restricted_rep, contact, first_name="Ada", email="evil@example.com")
    assert "Email" in str(exc.value)
    contact.refresh_from_db()
    assert contact.email == "ada@example.com"
    assert contact.first_name != "Ada"


def test_hidden_field_in_the_input_is_refused(org, restricted_rep):
    contact = ContactFactory(org=org)
    with pytest.raises(PermissionDenied):
        update(restricted_rep, contact, phone="+14155552671")


def test_system_writes_without_policy_may_set_any_field(org):
    contact = services.contact_create(
        org=org, actor=Actor.system("import"), data={"email": "x@example.com"}
    )
    assert contact.owner is None


# Ownership -------------------------------------------------------------------------------


def test_claim_takes_an_unowned_contact(org, members):
    rep = members["executive"]
    contact = ContactFactory(org=org, owner=None)

    services.contact_claim(contact=contact, actor=Actor.for_user(rep.user), policy=policy_of(rep))

    contact.refresh_from_db()
    assert contact.owner == rep.user
    assert contact.activities.filter(type=Activity.Type.OWNER_CHANGED).exists()
    assert AuditEvent.objects.for_org(org).filter(verb="contact.claimed").exists()


def test_claim_refuses_a_contact_someone_else_owns(org, members):
    rep, other = members["executive"], members["admin"]
    contact = ContactFactory(org=org, owner=other.user)

    with pytest.raises(ValidationError) as exc:
        services.contact_claim(
            contact=contact, actor=Actor.for_user(rep.user), policy=policy_of(rep)
        )
    assert "already owns" in exc.value.messages[0]
    contact.refresh_from_db()
    assert contact.owner == other.user


def test_claiming_your_own_contact_changes_nothing(org, members):
    rep = members["executive"]
    contact = ContactFactory(org=org, owner=rep.user)
    services.contact_claim(contact=contact, actor=Actor.for_user(rep.user), policy=policy_of(rep))
    assert not AuditEvent.objects.for_org(org).filter(verb="contact.claimed").exists()


def test_rep_releases_their_own_contact_but_not_another_reps(org, members):
    rep = members["team"]
    mine = ContactFactory(org=org, owner=rep.user)
    theirs = ContactFactory(org=org, owner=members["director"].user)

    services.contact_release(contact=mine, actor=Actor.for_user(rep.user), policy=policy_of(rep))
    mine.refresh_from_db()
    assert mine.owner is None

    with pytest.raises(PermissionDenied):
        services.contact_release(
            contact=theirs, actor=Actor.for_user(rep.user), policy=policy_of(rep)
        )


def test_admin_releases_anyones_contact(org, members):
    admin = members["admin"]
    contact = ContactFactory(org=org, owner=members["team"].user)
    services.contact_release(
        contact=contact, actor=Actor.for_user(admin.user), policy=policy_of(admin)
    )
    contact.refresh_from_db()
    assert contact.owner is None


def test_only_admins_assign_owners(org, members):
    contact = ContactFactory(org=org, owner=None)
    target = members["team"].user
    with pytest.raises(PermissionDenied):
        services.contact_assign_owner(
            contact=contact,
            actor=Actor.for_user(members["director"].user),
            owner=target,
            policy=policy_of(members["director"]),
        )
    services.contact_assign_owner(
        contact=contact,
        actor=Actor.for_user(members["admin"].user),
        owner=target,
        policy=policy_of(members["admin"]),
    )
    contact.refresh_from_db()
    assert contact.owner == target


def test_assigning_to_someone_outside_the_org_is_refused(org, members, other_org):
    outsider = member(other_org, "owner").user
    contact = ContactFactory(org=org)
    with pytest.raises(ValidationError):
        services.contact_assign_owner(
            contact=contact,
            actor=Actor.for_user(members["admin"].user),
            owner=outsider,
            policy=policy_of(members["admin"]),
        )


def test_rep_cannot_give_a_contact_away_through_an_update(org, members):
    rep = members["team"]
    contact = ContactFactory(org=org, owner=rep.user)
    with pytest.raises(ValidationError) as exc:
        update(rep, contact, owner=members["admin"].user)
    assert "Only admins" in exc.value.message_dict["owner"][0]


# Audit and timeline ----------------------------------------------------------------------


def test_update_records_before_and_after_of_changed_fields_only(org, owner):
    contact = ContactFactory(org=org, job_title="Engineer", lifecycle_stage="lead")

    update(owner, contact, job_title="VP Engineering", city=contact.city)

    event = AuditEvent.objects.for_org(org).get(verb="contact.updated")
    assert event.changes == {"job_title": ["Engineer", "VP Engineering"]}
    assert event.actor_user == owner.user


def test_unchanged_update_writes_no_audit_event(org, owner):
    contact = ContactFactory(org=org, job_title="Engineer")
    update(owner, contact, job_title="Engineer")
    assert not AuditEvent.objects.for_org(org).filter(verb="contact.updated").exists()


def test_stage_and_owner_changes_go_on_the_timeline(org, owner, members):
    contact = ContactFactory(org=org, lifecycle_stage="lead", owner=None)

    update(owner, contact, lifecycle_stage="customer", owner=members["team"].user)

    stage = contact.activities.get(type=Activity.Type.STAGE_CHANGE)
    assert stage.data == {"from": "lead", "to": "customer"}
    assert stage.subject == "Stage changed from Lead to Customer"
    assert contact.activities.filter(type=Activity.Type.OWNER_CHANGED).exists()
    assert OutboxEvent.objects.for_org(org).filter(event_type="contact.stage_changed").exists()


def test_archive_and_restore_are_logged_and_audited(org, owner):
    contact = ContactFactory(org=org)
    actor = Actor.for_user(owner.user)

    services.contact_archive(contact=contact, actor=actor)
    services.contact_restore(contact=contact, actor=actor)

    types = list(contact.activities.values_list("type", flat=True))
    assert Activity.Type.ARCHIVED in types and Activity.Type.RESTORED in types
    verbs = set(AuditEvent.objects.for_org(org).values_list("verb", flat=True))
    assert {"contact.archived", "contact.restored"} <= verbs


def test_logged_call_moves_last_contacted_and_last_activity(org, owner):
    contact = ContactFactory(org=org)
    when = timezone.now() - dt.timedelta(hours=2)

    services.quick_log(
        org=org,
        actor=Actor.for_user(owner.user),
        type=Activity.Type.CALL,
        contact=contact,
        subject="Discussed renewal",
        occurred_at=when,
    )

    contact.refresh_from_db()
    assert contact.last_contacted_at == when
    assert contact.last_activity_at == when
    assert AuditEvent.objects.for_org(org).filter(verb="activity.logged").exists()


def test_older_entry_logged_late_never_moves_dates_back(org, owner):
    contact = ContactFactory(org=org)
    recent = timezone.now() - dt.timedelta(minutes=5)
    actor = Actor.for_user(owner.user)
    services.activity_log(org=org, actor=actor, type="meeting", contact=contact, occurred_at=recent)
    services.activity_log(
        org=org,
        actor=actor,
        type="call",
        contact=contact,
        occurred_at=recent - dt.timedelta(days=3),
    )
    contact.refresh_from_db()
    assert contact.last_contacted_at == recent


def test_bookkeeping_entries_do_not_count_as_activity(org, owner):
    contact = create(owner, first_name="Ada")
    contact.refresh_from_db()
    assert contact.last_activity_at is None


def test_quick_logged_note_lands_in_notes_and_timeline(org, owner):
    contact = ContactFactory(org=org)
    services.quick_log(
        org=org,
        actor=Actor.for_user(owner.user),
        type=Activity.Type.NOTE,
        contact=contact,
        body="Prefers email.",
    )
    assert contact.notes.get().body == "Prefers email."
    assert contact.activities.get(type=Activity.Type.NOTE).body == "Prefers email."


def test_completing_a_task_logs_it_on_the_contact(org, owner):
    contact = ContactFactory(org=org)
    task = TaskFactory(org=org, contact=contact, assignee=owner.user, title="Send quote")

    services.task_complete(task=task, actor=Actor.for_user(owner.user), policy=policy_of(owner))

    task.refresh_from_db()
    assert task.status == "done" and task.completed_at is not None
    entry = contact.activities.get(type=Activity.Type.TASK_COMPLETED)
    assert entry.subject == "Send quote"


# Scoring ---------------------------------------------------------------------------------


def test_create_and_update_recompute_the_lead_score(owner):
    ScoringRule.objects.create(
        org=owner.org,
        name="VP title",
        condition={"field": "job_title", "op": "contains", "value": "VP"},
        points=20,
    )
    contact = create(owner, first_name="Ada", job_title="Engineer")
    assert contact.lead_score == 0

    update(owner, contact, job_title="VP Sales")
    contact.refresh_from_db()
    assert contact.lead_score == 20


# Companies -------------------------------------------------------------------------------


def test_company_for_matches_every_spelling_of_a_domain(org):
    acme = CompanyFactory(org=org, name="Acme", domain="acme.com")

    assert services.company_for(org, domain="https://www.Acme.com/") == acme
    assert services.company_for(org, name="ACME") == acme
    assert services.company_for(org) is None


def test_company_for_creates_a_missing_company_once(org):
    first = services.company_for(org, name="Initech", domain="initech.com")
    second = services.company_for(org, name="Initech Inc", domain="INITECH.com")

    assert first == second
    assert first.name == "Initech"
    assert AuditEvent.objects.for_org(org).filter(verb="company.created").count() == 1


def test_company_domain_is_unique_per_org_with_a_clear_message(org, other_org):
    actor = Actor.system("test")
    services.company_create(org=org, actor=actor, data={"name": "Acme", "domain": "acme.com"})
    with pytest.raises(ValidationError) as exc:
        services.company_create(
            org=org, actor=actor, data={"name": "Acme 2", "domain": "www.acme.com"}
        )
    assert exc.value.message_dict["domain"] == ["Acme already uses acme.com."]
    assert (
        services.company_create(
            org=other_org, actor=actor, data={"name": "Acme", "domain": "acme.com"}
        ).domain
        == "acme.com"
    )


def test_company_gets_its_domain_from_its_website(org):
    company = services.company_create(
        org=org, actor=Actor.system("t"), data={"name": "Acme", "website": "https://www.acme.com/x"}
    )
    assert company.domain == "acme.com"


def test_company_archive_keeps_its_contacts(org, owner):
    company = CompanyFactory(org=org)
    contact = ContactFactory(org=org, company=company)
    services.company_archive(company=company, actor=Actor.for_user(owner.user))
    contact.refresh_from_db()
    company.refresh_from_db()
    assert company.is_archived
    assert contact.company == company


# Custom field definitions ----------------------------------------------------------------


def test_customfield_lifecycle_is_audited(owner):
    actor = Actor.for_user(owner.user)
    policy = policy_of(owner)
    definition = services.customfield_create(
        org=owner.org,
        actor=actor,
        data={
            "entity": "contact",
            "key": "tier",
            "label": "Tier",
            "field_type": "list",
            "choices": ["Gold"],
        },
        policy=policy,
    )
    services.customfield_update(
        definition=definition, actor=actor, data={"label": "Account tier"}, policy=policy
    )
    services.customfield_deactivate(definition=definition, actor=actor, policy=policy)

    definition.refresh_from_db()
    assert definition.label == "Account tier" and not definition.is_active
    verbs = list(
        AuditEvent.objects.for_org(owner.org).order_by("id").values_list("verb", flat=True)
    )
    assert verbs[-3:] == ["customfield.created", "customfield.updated", "customfield.deactivated"]


def test_members_without_settings_edit_cannot_define_fields(org, members):
    with pytest.raises(PermissionDenied):
        services.customfield_create(
            org=org,
            actor=Actor.for_user(members["executive"].user),
            data={"entity": "contact", "key": "tier", "label": "Tier", "field_type": "text"},
            policy=policy_of(members["executive"]),
        )


def test_factories_make_rows_in_the_org_they_are_given(db):
    org = OrganizationFactory()
    assert ContactFactory(org=org).org == org


def test_company_created_through_a_contact_belongs_to_the_rep(org, members):
    rep = members["team"]  # companies: own scope
    contact = create(rep, first_name="Ada", company="Brand New Ltd")
    assert contact.company.owner == rep.user


def test_tag_links_go_with_their_tag_and_must_point_at_a_contact(org):
    from django.db import IntegrityError, connection, transaction

    from contacts.models import ContactTag
    from tests.factories import ContactFactory, TagFactory

    vip, other = TagFactory(org=org, name="VIP"), TagFactory(org=org, name="Other")
    contact = ContactFactory(org=org, tags=[vip, other])

    vip.delete()

    assert list(ContactTag.objects.filter(contact=contact).values_list("tag_id", flat=True)) == [
        other.id
    ]
    assert list(contact.tags.all()) == [other]
    # The contact side keeps its database key: a link to no contact is refused.
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactTag.objects.create(contact_id=contact.id + 10_000, tag=other)
        connection.check_constraints()
