"""Screenshots of the main pages on a laptop (1440×900) and a phone (390×844), kept by the test
run as artifacts for the next person to look at (never committed).

They are written to $ARTIFACTS_DIR/screenshots (or test-artifacts/screenshots/ in the project,
which .gitignore leaves out). The test only proves that every page rendered and was captured;
the pictures are for people.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

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


SIZES = {"laptop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


def artifacts_dir() -> Path:
    base = os.environ.get("ARTIFACTS_DIR")
    root = Path(base) if base else Path(settings.BASE_DIR) / "test-artifacts"
    folder = root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def records(org):
    acme = CompanyFactory(org=org, name="Acme Anvils", domain="acme.example")
    people = [
        ContactFactory(
            org=org,
            first_name=first,
            last_name=last,
            email=f"{first.lower()}@acme.example",
            company=acme,
            job_title="Head of Procurement",
        )
        for first, last in [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing")]
    ]
    CompanyFactory(org=org, name="Globex Corporation", domain="globex.example")
    return {"contact": people[0], "company": acme}


@pytest.mark.parametrize("size", sorted(SIZES))
def test_screenshots_of_the_main_pages(
    browser, browser_context, live_server, login_as, owner, records, size
):
    # login_as signs in the default context; a context of the wanted size reuses its cookie.
    login_as(owner.user)
    pages = {
        "dashboard": reverse("crm:dashboard"),
        "contact-list": reverse("contacts:contact_list"),
        "contact-page": reverse("contacts:contact_detail", args=[records["contact"].public_id]),
        "company-list": reverse("contacts:company_list"),
        "import-start": reverse("contacts:import_start"),
        "settings": reverse("crm:organization_settings"),
    }
    folder = artifacts_dir()
    written = []
    context = browser.new_context(base_url=live_server.url, viewport=SIZES[size])
    try:
        context.add_cookies(browser_context.cookies())
        tab = context.new_page()
        for name, path in pages.items():
            response = tab.goto(path)
            assert response is not None and response.status == 200, (name, path)
            tab.wait_for_load_state("networkidle")
            target = folder / f"{name}-{size}.png"
            target.unlink(missing_ok=True)
            tab.screenshot(path=str(target), full_page=False)
            written.append(target)
        # The shell's own states: the suggestions open, and on the phone the menu drawer.
        tab.goto(pages["dashboard"])
        tab.keyboard.press("Control+k")
        tab.keyboard.type("Ada")
        tab.locator("#command-palette-panel [role=option]").first.wait_for()
        tab.keyboard.press("ArrowDown")
        written.append(folder / f"command-palette-{size}.png")
        tab.screenshot(path=str(written[-1]))
        if size == "phone":
            tab.keyboard.press("Escape")
            tab.get_by_role("button", name="Menu", exact=True).click()
            wait_until_slid_in(tab)
            written.append(folder / "menu-drawer-phone.png")
            tab.screenshot(path=str(written[-1]))
    finally:
        context.close()

    for target in written:
        assert target.is_file() and target.stat().st_size > 1000, target
