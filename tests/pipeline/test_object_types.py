"""Custom object types and fields: who manages them, the key rules, the limits (50 types,
100 fields), kinds fixed once created, the primary field, and what deleting a field or a
type does to the records."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import ObjectAssociation, ObjectField, ObjectRecord, ObjectType
from pipeline.services import object_fields as fields_svc
from pipeline.services import object_types as svc
from pipeline.services.object_records import record_create
from tests.factories import (
    ContactFactory,
    ObjectAssociationFactory,
    ObjectFieldFactory,
    ObjectRecordFactory,
    ObjectTypeFactory,
    OrganizationFactory,
    custom_role,
    member,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(db):
    org = OrganizationFactory(name="Acme Objects", slug="acme-objects")
    org.enabled_modules = ["orders", "custom_objects"]
    org.save()
    return org


@pytest.fixture
def admin(org):
    return member(org, "admin")


def _as(who):
    return {"actor": Actor.for_user(who.user), "policy": Policy(who)}


def _type(who, **data):
    return svc.object_type_create(org=who.org, data={"name": "Course", **data}, **_as(who))


def _field(who, object_type, **data):
    return fields_svc.object_field_create(
        object_type=object_type, data={"label": "Code", "field_type": "text", **data}, **_as(who)
    )


def _errors(excinfo) -> dict:
    return excinfo.value.message_dict


# Who manages types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role_key", "allowed"),
    [
        ("owner", True),
        ("admin", True),
        ("executive", False),  # no Settings edit
        ("director", False),
        ("team", False),
        ("viewer", False),
    ],
)
def test_only_settings_editors_with_custom_objects_access_manage_types(org, role_key, allowed):
    who = member(org, role_key)
    assert svc.can_manage_types(Policy(who)) is allowed
    if allowed:
        assert _type(who).pk
    else:
        with pytest.raises(PermissionDenied):
            _type(who)


def test_settings_edit_without_custom_objects_access_cannot_manage_types(org):
    permissions = {
        "settings": {"access": True, "view": True, "edit": True, "scope": "all"},
        "custom_objects": {"access": False},
    }
    who = member(org, "admin")
    who.role = custom_role(org, permissions=permissions)
    who.save()

    with pytest.raises(PermissionDenied):
        _type(who)
    existing = ObjectTypeFactory(org=org)
    with pytest.raises(PermissionDenied):
        _field(who, existing)


def test_a_type_cannot_be_created_while_the_module_is_off(admin):
    admin.org.enabled_modules = []
    admin.org.save()
    with pytest.raises(ValidationError, match="turned off"):
        _type(admin)


# Creating a type ---------------------------------------------------------------------------


def test_a_new_type_has_its_first_field_as_primary_and_is_audited(admin):
    course = _type(admin, plural="", icon="calendar", description="Courses we run")

    assert (course.key, course.plural, course.icon) == ("course", "Courses", "calendar")
    fields = list(fields_svc.fields_of(course))
    assert [(f.key, f.label, f.field_type, f.required) for f in fields] == [
        ("name", "Name", "text", True)
    ]
    assert course.primary_field_key == "name"
    assert AuditEvent.objects.for_org(admin.org).filter(verb="object_type.created").count() == 1
    event = OutboxEvent.objects.for_org(admin.org).get(event_type="object_type.created")
    assert event.payload["key"] == "course"


def test_the_first_field_takes_the_label_given(admin):
    course = _type(admin, primary_label="Course title")
    field = fields_svc.fields_of(course).get()
    assert (field.key, field.label) == ("course_title", "Course title")
    assert course.primary_field_key == "course_title"


@pytest.mark.parametrize(
    ("name", "plural"),
    [
        ("Course", "Courses"),
        ("Property", "Properties"),
        ("Day", "Days"),
        ("Class", "Classes"),
        ("Box", "Boxes"),
        ("Series", "Series"),
    ],
)
def test_a_plural_left_empty_is_made_from_the_name(admin, name, plural):
    assert _type(admin, name=name, plural="").plural == plural


def test_a_key_typed_in_capitals_is_stored_in_lower_case(admin):
    assert _type(admin, key="Course").key == "course"


def test_the_key_is_suggested_from_the_name(admin):
    assert _type(admin, name="Séance de cours 2").key == "seance_de_cours_2"
    assert _type(admin, name="2024 Cohort").key == "object_2024_cohort"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("cöurse", "lower-case"),
        ("course code", "lower-case"),
        ("course-code", "lower-case"),
        ("1course", "lower-case"),
        ("course__code", "lower-case"),
        ("x" * 61, "at most 60"),
        ("contact", "reserved"),
        ("deals", "reserved"),
    ],
)
def test_type_key_rules(admin, key, message):
    with pytest.raises(ValidationError) as refused:
        _type(admin, key=key)
    assert message in " ".join(_errors(refused)["key"])
    assert not ObjectType.objects.for_org(admin.org).exists()


def test_type_names_and_keys_are_unique_in_the_organization(admin, other_org):
    _type(admin, key="course")
    with pytest.raises(ValidationError) as refused:
        _type(admin, name="COURSE", key="lesson")
    assert "already a type named" in _errors(refused)["name"][0]
    with pytest.raises(ValidationError) as refused:
        _type(admin, name="Lesson", key="course")
    assert "already a type with the key" in _errors(refused)["key"][0]
    # Another organization may use both.
    other_org.enabled_modules = ["custom_objects"]
    other_org.save()
    assert _type(member(other_org, "admin"), key="course").pk


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 81}, "name"),
        ({"icon": "skull"}, "icon"),
        ({"description": "d" * 301}, "description"),
        ({"primary_label": "p" * 121}, "primary_label"),
        ({"name": "Bad\x00name"}, "name"),
    ],
)
def test_bad_type_input_is_a_field_error(admin, data, field):
    with pytest.raises(ValidationError) as refused:
        _type(admin, **data)
    assert field in _errors(refused)


def test_at_most_50_types_per_organization_with_a_clear_message(admin):
    for n in range(svc.MAX_TYPES):
        ObjectTypeFactory(org=admin.org, key=f"type_{n}", name=f"Type {n}")

    with pytest.raises(ValidationError) as refused:
        _type(admin)

    assert refused.value.messages == [
        "An organization can have at most 50 object types. Delete one you no longer use "
        "before adding another."
    ]
    assert ObjectType.objects.for_org(admin.org).count() == 50


def test_a_type_key_is_fixed_once_created(admin):
    course = _type(admin)
    with pytest.raises(ValidationError) as refused:
        svc.object_type_update(object_type=course, data={"key": "lesson"}, **_as(admin))
    assert "cannot change" in _errors(refused)["key"][0]

    svc.object_type_update(
        object_type=course, data={"name": "Class", "plural": "Classes"}, **_as(admin)
    )
    course.refresh_from_db()
    assert (course.key, course.name, course.plural) == ("course", "Class", "Classes")


# Fields ------------------------------------------------------------------------------------


def test_fields_are_added_in_order_with_checked_settings(admin):
    course = _type(admin)
    price = _field(admin, course, label="Price", field_type="currency", currency="eur")
    level = _field(admin, course, label="Level", field_type="list", choices="Beginner\nAdvanced")

    assert (price.key, price.currency) == ("price", "EUR")
    assert level.choices == ["Beginner", "Advanced"]
    assert [f.key for f in fields_svc.fields_of(course)] == ["name", "price", "level"]
    assert (
        OutboxEvent.objects.for_org(admin.org).filter(event_type="object_field.created").count()
        == 2
    )


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"key": "code!"}, "key", "lower-case"),
        ({"key": "owner"}, "key", "reserved"),
        ({"key": "external_id"}, "key", "reserved"),
        ({"key": "csrfmiddlewaretoken"}, "key", "reserved"),
        ({"label": ""}, "label", "label"),
        ({"field_type": "formula"}, "field_type", "kind"),
        ({"field_type": "list", "choices": ""}, "choices", "at least one choice"),
        ({"field_type": "number", "regex": "\\d+"}, "regex", "Text and Link"),
        ({"regex": "(a)\\1"}, "regex", "backreference"),
        ({"regex": "a(?=b)"}, "regex", "lookahead"),
        ({"field_type": "currency", "currency": "EURO"}, "currency", "three-letter"),
        ({"label": "l" * 121}, "label", "120"),
        ({"help_text": "h" * 201}, "help_text", "200"),
        ({"regex": "x", "regex_message": "m" * 201}, "regex_message", "200"),
    ],
)
def test_field_definition_rules(admin, data, field, message):
    course = _type(admin)
    with pytest.raises(ValidationError) as refused:
        _field(admin, course, **data)
    assert message in " ".join(_errors(refused)[field])
    assert fields_svc.fields_of(course).count() == 1


def test_field_keys_are_unique_per_type_but_not_across_types(admin):
    course = _type(admin)
    room = _type(admin, name="Room")
    _field(admin, course, key="code")
    with pytest.raises(ValidationError) as refused:
        _field(admin, course, key="code", label="Other code")
    assert "already has a field" in _errors(refused)["key"][0]
    assert _field(admin, room, key="code").pk


def test_at_most_100_fields_per_type_with_a_clear_message(admin):
    course = _type(admin)
    ObjectField.objects.for_org(admin.org).bulk_create(
        [
            ObjectField(
                org=admin.org,
                object_type=course,
                key=f"f{n}",
                label=f"F{n}",
                field_type="text",
                position=n + 1,
            )
            for n in range(svc.MAX_FIELDS - 1)
        ]
    )
    with pytest.raises(ValidationError) as refused:
        _field(admin, course)
    assert refused.value.messages == [
        "A type can have at most 100 fields. Delete one you no longer use before adding another."
    ]
    assert fields_svc.fields_of(course).count() == 100


def test_a_field_kind_and_key_are_fixed_once_created(admin):
    course = _type(admin)
    seats = _field(admin, course, label="Seats", field_type="number")
    with pytest.raises(ValidationError) as refused:
        fields_svc.object_field_update(field=seats, data={"field_type": "text"}, **_as(admin))
    assert "kind cannot change" in _errors(refused)["field_type"][0]
    with pytest.raises(ValidationError) as refused:
        fields_svc.object_field_update(field=seats, data={"key": "places"}, **_as(admin))
    assert "key cannot change" in _errors(refused)["key"][0]

    fields_svc.object_field_update(
        field=seats, data={"label": "Places", "required": True, "help_text": "Max"}, **_as(admin)
    )
    seats.refresh_from_db()
    assert (seats.key, seats.field_type, seats.label, seats.required) == (
        "seats",
        "number",
        "Places",
        True,
    )


def test_fields_move_up_and_down(admin):
    course = _type(admin)
    code = _field(admin, course, label="Code")
    level = _field(admin, course, label="Level")

    fields_svc.object_field_move(field=level, direction="up", **_as(admin))
    assert [f.key for f in fields_svc.fields_of(course)] == ["name", "level", "code"]
    fields_svc.object_field_move(field=code, direction="down", **_as(admin))  # already last
    assert [f.key for f in fields_svc.fields_of(course)] == ["name", "level", "code"]
    first = fields_svc.fields_of(course).first()
    fields_svc.object_field_move(field=first, direction="up", **_as(admin))  # already first
    assert [f.key for f in fields_svc.fields_of(course)] == ["name", "level", "code"]
    with pytest.raises(ValidationError):
        fields_svc.object_fields_reorder(object_type=course, keys=["name", "code"], **_as(admin))


def test_deleting_a_field_strips_its_values_from_the_records(admin):
    course = _type(admin)
    code = _field(admin, course, label="Code")
    kept = record_create(
        org=admin.org,
        object_type=course,
        data={"values": {"name": "Yoga", "code": "Y1"}},
        **_as(admin),
    )
    other = record_create(
        org=admin.org, object_type=course, data={"values": {"name": "Pilates"}}, **_as(admin)
    )

    removed = fields_svc.object_field_delete(field=code, **_as(admin))

    assert removed == 1
    kept.refresh_from_db()
    other.refresh_from_db()
    assert (kept.values, other.values) == ({"name": "Yoga"}, {"name": "Pilates"})
    assert not ObjectField.objects.for_org(admin.org).filter(pk=code.pk).exists()
    # A new field with the same key starts empty.
    _field(admin, course, label="Code", field_type="number")
    kept.refresh_from_db()
    assert "code" not in kept.values


def test_the_primary_field_cannot_be_deleted(admin):
    course = _type(admin)
    name = fields_svc.fields_of(course).get(key="name")
    with pytest.raises(ValidationError, match="Make another field the primary one"):
        fields_svc.object_field_delete(field=name, **_as(admin))


def test_switching_the_primary_field_renames_every_record(admin):
    course = _type(admin)
    code = _field(admin, course, label="Code")
    seats = _field(admin, course, label="Seats", field_type="number")
    record = record_create(
        org=admin.org,
        object_type=course,
        data={"values": {"name": "Yoga", "code": "Y-1"}},
        **_as(admin),
    )
    bare = record_create(
        org=admin.org, object_type=course, data={"values": {"name": "Tai chi"}}, **_as(admin)
    )
    assert record.display_name == "Yoga"

    with pytest.raises(ValidationError, match="text, link, list or date"):
        fields_svc.primary_field_set(object_type=course, field=seats, **_as(admin))
    fields_svc.primary_field_set(object_type=course, field=code, **_as(admin))

    record.refresh_from_db()
    bare.refresh_from_db()
    course.refresh_from_db()
    assert (course.primary_field_key, record.display_name, bare.display_name) == ("code", "Y-1", "")


def test_the_primary_field_must_belong_to_the_type(admin):
    course = _type(admin)
    room = _type(admin, name="Room")
    with pytest.raises(ValidationError, match="field of this type"):
        fields_svc.primary_field_set(
            object_type=course, field=fields_svc.fields_of(room).get(), **_as(admin)
        )


# Deleting a type ---------------------------------------------------------------------------


def test_a_type_without_records_is_deleted_with_its_fields(admin):
    course = _type(admin)
    _field(admin, course)

    assert svc.object_type_delete(object_type=course, **_as(admin)) == 0
    assert not ObjectType.objects.for_org(admin.org).exists()
    assert not ObjectField.objects.for_org(admin.org).exists()
    assert OutboxEvent.objects.for_org(admin.org).filter(event_type="object_type.deleted").exists()


def test_deleting_a_type_with_records_needs_the_confirmation(admin):
    course = ObjectTypeFactory(org=admin.org)
    ObjectFieldFactory(org=admin.org, object_type=course)
    record = ObjectRecordFactory(org=admin.org, object_type=course)
    ObjectAssociationFactory(org=admin.org, record=record, contact=ContactFactory(org=admin.org))

    with pytest.raises(ValidationError) as refused:
        svc.object_type_delete(object_type=course, **_as(admin))
    assert "has 1 record" in _errors(refused)["delete_records"][0]
    assert ObjectRecord.objects.for_org(admin.org).count() == 1

    assert svc.object_type_delete(object_type=course, delete_records=True, **_as(admin)) == 1
    assert not ObjectRecord.objects.for_org(admin.org).exists()
    assert not ObjectAssociation.objects.for_org(admin.org).exists()
    assert not ObjectType.objects.for_org(admin.org).exists()
    audit = AuditEvent.objects.for_org(admin.org).get(verb="object_type.deleted")
    assert audit.changes["records"] == 1


def test_type_summaries_count_fields_and_records(admin):
    course = _type(admin)
    _field(admin, course)
    ObjectRecordFactory.create_batch(3, org=admin.org, object_type=course)
    _type(admin, name="Room")

    summary = {t.key: (t.field_count, t.record_count) for t in svc.type_summaries(admin.org)}
    assert summary == {"course": (2, 3), "room": (1, 0)}
