"""The merge engine (issue 16, section 3): field rules, every relation moving, duplicate
links, undo (exact, or refused with reasons), permissions, tenancy, audit and events."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.utils import timezone

from compliance.models import ConsentRecord
from contacts import services
from contacts.dedup.models import DuplicateDismissal, DuplicatePair, MergeRecord
from contacts.models import Activity, Contact, ContactList, ContactTag, Note
from contacts.services import merge as merge_service
from contacts.services.merge import (
    MERGE_EXCLUDED,
    MERGE_FIELDS,
    merge_blockers,
    merge_contacts,
    merge_preview,
    undo_merge,
)
from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import DealContact, ObjectAssociation, OrderRollup
from tests.factories import (
    ActivityFactory,
    CompanyFactory,
    ContactFactory,
    ContactListFactory,
    CustomFieldDefinitionFactory,
    DealContactFactory,
    DealFactory,
    MembershipFactory,
    NoteFactory,
    ObjectAssociationFactory,
    ObjectRecordFactory,
    OrderFactory,
    TagFactory,
    TaskFactory,
    custom_role,
    factory_for,
    member,
)


def policy_of(membership) -> Policy:
    membership.refresh_from_db()
    return Policy(membership)


def actor_of(membership) -> Actor:
    return Actor.for_user(membership.user)


def merge(membership, primary, secondary, **kwargs):
    return merge_contacts(
        primary=primary,
        secondary=secondary,
        actor=actor_of(membership),
        policy=policy_of(membership),
        **kwargs,
    )


def undo(membership, record):
    undo_merge(record=record, actor=actor_of(membership), policy=policy_of(membership))


def age(contact, minutes: int):
    """Make `contact` look last edited `minutes` ago (the newest value wins ties)."""
    moment = timezone.now() - dt.timedelta(minutes=minutes)
    Contact.objects.for_org(contact.org).filter(pk=contact.pk).update(updated_at=moment)
    contact.refresh_from_db()


def fresh(contact):
    return Contact.objects.for_org(contact.org_id).get(pk=contact.pk)


# Building one row of every relation to Contact ---------------------------------------------


def _link_tag(org, contact):
    return ContactTag.objects.create(contact=contact, tag=TagFactory(org=org))


def _link_list(org, contact):
    contact_list = ContactListFactory(org=org)
    contact_list.contacts.add(contact)
    return ContactList.contacts.through.objects.get(contactlist=contact_list, contact=contact)


# Relations whose rows tests/factories.py cannot make with `Factory(org=..., <fk>=contact)`.
BUILDERS = {
    "contacts.ContactTag.contact": _link_tag,
    "contacts.ContactList_contacts.contact": _link_list,
}


def every_relation():
    """Every foreign key to Contact, found by introspection (hidden ones included)."""
    out = []
    for rel in Contact._meta.get_fields(include_hidden=True):
        if rel.is_relation and rel.auto_created and not rel.concrete and not rel.many_to_many:
            out.append(rel.field)
    return out


def key_of(field):
    return f"{field.model._meta.label}.{field.name}"


def build_row(field, org, contact):
    key = key_of(field)
    if key in BUILDERS:
        return BUILDERS[key](org, contact)
    maker = factory_for(field.model)
    if maker is None:
        pytest.fail(
            f"No way to build a {field.model._meta.label} row for the merge test: add a "
            f"factory to tests/factories.py or a builder to BUILDERS in {__name__}."
        )
    return maker(org=org, **{field.name: contact})


def relation_state(org, contact) -> dict:
    """{relation: sorted row ids} of every relation (moved or not) pointing at `contact`."""
    state = {}
    for field in every_relation():
        manager = field.model._default_manager
        rows = (
            manager.for_org(org)
            if any(f.name == "org" for f in field.model._meta.concrete_fields)
            else manager.all()
        )
        rows = rows.filter(**{field.attname: contact.pk})
        if field.model is OrderRollup:
            # Rewritten by triggers, so compared by what they hold rather than by id.
            ids = sorted(rows.values_list("status", "currency", "order_count", "total"))
        else:
            ids = sorted(rows.values_list("pk", flat=True))
        if ids:
            state[key_of(field)] = ids
    return state


def contact_state(contact) -> dict:
    """Every stored value of a contact but its update time (a save moves it)."""
    row = fresh(contact)
    return {
        f.attname: getattr(row, f.attname)
        for f in Contact._meta.concrete_fields
        if f.name not in {"updated_at", "search_vector"}
    }


# Field rules -------------------------------------------------------------------------------


def test_merge_fields_cover_the_editable_contact_fields_with_labels():
    keys = [f.key for f in MERGE_FIELDS]
    for name in ["first_name", "email", "phone", "job_title", "company", "owner", "street"]:
        assert name in keys
    for name in ["city", "postal_code", "country", "lifecycle_stage", "status", "consent_email"]:
        assert name in keys
    assert all(f.label for f in MERGE_FIELDS)
    for name in ["tags", "lead_score", "is_archived", "other_emails"]:
        assert name not in keys


def test_a_non_empty_value_wins_over_an_empty_one(org, owner):
    primary = ContactFactory(org=org, job_title="", city="Berlin")
    secondary = ContactFactory(org=org, job_title="CFO", city="")
    age(secondary, 60)  # older, yet its filled value still wins over an empty one

    merge(owner, primary, secondary)

    primary = fresh(primary)
    assert primary.job_title == "CFO"
    assert primary.city == "Berlin"


def test_when_both_are_filled_the_more_recently_updated_contact_wins(org, owner):
    primary = ContactFactory(org=org, job_title="Engineer", city="Paris")
    secondary = ContactFactory(org=org, job_title="Head of Engineering", city="Lyon")
    age(primary, 60)
    age(secondary, 5)

    choices = {c.key: c for c in merge_preview(primary=primary, secondary=secondary)}
    assert choices["job_title"].default == "secondary"
    assert choices["job_title"].differs is True
    assert choices["job_title"].primary_value == "Engineer"
    assert choices["job_title"].secondary_value == "Head of Engineering"

    merge(owner, primary, secondary)
    assert fresh(primary).job_title == "Head of Engineering"
    assert fresh(primary).city == "Lyon"


def test_the_primary_wins_when_it_is_the_newer_one(org, owner):
    primary = ContactFactory(org=org, job_title="Engineer")
    secondary = ContactFactory(org=org, job_title="Intern")
    age(secondary, 60)

    merge(owner, primary, secondary)
    assert fresh(primary).job_title == "Engineer"


def test_a_choice_overrides_the_default_rule(org, owner):
    primary = ContactFactory(org=org, job_title="Engineer", city="")
    secondary = ContactFactory(org=org, job_title="Intern", city="Rome")
    age(secondary, 60)

    merge(owner, primary, secondary, choices={"job_title": "secondary", "city": "primary"})

    primary = fresh(primary)
    assert primary.job_title == "Intern"
    assert primary.city == ""


def test_custom_fields_are_decided_per_key(org, owner):
    CustomFieldDefinitionFactory(org=org, key="tier", label="Tier")
    CustomFieldDefinitionFactory(org=org, key="region_code", label="Region code")
    primary = ContactFactory(org=org, custom={"tier": "gold"})
    secondary = ContactFactory(org=org, custom={"tier": "silver", "region_code": "EMEA"})
    age(secondary, 60)

    preview = {c.key: c for c in merge_preview(primary=primary, secondary=secondary)}
    assert preview["custom.tier"].default == "primary"
    assert preview["custom.tier"].label == "Tier"
    assert preview["custom.region_code"].default == "secondary"

    merge(owner, primary, secondary)
    assert fresh(primary).custom == {"tier": "gold", "region_code": "EMEA"}


def test_a_custom_field_choice_can_take_the_secondarys_value(org, owner):
    CustomFieldDefinitionFactory(org=org, key="tier", label="Tier")
    primary = ContactFactory(org=org, custom={"tier": "gold"})
    secondary = ContactFactory(org=org, custom={"tier": "silver"})
    age(secondary, 60)

    merge(owner, primary, secondary, choices={"custom.tier": "secondary"})
    assert fresh(primary).custom == {"tier": "silver"}


def test_foreign_keys_take_the_chosen_sides_company_and_owner(org, owner):
    rep = member(org, "admin").user
    primary = ContactFactory(org=org, company=None, owner=None)
    secondary = ContactFactory(org=org, owner=rep, company=CompanyFactory(org=org))

    preview = {c.key: c for c in merge_preview(primary=primary, secondary=secondary)}
    assert preview["company"].secondary_value == secondary.company.name
    assert preview["owner"].default == "secondary"

    merge(owner, primary, secondary)
    primary = fresh(primary)
    assert primary.company_id == secondary.company_id
    assert primary.owner_id == rep.pk


def test_the_email_not_kept_joins_the_other_emails(org, owner):
    primary = ContactFactory(org=org, email="jane@old.example", other_emails=["j@home.example"])
    secondary = ContactFactory(
        org=org, email="jane@new.example", other_emails=["jane@work.example"]
    )

    merge(owner, primary, secondary, choices={"email": "secondary"})

    primary = fresh(primary)
    assert primary.email == "jane@new.example"
    assert set(primary.other_emails) == {
        "j@home.example",
        "jane@old.example",
        "jane@work.example",
    }


def test_a_withdrawn_consent_wins_by_default(org, owner):
    primary = ContactFactory(org=org, consent_email=True, consent_status="opted_in")
    secondary = ContactFactory(org=org, consent_email=False, consent_status="opted_out")
    age(secondary, 60)  # even the older record's opt-out wins

    merge(owner, primary, secondary)
    primary = fresh(primary)
    assert primary.consent_email is False
    assert primary.consent_status == "opted_out"


def test_a_phone_keeps_its_unverified_flag(org, owner):
    primary = ContactFactory(org=org, phone="")
    secondary = ContactFactory(org=org, phone="0049 30 bad", phone_unverified=True)

    merge(owner, primary, secondary)
    primary = fresh(primary)
    assert primary.phone == "0049 30 bad"
    assert primary.phone_unverified is True


def test_the_timeline_dates_are_the_later_of_the_two(org, owner):
    early = timezone.now() - dt.timedelta(days=10)
    late = timezone.now() - dt.timedelta(days=1)
    primary = ContactFactory(org=org, last_activity_at=early, last_contacted_at=late)
    secondary = ContactFactory(org=org, last_activity_at=late, last_contacted_at=early)

    merge(owner, primary, secondary)
    primary = fresh(primary)
    assert primary.last_activity_at == late
    assert primary.last_contacted_at == late


def test_an_unknown_choice_is_a_field_error(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    with pytest.raises(ValidationError) as caught:
        merge(owner, primary, secondary, choices={"shoe_size": "secondary", "email": "left"})
    assert set(caught.value.message_dict) == {"shoe_size", "email"}
    assert not fresh(secondary).is_archived


# The secondary and the record --------------------------------------------------------------


def test_the_secondary_is_archived_and_points_to_the_primary(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)

    record = merge(owner, primary, secondary)

    secondary = fresh(secondary)
    assert secondary.is_archived is True
    assert secondary.archived_at is not None
    assert secondary.merged_into_id == primary.pk
    assert record.state == MergeRecord.State.MERGED
    assert record.merged_by == owner.user
    assert record.primary_before["email"] == primary.email
    assert record.secondary_before["is_archived"] is False
    assert record.primary_after["email"] == fresh(primary).email


def test_the_secondarys_email_can_become_the_primarys(org, owner):
    primary = ContactFactory(org=org, email="")
    secondary = ContactFactory(org=org, email="only@one.example")

    merge(owner, primary, secondary)
    assert fresh(primary).email == "only@one.example"


def test_merge_is_audited_and_emitted(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)

    record = merge(owner, primary, secondary)

    event = OutboxEvent.objects.for_org(org).get(event_type="contact.merged")
    assert event.payload["primary"] == str(primary.public_id)
    assert event.payload["secondary"] == str(secondary.public_id)
    assert event.payload["merge"] == str(record.public_id)
    row = AuditEvent.objects.for_org(org).get(verb="contact.merged")
    assert row.object_id == str(primary.public_id)
    assert row.actor_user == owner.user
    assert row.changes["secondary"] == [None, str(secondary.public_id)]
    assert Activity.objects.for_org(org).filter(contact=primary, type="merged").exists()


# Relations ---------------------------------------------------------------------------------


def test_every_relation_to_contact_moves_or_is_excluded_with_a_reason(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    relations = every_relation()
    keys = {key_of(f) for f in relations}
    # The exclusions name real relations, each with its reason.
    assert set(MERGE_EXCLUDED) <= keys, set(MERGE_EXCLUDED) - keys
    assert all(reason.strip() for reason in MERGE_EXCLUDED.values())
    rows = {}
    for field in relations:
        if key_of(field) not in MERGE_EXCLUDED:
            rows[key_of(field)] = (field, build_row(field, org, secondary))
    # The relations the issue names are among those moved.
    for key in [
        "contacts.Activity.contact",
        "contacts.Note.contact",
        "contacts.Task.contact",
        "contacts.ContactTag.contact",
        "contacts.ContactList_contacts.contact",
        "pipeline.Deal.contact",
        "pipeline.DealContact.contact",
        "pipeline.Order.contact",
        "pipeline.ObjectAssociation.contact",
    ]:
        assert key in rows

    record = merge(owner, primary, secondary)

    not_moved = []
    for key, (field, row) in rows.items():
        current = field.model._default_manager.filter(pk=row.pk).values_list(
            field.attname, flat=True
        )
        if list(current) != [primary.pk]:
            not_moved.append(key)
        elif record.moved.get(key) != [row.pk]:
            not_moved.append(f"{key} (not recorded)")
    assert not_moved == [], f"Relations to Contact neither moved nor excluded: {not_moved}"


def test_a_thousand_activities_move_and_come_back(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    now = timezone.now()
    Activity.objects.for_org(org).bulk_create(
        Activity(org=org, contact=secondary, type="call", occurred_at=now) for _ in range(1000)
    )

    record = merge(owner, primary, secondary)
    assert Activity.objects.for_org(org).filter(contact=primary, type="call").count() == 1000
    assert len(record.moved["contacts.Activity.contact"]) == 1000

    undo(owner, record)
    assert Activity.objects.for_org(org).filter(contact=secondary, type="call").count() == 1000


def test_order_totals_follow_the_moved_orders(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    OrderFactory(org=org, contact=secondary, value=250, currency="EUR")

    def totals(contact):
        return list(
            OrderRollup.objects.for_org(org)
            .filter(contact=contact, status="", currency="")
            .values_list("order_count", flat=True)
        )

    record = merge(owner, primary, secondary)
    assert totals(primary) == [1] and totals(secondary) == []
    undo(owner, record)
    assert totals(secondary) == [1] and totals(primary) == []


def test_a_shared_tag_keeps_the_primarys_link_and_undo_restores_the_secondarys(org, owner):
    shared, own = TagFactory(org=org), TagFactory(org=org)
    primary = ContactFactory(org=org, tags=[shared])
    secondary = ContactFactory(org=org, tags=[shared, own])
    shared_link = ContactTag.objects.get(contact=secondary, tag=shared)

    record = merge(owner, primary, secondary)

    assert set(fresh(primary).tags.all()) == {shared, own}
    assert not ContactTag.objects.filter(pk=shared_link.pk).exists()
    dropped = record.moved["dropped"]["contacts.ContactTag.contact"]
    assert [row["id"] for row in dropped] == [shared_link.pk]

    undo(owner, record)
    assert set(fresh(secondary).tags.all()) == {shared, own}
    assert set(fresh(primary).tags.all()) == {shared}
    assert ContactTag.objects.filter(pk=shared_link.pk, contact=secondary).exists()


def test_a_shared_list_keeps_one_membership(org, owner):
    contact_list = ContactListFactory(org=org)
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    contact_list.contacts.add(primary, secondary)

    record = merge(owner, primary, secondary)
    assert list(contact_list.contacts.all()) == [primary]
    assert "contacts.ContactList_contacts.contact" in record.moved["dropped"]

    undo(owner, record)
    assert set(contact_list.contacts.all()) == {primary, secondary}


def test_a_shared_deal_keeps_the_primarys_role(org, owner):
    deal = DealFactory(org=org)
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    DealContactFactory(org=org, deal=deal, contact=primary, role="champion")
    theirs = DealContactFactory(org=org, deal=deal, contact=secondary, role="blocker")

    record = merge(owner, primary, secondary)
    links = DealContact.objects.for_org(org).filter(deal=deal)
    assert [(link.contact_id, link.role) for link in links] == [(primary.pk, "champion")]

    undo(owner, record)
    restored = DealContact.objects.for_org(org).get(pk=theirs.pk)
    assert (restored.contact_id, restored.role, restored.public_id) == (
        secondary.pk,
        "blocker",
        theirs.public_id,
    )


def test_a_record_linked_to_both_is_linked_once(org, owner):
    record_row = ObjectRecordFactory(org=org)
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    ObjectAssociationFactory(org=org, record=record_row, contact=primary)
    ObjectAssociationFactory(org=org, record=record_row, contact=secondary, label="guardian")
    other = ObjectAssociationFactory(org=org, contact=secondary)

    merge(owner, primary, secondary)
    assert ObjectAssociation.objects.for_org(org).filter(record=record_row).count() == 1
    assert ObjectAssociation.objects.for_org(org).get(pk=other.pk).contact_id == primary.pk


def test_pairs_between_the_two_are_deleted_and_undo_brings_them_back(org, owner):
    first, second, third = (ContactFactory(org=org) for _ in range(3))

    def pair(a, b):
        low, high = sorted([a.pk, b.pk])
        return DuplicatePair.objects.for_org(org).create(
            org=org, contact_a_id=low, contact_b_id=high, score=0.97, band="probable"
        )

    pair(first, second)
    pair(second, third)
    kept = pair(first, third)

    record = merge(owner, first, second)
    remaining = DuplicatePair.objects.for_org(org).filter(Q(contact_a=second) | Q(contact_b=second))
    assert not remaining.exists()
    assert DuplicatePair.objects.for_org(org).filter(pk=kept.pk).exists()

    undo(owner, record)
    assert DuplicatePair.objects.for_org(org).count() == 3


def test_a_dismissal_of_the_merged_pair_is_removed_and_restored(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    low, high = sorted([primary.pk, secondary.pk])
    DuplicateDismissal.objects.for_org(org).create(org=org, contact_a_id=low, contact_b_id=high)

    record = merge(owner, primary, secondary)
    assert not DuplicateDismissal.objects.for_org(org).exists()
    undo(owner, record)
    assert DuplicateDismissal.objects.for_org(org).count() == 1


# Undo --------------------------------------------------------------------------------------


def _populate(org, contact, deal, tag):
    ActivityFactory.create_batch(3, org=org, contact=contact)
    NoteFactory(org=org, contact=contact)
    TaskFactory(org=org, contact=contact)
    DealFactory(org=org, contact=contact)
    DealContactFactory(org=org, deal=deal, contact=contact)
    OrderFactory(org=org, contact=contact)
    ObjectAssociationFactory(org=org, contact=contact)
    ContactTag.objects.create(contact=contact, tag=tag)
    ContactTag.objects.create(contact=contact, tag=TagFactory(org=org))
    _link_list(org, contact)


def test_undo_restores_every_field_and_every_relation_exactly(org, owner):
    CustomFieldDefinitionFactory(org=org, key="tier", label="Tier")
    deal, tag = DealFactory(org=org), TagFactory(org=org)
    primary = ContactFactory(
        org=org,
        email="p@example.com",
        job_title="",
        city="Oslo",
        custom={"tier": "gold"},
        phone="+4722000000",
    )
    secondary = ContactFactory(
        org=org,
        email="s@example.com",
        job_title="CTO",
        city="Bergen",
        custom={"tier": "silver", "extra": 1},
        consent_sms=True,
        other_emails=["s2@example.com"],
    )
    _populate(org, primary, deal, tag)
    _populate(org, secondary, deal, tag)
    before = {
        "primary": contact_state(primary),
        "secondary": contact_state(secondary),
        "primary_rel": relation_state(org, primary),
        "secondary_rel": relation_state(org, secondary),
    }

    record = merge(owner, primary, secondary, choices={"email": "secondary", "city": "secondary"})
    assert contact_state(primary) != before["primary"]
    assert relation_state(org, secondary).keys() <= {
        "contacts.Activity.contact",  # only the "Merged into" entry
        "contacts.MergeRecord.secondary",
        "compliance.ConsentRecord.contact",  # the ledger stays where it was written
    }

    undo(owner, record)

    primary_now, secondary_now = contact_state(primary), contact_state(secondary)
    for name, value in before["primary"].items():
        assert primary_now[name] == value, name
    for name, value in before["secondary"].items():
        assert secondary_now[name] == value, name
    bookkeeping = {"contacts.MergeRecord.primary", "contacts.MergeRecord.secondary"}

    def relations(contact):
        state = relation_state(org, contact)
        for key in bookkeeping:
            state.pop(key, None)
        # The timeline keeps its "merged" / "undone" entries: history, not data.
        merged = set(
            Activity.objects.for_org(org)
            .filter(contact=contact, type__in=["merged", "restored"])
            .values_list("pk", flat=True)
        )
        state["contacts.Activity.contact"] = [
            pk for pk in state["contacts.Activity.contact"] if pk not in merged
        ]
        # The consent ledger is history too: the merge and its undo each add rows.
        ledger = set(
            ConsentRecord.objects.for_org(org)
            .filter(contact=contact, actor_kind="merge")
            .values_list("pk", flat=True)
        )
        kept = [pk for pk in state.pop("compliance.ConsentRecord.contact", []) if pk not in ledger]
        if kept:
            state["compliance.ConsentRecord.contact"] = kept
        return state

    assert relations(primary) == before["primary_rel"]
    assert relations(secondary) == before["secondary_rel"]
    record.refresh_from_db()
    assert record.state == MergeRecord.State.UNDONE
    assert record.undone_by == owner.user and record.undone_at is not None


def test_undo_is_audited_and_emitted(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    record = merge(owner, primary, secondary)

    undo(owner, record)

    event = OutboxEvent.objects.for_org(org).get(event_type="contact.merge_undone")
    assert event.payload["secondary"] == str(secondary.public_id)
    assert AuditEvent.objects.for_org(org).filter(verb="contact.merge_undone").count() == 1


def test_undo_is_refused_after_the_primary_was_edited(org, owner):
    primary = ContactFactory(org=org, first_name="Jane", last_name="Doe", job_title="CEO")
    secondary = ContactFactory(org=org)
    age(secondary, 60)
    record = merge(owner, primary, secondary)
    services.contact_update(
        contact=fresh(primary),
        actor=actor_of(owner),
        data={"email": "jane.new@example.com", "job_title": "Chair"},
        policy=policy_of(owner),
    )

    with pytest.raises(ValidationError) as caught:
        undo(owner, record)

    text = " ".join(caught.value.messages)
    assert "Email of Jane Doe was edited after the merge." in text
    assert "Job title of Jane Doe was edited after the merge." in text
    assert fresh(secondary).is_archived is True
    record.refresh_from_db()
    assert record.state == MergeRecord.State.MERGED


def test_undo_is_refused_when_moved_rows_were_deleted_or_moved_again(org, owner):
    primary = ContactFactory(org=org, first_name="Jane", last_name="Doe")
    secondary = ContactFactory(org=org)
    note = NoteFactory(org=org, contact=secondary)
    kept_note = NoteFactory(org=org, contact=secondary)
    deal = DealFactory(org=org, contact=secondary, title="Big renewal")
    age(secondary, 60)
    record = merge(owner, primary, secondary)
    Note.objects.for_org(org).filter(pk=note.pk).delete()
    deal.contact = ContactFactory(org=org)
    deal.save()

    with pytest.raises(ValidationError) as caught:
        undo(owner, record)

    text = " ".join(caught.value.messages)
    assert "1 note moved by the merge was deleted since." in text
    assert "The deal “Big renewal” moved by the merge is no longer linked to Jane Doe." in text
    # Refused means nothing moved back: the rows that could move stayed with the primary.
    assert Note.objects.for_org(org).filter(pk=kept_note.pk, contact=primary).exists()
    assert fresh(secondary).is_archived


def test_undo_is_refused_once_the_primary_was_merged_on(org, owner):
    first, second, third = (ContactFactory(org=org) for _ in range(3))
    NoteFactory(org=org, contact=first)
    earlier = merge(owner, second, first)
    merge(owner, third, fresh(second))

    with pytest.raises(ValidationError) as caught:
        undo(owner, earlier)
    text = " ".join(caught.value.messages)
    assert "was archived or merged after this merge" in text
    assert "no longer linked to" in text


def test_undo_is_refused_when_the_secondary_was_edited(org, owner):
    primary = ContactFactory(org=org)
    secondary = ContactFactory(org=org, first_name="Sam", last_name="Roe", city="Kyiv")
    record = merge(owner, primary, secondary)
    Contact.objects.for_org(org).filter(pk=secondary.pk).update(city="Lviv")

    with pytest.raises(ValidationError) as caught:
        undo(owner, record)
    assert "City of Sam Roe was edited after the merge." in " ".join(caught.value.messages)


def test_undo_is_refused_when_a_new_contact_took_an_email(org, owner):
    primary = ContactFactory(org=org, email="p@example.com")
    secondary = ContactFactory(org=org, email="s@example.com")
    record = merge(owner, primary, secondary, choices={"email": "primary"})
    ContactFactory(org=org, email="s@example.com")

    with pytest.raises(ValidationError) as caught:
        undo(owner, record)
    assert "Another active contact now uses s@example.com." in caught.value.messages
    assert fresh(secondary).is_archived is True


def test_undo_is_refused_twice(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    record = merge(owner, primary, secondary)
    undo(owner, record)

    with pytest.raises(ValidationError, match="already undone"):
        undo(owner, record)


def test_undo_keeps_a_newer_activity_date_of_the_primary(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    record = merge(owner, primary, secondary)
    call = services.activity_log(
        org=org, actor=actor_of(owner), type="call", contact=fresh(primary), subject="Hi"
    )

    undo(owner, record)
    assert fresh(primary).last_activity_at == call.occurred_at


# Refusals: state, permissions, tenancy -----------------------------------------------------


def test_a_contact_cannot_be_merged_with_itself(org, owner):
    contact = ContactFactory(org=org)
    with pytest.raises(ValidationError, match="two different contacts"):
        merge(owner, contact, contact)


def test_archived_or_already_merged_contacts_are_refused(org, owner):
    primary, secondary, third = (ContactFactory(org=org) for _ in range(3))
    merge(owner, primary, secondary)

    with pytest.raises(ValidationError, match="already merged"):
        merge(owner, third, fresh(secondary))
    archived = ContactFactory(org=org, is_archived=True)
    with pytest.raises(ValidationError, match="archived"):
        merge(owner, third, archived)


def test_another_orgs_contact_is_refused(org, other_org, owner):
    primary = ContactFactory(org=org)
    foreign = ContactFactory(org=other_org)
    NoteFactory(org=other_org, contact=foreign)

    with pytest.raises(ValidationError, match="one organization"):
        merge(owner, primary, foreign)
    foreign = Contact.objects.for_org(other_org).get(pk=foreign.pk)
    assert not foreign.is_archived
    assert Note.objects.for_org(other_org).filter(contact=foreign).count() == 1
    assert not MergeRecord.objects.for_org(org).exists()


def test_a_rep_without_delete_rights_cannot_merge(org):
    rep = member(org, "team")
    primary = ContactFactory(org=org, owner=rep.user)
    secondary = ContactFactory(org=org, owner=rep.user)

    with pytest.raises(PermissionDenied, match="delete"):
        merge(rep, primary, secondary)
    assert not fresh(secondary).is_archived
    assert merge_blockers(primary=primary, secondary=secondary, policy=policy_of(rep))


def test_a_viewer_cannot_merge(org):
    viewer = member(org, "viewer")
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    with pytest.raises(PermissionDenied):
        merge(viewer, primary, secondary)


def _own_scope_deleter(org):
    rights = {"access": True, "view": True, "create": True, "edit": True, "delete": True}
    role = custom_role(org, permissions={"contacts": {**rights, "scope": "own"}})
    return MembershipFactory(org=org, role=role)


def test_an_own_scope_rep_cannot_merge_a_contact_they_cannot_see(org):
    rep = _own_scope_deleter(org)
    mine = ContactFactory(org=org, owner=rep.user)
    theirs = ContactFactory(org=org, owner=member(org, "admin").user)

    with pytest.raises(PermissionDenied):
        merge(rep, mine, theirs)
    with pytest.raises(PermissionDenied):
        merge(rep, theirs, mine)
    assert not fresh(theirs).is_archived and not fresh(mine).is_archived


def test_an_own_scope_rep_with_delete_rights_merges_their_own_contacts(org):
    rep = _own_scope_deleter(org)
    primary = ContactFactory(org=org, owner=rep.user)
    secondary = ContactFactory(org=org, owner=rep.user)

    assert merge_blockers(primary=primary, secondary=secondary, policy=policy_of(rep)) == []
    record = merge(rep, primary, secondary)
    assert fresh(secondary).merged_into_id == primary.pk
    undo(rep, record)
    assert fresh(secondary).merged_into_id is None


def test_a_field_the_member_may_not_edit_keeps_the_primarys_value(org):
    rights = {"access": True, "view": True, "create": True, "edit": True, "delete": True}
    role = custom_role(
        org,
        permissions={"contacts": {**rights, "scope": "all"}},
        field_rules={"job_title": "visible"},
    )
    editor = MembershipFactory(org=org, role=role)
    primary = ContactFactory(org=org, job_title="")
    secondary = ContactFactory(org=org, job_title="CFO")

    preview = {c.key: c for c in merge_preview(primary=primary, secondary=secondary)}
    assert preview["job_title"].default == "secondary"
    policy = policy_of(editor)
    preview = {c.key: c for c in merge_preview(primary=primary, secondary=secondary, policy=policy)}
    assert preview["job_title"].editable is False and preview["job_title"].default == "primary"

    with pytest.raises(PermissionDenied, match="Job title"):
        merge(editor, primary, secondary, choices={"job_title": "secondary"})
    merge(editor, primary, secondary)
    assert fresh(primary).job_title == ""


def test_undo_needs_the_rights_the_merge_needed(org, owner):
    primary, secondary = ContactFactory(org=org), ContactFactory(org=org)
    record = merge(owner, primary, secondary)

    with pytest.raises(PermissionDenied):
        undo(member(org, "viewer"), record)
    assert fresh(secondary).is_archived


def test_the_engine_counts_the_relations_it_moves():
    moved = {merge_service.relation_key(f) for f in merge_service.relations_to_move()}
    assert "contacts.Activity.contact" in moved
    assert moved.isdisjoint(MERGE_EXCLUDED)
    assert {merge_service.relation_key(f) for f in every_relation()} == moved | set(MERGE_EXCLUDED)
