"""The top bar's command palette (components/command_palette.html, static/js/command_palette.js)
in a real browser: an ARIA 1.2 combobox. Ctrl+K / ⌘K opens it from anywhere, the arrow keys
move through the suggestions, Enter opens the highlighted one, one Escape closes the list, a
second Escape clears the box and gives focus back to where it was, and answers never stack
up into a second panel."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.e2e


@pytest.fixture
def people(org):
    ada = ContactFactory(
        org=org, first_name="Ada", last_name="Lovelace", email="ada@engine.example"
    )
    adam = ContactFactory(
        org=org, first_name="Adam", last_name="Smith", email="adam@wealth.example"
    )
    CompanyFactory(org=org, name="Adastra Rockets", domain="adastra.example")
    ContactFactory(org=org, first_name="Grace", last_name="Hopper")
    return {"ada": ada, "adam": adam}


def palette(page):
    box = page.locator("#global-search")
    panel = page.locator("#command-palette-panel")
    return box, panel


def focused_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def test_the_box_is_an_aria_combobox(page, login_as, owner, people):
    login_as(owner.user)
    page.goto(reverse("crm:dashboard"))
    box, panel = palette(page)
    expect(box).to_have_attribute("role", "combobox")
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(box).to_have_attribute("aria-controls", "command-palette-listbox")
    expect(box).to_have_attribute("aria-autocomplete", "list")
    expect(page.locator("#command-palette-listbox")).to_have_attribute("role", "listbox")
    expect(panel).to_be_hidden()
    assert page.get_by_role("combobox", name="Search").count() == 1


def test_ctrl_k_arrows_and_enter_open_the_highlighted_suggestion(page, login_as, owner, people):
    login_as(owner.user)
    page.goto(reverse("crm:dashboard"))
    box, panel = palette(page)

    page.keyboard.press("Control+k")
    assert focused_id(page) == "global-search"
    page.keyboard.type("Ada")
    expect(panel).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    options = panel.get_by_role("option")
    # Two contacts, one company, and "All results".
    expect(options).to_have_count(4)
    expect(box).not_to_have_attribute("aria-activedescendant", re.compile(".+"))

    page.keyboard.press("ArrowDown")
    first_id = options.nth(0).get_attribute("id")
    expect(box).to_have_attribute("aria-activedescendant", first_id)
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowDown")
    expect(box).to_have_attribute("aria-activedescendant", options.nth(1).get_attribute("id"))
    expect(options.nth(0)).to_have_attribute("aria-selected", "false")
    page.keyboard.press("ArrowUp")
    expect(box).to_have_attribute("aria-activedescendant", first_id)
    # Up from the first option wraps to the last ("All results").
    page.keyboard.press("ArrowUp")
    expect(options.nth(3)).to_have_attribute("aria-selected", "true")
    expect(options.nth(3)).to_contain_text("All results for")
    page.keyboard.press("ArrowDown")  # wraps back to the first
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")

    target = options.nth(0).get_attribute("data-palette-href")
    assert target in {
        reverse("contacts:contact_detail", args=[people["ada"].public_id]),
        reverse("contacts:contact_detail", args=[people["adam"].public_id]),
    }
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(target) + "$"))


def test_meta_k_opens_it_too(page, login_as, owner, people):
    login_as(owner.user)
    page.goto(reverse("contacts:company_list"))
    page.keyboard.press("Meta+k")
    assert focused_id(page) == "global-search"


def test_one_escape_closes_a_second_clears_and_focus_goes_back(page, login_as, owner, people):
    login_as(owner.user)
    page.goto(reverse("contacts:contact_list"))
    box, panel = palette(page)
    start = page.get_by_role("link", name="New contact")
    start.focus()

    page.keyboard.press("Control+k")
    page.keyboard.type("Ada")
    expect(panel.get_by_role("option")).to_have_count(4)
    page.keyboard.press("ArrowDown")

    # One press: the list closes; the text and the focus stay.
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(box).not_to_have_attribute("aria-activedescendant", re.compile(".+"))
    expect(box).to_have_value("Ada")
    assert focused_id(page) == "global-search"
    # Nothing comes back late, and nothing stacked up.
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(400)
    expect(panel).to_be_hidden()
    expect(page.locator(".search-suggest")).to_have_count(1)
    expect(page.locator("[role=listbox]")).to_have_count(1)

    # Down opens the list again without a new keystroke of text.
    page.keyboard.press("ArrowDown")
    expect(panel).to_be_visible()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()

    # The second press clears the box and gives focus back to where it was.
    page.keyboard.press("Escape")
    expect(box).to_have_value("")
    expect(start).to_be_focused()
    page.wait_for_timeout(400)
    expect(panel).to_be_hidden()
    expect(page.locator("[data-palette-hint]")).to_have_count(0)


def test_answers_replace_each_other_and_never_stack(page, login_as, owner, people):
    login_as(owner.user)
    page.goto(reverse("crm:dashboard"))
    box, panel = palette(page)
    box.click()

    page.keyboard.type("A")
    expect(panel).to_contain_text("Type at least two characters.")
    page.keyboard.type("da")
    expect(panel.get_by_role("option")).to_have_count(4)
    expect(page.locator("[data-palette-hint]")).to_have_count(0)
    page.keyboard.type("stra")
    expect(panel.get_by_role("option")).to_have_count(2)  # the company and "All results"
    page.keyboard.type("zzz")
    expect(panel).to_contain_text("Nothing matches")
    for _ in range(len("Adastrazzz")):
        page.keyboard.press("Backspace")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(400)

    # An empty box shows no panel at all, let alone a second one.
    expect(panel).to_be_hidden()
    expect(page.locator(".search-suggest")).to_have_count(1)
    expect(page.locator("[data-palette-hint]")).to_have_count(0)
    expect(page.locator("[role=listbox]")).to_have_count(1)


def test_enter_with_nothing_highlighted_runs_the_full_search(page, login_as, owner, people):
    login_as(owner.user)
    page.goto(reverse("crm:dashboard"))
    box, panel = palette(page)
    box.click()
    page.keyboard.type("Ada")
    expect(panel).to_be_visible()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(reverse("contacts:search")) + r"\?q=Ada$"))
    expect(page.locator("main")).to_contain_text("Ada Lovelace")


def test_a_click_on_a_suggestion_opens_it(page, login_as, owner, people):
    login_as(owner.user)
    page.goto(reverse("crm:dashboard"))
    box, panel = palette(page)
    box.click()
    page.keyboard.type("Lovelace")
    option = panel.get_by_role("option", name=re.compile("Ada Lovelace"))
    option.click()
    page.wait_for_url(
        re.compile(re.escape(reverse("contacts:contact_detail", args=[people["ada"].public_id])))
    )
