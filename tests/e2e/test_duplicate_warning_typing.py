"""The new-contact form warns while the member types: once a name and a phone number that
match an existing contact are entered, "Looks like Robert Smith (same phone; ...)" appears
with a link to him, before anything is saved. Saving anyway still creates the new contact."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from contacts.models import Contact
from tests.factories import ContactFactory

pytestmark = pytest.mark.e2e


def test_typing_a_known_phone_warns_and_save_anyway_still_creates(page, login_as, org, owner):
    robert = ContactFactory(
        org=org,
        first_name="Robert",
        last_name="Smith",
        email="",
        phone="+14155550123",
        owner=owner.user,
    )
    robert_url = reverse("contacts:contact_detail", kwargs={"public_id": robert.public_id})
    login_as(owner.user)
    page.goto(reverse("contacts:contact_create"))
    expect(page.get_by_role("heading", name="New contact")).to_be_visible()

    live_check = page.locator("#duplicate-check")
    page.get_by_label("First name", exact=True).fill("Bob")
    page.get_by_label("Last name", exact=True).fill("Smith")
    page.get_by_label("Phone", exact=True).fill("+1 415 555 0123")
    page.get_by_label("Phone", exact=True).press("Tab")  # leaving the field is the "change"

    warning = live_check.locator("[data-duplicate-warning]")
    expect(warning).to_be_visible()
    match = warning.locator(f'[data-duplicate-match="{robert.public_id}"]')
    expect(match).to_contain_text(re.compile(r"Looks like Robert Smith \(same phone"))
    expect(match.get_by_role("link", name="Robert Smith")).to_have_attribute("href", robert_url)
    # The check while typing only informs: no "Save anyway" there, and nothing saved yet.
    expect(live_check.get_by_role("button", name="Save anyway")).to_have_count(0)
    assert Contact.objects.for_org(org).count() == 1

    page.get_by_role("button", name="Add contact").click()
    # The save stops once with the same match named and a "Save anyway" button.
    stopped = page.locator("form.record-form > [data-duplicate-warning]")
    expect(stopped).to_contain_text("Looks like Robert Smith")
    assert Contact.objects.for_org(org).count() == 1
    stopped.get_by_role("button", name="Save anyway").click()

    page.wait_for_url(re.compile(r"/contacts/[0-9a-f-]{36}/$"))
    created = Contact.objects.for_org(org).exclude(pk=robert.pk).get()
    assert page.url.endswith(
        reverse("contacts:contact_detail", kwargs={"public_id": created.public_id})
    )
    assert (created.first_name, created.last_name, created.phone) == (
        "Bob",
        "Smith",
        "+14155550123",
    )
    robert.refresh_from_db()
    assert (robert.first_name, robert.is_archived) == ("Robert", False)
