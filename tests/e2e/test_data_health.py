"""Data Health in a real browser: the pair list → compare → keep the other value of one field
→ merge (after the confirmation that names both) → the primary's page → undo."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from contacts.dedup.models import DuplicatePair, MergeRecord, ordered_pair
from contacts.models import Contact
from tests.factories import ContactFactory

pytestmark = pytest.mark.e2e


@pytest.fixture
def janes(org, owner):
    older = ContactFactory(
        org=org,
        first_name="Jane",
        last_name="Doe",
        email="jane@old.example",
        job_title="Analyst",
        owner=owner.user,
    )
    newer = ContactFactory(
        org=org,
        first_name="Jane",
        last_name="Doe",
        email="jane.doe@new.example",
        job_title="Director",
        owner=owner.user,
    )
    # The newer record was edited last, so its values are the defaults.
    Contact.objects.filter(pk=newer.pk).update(updated_at=timezone.now() + dt.timedelta(hours=1))
    low, high = ordered_pair(older.pk, newer.pk)
    DuplicatePair.objects.for_org(org).create(
        org=org,
        contact_a_id=low,
        contact_b_id=high,
        score=0.96,
        band="probable",
        reasons=["same name", "same phone"],
    )
    return older, newer


def test_compare_override_merge_and_undo(page, login_as, org, owner, janes):
    older, newer = janes
    login_as(owner.user)
    page.goto("/contacts/")
    page.get_by_role("link", name="Data Health").click()

    row = page.locator("tr[data-pair]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("96%")
    expect(row).to_contain_text("same phone")
    row.get_by_role("link", name="Compare").click()
    page.wait_for_url(re.compile(r"/contacts/merge/"))

    # The newer "Director" is preselected; keep the primary's "Analyst" instead.
    job_title = page.locator('tr[data-field="job_title"]')
    expect(job_title.locator('input[value="secondary"]')).to_be_checked()
    job_title.get_by_text("Analyst").click()
    expect(job_title.locator('input[value="primary"]')).to_be_checked()

    page.get_by_role("button", name=re.compile(r"^Merge into")).click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Merge “Jane Doe” into “Jane Doe”?")
    dialog.get_by_role("button", name="Merge", exact=True).click()

    page.wait_for_url(f"**/contacts/{older.public_id}/")
    expect(page.locator("#toasts")).to_contain_text("Merged “Jane Doe” into “Jane Doe”")
    expect(page.locator("#record-header")).to_contain_text("Analyst")
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.job_title == "Analyst"
    assert older.email == "jane.doe@new.example"  # the default, untouched: newer value
    assert newer.is_archived and newer.merged_into_id == older.pk

    banner = page.locator("#merge-banner")
    expect(banner).to_contain_text("was merged into this contact")
    banner.get_by_role("button", name="Undo merge").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Undo the merge of “Jane Doe” into “Jane Doe”?")
    dialog.get_by_role("button", name="Undo merge").click()

    expect(page.locator("#toasts")).to_contain_text("Merge undone")
    expect(page.locator("#merge-banner .merge-banner")).to_have_count(0)
    record = MergeRecord.objects.for_org(org).get()
    assert record.state == MergeRecord.State.UNDONE
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.job_title, older.email) == ("Analyst", "jane@old.example")
    assert (newer.job_title, newer.is_archived, newer.merged_into_id) == ("Director", False, None)


def test_undo_refused_shows_the_reasons_in_place(page, login_as, org, owner, janes):
    older, newer = janes
    login_as(owner.user)
    page.goto(f"/contacts/merge/{older.public_id}/{newer.public_id}/")
    page.get_by_role("button", name=re.compile(r"^Merge into")).click()
    page.get_by_role("alertdialog").get_by_role("button", name="Merge", exact=True).click()
    page.wait_for_url(f"**/contacts/{older.public_id}/")
    # Someone edits the merged contact afterwards.
    Contact.objects.filter(pk=older.pk).update(job_title="CEO")

    page.locator("#merge-banner").get_by_role("button", name="Undo merge").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Undo merge").click()

    alert = page.locator("#merge-banner [role=alert]")
    expect(alert).to_contain_text("This merge can no longer be undone:")
    expect(alert.locator("li")).to_contain_text(
        ["Job title of Jane Doe was edited after the merge."]
    )
    newer.refresh_from_db()
    assert newer.is_archived


def test_bulk_merge_from_the_list_names_both_then_opens_compare(page, login_as, org, owner, janes):
    older, newer = janes
    login_as(owner.user)
    page.goto("/contacts/")
    page.check(f'input[name="ids"][value="{older.public_id}"]')
    page.check(f'input[name="ids"][value="{newer.public_id}"]')
    page.locator("#bulk-bar").get_by_role("button", name="Merge two…").click()

    dialog = page.locator("#bulk-dialog [role=alertdialog]")
    expect(dialog).to_contain_text("Merge “Jane Doe” and “Jane Doe”?")
    dialog.get_by_role("link", name=re.compile(r"^Compare")).click()

    page.wait_for_url(f"**/contacts/merge/{older.public_id}/{newer.public_id}/")
    expect(page.get_by_role("heading", name="Compare and merge")).to_be_visible()
    assert not MergeRecord.objects.for_org(org).exists()
