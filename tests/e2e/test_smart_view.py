"""Smart views in a real browser: build a two-condition filter with the builder, save it as a
view, switch to another view and back without a page load, and see the right rows."""

import re

import pytest
from playwright.sync_api import expect

from contacts.models import SmartView
from tests.factories import ContactFactory, SmartViewFactory

pytestmark = pytest.mark.e2e

LEADS = {"groups": [{"conditions": [{"field": "lifecycle_stage", "op": "eq", "value": "lead"}]}]}


def row_names(page) -> list[str]:
    return sorted(page.locator("#contact-table tbody th.col-name a").all_inner_texts())


@pytest.fixture
def pipeline(org, owner):
    ContactFactory(
        org=org, first_name="Quinn", last_name="Ready", lifecycle_stage="qualified", lead_score=80
    )
    ContactFactory(
        org=org, first_name="Quincy", last_name="Cool", lifecycle_stage="qualified", lead_score=20
    )
    ContactFactory(
        org=org, first_name="Lara", last_name="Lead", lifecycle_stage="lead", lead_score=90
    )
    return SmartViewFactory(org=org, owner=owner.user, name="Leads", filters=LEADS)


def test_build_save_and_switch_smart_views(page, login_as, owner, pipeline):
    login_as(owner.user)
    page.goto("/contacts/")
    expect(page.locator("#contact-table tbody tr")).to_have_count(3)

    # Two conditions, ANDed: lifecycle stage is Qualified, lead score greater than 50.
    builder = page.locator(".filter-builder")
    if builder.get_attribute("open") is None:
        builder.locator("summary").click()
    builder.locator("[data-builder-add]").click()
    first = builder.locator('[data-condition="1"]')
    first.locator("[data-builder-field]").select_option("lifecycle_stage")
    first.locator("[data-builder-op]").select_option("eq")
    first.locator("[data-builder-value]").select_option("qualified")
    builder.locator(".builder-group button", has_text="+ Add filter").click()
    second = builder.locator('[data-condition="2"]')
    second.locator("[data-builder-field]").select_option("lead_score")
    second.locator("[data-builder-op]").select_option("gt")
    second.locator("[data-builder-value]").fill("50")
    page.evaluate("window.notReloaded = true")
    builder.locator("[data-builder-apply]").click()

    expect(page.locator("#contact-table tbody tr")).to_have_count(1)
    assert row_names(page) == ["Quinn Ready"]
    assert page.evaluate("window.notReloaded") is True  # the table was swapped in place

    # Save it as a view.
    page.locator(".save-view summary").click()
    page.fill("#save-view-name", "Ready to buy")
    page.locator(".save-view-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/contacts/\?view="))
    saved = SmartView.objects.get(name="Ready to buy")
    assert [c["field"] for c in saved.filters["groups"][0]["conditions"]] == [
        "lifecycle_stage",
        "lead_score",
    ]
    pill = page.locator(".view-pills a", has_text="Ready to buy")
    expect(pill).to_have_attribute("aria-current", "page")
    assert row_names(page) == ["Quinn Ready"]

    # Switch to the other view and back: the list swaps in place and the URL follows.
    page.evaluate("window.notReloaded = true")
    page.locator(".view-pills a", has_text="Leads").click()
    expect(page.locator(".view-pills a", has_text="Leads")).to_have_attribute(
        "aria-current", "page"
    )
    assert row_names(page) == ["Lara Lead"]
    assert f"view={pipeline.public_id}" in page.url

    page.locator(".view-pills a", has_text="Ready to buy").click()
    expect(page.locator(".view-pills a", has_text="Ready to buy")).to_have_attribute(
        "aria-current", "page"
    )
    assert row_names(page) == ["Quinn Ready"]
    assert f"view={saved.public_id}" in page.url
    assert page.evaluate("window.notReloaded") is True


def test_searching_the_list_swaps_the_table_and_keeps_a_clean_url(page, login_as, owner, pipeline):
    login_as(owner.user)
    page.goto("/contacts/")
    page.evaluate("window.notReloaded = true")
    page.fill("#list-q", "lara")
    expect(page.locator("#contact-table tbody tr")).to_have_count(1)
    assert row_names(page) == ["Lara Lead"]
    page.wait_for_url(re.compile(r"q=lara"))
    assert "score_min" not in page.url and "company=" not in page.url
    assert page.evaluate("window.notReloaded") is True


def test_an_invalid_condition_is_reported_at_the_builder(page, login_as, owner, pipeline):
    login_as(owner.user)
    page.goto("/contacts/")
    builder = page.locator(".filter-builder")
    builder.locator("summary").click()
    builder.locator("[data-builder-add]").click()
    first = builder.locator('[data-condition="1"]')
    first.locator("[data-builder-field]").select_option("lead_score")
    first.locator("[data-builder-op]").select_option("gt")
    builder.locator("[data-builder-apply]").click()  # no value given
    expect(page.locator("#builder-error")).to_contain_text("Condition 1: 'Lead score' needs")
    expect(first).to_have_class(re.compile("is-invalid"))
    expect(page.locator("#contact-table tbody tr")).to_have_count(0)
