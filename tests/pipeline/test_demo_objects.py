"""Demo custom objects (pipeline/demo_objects.py): the module turned on, the "Course" type with
its fields, twelve valid courses, students, guardians and deals linked to them; deterministic,
and added once."""

import datetime as dt
import random
from collections import Counter

import pytest

from contacts.models import Contact
from crm.models import OutboxEvent
from crm.selectors import org_timezone
from pipeline.demo_objects import COURSES, Seeded, seed_objects
from pipeline.models import ObjectAssociation, ObjectField, ObjectRecord, ObjectType
from pipeline.services.object_fields import fields_of
from pipeline.services.object_records import clean_values, display_name_for
from tests.factories import ContactFactory, DealFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db


def _org(contacts: int = 20, deals: int = 3):
    org = OrganizationFactory(base_currency="USD")
    org.enabled_modules = ["orders"]
    org.save()
    owner = member(org, "admin")
    ContactFactory.create_batch(contacts, org=org)
    ContactFactory(org=org, is_archived=True)
    DealFactory.create_batch(deals, org=org, owner=owner.user)
    return org, owner


def _counts(org) -> dict:
    return {
        model.__name__: model.objects.for_org(org).count()
        for model in (ObjectType, ObjectField, ObjectRecord, ObjectAssociation, OutboxEvent)
    }


def test_demo_courses_turn_the_module_on_and_are_valid_for_their_fields():
    org, owner = _org()

    added = seed_objects(org, rng=random.Random(1))

    org.refresh_from_db()
    assert sorted(org.enabled_modules) == ["custom_objects", "orders"]
    course = ObjectType.objects.for_org(org).get()
    assert (course.key, course.name, course.plural, course.icon) == (
        "course",
        "Course",
        "Courses",
        "calendar",
    )
    assert course.primary_field_key == "name"
    fields = list(fields_of(course))
    assert [(f.key, f.field_type) for f in fields] == [
        ("name", "text"),
        ("code", "text"),
        ("level", "list"),
        ("start_date", "date"),
        ("seats", "number"),
        ("price", "currency"),
        ("online", "checkbox"),
    ]
    by_key = {f.key: f for f in fields}
    assert by_key["level"].choices == ["Beginner", "Intermediate", "Advanced"]
    assert by_key["price"].currency == "USD"
    assert by_key["code"].regex and by_key["name"].required and by_key["code"].required

    records = list(ObjectRecord.objects.for_org(org).filter(object_type=course))
    assert added.courses == len(records) == len(COURSES) == 12
    today = dt.datetime.now(org_timezone(org)).date()
    starts = []
    for record in records:
        # Exactly what the record service would store for these values.
        assert clean_values(fields, {}, record.values, creating=True) == record.values
        assert set(record.values) == set(by_key)
        assert record.display_name == display_name_for(course, fields, record.values)
        assert record.display_name == record.values["name"]
        assert record.owner_id == owner.user_id
        assert record.external_id
        starts.append(dt.date.fromisoformat(record.values["start_date"]))
    assert min(starts) < today < max(starts)
    assert {r.values["level"] for r in records} == {"Beginner", "Intermediate", "Advanced"}
    assert {r.values["online"] for r in records} == {True, False}


def test_demo_courses_link_students_guardians_and_deals_once_each():
    org, _owner = _org(contacts=20, deals=3)

    added = seed_objects(org, rng=random.Random(1))

    links = list(ObjectAssociation.objects.for_org(org).select_related("record", "contact", "deal"))
    to_contacts = [link for link in links if link.contact_id]
    to_deals = [link for link in links if link.deal_id]
    assert added == Seeded(12, len(to_contacts), len(to_deals))
    # Every active contact is in (20 is fewer than the demo's sixty), none archived.
    active = set(
        Contact.objects.for_org(org).filter(is_archived=False).values_list("pk", flat=True)
    )
    assert {link.contact_id for link in to_contacts} == active
    assert len(active) == 20
    labels = Counter(link.label for link in to_contacts)
    assert set(labels) == {"student", "guardian"}
    assert labels["student"] > labels["guardian"] >= 1
    today = dt.datetime.now(org_timezone(org)).date()
    for link in to_contacts:
        start = dt.date.fromisoformat(link.record.values["start_date"])
        assert link.associated_on is not None
        assert link.associated_on <= today and link.associated_on < start
        if link.label == "guardian":
            assert link.record.values["code"].startswith("YTH-")
    students = Counter(link.record_id for link in to_contacts if link.label == "student")
    guardians = Counter(link.record_id for link in to_contacts if link.label == "guardian")
    for record in ObjectRecord.objects.for_org(org):
        assert students[record.pk] <= record.values["seats"]
        assert guardians[record.pk] <= students[record.pk]
    pairs = [(link.record_id, link.contact_id, link.deal_id) for link in links]
    assert len(pairs) == len(set(pairs))
    assert len(to_deals) == 3
    assert {link.label for link in to_deals} == {"Team training"}
    assert all(link.object_type_id == link.record.object_type_id for link in links)


def test_demo_courses_are_added_once_and_the_same_every_time():
    org, _owner = _org(contacts=8, deals=1)
    first = seed_objects(org, rng=random.Random(1))
    before = _counts(org)

    again = seed_objects(org, rng=random.Random(1))

    assert first.courses == 12 and first.contact_links >= 8 and first.deal_links == 1
    assert again == Seeded(0, 0, 0)
    assert _counts(org) == before

    twin, _ = _org(contacts=8, deals=1)
    seed_objects(twin, rng=random.Random(1))

    def values(o):
        return sorted(
            (r.external_id, sorted(r.values.items())) for r in ObjectRecord.objects.for_org(o)
        )

    assert values(twin) == values(org)


def test_demo_courses_need_no_contacts_deals_or_members():
    org = OrganizationFactory()

    added = seed_objects(org, rng=random.Random(1))

    assert added == Seeded(12, 0, 0)
    assert ObjectRecord.objects.for_org(org).filter(owner__isnull=True).count() == 12
