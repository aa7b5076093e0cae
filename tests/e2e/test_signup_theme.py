"""In a real browser: sign up, confirm the email, land on the dashboard, switch theme;
and the keyboard shortcuts of the shell."""

import re
import uuid

import pytest
from playwright.sync_api import expect

from crm.models import UserPreference

pytestmark = pytest.mark.e2e

PASSWORD = "Tr1cky-Sailing-Otter"
CONFIRM_PATH = re.compile(r"/accounts/confirm-email/[^/\s]+/")


def confirmation_path(outbox, email):
    """The path of the email-confirmation link mailed to `email`."""
    for message in reversed(outbox):
        if email in message.to:
            found = CONFIRM_PATH.search(message.body)
            if found:
                return found.group(0)
    raise AssertionError(f"no confirmation link was mailed to {email}; outbox: {outbox!r}")


def test_new_user_signs_up_confirms_email_and_switches_to_a_light_theme(
    page, live_server, mailoutbox
):
    # allauth rate-limits confirmation mails per address in the (persistent) cache, so every
    # run signs up a new address.
    email = f"ada-{uuid.uuid4().hex[:10]}@nimbus-labs.test"
    org_name = "Nimbus Labs"

    page.goto("/accounts/signup/")
    page.locator('input[name="first_name"]').fill("Ada")
    page.locator('input[name="email"]').fill(email)
    page.locator('input[name="organization_name"]').fill(org_name)
    page.locator('input[name="password1"]').fill(PASSWORD)
    page.locator('input[name="password2"]').fill(PASSWORD)
    page.locator('input[name="password2"]').press("Enter")

    # Verification is mandatory: nothing but the "check your inbox" page until confirmed.
    page.wait_for_url(re.compile(r"/accounts/confirm-email/$"))
    page.goto(confirmation_path(mailoutbox, email))
    page.get_by_role("button", name=re.compile("confirm", re.IGNORECASE)).click()

    page.wait_for_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ada")
    expect(page.locator("main")).to_contain_text(org_name)
    expect(page.locator("html")).to_have_attribute("data-theme", UserPreference.DEFAULT_THEME)

    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Customize").click()
    page.wait_for_url(f"{live_server.url}/settings/customize/")
    # A marker on the window survives only as long as the document does: it proves that
    # the theme changed without a page load.
    page.evaluate("window.__sameDocument = true")

    page.get_by_role("radio", name="Paper").check()

    expect(page.locator("html")).to_have_attribute("data-theme", "paper")
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator("#toasts")).to_contain_text("Theme saved")
    assert UserPreference.objects.get(user__email=email).theme == "paper"

    page.reload()
    assert page.evaluate("window.__sameDocument") is None
    expect(page.locator("html")).to_have_attribute("data-theme", "paper")
    expect(page.get_by_role("radio", name="Paper")).to_be_checked()

    page.goto("/")
    expect(page.locator("html")).to_have_attribute("data-theme", "paper")


def test_refused_theme_shows_its_error_in_place_and_restores_the_saved_theme(page, login_as, owner):
    login_as(owner.user)
    page.goto("/settings/customize/")
    # Only a forged request can name an unknown theme: rewrite one card's value in place.
    page.evaluate(
        """() => {
            const radio = document.querySelector('#theme-form input[value="ember"]');
            radio.value = "neon";
            radio.checked = true;
            radio.dispatchEvent(new Event("change", {bubbles: true}));
        }"""
    )

    expect(page.get_by_role("alert")).to_contain_text("“neon” is not one of the available themes.")
    expect(page.locator("html")).to_have_attribute("data-theme", "midnight")
    expect(page.get_by_role("radio", name="Midnight")).to_be_checked()
    assert not UserPreference.objects.filter(user=owner.user).exclude(theme="midnight").exists()


def test_ctrl_k_focuses_the_global_search_from_any_page(page, login_as, owner):
    login_as(owner.user)
    for path in ("/", "/settings/customize/"):
        page.goto(path)
        search = page.get_by_role("combobox", name="Search")
        expect(search).not_to_be_focused()
        page.keyboard.press("Control+k")
        expect(search).to_be_focused()


def test_escape_closes_the_account_menu_and_returns_focus_to_it(page, login_as, owner):
    login_as(owner.user)
    page.goto("/")
    menu = page.locator("details.user-menu")
    summary = menu.locator("summary")
    summary.click()
    expect(menu).to_have_attribute("open", "")
    menu.get_by_role("link", name="Theme & display").focus()

    page.keyboard.press("Escape")

    expect(menu).not_to_have_attribute("open", "")
    expect(summary).to_be_focused()
