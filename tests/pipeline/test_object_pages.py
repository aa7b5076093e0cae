"""Custom object pages: Settings → Custom objects (types, fields, primary field, deletes),
the Objects page, a type's record list (filters, sorts, keyset pages), CSV export, a record's
page and forms. Rights, record scope, the module switch and tenancy, and the project-wide
walks (tenancy, scope, naughty strings) over these URLs with the module on."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html import unescape

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.models import AuditEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import ObjectField, ObjectRecord, ObjectType
from pipeline.services import object_fields as fields_svc
from pipeline.services import object_types as types_svc
from pipeline.services.object_records import record_create
from tests.factories import (
    ObjectRecordFactory,
    ObjectTypeFactory,
    OrganizationFactory,
    member,
)

# The tenancy walk's organization with one row of every model (used through getfixturevalue).
from tests.test_tenancy_urls import tenant_a as _tenant_a  # noqa: F401

pytestmark = pytest.mark.django_db
MODULES = ["orders", "custom_objects"]


def _on(org):
    org.enabled_modules = MODULES
    org.save()
    return org


@pytest.fixture
def org(db):
    return _on(OrganizationFactory(name="Acme Pages", slug="acme-pages"))


@pytest.fixture
def admin(org):
    return member(org, "admin")


def _as(who):
    return {"actor": Actor.for_user(who.user), "policy": Policy(who)}


@pytest.fixture
def course(admin):
    course = types_svc.object_type_create(
        org=admin.org, data={"name": "Course", "icon": "calendar"}, **_as(admin)
    )
    for spec in (
        {"label": "Code", "field_type": "text"},
        {"label": "Seats", "field_type": "number"},
        {"label": "Starts", "field_type": "date"},
        {"label": "Level", "field_type": "list", "choices": ["Beginner", "Advanced"]},
        {"label": "Online", "field_type": "checkbox"},
        {"label": "Site", "field_type": "link"},
    ):
        fields_svc.object_field_create(object_type=course, data=spec, **_as(admin))
    return course


def _record(who, object_type, **values):
    return record_create(org=who.org, object_type=object_type, data={"values": values}, **_as(who))


def _html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _names(html: str) -> list[str]:
    """The record names of a list page, in order."""
    found = re.findall(
        r'<th scope="row"><a href="/pipeline/objects/records/[^"]+/">([^<]*)</a>', html
    )
    return [unescape(name) for name in found]


LIST = "pipeline:object_record_list"


def _list(client, object_type, **params):
    return client.get(reverse(LIST, args=[object_type.public_id]), params)


# The module switch, rights and tenancy ------------------------------------------------------


def _all_urls(course, record, field):
    return [
        reverse("pipeline:object_types"),
        reverse("pipeline:object_type_create"),
        reverse("pipeline:object_type_detail", args=[course.public_id]),
        reverse("pipeline:object_type_edit", args=[course.public_id]),
        reverse("pipeline:object_type_delete", args=[course.public_id]),
        reverse("pipeline:object_field_create", args=[course.public_id]),
        reverse("pipeline:object_field_edit", args=[field.public_id]),
        reverse("pipeline:object_index"),
        reverse(LIST, args=[course.public_id]),
        reverse("pipeline:object_record_create", args=[course.public_id]),
        reverse("pipeline:object_record_export", args=[course.public_id]),
        reverse("pipeline:object_record_detail", args=[record.public_id]),
        reverse("pipeline:object_record_edit", args=[record.public_id]),
    ]


def test_every_page_is_404_while_the_module_is_off(admin, course, client_as):
    record = _record(admin, course, name="Yoga")
    field = fields_svc.fields_of(course).last()
    admin.org.enabled_modules = ["orders"]
    admin.org.save()
    client = client_as(admin)

    for url in _all_urls(course, record, field):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Custom objects is off" in response.content.decode()
    for name, arg in (("object_record_delete", record), ("object_field_delete", field)):
        assert client.post(reverse(f"pipeline:{name}", args=[arg.public_id])).status_code == 404
    assert ObjectRecord.objects.for_org(admin.org).count() == 1


def test_another_organizations_member_gets_404_everywhere(admin, course, client_as):
    record = _record(admin, course, name="Yoga")
    field = fields_svc.fields_of(course).last()
    other = member(_on(OrganizationFactory()), "owner")
    client = client_as(other)

    lists = {
        reverse(n)
        for n in ("pipeline:object_types", "pipeline:object_type_create", "pipeline:object_index")
    }
    for url in _all_urls(course, record, field):
        if url not in lists:
            assert client.get(url).status_code == 404, url
    assert (
        client.post(reverse("pipeline:object_record_delete", args=[record.public_id])).status_code
        == 404
    )
    html = _html(client.get(reverse("pipeline:object_index")))
    assert "Courses" not in html and str(course.public_id) not in html


@pytest.mark.parametrize("role_key", ["executive", "director", "team", "viewer"])
def test_members_without_settings_edit_cannot_manage_types(org, course, client_as, role_key):
    client = client_as(member(org, role_key))
    field = fields_svc.fields_of(course).last()

    assert client.get(reverse("pipeline:object_type_create")).status_code == 403
    assert client.post(reverse("pipeline:object_type_create"), {"name": "Room"}).status_code == 403
    assert (
        client.post(
            reverse("pipeline:object_type_edit", args=[course.public_id]), {"name": "X"}
        ).status_code
        == 403
    )
    assert (
        client.post(reverse("pipeline:object_type_delete", args=[course.public_id])).status_code
        == 403
    )
    assert (
        client.post(reverse("pipeline:object_field_delete", args=[field.public_id])).status_code
        == 403
    )
    assert (
        client.post(
            reverse("pipeline:object_field_move", args=[field.public_id]), {"direction": "up"}
        ).status_code
        == 403
    )
    assert ObjectType.objects.for_org(org).count() == 1
    assert ObjectField.objects.for_org(org).filter(pk=field.pk).exists()


def test_a_member_without_the_module_right_gets_403(org, course, client_as):
    client = client_as(member(org, "support"))  # no custom_objects access
    assert client.get(reverse("pipeline:object_index")).status_code == 403
    assert client.get(reverse(LIST, args=[course.public_id])).status_code == 403


def test_viewers_read_but_do_not_get_create_or_export(org, course, admin, client_as):
    _record(admin, course, name="Yoga")
    client = client_as(member(org, "viewer"))
    html = _html(_list(client, course))
    assert "Yoga" in html
    assert "Export CSV" not in html and "New course" not in html
    assert (
        client.get(reverse("pipeline:object_record_create", args=[course.public_id])).status_code
        == 403
    )
    assert (
        client.get(reverse("pipeline:object_record_export", args=[course.public_id])).status_code
        == 403
    )


# Record scope -------------------------------------------------------------------------------


def test_an_own_scope_rep_sees_only_their_records_and_gets_404_for_others(
    org, course, admin, client_as
):
    rep = member(org, "team")
    theirs = _record(admin, course, name="Admin's course")
    mine = _record(rep, course, name="Rep's course")
    client = client_as(rep)

    html = _html(_list(client, course))
    assert _names(html) == ["Rep's course"]
    index = _html(client.get(reverse("pipeline:object_index")))
    assert re.search(r"Courses</span>\s*<span class=\"count\">1<", index)
    for name in ("object_record_detail", "object_record_edit"):
        assert client.get(reverse(f"pipeline:{name}", args=[theirs.public_id])).status_code == 404
        assert client.get(reverse(f"pipeline:{name}", args=[mine.public_id])).status_code == 200
    response = client.post(
        reverse("pipeline:object_record_edit", args=[theirs.public_id]), {"v__name": "Taken"}
    )
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.display_name == "Admin's course"


# Settings → Custom objects ------------------------------------------------------------------


def test_an_admin_creates_a_type_adds_fields_and_manages_them(admin, client_as):
    client = client_as(admin)
    html = _html(client.get(reverse("pipeline:object_types")))
    assert "No object types yet" in html and "Settings edit right" in html

    response = client.post(
        reverse("pipeline:object_type_create"),
        {"name": "Property", "plural": "", "key": "", "icon": "home", "primary_label": "Address"},
    )
    prop = ObjectType.objects.for_org(admin.org).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("pipeline:object_type_detail", args=[prop.public_id])
    assert (prop.key, prop.plural, prop.primary_field_key) == ("property", "Properties", "address")

    add = reverse("pipeline:object_field_create", args=[prop.public_id])
    client.post(add, {"label": "Rooms", "field_type": "number", "required": "on"})
    client.post(add, {"label": "Kind", "field_type": "list", "choices": "House\nFlat"})
    response = client.post(add, {"label": "Bad", "field_type": "text", "regex": "(a)\\1"})
    assert "backreference" in _html(response)
    rooms = ObjectField.objects.for_org(admin.org).get(key="rooms")
    kind = ObjectField.objects.for_org(admin.org).get(key="kind")
    assert rooms.required and kind.choices == ["House", "Flat"]

    client.post(reverse("pipeline:object_field_move", args=[kind.public_id]), {"direction": "up"})
    assert [f.key for f in fields_svc.fields_of(prop)] == ["address", "kind", "rooms"]
    client.post(reverse("pipeline:object_field_make_primary", args=[kind.public_id]))
    prop.refresh_from_db()
    assert prop.primary_field_key == "kind"

    detail = _html(client.get(reverse("pipeline:object_type_detail", args=[prop.public_id])))
    assert "data-confirm=" in detail and "Delete the field “Rooms”" in detail
    client.post(reverse("pipeline:object_field_delete", args=[rooms.public_id]))
    assert not ObjectField.objects.for_org(admin.org).filter(key="rooms").exists()
    # The primary field has no delete button, and a forged POST is refused with a message.
    client.post(reverse("pipeline:object_field_delete", args=[kind.public_id]))
    assert ObjectField.objects.for_org(admin.org).filter(key="kind").exists()

    response = client.post(
        reverse("pipeline:object_field_edit", args=[kind.public_id]),
        {
            "label": "Kind of home",
            "key": "other",
            "field_type": "number",
            "choices": "House\nFlat\nLoft",
        },
    )
    assert response.status_code == 302
    kind.refresh_from_db()
    assert (kind.key, kind.field_type, kind.label) == ("kind", "list", "Kind of home")
    assert kind.choices == ["House", "Flat", "Loft"]


def test_the_type_form_reports_the_limit_and_bad_keys_in_place(admin, client_as):
    client = client_as(admin)
    response = client.post(
        reverse("pipeline:object_type_create"),
        {"name": "Deal", "key": "deals", "icon": "tag", "primary_label": "Name"},
    )
    assert "is a reserved word" in _html(response)
    for n in range(types_svc.MAX_TYPES):
        ObjectTypeFactory(org=admin.org, key=f"t_{n}", name=f"T {n}")
    response = client.post(
        reverse("pipeline:object_type_create"),
        {"name": "One more", "icon": "tag", "primary_label": "Name"},
    )
    assert "at most 50 object types" in _html(response)
    assert "the most it can have (50)" in _html(client.get(reverse("pipeline:object_types")))


def test_deleting_a_type_with_records_asks_for_the_box(admin, course, client_as):
    _record(admin, course, name="Yoga")
    client = client_as(admin)
    url = reverse("pipeline:object_type_delete", args=[course.public_id])

    page = _html(client.get(url))
    assert "has <strong>1</strong> record" in page
    response = client.post(url, {})
    assert "Tick the box" in _html(response)
    assert ObjectType.objects.for_org(admin.org).exists()

    response = client.post(url, {"delete_records": "on"})
    assert response.status_code == 302
    assert not ObjectType.objects.for_org(admin.org).exists()
    assert not ObjectRecord.objects.for_org(admin.org).exists()


# Records: forms, page, delete ---------------------------------------------------------------


def test_the_create_form_has_an_input_per_kind(admin, course, client_as):
    html = _html(
        client_as(admin).get(reverse("pipeline:object_record_create", args=[course.public_id]))
    )
    assert re.search(r'<input type="number" name="v__seats"', html)
    assert re.search(r'<input type="date" name="v__starts"', html)
    assert re.search(r'<input type="checkbox" name="v__online"', html)
    assert re.search(r'<input type="url" name="v__site"', html)
    assert '<select name="v__level"' in html and '<option value="Advanced">' in html
    assert re.search(r'<input type="text" name="v__name"[^>]*required', html)


def test_a_bad_value_is_reported_on_its_field_and_the_others_stay_typed(admin, course, client_as):
    client = client_as(admin)
    response = client.post(
        reverse("pipeline:object_record_create", args=[course.public_id]),
        {
            "v__name": "Yoga basics",
            "v__code": "YB-1",
            "v__seats": "many",
            "v__site": "javascript:alert(1)",
            "v__level": "Beginner",
            "owner": str(admin.user.public_id),
        },
    )
    html = _html(response)
    assert 'id="id_v__seats_error"' in html and 'id="id_v__site_error"' in html
    assert 'value="Yoga basics"' in html and 'value="YB-1"' in html
    assert '<option value="Beginner" selected>' in html
    assert not ObjectRecord.objects.for_org(admin.org).exists()


def test_a_record_is_added_shown_edited_and_deleted(admin, course, client_as):
    client = client_as(admin)
    response = client.post(
        reverse("pipeline:object_record_create", args=[course.public_id]),
        {
            "v__name": "Yoga basics",
            "v__seats": "12",
            "v__starts": "2026-03-01",
            "v__level": "Beginner",
            "v__online": "on",
            "v__site": "acme.com/yoga",
            "owner": str(admin.user.public_id),
            "external_id": "lms-1",
        },
    )
    record = ObjectRecord.objects.for_org(admin.org).get()
    assert response["Location"] == reverse("pipeline:object_record_detail", args=[record.public_id])
    assert record.values == {
        "name": "Yoga basics",
        "seats": 12,
        "starts": "2026-03-01",
        "level": "Beginner",
        "online": True,
        "site": "https://acme.com/yoga",
    }

    html = _html(client.get(response["Location"]))
    assert "<h1>Yoga basics</h1>" in html
    assert 'href="https://acme.com/yoga"' in html and ">Yes<" in html and "lms-1" in html
    assert "record_links" not in html  # the associations section is not switched on yet

    # A second record with the same external id: the error sits on the field.
    response = client.post(
        reverse("pipeline:object_record_create", args=[course.public_id]),
        {"v__name": "Pilates", "external_id": "lms-1", "owner": str(admin.user.public_id)},
    )
    assert 'id="id_external_id_error"' in _html(response)
    assert "already has this external id" in response.content.decode()

    edit = reverse("pipeline:object_record_edit", args=[record.public_id])
    form = _html(client.get(edit))
    assert 'value="Yoga basics"' in form and 'value="2026-03-01"' in form
    client.post(
        edit,
        {
            "v__name": "Yoga for all",
            "v__seats": "",
            "owner": str(admin.user.public_id),
            "external_id": "lms-1",
        },
    )
    record.refresh_from_db()
    assert record.display_name == "Yoga for all" and "seats" not in record.values

    detail = reverse("pipeline:object_record_detail", args=[record.public_id])
    assert 'data-confirm="Delete this course' in _html(client.get(detail))
    response = client.post(reverse("pipeline:object_record_delete", args=[record.public_id]))
    assert response["Location"] == reverse(LIST, args=[course.public_id])
    assert not ObjectRecord.objects.for_org(admin.org).exists()


def test_the_owner_picker_offers_only_owners_within_scope(org, course, client_as):
    from tests.factories import TeamFactory

    create = reverse("pipeline:object_record_create", args=[course.public_id])
    team = TeamFactory(org=org)
    rep, colleague = member(org, "team"), member(org, "team")
    director, mate = member(org, "director", team=team), member(org, "team", team=team)

    def owner_options(who):
        html = _html(client_as(who).get(create))
        return re.search(r'<select name="owner".*?</select>', html, re.S).group(0)

    mine = owner_options(rep)
    assert str(rep.user.public_id) in mine and str(colleague.user.public_id) not in mine
    assert "No one" not in mine
    theirs = owner_options(director)
    assert str(mate.user.public_id) in theirs and str(colleague.user.public_id) not in theirs

    response = client_as(rep).post(
        create, {"v__name": "Yoga", "owner": str(colleague.user.public_id)}
    )
    assert 'id="id_owner_error"' in _html(response)
    assert not ObjectRecord.objects.for_org(org).exists()


def test_a_stored_script_link_is_shown_as_text_never_as_a_link(admin, course, client_as):
    record = ObjectRecordFactory(
        org=admin.org,
        object_type=course,
        owner=admin.user,
        values={"name": "X", "site": "javascript:alert(1)"},
    )
    html = _html(
        client_as(admin).get(reverse("pipeline:object_record_detail", args=[record.public_id]))
    )
    assert 'href="javascript' not in html
    assert "javascript:alert(1)" in html


@pytest.mark.parametrize(
    "text",
    ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{ 7*7 }}", "' OR 1=1 --"],
)
def test_naughty_values_are_escaped_on_every_record_page(admin, course, client_as, text):
    record = _record(admin, course, name=text, code=text)
    client = client_as(admin)
    for url in (
        reverse(LIST, args=[course.public_id]),
        reverse("pipeline:object_record_detail", args=[record.public_id]),
        reverse("pipeline:object_record_edit", args=[record.public_id]),
        reverse(LIST, args=[course.public_id]) + "?" + f"q={text}&f_code={text}",
    ):
        html = _html(client.get(url))
        if any(ch in text for ch in "<>\"'"):
            assert text not in html, url
        else:
            assert text in html, url  # template syntax in a value is text, never run


# The list: filters, sorts, pages ------------------------------------------------------------


@pytest.fixture
def catalog(admin, course):
    rows = [
        (
            "Yoga",
            {
                "code": "YO-1",
                "seats": 10,
                "starts": "2026-01-10",
                "level": "Beginner",
                "online": True,
            },
        ),
        ("Pilates", {"code": "PI-1", "seats": 25, "starts": "2026-03-05", "level": "Advanced"}),
        ("aikido", {"code": "AI-7", "seats": 5, "starts": "2025-12-01", "online": False}),
        ("Tai chi", {"code": "yo-2"}),
    ]
    return {name: _record(admin, course, name=name, **values) for name, values in rows}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["aikido", "Pilates", "Tai chi", "Yoga"]),
        ({"q": "a"}, ["aikido", "Pilates", "Tai chi", "Yoga"]),
        ({"q": "yo"}, ["Yoga"]),
        ({"f_code": "yo"}, ["Tai chi", "Yoga"]),
        ({"f_code": "YO-1", "f_code_match": "equals"}, ["Yoga"]),
        ({"f_code": "yo-1", "f_code_match": "equals"}, []),
        ({"f_seats_min": "10"}, ["Pilates", "Yoga"]),
        ({"f_seats_min": "6", "f_seats_max": "24"}, ["Yoga"]),
        ({"f_starts_from": "2026-01-01"}, ["Pilates", "Yoga"]),
        ({"f_starts_to": "2026-01-10"}, ["aikido", "Yoga"]),
        ({"f_level": "Advanced"}, ["Pilates"]),
        ({"f_online": "yes"}, ["Yoga"]),
        ({"f_online": "no"}, ["aikido", "Pilates", "Tai chi"]),
        ({"owner": "none"}, []),
        ({"owner": "me"}, ["aikido", "Pilates", "Tai chi", "Yoga"]),
    ],
)
def test_list_filters(admin, course, catalog, client_as, params, expected):
    assert _names(_html(_list(client_as(admin), course, **params))) == expected


def test_a_filter_that_does_not_parse_is_an_error_and_the_others_apply(
    admin, course, catalog, client_as
):
    html = _html(_list(client_as(admin), course, f_seats_min="lots", f_level="Advanced"))
    assert "Enter a number." in html and "Some filters could not be read" in html
    assert _names(html) == ["Pilates"]
    html = _html(_list(client_as(admin), course, f_level="<b>Expert</b>"))
    assert "<b>Expert</b>" not in html


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["aikido", "Pilates", "Tai chi", "Yoga"]),
        ("-name", ["Yoga", "Tai chi", "Pilates", "aikido"]),
        ("f_seats", ["aikido", "Yoga", "Pilates", "Tai chi"]),
        ("-f_seats", ["Pilates", "Yoga", "aikido", "Tai chi"]),  # no value: last both ways
        ("f_starts", ["aikido", "Yoga", "Pilates", "Tai chi"]),
        ("f_code", ["aikido", "Pilates", "Yoga", "Tai chi"]),
        # Yes before no; records without a value last, newest first as the order is reversed.
        ("-f_online", ["Yoga", "aikido", "Tai chi", "Pilates"]),
        ("bogus", ["aikido", "Pilates", "Tai chi", "Yoga"]),
    ],
)
def test_list_sorts(admin, course, catalog, client_as, sort, expected):
    assert _names(_html(_list(client_as(admin), course, sort=sort))) == expected


def test_sort_by_last_update(admin, course, catalog, client_as):
    ObjectRecord.objects.for_org(admin.org).filter(pk=catalog["Pilates"].pk).update(
        updated_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )
    assert _names(_html(_list(client_as(admin), course, sort="updated")))[0] == "Pilates"
    assert _names(_html(_list(client_as(admin), course, sort="-updated")))[-1] == "Pilates"


def test_keyset_pages_walk_every_record_once(admin, course, client_as):
    ObjectRecord.objects.for_org(admin.org).bulk_create(
        [
            ObjectRecord(
                org=admin.org,
                object_type=course,
                owner=admin.user,
                display_name=f"Course {n:03}",
                values={"name": f"Course {n:03}", "seats": n % 7},
            )
            for n in range(120)
        ]
    )
    client = client_as(admin)
    for sort in ("name", "-f_seats"):
        seen, params = [], {"sort": sort}
        for _ in range(5):
            html = _html(_list(client, course, **params))
            seen += _names(html)
            nxt = re.search(r'rel="next" href="[^"]*cursor=([^"&]+)"', html)
            if not nxt:
                break
            params = {"sort": sort, "cursor": nxt.group(1).replace("%3A", ":")}
        assert len(seen) == 120 and len(set(seen)) == 120, sort
    html = _html(_list(client, course))
    assert "120 courses" in html


def test_the_list_answers_htmx_with_its_results_only(admin, course, catalog, client_as):
    html = _html(
        client_as(admin, htmx=True).get(
            reverse(LIST, args=[course.public_id]), {"f_level": "Advanced"}
        )
    )
    assert html.lstrip().startswith('<div id="object-results"')
    assert _names(html) == ["Pilates"]


def test_an_empty_type_shows_how_to_start(admin, course, client_as):
    html = _html(_list(client_as(admin), course))
    assert "No courses yet" in html and "New course" in html


# Export -------------------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8").lstrip("\ufeff")
    return list(csv.reader(io.StringIO(text)))


def test_export_streams_the_filtered_records_with_formulas_neutralized(
    admin, course, catalog, client_as
):
    _record(admin, course, name='=HYPERLINK("http://evil","x")', code="+SUM(A1)", seats=-3)
    url = reverse("pipeline:object_record_export", args=[course.public_id])

    rows = _csv(client_as(admin).get(url, {"sort": "name"}))
    header = rows[0]
    assert (
        header[:3] == ["ID", "Name", "Name"]
        and "Seats" in header
        and header[-3:] == ["External id", "Created", "Updated"]
    )
    by_name = {row[1]: row for row in rows[1:]}
    assert '\'=HYPERLINK("http://evil","x")' in by_name
    evil = by_name['\'=HYPERLINK("http://evil","x")']
    assert evil[header.index("Code")] == "'+SUM(A1)"
    assert evil[header.index("Seats")] == "-3"
    assert by_name["Yoga"][header.index("Online")] == "true"
    assert by_name["Yoga"][header.index("Owner (email)")] == admin.user.email

    filtered = _csv(client_as(admin).get(url, {"f_level": "Advanced"}))
    assert [row[1] for row in filtered[1:]] == ["Pilates"]
    assert AuditEvent.objects.for_org(admin.org).filter(verb="object_records.exported").count() == 2


def test_export_holds_only_records_in_scope_and_needs_the_right(org, course, admin, client_as):
    from tests.factories import custom_role

    _record(admin, course, name="Admin's")
    permissions = {
        "custom_objects": {
            "access": True,
            "view": True,
            "create": True,
            "export": True,
            "scope": "own",
        }
    }
    exporter = member(org, "team")
    exporter.role = custom_role(org, permissions=permissions)
    exporter.save()
    _record(exporter, course, name="Mine")

    rows = _csv(
        client_as(exporter).get(reverse("pipeline:object_record_export", args=[course.public_id]))
    )
    assert [row[1] for row in rows[1:]] == ["Mine"]
    assert (
        client_as(member(org, "team"))
        .get(reverse("pipeline:object_record_export", args=[course.public_id]))
        .status_code
        == 403
    )


# The project-wide walks over these URLs, with the module on -----------------------------------

OBJECT_PREFIXES = ("pipeline/objects/", "pipeline/settings/objects/")


def _object_routes():
    from tests.test_tenancy_urls import tenant_routes

    return [r for r in tenant_routes() if r.template.startswith(OBJECT_PREFIXES)]


def test_the_walks_see_every_object_url():
    names = {route.name for route in _object_routes()}
    assert len(names) == 17
    assert {
        "pipeline:object_types",
        "pipeline:object_record_detail",
        "pipeline:object_field_move",
    } <= names


def test_tenancy_walk_over_object_urls_with_the_module_on(request):
    from django.test import Client

    from tests.test_tenancy_urls import logged_in, logged_out_failures, org_b_failures

    tenant = request.getfixturevalue("_tenant_a")
    _on(tenant.org)
    org_b = _on(OrganizationFactory(name="Org B objects", slug="org-b-objects"))
    routes = _object_routes()

    failures, report = org_b_failures(routes, tenant, logged_in(member(org_b, "owner")))
    assert not failures, "\n".join(failures)
    assert all("statuses [404]" in line for line in report), report
    assert not logged_out_failures(routes, tenant, Client())


@pytest.mark.parametrize("role_kind", ["team", "own-everything"])
def test_scope_walk_over_object_urls_with_the_module_on(db, role_kind):
    from tests.factories import MembershipFactory
    from tests.test_scope_urls import (
        build_world,
        list_failures,
        own_everything_role,
        scope_failures,
    )
    from tests.test_tenancy_urls import logged_in

    org = _on(OrganizationFactory(name="Scope objects", slug="scope-objects"))
    member(org, "owner")
    x = member(org, "admin")
    world = build_world(org, x.user)
    who = (
        member(org, "team")
        if role_kind == "team"
        else MembershipFactory(org=org, role=own_everything_role(org))
    )
    client = logged_in(who)
    routes = _object_routes()

    failures, report = scope_failures(routes, world, client, role_kind)
    assert not failures, "\n".join(failures)
    detail = next(line for line in report if "(pipeline:object_record_detail)" in line)
    assert int(re.search(r": (\d+) checked", detail).group(1)) > 0, detail
    assert not list_failures(routes, world, client, role_kind)


def test_naughty_strings_walk_over_object_pages_with_the_module_on(request):
    """tests/test_naughty_strings.py's walk over these pages (their module is off in the
    project-wide walk's organization): every payload into every list parameter and every
    form field, as the Owner, with a type that has a field of every kind."""
    from tests.test_naughty_strings import (
        ROUTES,
        Walk,
        assert_clean,
        discover,
        owner_client,
        page_urls,
    )

    tenant = request.getfixturevalue("_tenant_a")
    _on(tenant.org)
    object_type = next(obj for obj in tenant.objects if isinstance(obj, ObjectType))
    for n, (kind, label) in enumerate(ObjectField.FieldType.choices):
        ObjectField.objects.for_org(tenant.org).create(
            org=tenant.org,
            object_type=object_type,
            key=f"{kind}_field",
            label=label,
            field_type=kind,
            choices=["Alpha", "Beta"] if kind == "list" else [],
            currency="EUR" if kind == "currency" else "",
            position=n,
        )
    values = {
        "text_field": "Probe",
        "number_field": 3,
        "checkbox_field": True,
        "list_field": "Beta",
    }
    ObjectRecordFactory(org=tenant.org, object_type=object_type, values=values)

    def area(path):
        return path.startswith(("/pipeline/objects/", "/pipeline/settings/objects/"))

    client = owner_client(tenant)
    discovery = discover(client, page_urls(ROUTES, tenant, area))
    targets = [t for t in [*discovery.get_targets, *discovery.post_targets] if area(t.path)]
    assert {t.path.split("/")[-2] for t in discovery.post_targets if area(t.path)} >= {
        "new",
        "edit",
    }
    walk = Walk(client, discovery.pages)
    walk.fuzz(targets, htmx_variant=True)
    assert_clean(walk, discovery, "custom objects", targets)


def test_another_organizations_member_cannot_be_made_owner(admin, course, client_as):
    outsider = member(_on(OrganizationFactory()), "owner")
    response = client_as(admin).post(
        reverse("pipeline:object_record_create", args=[course.public_id]),
        {"v__name": "Yoga", "owner": str(outsider.user.public_id)},
    )
    assert 'id="id_owner_error"' in _html(response)
    assert not ObjectRecord.objects.for_org(admin.org).exists()
    with pytest.raises(ValidationError) as refused:
        record_create(
            org=admin.org,
            object_type=course,
            data={"values": {"name": "Yoga"}, "owner": outsider.user},
            **_as(admin),
        )
    assert "active member" in str(refused.value)
