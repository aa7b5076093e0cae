"""Links between custom object records and contacts or deals (issue 15, "Associations").

The rules: a pair of record and contact (or deal) is linked at most once, also when two
requests race; a link has one target; changing links needs Custom objects edit on the record
in scope and sight of the contact or deal; sections list only records in scope; another
organization's anything is a 404; the module must be on; labels are bounded and escaped;
every change is audited and emitted as an event."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connections, transaction
from django.urls import reverse

from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import ObjectAssociation
from pipeline.services import object_links as services
from pipeline.views.object_links import record_links_context
from tests.factories import (
    ContactFactory,
    DealFactory,
    ObjectAssociationFactory,
    ObjectRecordFactory,
    ObjectTypeFactory,
    OrganizationFactory,
    member,
)

pytestmark = pytest.mark.django_db

IMG = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def org(org):
    org.enabled_modules = ["custom_objects"]
    org.save()
    return org


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def rep(org):
    """A Team member: Contacts, Pipeline and Custom objects at "own" scope."""
    return member(org, "team")


@pytest.fixture
def course(org):
    return ObjectTypeFactory(org=org, key="course", name="Course", plural="Courses", icon="file")


@pytest.fixture
def record(org, course, admin):
    return ObjectRecordFactory(
        org=org, object_type=course, display_name="Intro to Python", owner=admin.user
    )


@pytest.fixture
def ada(org, admin):
    return ContactFactory(org=org, first_name="Ada", last_name="Lovelace", owner=admin.user)


@pytest.fixture
def deal(org, admin):
    return DealFactory(org=org, title="Campus licence", owner=admin.user)


def as_member(membership) -> dict:
    return {"actor": Actor.for_user(membership.user), "policy": Policy(membership)}


def link(org, who, record, **target):
    return services.associate(org=org, record=record, **as_member(who), **target)


def url(name, **kwargs):
    return reverse(f"pipeline:{name}", kwargs=kwargs)


def section_url(contact):
    return url("contact_objects", contact_public_id=contact.public_id)


def associate_url(contact):
    return url("contact_object_associate", contact_public_id=contact.public_id)


# Uniqueness and shape --------------------------------------------------------------------


def test_associating_stores_the_pair_with_its_type_trimmed_label_and_date(org, admin, record, ada):
    created = link(
        org, admin, record, contact=ada, label="  student ", associated_on=dt.date(2025, 9, 1)
    )

    row = ObjectAssociation.objects.for_org(org).get()
    assert row.pk == created.pk
    assert (row.record_id, row.contact_id, row.deal_id) == (record.pk, ada.pk, None)
    assert row.object_type_id == record.object_type_id
    assert row.label == "student"
    assert row.associated_on == dt.date(2025, 9, 1)
    assert row.created_by == admin.user


def test_the_same_record_and_contact_twice_is_a_clear_error_and_one_row(org, admin, record, ada):
    link(org, admin, record, contact=ada)

    with pytest.raises(ValidationError) as refused:
        link(org, admin, record, contact=ada, label="again")

    assert refused.value.message_dict == {
        "contact": ["“Intro to Python” is already associated with this contact."]
    }
    assert ObjectAssociation.objects.for_org(org).count() == 1


def test_the_same_record_and_deal_twice_is_a_clear_error(org, admin, record, deal):
    link(org, admin, record, deal=deal)

    with pytest.raises(services.AlreadyAssociated):
        link(org, admin, record, deal=deal)

    assert ObjectAssociation.objects.for_org(org).count() == 1


def test_a_refused_duplicate_leaves_the_callers_transaction_usable(org, admin, record, ada):
    link(org, admin, record, contact=ada)
    with transaction.atomic():
        with pytest.raises(services.AlreadyAssociated):
            link(org, admin, record, contact=ada)
        other = ContactFactory(org=org, owner=admin.user)
        link(org, admin, record, contact=other)  # the transaction goes on

    assert ObjectAssociation.objects.for_org(org).count() == 2


def test_one_record_links_to_many_contacts_and_deals_and_one_contact_to_many_records(
    org, admin, record, ada, deal, course
):
    other_record = ObjectRecordFactory(org=org, object_type=course, owner=admin.user)
    link(org, admin, record, contact=ada)
    link(org, admin, record, deal=deal)
    link(org, admin, other_record, contact=ada)

    assert ObjectAssociation.objects.for_org(org).count() == 3


@pytest.mark.django_db(transaction=True)
def test_two_requests_linking_the_same_pair_at_once_make_one_row():
    """The second insert waits on the first one's uncommitted row, then fails on the unique
    constraint: it must come back as "already associated", never as an IntegrityError."""
    org = OrganizationFactory(enabled_modules=["custom_objects"])
    admin = member(org, "admin")
    record = ObjectRecordFactory(org=org, owner=admin.user)
    contact = ContactFactory(org=org, owner=admin.user)
    first_inserted = threading.Event()
    outcomes: list = []

    def first():
        try:
            with transaction.atomic():
                link(org, admin, record, contact=contact)
                first_inserted.set()
                time.sleep(0.5)  # the second request now waits on this row
            outcomes.append("linked")
        except Exception as exc:  # reported below
            outcomes.append(exc)
        finally:
            first_inserted.set()
            connections.close_all()

    def second():
        try:
            first_inserted.wait(timeout=10)
            link(org, admin, record, contact=contact)
            outcomes.append("linked")
        except Exception as exc:  # reported below
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert outcomes.count("linked") == 1, outcomes
    errors = [o for o in outcomes if o != "linked"]
    assert len(errors) == 1 and isinstance(errors[0], services.AlreadyAssociated), errors
    assert ObjectAssociation.objects.for_org(org).count() == 1


def test_a_link_has_exactly_one_target(org, admin, record, ada, deal):
    with pytest.raises(ValidationError, match="one contact or one deal"):
        link(org, admin, record, contact=ada, deal=deal)
    with pytest.raises(ValidationError, match="one contact or one deal"):
        link(org, admin, record)

    assert not ObjectAssociation.objects.for_org(org).exists()


def test_the_database_refuses_a_link_with_two_targets_or_none(org, record, ada, deal):
    for target in ({"contact": ada, "deal": deal}, {}):
        with pytest.raises(IntegrityError), transaction.atomic():
            ObjectAssociation.objects.for_org(org).create(
                org=org, record=record, object_type=record.object_type, **target
            )


# Labels and dates -------------------------------------------------------------------------


def test_a_label_of_80_characters_is_kept_and_81_is_refused_with_the_limit(
    org, admin, record, ada, deal
):
    link(org, admin, record, contact=ada, label="x" * 80)

    with pytest.raises(ValidationError) as refused:
        link(org, admin, record, deal=deal, label="y" * 81)

    assert refused.value.message_dict["label"] == ["Keep the label to 80 characters (it has 81)."]
    assert ObjectAssociation.objects.for_org(org).count() == 1


@pytest.mark.parametrize("label", ["nul\x00byte", 42])
def test_a_label_with_a_nul_or_not_text_is_refused(org, admin, record, ada, label):
    with pytest.raises(ValidationError):
        link(org, admin, record, contact=ada, label=label)

    assert not ObjectAssociation.objects.for_org(org).exists()


def test_a_date_that_is_not_a_date_is_refused(org, admin, record, ada):
    with pytest.raises(ValidationError):
        link(org, admin, record, contact=ada, associated_on="2025-02-30")


@pytest.mark.parametrize(
    "label", [IMG, "<script>alert(1)</script>", "{{ 7*7 }}", "\u202egnp.exe", "🧪 ☃ 👩🏽‍💻"]
)
def test_naughty_labels_are_stored_as_typed_and_shown_escaped(
    client_as, org, admin, record, ada, label
):
    link(org, admin, record, contact=ada, label=label)

    html = client_as(admin, htmx=True).get(section_url(ada)).content.decode()

    assert ObjectAssociation.objects.for_org(org).get().label == label.strip()
    if set(label) & set("<>\"'"):
        assert label not in html
    else:
        assert label in html  # shown as typed: template syntax is text, not code


def test_the_form_refuses_a_long_label_in_place_and_links_nothing(
    client_as, org, admin, record, ada
):
    response = client_as(admin, htmx=True).post(
        associate_url(ada), {"record": str(record.public_id), "label": "z" * 81}
    )

    assert response.status_code == 200
    assert "at most 80 characters" in response.content.decode()
    assert not ObjectAssociation.objects.for_org(org).exists()


# Rights and scope -------------------------------------------------------------------------


def test_an_own_scope_rep_may_not_link_someone_elses_record(client_as, org, rep, record):
    mine = ContactFactory(org=org, owner=rep.user)

    with pytest.raises(PermissionDenied):
        link(org, rep, record, contact=mine)

    response = client_as(rep, htmx=True).post(
        associate_url(mine), {"record": str(record.public_id)}
    )
    assert response.status_code == 200
    assert "Choose a record from the list." in response.content.decode()
    assert not ObjectAssociation.objects.for_org(org).exists()


def test_an_own_scope_rep_may_not_link_someone_elses_contact(client_as, org, rep, course, ada):
    mine = ObjectRecordFactory(org=org, object_type=course, owner=rep.user)

    with pytest.raises(PermissionDenied):
        link(org, rep, mine, contact=ada)

    page = url("object_record_link_contact", objectrecord_public_id=mine.public_id)
    response = client_as(rep, htmx=True).post(page, {"contact": str(ada.public_id)})
    assert "Choose a contact from the list." in response.content.decode()
    assert (
        client_as(rep, htmx=True)
        .post(associate_url(ada), {"record": str(mine.public_id)})
        .status_code
        == 404
    )
    assert not ObjectAssociation.objects.for_org(org).exists()


def test_an_own_scope_rep_links_their_own_record_and_contact(client_as, org, rep, course):
    mine = ObjectRecordFactory(org=org, object_type=course, owner=rep.user, display_name="Mine")
    contact = ContactFactory(org=org, owner=rep.user)

    response = client_as(rep, htmx=True).post(
        associate_url(contact), {"record": str(mine.public_id)}
    )

    assert response.status_code == 200
    assert ObjectAssociation.objects.for_org(org).get().record == mine


def test_a_viewer_sees_the_section_but_may_not_link_or_unlink(client_as, org, admin, record, ada):
    existing = link(org, admin, record, contact=ada)
    viewer = member(org, "viewer")
    client = client_as(viewer, htmx=True)

    html = client.get(section_url(ada)).content.decode()
    assert "Intro to Python" in html
    assert "Associate a record" not in html and "Disassociate" not in html
    assert client.post(associate_url(ada), {"record": str(record.public_id)}).status_code == 403
    remove = url("object_link_remove", objectassociation_public_id=existing.public_id)
    assert client.post(remove).status_code == 403
    assert ObjectAssociation.objects.for_org(org).count() == 1


def test_a_member_without_custom_objects_gets_403_for_the_section(client_as, org, ada):
    partner = member(org, "partner")  # contacts and pipeline, no custom objects

    assert client_as(partner).get(section_url(ada)).status_code == 403


def test_sections_list_only_the_records_in_the_members_scope(client_as, org, admin, rep, course):
    contact = ContactFactory(org=org, owner=rep.user)
    mine = ObjectRecordFactory(
        org=org, object_type=course, owner=rep.user, display_name="Rep's course"
    )
    theirs = ObjectRecordFactory(
        org=org, object_type=course, owner=admin.user, display_name="Admin's course"
    )
    link(org, admin, mine, contact=contact)
    link(org, admin, theirs, contact=contact)

    rep_html = client_as(rep, htmx=True).get(section_url(contact)).content.decode()
    admin_html = client_as(admin, htmx=True).get(section_url(contact)).content.decode()

    assert "Rep&#x27;s course" in rep_html and "Admin&#x27;s course" not in rep_html
    assert str(theirs.public_id) not in rep_html
    assert "Rep&#x27;s course" in admin_html and "Admin&#x27;s course" in admin_html


def test_the_record_picker_offers_only_records_in_scope_of_the_chosen_type(
    client_as, org, admin, rep, course
):
    house = ObjectTypeFactory(org=org, name="House", plural="Houses")
    mine = ObjectRecordFactory(org=org, object_type=course, owner=rep.user, display_name="Python A")
    ObjectRecordFactory(org=org, object_type=course, owner=admin.user, display_name="Python B")
    ObjectRecordFactory(org=org, object_type=house, owner=rep.user, display_name="Python House")
    picker = url("object_record_picker")

    html = (
        client_as(rep)
        .get(picker, {"object_type": str(course.public_id), "q": "pyth"})
        .content.decode()
    )

    assert str(mine.public_id) in html
    assert "Python B" not in html and "Python House" not in html
    assert "Pick one of 1 match" in html


def test_the_record_picker_answers_odd_input_without_failing(client_as, org, admin, record):
    picker = url("object_record_picker")
    client = client_as(admin)
    other_type = ObjectTypeFactory(org=OrganizationFactory())

    for params in (
        {"q": "nul\x00byte"},
        {"q": IMG},
        {"object_type": "not-a-uuid", "q": "Intro"},
        {"object_type": str(other_type.public_id)},
        {"q": "x" * 5000},
    ):
        response = client.get(picker, params)
        assert response.status_code in (200, 400), params  # a NUL is refused at the door
        assert IMG not in response.content.decode()
    assert (
        "Intro to Python"
        not in client.get(picker, {"object_type": str(other_type.public_id)}).content.decode()
    )


def test_the_deal_picker_offers_only_deals_in_scope(client_as, org, admin, rep):
    mine = DealFactory(org=org, title="Rep deal", owner=rep.user)
    DealFactory(org=org, title="Admin deal", owner=admin.user)

    html = client_as(rep).get(url("object_deal_picker"), {"q": "deal"}).content.decode()

    assert str(mine.public_id) in html and "Admin deal" not in html


# Tenancy ---------------------------------------------------------------------------------


def test_another_organizations_contact_deal_record_and_link_are_404(
    client_as, org, admin, record, ada, deal
):
    other = OrganizationFactory(enabled_modules=["custom_objects"])
    owner_b = member(other, "owner")
    existing = link(org, admin, record, contact=ada)
    client = client_as(owner_b)

    for path in (
        section_url(ada),
        url("deal_objects", deal_public_id=deal.public_id),
    ):
        assert client.get(path).status_code == 404, path
    for path in (
        associate_url(ada),
        url("deal_object_associate", deal_public_id=deal.public_id),
        url("object_record_link_contact", objectrecord_public_id=record.public_id),
        url("object_record_link_deal", objectrecord_public_id=record.public_id),
        url("object_link_edit", objectassociation_public_id=existing.public_id),
        url("object_link_remove", objectassociation_public_id=existing.public_id),
    ):
        assert client.post(path, {"label": "x"}).status_code == 404, path
    assert ObjectAssociation.objects.for_org(org).get().label == ""


def test_another_organizations_record_in_a_form_is_not_found(client_as, org, admin, ada):
    other = OrganizationFactory(enabled_modules=["custom_objects"])
    foreign = ObjectRecordFactory(org=other, display_name="Foreign course")

    response = client_as(admin, htmx=True).post(
        associate_url(ada), {"record": str(foreign.public_id)}
    )

    assert "Choose a record from the list." in response.content.decode()
    assert "Foreign course" not in response.content.decode()
    assert not ObjectAssociation.objects.for_org(org).exists()
    assert not ObjectAssociation.objects.for_org(other).exists()


def test_the_service_refuses_rows_of_another_organization(org, admin, ada):
    foreign = ObjectRecordFactory(org=OrganizationFactory(enabled_modules=["custom_objects"]))

    with pytest.raises(ValidationError, match="not in this organization"):
        link(org, admin, foreign, contact=ada)


# The module ------------------------------------------------------------------------------


def test_with_the_module_off_nothing_links_and_the_pages_say_so(client_as, org, admin, record, ada):
    org.enabled_modules = []
    org.save()
    client = client_as(admin)

    with pytest.raises(PermissionDenied):
        link(org, admin, record, contact=ada)
    assert client.get(section_url(ada)).status_code == 404
    assert client.post(associate_url(ada), {"record": str(record.public_id)}).status_code == 404
    assert client.get(url("object_record_picker")).status_code == 404
    page = client.get(reverse("contacts:contact_detail", kwargs={"public_id": ada.public_id}))
    assert page.status_code == 200
    assert section_url(ada) not in page.content.decode()
    assert not ObjectAssociation.objects.for_org(org).exists()


def test_the_contact_and_deal_pages_load_the_section_when_the_module_is_on(
    client_as, org, admin, ada, deal
):
    client = client_as(admin)

    contact_page = client.get(
        reverse("contacts:contact_detail", kwargs={"public_id": ada.public_id})
    )
    deal_page = client.get(reverse("pipeline:deal_detail", kwargs={"public_id": deal.public_id}))

    assert f'hx-get="{section_url(ada)}"' in contact_page.content.decode()
    deal_section = url("deal_objects", deal_public_id=deal.public_id)
    assert f'hx-get="{deal_section}"' in deal_page.content.decode()


def test_the_pages_leave_the_section_out_for_a_member_without_custom_objects(client_as, org, ada):
    partner = member(org, "partner")
    mine = ContactFactory(org=org, owner=partner.user)

    page = client_as(partner).get(
        reverse("contacts:contact_detail", kwargs={"public_id": mine.public_id})
    )

    assert page.status_code == 200
    assert section_url(mine) not in page.content.decode()


# The sections -----------------------------------------------------------------------------


def test_the_contact_section_groups_records_by_type_with_label_and_date(
    client_as, org, admin, course, ada
):
    house = ObjectTypeFactory(org=org, name="Property", plural="Properties", position=5)
    python = ObjectRecordFactory(
        org=org, object_type=course, owner=admin.user, display_name="Python"
    )
    algebra = ObjectRecordFactory(
        org=org, object_type=course, owner=admin.user, display_name="Algebra"
    )
    flat = ObjectRecordFactory(org=org, object_type=house, owner=admin.user, display_name="Flat 4B")
    link(org, admin, python, contact=ada, label="student", associated_on=dt.date(2025, 9, 1))
    link(org, admin, flat, contact=ada, label="tenant")
    link(org, admin, algebra, contact=ada)

    html = client_as(admin, htmx=True).get(section_url(ada)).content.decode()

    assert (
        html.index("Courses")
        < html.index("Algebra")
        < html.index("Python")
        < html.index("Properties")
        < html.index("Flat 4B")
    )
    assert "student" in html and "tenant" in html
    assert 'datetime="2025-09-01"' in html
    assert "Associate a record" in html


def test_associating_from_the_contact_section_refreshes_it_in_place(
    client_as, org, admin, record, ada
):
    response = client_as(admin, htmx=True).post(
        associate_url(ada),
        {"record": str(record.public_id), "label": "student", "associated_on": "2025-09-01"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="record-objects"' in html and "Intro to Python" in html
    row = ObjectAssociation.objects.for_org(org).get()
    assert (row.contact, row.label, row.associated_on) == (ada, "student", dt.date(2025, 9, 1))


def test_associating_without_javascript_goes_back_to_the_contact(
    client_as, org, admin, record, ada
):
    response = client_as(admin).post(associate_url(ada), {"record": str(record.public_id)})

    assert response.status_code == 302
    assert response["Location"] == reverse(
        "contacts:contact_detail", kwargs={"public_id": ada.public_id}
    )


def test_associating_twice_from_the_form_says_so_in_place(client_as, org, admin, record, ada):
    link(org, admin, record, contact=ada)

    response = client_as(admin, htmx=True).post(
        associate_url(ada), {"record": str(record.public_id)}
    )

    assert response.status_code == 200
    assert "is already associated with this contact" in response.content.decode()
    assert ObjectAssociation.objects.for_org(org).count() == 1


def test_the_section_page_without_javascript_finds_records_by_type_and_name(
    client_as, org, admin, course, ada
):
    ObjectRecordFactory(org=org, object_type=course, owner=admin.user, display_name="Python basics")
    ObjectRecordFactory(org=org, object_type=course, owner=admin.user, display_name="Cooking")

    response = client_as(admin).get(
        section_url(ada), {"object_type": str(course.public_id), "q": "pyth"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and "Python basics" in html and "Cooking" not in html
    assert '<details class="add-task links-associate" open>' in html


def test_the_deal_section_links_a_record_to_the_deal(client_as, org, admin, record, deal):
    client = client_as(admin, htmx=True)
    response = client.post(
        url("deal_object_associate", deal_public_id=deal.public_id),
        {"record": str(record.public_id)},
    )

    assert response.status_code == 200
    assert ObjectAssociation.objects.for_org(org).get().deal == deal
    html = client.get(url("deal_objects", deal_public_id=deal.public_id)).content.decode()
    assert "Intro to Python" in html and "Courses" in html


def test_the_disassociate_button_asks_first(client_as, org, admin, record, ada):
    existing = link(org, admin, record, contact=ada)

    html = client_as(admin, htmx=True).get(section_url(ada)).content.decode()

    remove = url("object_link_remove", objectassociation_public_id=existing.public_id)
    form = html[html.index(f'action="{remove}"') :].split(">", 1)[0]
    assert 'data-confirm="Disassociate “Intro to Python”?' in form


# Change and remove ----------------------------------------------------------------------------


def test_disassociating_removes_only_the_link_with_audit_and_event(
    client_as, org, admin, record, ada
):
    existing = link(org, admin, record, contact=ada)

    response = client_as(admin, htmx=True).post(
        url("object_link_remove", objectassociation_public_id=existing.public_id)
    )

    assert response.status_code == 200
    assert not ObjectAssociation.objects.for_org(org).exists()
    record.refresh_from_db()
    ada.refresh_from_db()
    event = OutboxEvent.objects.for_org(org).get(event_type="object_record.disassociated")
    assert event.payload["record"] == str(record.public_id)
    assert event.payload["target_type"] == "contact"
    assert event.payload["target"] == str(ada.public_id)
    assert AuditEvent.objects.for_org(org).filter(verb="object_record.disassociated").count() == 1


def test_disassociating_a_link_already_gone_is_a_404(client_as, org, admin, record, ada):
    existing = link(org, admin, record, contact=ada)
    path = url("object_link_remove", objectassociation_public_id=existing.public_id)
    client = client_as(admin)

    assert client.post(path).status_code == 302
    assert client.post(path).status_code == 404


def test_a_rep_may_not_remove_a_link_of_someone_elses_record(client_as, org, admin, rep, record):
    contact = ContactFactory(org=org, owner=rep.user)
    existing = link(org, admin, record, contact=contact)

    response = client_as(rep).post(
        url("object_link_remove", objectassociation_public_id=existing.public_id)
    )

    assert response.status_code == 404
    assert ObjectAssociation.objects.for_org(org).exists()
    with pytest.raises(PermissionDenied):
        services.disassociate(org=org, link=existing, **as_member(rep))


def test_changing_a_links_label_and_date(client_as, org, admin, record, ada):
    existing = link(org, admin, record, contact=ada, label="student")
    path = url("object_link_edit", objectassociation_public_id=existing.public_id)

    response = client_as(admin, htmx=True).post(
        path, {"label": "guardian", "associated_on": "2026-01-02"}
    )

    assert response.status_code == 200
    existing.refresh_from_db()
    assert (existing.label, existing.associated_on) == ("guardian", dt.date(2026, 1, 2))
    event = OutboxEvent.objects.for_org(org).get(event_type="object_record.association_changed")
    assert event.payload["label"] == "guardian"
    audit = AuditEvent.objects.for_org(org).get(verb="object_record.association_changed")
    assert audit.changes["label"] == ["student", "guardian"]


def test_a_bad_label_change_is_refused_in_place_and_changes_nothing(
    client_as, org, admin, record, ada
):
    existing = link(org, admin, record, contact=ada, label="student")
    path = url("object_link_edit", objectassociation_public_id=existing.public_id)

    response = client_as(admin, htmx=True).post(
        path, {"label": "q" * 81, "associated_on": "2025-02-30"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "at most 80 characters" in html and "Enter a valid date." in html
    existing.refresh_from_db()
    assert existing.label == "student"


# Events and audit -------------------------------------------------------------------------


def test_associating_audits_and_emits_an_event_with_record_type_target_and_label(
    org, admin, record, deal
):
    created = link(org, admin, record, deal=deal, label="site")

    event = OutboxEvent.objects.for_org(org).get(event_type="object_record.associated")
    assert event.payload == {
        "association": str(created.public_id),
        "record": str(record.public_id),
        "object_type": str(record.object_type.public_id),
        "object_type_key": "course",
        "target_type": "deal",
        "target": str(deal.public_id),
        "label": "site",
        "associated_on": None,
    }
    audit = AuditEvent.objects.for_org(org).get(verb="object_record.associated")
    assert audit.object_id == str(record.public_id)
    assert audit.changes["deal"] == str(deal.public_id)
    assert audit.actor_user == admin.user


def test_a_refused_duplicate_writes_no_audit_or_event(org, admin, record, ada):
    link(org, admin, record, contact=ada)
    with pytest.raises(services.AlreadyAssociated):
        link(org, admin, record, contact=ada)

    assert (
        OutboxEvent.objects.for_org(org).filter(event_type="object_record.associated").count() == 1
    )
    assert AuditEvent.objects.for_org(org).filter(verb="object_record.associated").count() == 1


# The record's page ---------------------------------------------------------------------------


def test_record_links_context_lists_the_visible_contacts_and_deals(
    rf, org, admin, rep, course, deal
):
    mine = ObjectRecordFactory(org=org, object_type=course, owner=rep.user)
    visible = ContactFactory(org=org, owner=rep.user, first_name="Vis", last_name="Ible")
    hidden = ContactFactory(org=org, owner=admin.user)
    link(org, admin, mine, contact=visible)
    link(org, admin, mine, contact=hidden)
    link(org, admin, mine, deal=deal)  # the admin's deal: out of the rep's scope
    request = rf.get("/")
    request.org, request.membership, request.user = org, rep, rep.user

    context = record_links_context(request, mine)

    assert [link.contact for link in context["record_contact_links"]] == [visible]
    assert context["record_hidden_contacts"] == 1
    assert context["record_deal_links"] == [] and context["record_hidden_deals"] == 1
    assert context["record_can_link"] is True
    assert context["link_contact_form"] is not None and context["link_deal_form"] is not None


def test_linking_a_contact_and_a_deal_from_the_record_page(
    client_as, org, admin, record, ada, deal
):
    client = client_as(admin, htmx=True)

    contact_response = client.post(
        url("object_record_link_contact", objectrecord_public_id=record.public_id),
        {"contact": str(ada.public_id), "label": "student"},
    )
    deal_response = client.post(
        url("object_record_link_deal", objectrecord_public_id=record.public_id),
        {"deal": str(deal.public_id)},
    )

    assert contact_response.status_code == deal_response.status_code == 200
    html = deal_response.content.decode()
    assert 'id="record-links"' in html and "Ada Lovelace" in html and "Campus licence" in html
    assert ObjectAssociation.objects.for_org(org).count() == 2


def test_linking_the_same_contact_twice_from_the_record_page_says_so(
    client_as, org, admin, record, ada
):
    link(org, admin, record, contact=ada)

    response = client_as(admin, htmx=True).post(
        url("object_record_link_contact", objectrecord_public_id=record.public_id),
        {"contact": str(ada.public_id)},
    )

    assert "is already associated with this contact" in response.content.decode()
    assert ObjectAssociation.objects.for_org(org).count() == 1


def test_the_association_factory_makes_a_valid_link(org):
    row = ObjectAssociationFactory(org=org)

    assert row.contact.org_id == row.record.org_id == org.id


def test_changes_made_on_the_record_page_refresh_the_record_part(
    client_as, org, admin, record, ada
):
    existing = link(org, admin, record, contact=ada, label="student")
    client = client_as(admin, htmx=True)
    edit = url("object_link_edit", objectassociation_public_id=existing.public_id)
    remove = url("object_link_remove", objectassociation_public_id=existing.public_id)

    edited = client.post(edit, {"label": "guardian", "where": "record"}).content.decode()
    removed = client.post(remove, {"where": "record"}).content.decode()

    assert 'id="record-links"' in edited and "guardian" in edited
    assert 'id="record-links"' in removed and "Not associated with any contact" in removed
    assert not ObjectAssociation.objects.for_org(org).exists()


def test_linking_from_the_record_page_without_javascript_goes_back_to_the_record(
    client_as, org, admin, record, ada
):
    response = client_as(admin).post(
        url("object_record_link_contact", objectrecord_public_id=record.public_id),
        {"contact": str(ada.public_id)},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse(
        "pipeline:object_record_detail", kwargs={"objectrecord_public_id": record.public_id}
    )
    assert ObjectAssociation.objects.for_org(org).get().contact == ada
