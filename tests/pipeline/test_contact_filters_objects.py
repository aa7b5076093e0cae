"""Contact filters over associated custom-object records (pipeline.contact_filters):
"associated with a record of type X" and its negation, optionally where a field of the record
matches, by the field's kind; strict validation against the org's own types and fields, the
module switch, the Custom objects right and scope, descriptions, saved views and naughty
input."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.fields import contact_field_catalog
from contacts.filters import FilterError, compile_filters, describe_filters, parse_filters
from contacts.models import Contact, SmartView
from contacts.selectors import contacts_for_list
from crm.permissions import Policy
from pipeline.contact_filters import common as contact_filters
from pipeline.contact_filters import objects as object_filters
from pipeline.models import ObjectField
from tests.factories import (
    ContactFactory,
    ObjectAssociationFactory,
    ObjectFieldFactory,
    ObjectRecordFactory,
    ObjectTypeFactory,
    member,
)

pytestmark = pytest.mark.django_db
Kind = ObjectField.FieldType


@pytest.fixture
def org(org):
    org.enabled_modules = ["orders", "custom_objects"]
    org.save()
    return org


def one(op, value=None):
    condition = {"field": "objects", "op": op}
    if value is not None:
        condition["value"] = value
    return {"groups": [{"conditions": [condition]}]}


def names(org, filters, policy=None) -> set[str]:
    q = compile_filters(filters, contact_field_catalog(org), tz="UTC", org=org, policy=policy)
    return set(Contact.objects.for_org(org).filter(q).values_list("first_name", flat=True))


def parse(org, filters, policy=None):
    return parse_filters(filters, contact_field_catalog(org), org=org, policy=policy)


def error_of(org, filters, policy=None) -> str:
    with pytest.raises(FilterError) as caught:
        parse(org, filters, policy)
    return caught.value.message


@pytest.fixture
def course(org):
    course = ObjectTypeFactory(org=org, key="course", name="Course", plural="Courses")
    fields = [
        ("name", "Name", Kind.TEXT, {}),
        ("level", "Level", Kind.LIST, {"choices": ["Beginner", "Advanced"]}),
        ("seats", "Seats", Kind.NUMBER, {}),
        ("price", "Price", Kind.CURRENCY, {"currency": "EUR"}),
        ("discount", "Discount", Kind.PERCENT, {}),
        ("starts", "Start date", Kind.DATE, {}),
        ("online", "Online", Kind.CHECKBOX, {}),
        ("page", "Page", Kind.LINK, {}),
    ]
    for position, (key, label, kind, extra) in enumerate(fields):
        ObjectFieldFactory(
            org=org,
            object_type=course,
            key=key,
            label=label,
            field_type=kind,
            position=position,
            **extra,
        )
    return course


@pytest.fixture
def students(org, course):
    """Ann takes Python (advanced, 12 seats, 99.50 EUR, 10 %, starts 2024-09-01, online);
    Bob takes Pottery (beginner, 4 seats, 300 EUR, starts 2024-03-01, not online); Cid takes
    both; Dee is only a guardian of something else (another type); Eve has nothing."""
    python = ObjectRecordFactory(
        org=org,
        object_type=course,
        display_name="Python",
        values={
            "name": "Python",
            "level": "Advanced",
            "seats": 12,
            "price": 99.5,
            "discount": 10,
            "starts": "2024-09-01",
            "online": True,
            "page": "https://example.test/python",
        },
    )
    pottery = ObjectRecordFactory(
        org=org,
        object_type=course,
        display_name="Pottery",
        values={
            "name": "Pottery",
            "level": "Beginner",
            "seats": 4,
            "price": 300,
            "starts": "2024-03-01",
            "online": False,
        },
    )
    house = ObjectTypeFactory(org=org, key="house", name="House", plural="Houses")
    villa = ObjectRecordFactory(org=org, object_type=house, display_name="Villa")
    people = {n: ContactFactory(org=org, first_name=n) for n in ["Ann", "Bob", "Cid", "Dee", "Eve"]}
    for name, record in (
        ("Ann", python),
        ("Bob", pottery),
        ("Cid", python),
        ("Cid", pottery),
        ("Dee", villa),
    ):
        ObjectAssociationFactory(org=org, record=record, contact=people[name])
    return {"python": python, "pottery": pottery, "house": house, "people": people}


def where(course, field, op, value):
    return {"type": str(course.public_id), "where": {"field": field, "op": op, "value": value}}


# Associated or not ------------------------------------------------------------------------


def test_associated_with_a_type_and_its_negation(org, course, students):
    assert names(org, one("associated", {"type": str(course.public_id)})) == {"Ann", "Bob", "Cid"}
    assert names(org, one("not_associated", {"type": str(course.public_id)})) == {"Dee", "Eve"}


def test_a_type_may_be_named_by_its_key_and_is_stored_by_id(org, course, students):
    spec = parse(org, one("associated", {"type": "course"}))
    assert spec["groups"][0]["conditions"][0]["value"] == {"type": str(course.public_id)}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("name", "eq", "Python", {"Ann", "Cid"}),
        ("name", "eq", "python", set()),  # "is" matches the value as stored
        ("name", "contains", "TTER", {"Bob", "Cid"}),
        ("page", "contains", "example.test/py", {"Ann", "Cid"}),
        ("level", "eq", "advanced", {"Ann", "Cid"}),
        ("level", "any_of", ["Beginner", "Advanced"], {"Ann", "Bob", "Cid"}),
        ("seats", "gt", 4, {"Ann", "Cid"}),
        ("seats", "lt", 12, {"Bob", "Cid"}),
        ("seats", "eq", "12", {"Ann", "Cid"}),
        ("price", "eq", 99.5, {"Ann", "Cid"}),
        ("price", "gt", 100, {"Bob", "Cid"}),
        ("discount", "lt", 50, {"Ann", "Cid"}),
        ("starts", "before", "2024-09-01", {"Bob", "Cid"}),
        ("starts", "after", "2024-03-01", {"Ann", "Cid"}),
        ("starts", "after", "2024-09-01", set()),
        ("online", "eq", True, {"Ann", "Cid"}),
        ("online", "eq", "no", {"Bob", "Cid"}),
    ],
)
def test_where_a_field_of_the_record_matches(org, course, students, field, op, value, expected):
    assert names(org, one("associated", where(course, field, op, value))) == expected


def test_not_associated_where_keeps_contacts_without_a_matching_record(org, course, students):
    filters = one("not_associated", where(course, "level", "eq", "Advanced"))
    assert names(org, filters) == {"Bob", "Dee", "Eve"}


def test_equality_reads_the_gin_index_shape(org, course, students):
    with CaptureQueriesContext(connection) as captured:
        q = compile_filters(
            one("associated", where(course, "level", "eq", "Advanced")),
            contact_field_catalog(org),
            tz="UTC",
            org=org,
        )
        list(Contact.objects.for_org(org).filter(q))
    sql = "\n".join(query["sql"] for query in captured.captured_queries)
    assert '"values" @> \'{"level": "Advanced"}\'' in sql


SHAPES = {
    "id list": (1000, 5000, 5000),
    "id array": (0, 5000, 5000),
    "exists": (0, 0, 5000),
    "exists, records by subquery": (0, 0, 0),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_query_shape_finds_the_same_contacts(org, course, students, monkeypatch, shape):
    """A few linked contacts go to the list as ids, more as an array, many as a correlated
    EXISTS (pipeline.contact_filters.common.linked_contacts), and the records a field or a
    scope picks as an id array or, past a cap, a subquery: the answer never depends on which."""
    list_cap, array_cap, record_cap = SHAPES[shape]
    monkeypatch.setattr(contact_filters, "ID_LIST_CAP", list_cap)
    monkeypatch.setattr(contact_filters, "ID_ARRAY_CAP", array_cap)
    monkeypatch.setattr(object_filters, "RECORD_ID_CAP", record_cap)
    rep = member(org, "team")
    ObjectAssociationFactory(
        org=org,
        record=ObjectRecordFactory(org=org, object_type=course, owner=rep.user),
        contact=ContactFactory(org=org, first_name="Own", owner=rep.user),
    )
    assert names(org, one("associated", {"type": "course"})) == {"Ann", "Bob", "Cid", "Own"}
    assert names(org, one("not_associated", {"type": "course"})) == {"Dee", "Eve"}
    advanced = one("associated", where(course, "level", "eq", "Advanced"))
    assert names(org, advanced) == {"Ann", "Cid"}
    assert names(org, one("not_associated", {"type": "course"}), policy=Policy(rep)) == {
        "Ann",
        "Bob",
        "Cid",
        "Dee",
        "Eve",
    }
    assert names(org, one("associated", {"type": "course"}), policy=Policy(rep)) == {"Own"}


def test_another_organizations_records_and_types_never_count(org, other_org, course, students):
    other_org.enabled_modules = ["custom_objects"]
    other_org.save()
    foreign = ObjectTypeFactory(org=other_org, key="course", name="Secret course")
    record = ObjectRecordFactory(org=other_org, object_type=foreign)
    ObjectAssociationFactory(org=other_org, record=record, contact=ContactFactory(org=other_org))
    text = error_of(org, one("associated", {"type": str(foreign.public_id)}))
    assert text == "Condition 1: 'Associated records' names an unknown record type."
    assert "Secret" not in text
    # By key, the org's own type answers, never the other org's.
    spec = parse(org, one("associated", {"type": "course"}))
    assert spec["groups"][0]["conditions"][0]["value"]["type"] == str(course.public_id)


# Validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "'Associated records' needs a value."),
        ("course", "needs an object like"),
        ({}, "names an unknown record type"),
        ({"type": "nope"}, "names an unknown record type"),
        ({"type": "00000000-0000-0000-0000-000000000000"}, "names an unknown record type"),
        ({"type": 7}, "names an unknown record type"),
        ({"type": "course", "with": 1}, "unknown option 'with'"),
        ({"type": "course", "where": "level"}, "needs an object like"),
        (
            {"type": "course", "where": {"field": "colour", "op": "eq", "value": 1}},
            "a field that Course does not have",
        ),
        (
            {"type": "course", "where": {"field": "level", "op": "gt", "value": 1}},
            "cannot use 'gt' for Level (allowed: is, is any of)",
        ),
        ({"type": "course", "where": {"field": "level", "op": "eq"}}, "needs a value for Level"),
        (
            {"type": "course", "where": {"field": "level", "op": "eq", "value": "Expert"}},
            "has no option 'Expert' for Level",
        ),
        (
            {"type": "course", "where": {"field": "level", "op": "any_of", "value": []}},
            "needs a list of values for Level",
        ),
        (
            {"type": "course", "where": {"field": "seats", "op": "gt", "value": "many"}},
            "needs a number for Seats",
        ),
        (
            {"type": "course", "where": {"field": "seats", "op": "gt", "value": "Infinity"}},
            "needs a number for Seats",
        ),
        (
            {"type": "course", "where": {"field": "starts", "op": "before", "value": "2024-13-01"}},
            "impossible date",
        ),
        (
            {"type": "course", "where": {"field": "starts", "op": "eq", "value": "2024-01-01"}},
            "cannot use 'eq' for Start date",
        ),
        (
            {"type": "course", "where": {"field": "online", "op": "eq", "value": "maybe"}},
            "needs yes or no for Online",
        ),
        (
            {"type": "course", "where": {"field": "name", "op": "eq", "value": ""}},
            "needs a value for Name",
        ),
        (
            {"type": "course", "where": {"field": "name", "op": "eq", "value": "x" * 201}},
            "at most 200 characters",
        ),
        (
            {"type": "course", "where": {"field": "name", "op": "eq", "value": {"a": 1}}},
            "needs a text value",
        ),
        (
            {"type": "course", "where": {"field": "name", "op": "eq", "value": 1, "x": 2}},
            "unknown option 'x'",
        ),
    ],
)
def test_bad_association_conditions_get_a_clear_message(org, course, value, message):
    text = error_of(org, one("associated", value))
    assert text.startswith("Condition 1: ")
    assert message in text


def test_unknown_operator(org, course):
    assert "allowed: is associated with, is not associated with" in error_of(
        org, one("linked", {"type": "course"})
    )


def test_module_off_refuses_the_condition(org, course, students):
    org.enabled_modules = ["orders"]
    org.save()
    assert error_of(org, one("associated", {"type": "course"})) == (
        "Condition 1: The Custom objects module is off for your organization, so contacts "
        "cannot be filtered by associated records."
    )


def test_a_role_without_the_custom_objects_right_is_refused(org, course):
    partner = member(org, "partner")  # contacts and pipeline, no custom objects
    text = error_of(org, one("associated", {"type": "course"}), policy=Policy(partner))
    assert "Your role cannot see custom object records" in text


# Scope ---------------------------------------------------------------------------------------


def test_only_records_inside_the_members_scope_count(org, course):
    rep = member(org, "team")  # custom objects: own records
    other = member(org, "team")
    admin = member(org, "admin")
    mine = ObjectRecordFactory(
        org=org, object_type=course, owner=rep.user, values={"level": "Advanced"}
    )
    theirs = ObjectRecordFactory(
        org=org, object_type=course, owner=other.user, values={"level": "Advanced"}
    )
    a = ContactFactory(org=org, first_name="WithMine", owner=rep.user)
    b = ContactFactory(org=org, first_name="WithTheirs", owner=rep.user)
    ObjectAssociationFactory(org=org, record=mine, contact=a)
    ObjectAssociationFactory(org=org, record=theirs, contact=b)
    advanced = one("associated", where(course, "level", "eq", "Advanced"))
    plain = one("associated", {"type": str(course.public_id)})
    absent = one("not_associated", {"type": str(course.public_id)})
    assert names(org, advanced, policy=Policy(rep)) == {"WithMine"}
    assert names(org, plain, policy=Policy(rep)) == {"WithMine"}
    assert "WithTheirs" in names(org, absent, policy=Policy(rep))
    assert names(org, advanced, policy=Policy(admin)) == {"WithMine", "WithTheirs"}
    # Through the list's own reads, the scope comes with the member's policy.
    listed = contacts_for_list(org=org, policy=Policy(rep), filters=parse(org, advanced))
    assert set(listed.values_list("first_name", flat=True)) == {"WithMine"}


def test_without_a_policy_the_users_membership_decides_the_scope(org, course):
    rep = member(org, "team")
    theirs = ObjectRecordFactory(org=org, object_type=course, owner=member(org, "team").user)
    ObjectAssociationFactory(
        org=org, record=theirs, contact=ContactFactory(org=org, first_name="X")
    )
    q = compile_filters(
        one("associated", {"type": "course"}),
        contact_field_catalog(org),
        tz="UTC",
        org=org,
        user=rep.user,
    )
    assert not Contact.objects.for_org(org).filter(q).exists()


# Descriptions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "field", "where_op", "value", "text"),
    [
        ("associated", None, None, None, "associated with a Course"),
        ("not_associated", None, None, None, "not associated with any Course"),
        (
            "associated",
            "level",
            "eq",
            "Advanced",
            "associated with a Course where Level is Advanced",
        ),
        (
            "associated",
            "level",
            "any_of",
            ["Beginner", "Advanced"],
            "associated with a Course where Level is any of Beginner, Advanced",
        ),
        (
            "associated",
            "seats",
            "gt",
            10,
            "associated with a Course where Seats is greater than 10",
        ),
        (
            "associated",
            "price",
            "lt",
            100,
            "associated with a Course where Price is less than 100 EUR",
        ),
        ("associated", "discount", "eq", 5, "associated with a Course where Discount is 5%"),
        (
            "associated",
            "starts",
            "before",
            "2024-01-01",
            "associated with a Course where Start date is before 2024-01-01",
        ),
        ("associated", "online", "eq", False, "associated with a Course where Online is no"),
        (
            "not_associated",
            "name",
            "contains",
            "py",
            "not associated with any Course where Name contains py",
        ),
    ],
)
def test_descriptions_read_naturally(org, course, op, field, where_op, value, text):
    value = where(course, field, where_op, value) if field else {"type": str(course.public_id)}
    spec = parse(org, one(op, value))
    assert describe_filters(spec, contact_field_catalog(org), org=org) == text


def test_descriptions_use_an_before_a_vowel_and_survive_a_deleted_type(org):
    enrollment = ObjectTypeFactory(org=org, key="enrollment", name="Enrollment")
    spec = parse(org, one("associated", {"type": "enrollment"}))
    catalog = contact_field_catalog(org)
    assert describe_filters(spec, catalog, org=org) == "associated with an Enrollment"
    assert describe_filters(spec, catalog) == "associated with a record of a custom object type"
    enrollment.delete()
    assert describe_filters(spec, catalog, org=org) == "associated with a record of a deleted type"
    # A saved filter naming a deleted type says so instead of matching anything.
    with pytest.raises(FilterError, match="unknown record type"):
        names(org, spec)


# The list, the builder and saved views ----------------------------------------------------------


def test_the_builder_lists_the_orgs_types_with_their_fields(org, other_org, course, client_as):
    ObjectTypeFactory(org=other_org, name="Foreign type")
    admin = member(org, "admin")
    schema = client_as(admin).get(reverse("contacts:contact_list")).context["builder_schema"]
    types = schema["related"]["objects"]["types"]
    assert [t["name"] for t in types] == ["Course"]
    level = next(f for f in types[0]["fields"] if f["key"] == "level")
    assert level == {
        "key": "level",
        "label": "Level",
        "kind": "list",
        "ops": [["eq", "is"], ["any_of", "is any of"]],
        "choices": ["Beginner", "Advanced"],
    }
    field = next(f for f in schema["fields"] if f["key"] == "objects")
    assert field["related"] is True and field["group"] == "Custom objects"


def test_a_partner_sees_no_association_condition_in_the_builder(org, course, client_as):
    partner = member(org, "partner")
    schema = client_as(partner).get(reverse("contacts:contact_list")).context["builder_schema"]
    assert "objects" not in {f["key"] for f in schema["fields"]}


def test_a_saved_view_keeps_the_condition_and_reapplies_it(org, course, students, client_as):
    admin = member(org, "admin")
    client = client_as(admin)
    filters = json.dumps(
        one(
            "associated",
            {"type": "course", "where": {"field": "level", "op": "eq", "value": "advanced"}},
        )
    )
    response = client.post(
        reverse("contacts:smart_view_create") + "?filters=" + filters,
        {"name": "Advanced students", "filters": filters},
    )
    assert response.status_code == 302
    view = SmartView.objects.for_org(org).get(name="Advanced students")
    assert view.filters["groups"][0]["conditions"][0]["value"] == where(
        course, "level", "eq", "Advanced"
    )
    page = client.get(reverse("contacts:contact_list"), {"view": str(view.public_id)})
    assert {c.first_name for c in page.context["page"].rows} == {"Ann", "Cid"}
    assert "associated with a Course where Level is Advanced" in page.content.decode()
    edit = client.get(reverse("contacts:smart_view_edit", args=[view.public_id]))
    assert "associated with a Course where Level is Advanced" in edit.content.decode()


NAUGHTY = [
    "<img src=x onerror=alert(1)>",
    "' OR 1=1 --",
    "\u0000",
    "ﷺ" * 500,
    {"$ne": None},
    [[[]]],
    -1e309,
    None,
]


@pytest.mark.parametrize("naughty", NAUGHTY)
@pytest.mark.parametrize(
    "build",
    [
        lambda v: {"type": v},
        lambda v: {"type": "course", "where": {"field": v, "op": "eq", "value": "x"}},
        lambda v: {"type": "course", "where": {"field": "level", "op": v, "value": "x"}},
        lambda v: {"type": "course", "where": {"field": "level", "op": "eq", "value": v}},
        lambda v: {"type": "course", "where": {"field": "seats", "op": "gt", "value": v}},
        lambda v: {"type": "course", "where": {"field": "starts", "op": "before", "value": v}},
        lambda v: {"type": "course", "where": {"field": "online", "op": "eq", "value": v}},
    ],
)
def test_naughty_values_get_a_message_never_a_crash(org, course, naughty, build):
    with pytest.raises(FilterError) as caught:
        parse(org, one("associated", build(naughty)))
    assert caught.value.condition == 1
    assert len(caught.value.message) < 400


def test_naughty_text_values_are_matched_literally(org, course, students):
    for text in ("%", "_", "\\", "' OR 1=1 --", "<b>"):
        assert names(org, one("associated", where(course, "name", "contains", text))) == set()
        assert names(org, one("associated", where(course, "name", "eq", text))) == set()


def test_naughty_values_in_the_list_are_escaped(org, course, client_as):
    admin = member(org, "admin")
    filters = one("associated", where(course, "level", "eq", "<script>alert(1)</script>"))
    response = client_as(admin).get(
        reverse("contacts:contact_list"), {"filters": json.dumps(filters)}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "has no option" in body
