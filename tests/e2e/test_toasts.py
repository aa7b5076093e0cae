"""Toasts leave when what they say stops being true (static/js/app.js): "View saved" goes
when the filter changes, "Importing …" goes when the import's result replaces its progress.
The toast is hovered first, which holds its ordinary timeout, so only the change of state
can remove it."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from contacts.importing.models import ImportJob
from tests.factories import ContactFactory

pytestmark = pytest.mark.e2e


def apply_condition(page, field, op, value, *, select=True):
    builder = page.locator(".filter-builder")
    if builder.get_attribute("open") is None:
        builder.locator("summary").click()
    builder.locator("[data-builder-add]").click()
    condition = builder.locator("[data-condition]").last
    condition.locator("[data-builder-field]").select_option(field)
    condition.locator("[data-builder-op]").select_option(op)
    if select:
        condition.locator("[data-builder-value]").select_option(value)
    else:
        condition.locator("[data-builder-value]").fill(value)
    builder.locator("[data-builder-apply]").click()


def test_view_saved_goes_when_the_filter_changes(page, login_as, org, owner):
    ContactFactory(org=org, first_name="Lara", last_name="Lead", lifecycle_stage="lead")
    ContactFactory(org=org, first_name="Quinn", last_name="Ready", lifecycle_stage="qualified")
    login_as(owner.user)
    page.goto("/contacts/")
    apply_condition(page, "lifecycle_stage", "eq", "lead")
    expect(page.locator("#contact-table tbody tr")).to_have_count(1)
    page.locator(".save-view summary").click()
    page.fill("#save-view-name", "Leads")
    page.locator(".save-view-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/contacts/\?view="))

    toast = page.locator("#toasts [data-toast]", has_text="View “Leads” saved.")
    expect(toast).to_be_visible()
    toast.hover()  # holds the timeout: only a change of state may remove it now
    page.wait_for_timeout(1500)
    expect(toast).to_be_visible()  # the list's own requests (the count) change nothing

    saved_url = page.url
    page.evaluate("window.notReloaded = true")
    apply_condition(page, "lifecycle_stage", "eq", "qualified")  # a new filter, swapped in
    expect(page).not_to_have_url(saved_url)
    expect(toast).to_have_count(0, timeout=3000)  # well before the 6 s timeout
    assert page.evaluate("window.notReloaded") is True


def write_csv(path):
    path.write_text("First Name,Last Name,Email\nAda,Lovelace,ada@example.com\n", encoding="utf-8")


def test_importing_toast_is_replaced_by_the_result(page, login_as, owner, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    people = tmp_path / "people.csv"
    write_csv(people)
    login_as(owner.user)

    page.goto("/contacts/import/")
    page.locator('input[type="file"]').set_input_files(str(people))
    page.get_by_role("button", name="Upload and map columns").click()
    page.wait_for_url(re.compile(r"/contacts/import/[0-9a-f-]+/map/$"))
    page.get_by_role("button", name="Continue to preview").click()
    page.wait_for_url(re.compile(r"/preview/$"))
    # No worker runs here: the job waits in the queue until the test finishes it below.
    page.get_by_role("button", name="Start import").click()
    page.wait_for_url(re.compile(r"/contacts/import/[0-9a-f-]+/$"))

    toast = page.locator("#toasts [data-toast]", has_text="Importing people.csv")
    expect(toast).to_be_visible()
    toast.hover()
    page.wait_for_timeout(2500)  # two polls that bring no change keep it
    expect(toast).to_be_visible()

    now = timezone.now()
    ImportJob.objects.filter(org=owner.org).update(
        status=ImportJob.Status.DONE, started_at=now, finished_at=now
    )
    expect(page.locator(".import-progress h2")).to_have_text("Result", timeout=5000)
    expect(toast).to_have_count(0, timeout=2000)
