"""Custom object records: values checked per field kind (regex through RE2, required,
choices), unknown keys refused, the size cap, display names, external ids unique per type,
owners within scope, rights and scope, and the audit trail and outbox events."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import ObjectRecord
from pipeline.services import object_fields as fields_svc
from pipeline.services import object_types as types_svc
from pipeline.services.object_records import (
    MAX_VALUES_BYTES,
    record_create,
    record_delete,
    record_update,
    scoped_records,
)
from tests.factories import ObjectRecordFactory, OrganizationFactory, TeamFactory, member

pytestmark = pytest.mark.django_db

NAUGHTY = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ 7*7 }}",
    "' OR 1=1 --",
    "🧪 ☃ 👩🏽‍💻",
    "\u202egnp.exe",
    '=HYPERLINK("http://evil","x")',
]


@pytest.fixture
def org(db):
    org = OrganizationFactory(name="Acme Records", slug="acme-records")
    org.enabled_modules = ["custom_objects"]
    org.save()
    return org


@pytest.fixture
def admin(org):
    return member(org, "admin")


def _as(who):
    return {"actor": Actor.for_user(who.user), "policy": Policy(who)}


@pytest.fixture
def course(admin):
    """A type with one field of every kind."""
    course = types_svc.object_type_create(org=admin.org, data={"name": "Course"}, **_as(admin))
    specs = [
        {
            "label": "Code",
            "field_type": "text",
            "regex": "[A-Z]{2}-\\d{3}",
            "regex_message": "Use AB-123.",
        },
        {"label": "Seats", "field_type": "number"},
        {"label": "Price", "field_type": "currency", "currency": "EUR"},
        {"label": "Discount", "field_type": "percent"},
        {"label": "Starts", "field_type": "date"},
        {"label": "Level", "field_type": "list", "choices": ["Beginner", "Advanced"]},
        {"label": "Online", "field_type": "checkbox"},
        {"label": "Site", "field_type": "link"},
    ]
    for spec in specs:
        fields_svc.object_field_create(object_type=course, data=spec, **_as(admin))
    return course


def _create(who, object_type, values, **data):
    return record_create(
        org=who.org, object_type=object_type, data={"values": values, **data}, **_as(who)
    )


def _errors(excinfo) -> dict:
    return excinfo.value.message_dict


# Values per kind -----------------------------------------------------------------------------


def test_values_are_stored_in_their_typed_forms(admin, course):
    record = _create(
        admin,
        course,
        {
            "name": "  Yoga basics ",
            "code": "YO-101",
            "seats": "1,200",
            "price": "99.999",
            "discount": "15 %",
            "starts": "2026-03-01",
            "level": "beginner",
            "online": "yes",
            "site": "acme.com/yoga",
        },
    )

    record.refresh_from_db()
    assert record.values == {
        "name": "Yoga basics",
        "code": "YO-101",
        "seats": 1200,
        "price": 100,
        "discount": 15,
        "starts": "2026-03-01",
        "level": "Beginner",
        "online": True,
        "site": "https://acme.com/yoga",
    }
    assert record.display_name == "Yoga basics"
    assert record.owner_id == admin.user_id
    assert record.created_by_id == admin.user_id


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("code", "yo-101", "Use AB-123."),
        ("seats", "many", "is not a number"),
        ("price", "1e16", "too large"),
        ("discount", "120", "between 0 and 100"),
        ("starts", "2026-02-30", "not a date"),
        ("level", "Expert", "not one of the choices"),
        ("online", "perhaps", "yes or no"),
        ("site", "javascript:alert(1)", "not a web address"),
        ("name", "n" * 1001, "at most 1000"),
        ("name", "nul\x00byte", "null character"),
        ("seats", [1, 2], "single value"),
        ("code", {"a": 1}, "single value"),
    ],
)
def test_a_bad_value_is_an_error_on_its_field_and_nothing_is_written(
    admin, course, key, value, message
):
    values = {"name": "Yoga", "seats": 3, key: value}
    with pytest.raises(ValidationError) as refused:
        _create(admin, course, values)
    errors = _errors(refused)
    assert list(errors) == [key]
    assert message in " ".join(errors[key])
    assert not ObjectRecord.objects.for_org(admin.org).exists()


def test_every_bad_field_is_reported_at_once(admin, course):
    with pytest.raises(ValidationError) as refused:
        _create(admin, course, {"name": "", "seats": "x", "level": "Nope"}, external_id="x" * 201)
    assert set(_errors(refused)) == {"name", "seats", "level", "external_id"}


def test_a_regex_that_would_backtrack_forever_runs_in_linear_time(admin, course):
    field = fields_svc.object_field_create(
        object_type=course,
        data={"label": "Slow", "field_type": "text", "regex": "(a+)+$"},
        **_as(admin),
    )
    with pytest.raises(ValidationError) as refused:
        _create(admin, course, {"name": "x", field.key: "a" * 5000 + "!"})
    assert list(_errors(refused)) == ["slow"]


def test_unknown_keys_are_refused(admin, course):
    with pytest.raises(ValidationError) as refused:
        _create(admin, course, {"name": "Yoga", "colour": "red"})
    assert _errors(refused) == {"colour": ["There is no field “colour” on this type."]}


def test_values_must_be_an_object(admin, course):
    with pytest.raises(ValidationError) as refused:
        _create(admin, course, ["Yoga"])
    assert "values" in _errors(refused)


def test_required_fields_must_have_a_value_on_create(admin, course):
    with pytest.raises(ValidationError) as refused:
        _create(admin, course, {"code": "YO-101"})
    assert _errors(refused) == {"name": ["Name is required."]}


def test_an_update_checks_the_required_fields_it_names_only(admin, course):
    record = _create(admin, course, {"name": "Yoga"})
    seats = fields_svc.fields_of(course).get(key="seats")
    fields_svc.object_field_update(field=seats, data={"required": True}, **_as(admin))

    # Another field changes: the newly required one is not asked for.
    record_update(record=record, data={"values": {"code": "YO-102"}}, **_as(admin))
    with pytest.raises(ValidationError) as refused:
        record_update(record=record, data={"values": {"name": "", "seats": ""}}, **_as(admin))
    assert set(_errors(refused)) == {"name", "seats"}
    record.refresh_from_db()
    assert record.values == {"name": "Yoga", "code": "YO-102"}


def test_the_values_json_is_capped(admin, course):
    keys = []
    for n in range(70):
        field = fields_svc.object_field_create(
            object_type=course, data={"label": f"Notes {n}", "field_type": "text"}, **_as(admin)
        )
        keys.append(field.key)
    values = {"name": "Yoga", **dict.fromkeys(keys, "x" * 1000)}

    with pytest.raises(ValidationError) as refused:
        _create(admin, course, values)

    message = _errors(refused)["values"][0]
    assert f"at most {MAX_VALUES_BYTES // 1024} KB" in message
    assert not ObjectRecord.objects.for_org(admin.org).exists()


def test_an_empty_value_clears_the_field(admin, course):
    record = _create(admin, course, {"name": "Yoga", "seats": 4, "online": True})
    record_update(record=record, data={"values": {"seats": "", "online": ""}}, **_as(admin))
    record.refresh_from_db()
    # A yes/no field sent empty is "no" (an unticked box), other kinds are cleared.
    assert record.values == {"name": "Yoga", "online": False}


@pytest.mark.parametrize("text", NAUGHTY)
def test_naughty_strings_are_stored_as_given(admin, course, text):
    record = _create(admin, course, {"name": text}, external_id=text)
    record.refresh_from_db()
    assert record.values["name"] == text.strip()
    assert record.display_name == " ".join(text.split())
    assert record.external_id == text


# Display name --------------------------------------------------------------------------------


def test_the_display_name_follows_the_primary_field(admin, course):
    record = _create(admin, course, {"name": "Yoga"})
    record_update(record=record, data={"values": {"name": "Yoga for all"}}, **_as(admin))
    record.refresh_from_db()
    assert record.display_name == "Yoga for all"
    events = OutboxEvent.objects.for_org(admin.org).filter(event_type="object_record.updated")
    assert events.get().payload["display_name"] == "Yoga for all"


# External ids --------------------------------------------------------------------------------


def test_an_external_id_is_unique_per_type_as_a_field_error(admin, course):
    room = types_svc.object_type_create(org=admin.org, data={"name": "Room"}, **_as(admin))
    _create(admin, course, {"name": "Yoga"}, external_id="ext-1")

    with pytest.raises(ValidationError) as refused:
        _create(admin, course, {"name": "Pilates"}, external_id="ext-1")
    assert _errors(refused) == {
        "external_id": ["Another record of this type already has this external id."]
    }
    # The same id in another type is another record.
    assert _create(admin, room, {"name": "Hall"}, external_id="ext-1").pk
    # An update that takes a taken id is refused the same way.
    other = _create(admin, course, {"name": "Pilates"}, external_id="ext-2")
    with pytest.raises(ValidationError) as refused:
        record_update(record=other, data={"external_id": " ext-1 "}, **_as(admin))
    assert "external_id" in _errors(refused)
    # Records without an external id never collide.
    _create(admin, course, {"name": "A"})
    _create(admin, course, {"name": "B"})


def test_a_race_on_the_external_id_is_a_field_error_not_a_500(admin, course, monkeypatch):
    from pipeline.services import object_records

    _create(admin, course, {"name": "Yoga"}, external_id="ext-1")
    # The look-up misses the other record (as when two requests run at once); the database's
    # unique constraint still refuses it, and the refusal is the same field error.
    monkeypatch.setattr(object_records, "_external_id_taken", lambda record: False)
    with pytest.raises(ValidationError) as refused:
        _create(admin, course, {"name": "Pilates"}, external_id="ext-1")
    assert "external_id" in _errors(refused)
    assert ObjectRecord.objects.for_org(admin.org).count() == 1


# Owners, rights and scope --------------------------------------------------------------------


def test_a_rep_owns_what_they_create_and_cannot_give_it_away(org, course):
    rep = member(org, "team")
    colleague = member(org, "team")

    record = _create(rep, course, {"name": "Yoga"})
    assert record.owner_id == rep.user_id

    with pytest.raises(ValidationError) as refused:
        _create(rep, course, {"name": "Pilates"}, owner=colleague.user.public_id)
    assert _errors(refused) == {"owner": ["Choose an owner within your scope."]}
    with pytest.raises(ValidationError):
        _create(rep, course, {"name": "Pilates"}, owner=None)
    with pytest.raises(ValidationError):
        record_update(record=record, data={"owner": colleague.user}, **_as(rep))
    record.refresh_from_db()
    assert record.owner_id == rep.user_id


def test_an_admin_assigns_any_active_member_or_no_one(admin, course):
    rep = member(admin.org, "team")
    record = _create(admin, course, {"name": "Yoga"}, owner=str(rep.user.public_id))
    assert record.owner_id == rep.user_id
    record_update(record=record, data={"owner": ""}, **_as(admin))
    record.refresh_from_db()
    assert record.owner_id is None

    gone = member(admin.org, "team", is_active=False)
    with pytest.raises(ValidationError) as refused:
        record_update(record=record, data={"owner": gone.user}, **_as(admin))
    assert "active member" in _errors(refused)["owner"][0]
    with pytest.raises(ValidationError):
        record_update(record=record, data={"owner": "not-a-uuid"}, **_as(admin))


def test_a_director_assigns_within_their_team(org, course):
    team = TeamFactory(org=org)
    director = member(org, "director", team=team)
    mate = member(org, "team", team=team)
    outsider = member(org, "team")

    assert _create(director, course, {"name": "A"}, owner=mate.user).owner_id == mate.user_id
    with pytest.raises(ValidationError):
        _create(director, course, {"name": "B"}, owner=outsider.user)


def test_a_rep_edits_and_sees_only_their_own_records(org, course):
    rep = member(org, "team")
    other = member(org, "team")
    theirs = _create(other, course, {"name": "Theirs"})
    mine = _create(rep, course, {"name": "Mine"})

    assert list(scoped_records(org, Policy(rep), course)) == [mine]
    with pytest.raises(PermissionDenied):
        record_update(record=theirs, data={"values": {"name": "Taken"}}, **_as(rep))
    theirs.refresh_from_db()
    assert theirs.values["name"] == "Theirs"


@pytest.mark.parametrize(
    ("role_key", "create", "delete"),
    [
        ("viewer", False, False),
        ("team", True, False),
        ("executive", True, False),
        ("admin", True, True),
    ],
)
def test_module_rights_decide_create_and_delete(org, course, role_key, create, delete):
    who = member(org, role_key)
    if create:
        record = _create(who, course, {"name": "Yoga"})
    else:
        with pytest.raises(PermissionDenied):
            _create(who, course, {"name": "Yoga"})
        record = ObjectRecordFactory(org=org, object_type=course, owner=who.user)
    if delete:
        record_delete(record=record, **_as(who))
        assert not ObjectRecord.objects.for_org(org).filter(pk=record.pk).exists()
    else:
        with pytest.raises(PermissionDenied):
            record_delete(record=record, **_as(who))
        assert ObjectRecord.objects.for_org(org).filter(pk=record.pk).exists()


def test_a_type_of_another_organization_is_refused(admin, other_org):
    other_org.enabled_modules = ["custom_objects"]
    other_org.save()
    foreign = types_svc.object_type_create(
        org=other_org, data={"name": "Course"}, actor=Actor.system("test")
    )
    with pytest.raises(ValidationError):
        _create(admin, foreign, {"name": "Yoga"})


# Audit and events ----------------------------------------------------------------------------


def test_writes_are_audited_and_emit_events(admin, course):
    record = _create(admin, course, {"name": "Yoga", "seats": 3}, external_id="e-1")
    record_update(record=record, data={"values": {"seats": 4}}, **_as(admin))
    record_update(record=record, data={"values": {"seats": 4}}, **_as(admin))  # no change
    record_delete(record=record, **_as(admin))

    verbs = list(
        AuditEvent.objects.for_org(admin.org)
        .filter(verb__startswith="object_record.")
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == ["object_record.created", "object_record.updated", "object_record.deleted"]
    updated = AuditEvent.objects.for_org(admin.org).get(verb="object_record.updated")
    assert updated.changes == {"values.seats": [3, 4]}
    events = list(
        OutboxEvent.objects.for_org(admin.org)
        .filter(event_type__startswith="object_record.")
        .order_by("id")
        .values_list("event_type", "payload")
    )
    assert [e for e, _ in events] == [
        "object_record.created",
        "object_record.updated",
        "object_record.deleted",
    ]
    assert events[0][1]["external_id"] == "e-1"
    assert events[0][1]["object_type_key"] == "course"
