"""Custom objects in a real browser (issue 15): an admin creates a type in Settings → Custom
objects, adds a record, and associates it with a contact from the contact's page, where it is
then listed under its type. The Linked records section loads by HTMX and every step after the
page load happens in place."""

import pytest
from playwright.sync_api import expect

from pipeline.models import ObjectAssociation, ObjectRecord, ObjectType
from tests.factories import ContactFactory, member

pytestmark = pytest.mark.e2e


@pytest.fixture
def admin(org):
    org.enabled_modules = ["custom_objects"]
    org.save()
    return member(org, "admin")


def test_admin_creates_a_type_adds_a_record_and_links_it_to_a_contact(page, login_as, org, admin):
    ada = ContactFactory(org=org, first_name="Ada", last_name="Lovelace", owner=admin.user)
    complaints: list[str] = []  # CSP refusals and script errors, from every page on the way
    page.on(
        "console",
        lambda m: complaints.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda error: complaints.append(str(error)))
    login_as(admin.user)

    # Settings → Custom objects: a new type, "Course".
    page.goto("/pipeline/settings/objects/")
    page.get_by_role("link", name="New object type").first.click()
    page.locator("form.record-form input[name=name]").fill("Course")
    page.locator("form.record-form input[name=plural]").fill("Courses")
    page.get_by_role("button", name="Create type").click()
    expect(page.get_by_role("heading", name="Course")).to_be_visible()
    course = ObjectType.objects.for_org(org).get(name="Course")

    # A record of it.
    page.get_by_role("link", name="0 records").click()
    page.get_by_role("link", name="New course").first.click()
    page.locator(f"form.record-form input[name=v__{course.primary_field_key}]").fill(
        "Intro to Python"
    )
    page.get_by_role("button", name="Add course").click()
    expect(page.get_by_role("heading", name="Intro to Python")).to_be_visible()
    assert complaints == []
    record = ObjectRecord.objects.for_org(org).get(object_type=course)
    assert record.display_name == "Intro to Python"

    # The contact's page: the section loads, the record is found by type and name.
    page.goto(f"/contacts/{ada.public_id}/")
    page.evaluate("window.notReloaded = true")
    section = page.locator("#record-objects")
    expect(section.get_by_text("No records linked to Ada Lovelace")).to_be_visible()
    section.get_by_text("Associate a record").click()
    section.get_by_label("Type").select_option(label="Course")
    section.get_by_label("Find a record").fill("intro")
    option = section.locator(f"#objects-record option[value='{record.public_id}']")
    expect(option).to_be_attached()
    expect(section.locator("#objects-record option").first).to_have_text("Pick one of 1 match")
    section.locator("#objects-record").select_option(str(record.public_id))
    section.locator("#objects-label").fill("student")
    section.get_by_role("button", name="Associate", exact=True).click()

    # Listed under its type, in place.
    group = page.locator("#record-objects h3", has_text="Courses")
    expect(group).to_be_visible()
    expect(page.locator("#record-objects .links-row", has_text="Intro to Python")).to_contain_text(
        "student"
    )
    assert page.evaluate("window.notReloaded") is True
    link = ObjectAssociation.objects.for_org(org).get()
    assert (link.record, link.contact, link.label) == (record, ada, "student")

    # The record's name leads to its page.
    page.locator("#record-objects .links-row a", has_text="Intro to Python").click()
    expect(page.get_by_role("heading", name="Intro to Python")).to_be_visible()
    assert complaints == []
