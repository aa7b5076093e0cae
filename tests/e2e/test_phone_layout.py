"""The app on a phone (390×844) and on a laptop (1440×900), in a real browser: on the phone the
sidebar is a drawer behind a menu button (it opens, traps focus, closes on Escape and gives
focus back), the top bar is one row that fits, the first contact row shows without scrolling,
and a table that scrolls sideways keeps the name column in view. On the laptop the sidebar
stands beside the page, as tall as the window."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.factories import CompanyFactory, ContactFactory

pytestmark = pytest.mark.e2e


def wait_until_slid_in(tab):
    """Until the drawer has finished sliding in (polled from here: the page's CSP refuses the
    eval that wait_for_function would need)."""
    for _ in range(50):
        if tab.evaluate("document.getElementById('app-nav').getBoundingClientRect().x") >= 0:
            return
        tab.wait_for_timeout(20)
    raise AssertionError("the menu drawer did not slide in")


PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1440, "height": 900}


@pytest.fixture
def contacts(org):
    acme = CompanyFactory(org=org, name="Acme Anvils")
    for first, last in [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing")]:
        ContactFactory(org=org, first_name=first, last_name=last, company=acme)


@pytest.fixture
def open_at(browser, browser_context, live_server, login_as, owner):
    """open_at(viewport, path) -> a signed-in tab of that size on that page."""
    login_as(owner.user)
    contexts = []

    def make(viewport, path):
        context = browser.new_context(base_url=live_server.url, viewport=viewport)
        context.set_default_timeout(10_000)
        context.add_cookies(browser_context.cookies())
        contexts.append(context)
        tab = context.new_page()
        tab.goto(path)
        return tab

    yield make
    for context in contexts:
        context.close()


def test_on_a_phone_the_first_contact_row_is_above_the_fold(open_at, contacts):
    tab = open_at(PHONE, reverse("contacts:contact_list"))
    first_row = tab.locator("#contact-table tbody tr").first
    expect(first_row).to_be_visible()
    box = first_row.bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"], box

    # The sidebar's links are out of the way, and the top bar is one row that fits.
    expect(tab.get_by_role("link", name="Companies")).to_be_hidden()
    topbar = tab.locator(".topbar").bounding_box()
    assert topbar["height"] <= 64, topbar
    for control in ("[data-nav-toggle]", "#global-search", ".bell", ".user-menu > summary"):
        part = tab.locator(control).bounding_box()
        assert part["x"] >= 0 and part["x"] + part["width"] <= PHONE["width"], (control, part)
    assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_menu_button_opens_a_drawer_that_escape_closes(open_at, contacts):
    tab = open_at(PHONE, reverse("contacts:contact_list"))
    toggle = tab.get_by_role("button", name="Menu", exact=True)
    drawer = tab.locator("#app-nav")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_have_attribute("aria-controls", "app-nav")
    expect(drawer).to_be_hidden()

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(drawer).to_be_visible()
    expect(drawer).to_have_attribute("aria-modal", "true")
    companies = tab.get_by_role("link", name="Companies")
    expect(companies).to_be_visible()
    # It slides in from the left edge and runs the full height of the screen.
    wait_until_slid_in(tab)
    assert drawer.bounding_box()["height"] >= PHONE["height"] - 1
    # Focus starts in the drawer (on the current page's link) and Tab keeps it there.
    expect(tab.locator("#app-nav [aria-current=page]")).to_be_focused()
    for _ in range(30):
        tab.keyboard.press("Tab")
        assert tab.evaluate("document.getElementById('app-nav').contains(document.activeElement)")
    for _ in range(5):
        tab.keyboard.press("Shift+Tab")
        assert tab.evaluate("document.getElementById('app-nav').contains(document.activeElement)")

    tab.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(drawer).to_be_hidden()
    expect(toggle).to_be_focused()

    # The close button and a press beside the drawer close it too; a link in it still works.
    toggle.click()
    tab.get_by_role("button", name="Close menu").click()
    expect(drawer).to_be_hidden()
    expect(toggle).to_be_focused()
    toggle.click()
    tab.mouse.click(370, 420)  # the dimmed page to the right of the drawer
    expect(drawer).to_be_hidden()
    toggle.click()
    tab.get_by_role("link", name="Companies").click()
    tab.wait_for_url("**" + reverse("contacts:company_list"))
    expect(tab.locator("#app-nav")).to_be_hidden()


def test_the_name_column_stays_in_view_when_the_table_scrolls(open_at, contacts):
    tab = open_at(PHONE, reverse("contacts:contact_list"))
    wrap = tab.locator("#contact-table .table-wrap")
    name = tab.locator("#contact-table tbody th.col-name").first
    email = tab.locator("#contact-table tbody tr").first.locator("td").nth(1)
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth"), "the table should overflow"
    name_before, email_before = name.bounding_box(), email.bounding_box()

    wrap.evaluate("el => { el.scrollLeft = 300; }")
    tab.wait_for_timeout(100)
    name_after, email_after = name.bounding_box(), email.bounding_box()
    assert email_after["x"] < email_before["x"] - 200  # the other columns moved
    assert abs(name_after["x"] - name_before["x"]) < 1  # the name did not
    assert name_after["x"] + name_after["width"] <= PHONE["width"]
    # And it is what shows there: the name, not a column scrolled under it.
    x = name_after["x"] + name_after["width"] / 2
    y = name_after["y"] + name_after["height"] / 2
    on_top = tab.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('th.col-name') !== null", [x, y]
    )
    assert on_top


def test_on_a_laptop_the_sidebar_stands_beside_the_page(open_at, contacts):
    tab = open_at(LAPTOP, reverse("contacts:contact_list"))
    expect(tab.get_by_role("link", name="Companies")).to_be_visible()
    expect(tab.get_by_role("button", name="Menu", exact=True)).to_be_hidden()
    expect(tab.get_by_role("button", name="Close menu")).to_be_hidden()
    sidebar = tab.locator("#app-nav").bounding_box()
    assert sidebar["x"] == 0 and sidebar["height"] >= LAPTOP["height"] - 1, sidebar
    # The org switcher sits in the top bar, once.
    expect(tab.locator(".topbar .org-switcher")).to_be_visible()
    expect(tab.locator(".sidebar-org")).to_be_hidden()
    # The whole contact table fits.
    wrap = tab.locator("#contact-table .table-wrap")
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth")
