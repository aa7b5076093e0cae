"""An inline edit (an HTMX swap on the details tab) shows on the timeline tab with before and
after, and a second edit right after joins the same entry."""

import pytest
from playwright.sync_api import expect

from contacts.models import Activity
from tests.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.e2e


@pytest.fixture
def ada(org, owner):
    return ContactFactory(
        org=org,
        first_name="Ada",
        last_name="Lovelace",
        job_title="VP Engineering",
        department="R&D",
        company=CompanyFactory(org=org, name="Acme Rockets"),
        owner=owner.user,
    )


def edit_inline(page, key: str, value: str) -> None:
    page.click(f"#field-{key} .inline-edit")
    page.fill(f"input[name={key}]", value)
    page.click(f"#field-{key} button[type=submit]")
    expect(page.locator(f"#field-{key} .field-value")).to_have_text(value)


def test_inline_edits_show_on_the_timeline_as_one_entry(page, login_as, owner, ada):
    login_as(owner.user)
    page.goto(f"/contacts/{ada.public_id}/")
    page.evaluate("window.notReloaded = true")

    edit_inline(page, "job_title", "Chief Technology Officer")
    edit_inline(page, "department", "Platform")
    page.click(".tabs a:has-text('Timeline')")

    entry = page.locator(".timeline-item[data-type=updated]")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(owner.user.display_name)
    job_title = entry.locator(".field-changes li", has_text="Job title")
    expect(job_title.locator(".change-before")).to_have_text("VP Engineering")
    expect(job_title.locator(".change-after")).to_have_text("Chief Technology Officer")
    department = entry.locator(".field-changes li", has_text="Department")
    expect(department.locator(".change-before")).to_have_text("R&D")
    expect(department.locator(".change-after")).to_have_text("Platform")
    assert page.evaluate("window.notReloaded") is True
    assert ada.activities.filter(type=Activity.Type.UPDATED).count() == 1
