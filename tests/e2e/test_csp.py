"""The Content-Security-Policy in a real browser: the main pages load without one violation
(no inline script, style block, style="" or on*="" attribute, no eval), and the behaviour that
moved from inline code into static files still works: the theme switch, the archived toggle,
the bulk bar, the search suggestions, tag colours and the score ring, the scoring rule's
"Delete?" question, the import wizard's map step, a job's progress bar, the Django admin."""

import re

import pytest
from django.http import HttpResponse
from django.urls import path, reverse
from playwright.sync_api import expect

from contacts.models import ScoringRule
from crm.models import UserPreference
from tests.factories import (
    BackgroundJobFactory,
    ContactFactory,
    ScoringRuleFactory,
    TagFactory,
    UserFactory,
    custom_role,
)

pytestmark = pytest.mark.e2e

# Recorded by the page itself (the browser fires it for every refused script, style or eval).
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI} ` +
    `at ${event.sourceFile}:${event.lineNumber}`);
});
"""


@pytest.fixture
def violations(page):
    """Every CSP complaint of the tab: console messages, uncaught errors, and the page's own
    securitypolicyviolation events (read with `found()`)."""
    seen: list[str] = []
    page.add_init_script(WATCH_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            seen.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: seen.append(f"pageerror: {error}"))

    def found() -> list[str]:
        in_page = page.evaluate("window.__cspViolations || []")
        return seen + [f"event: {text}" for text in in_page]

    return found


def visit(page, violations, path: str):
    page.goto(path)
    page.wait_for_load_state("networkidle")
    assert violations() == [], f"{path}: {violations()}"


@pytest.fixture
def crm_data(org, owner):
    vip = TagFactory(org=org, name="vip", color="#ff0066")
    ada = ContactFactory(org=org, first_name="Ada", last_name="Lovelace", lead_score=72, tags=[vip])
    ContactFactory(org=org, first_name="Grace", last_name="Hopper", is_archived=True)
    role = custom_role(org, name="Field sales")
    rule = ScoringRuleFactory(org=org, name='VP titles "quoted" <b>', points=20)
    job = BackgroundJobFactory(
        org=org,
        created_by=owner.user,
        total=10,
        progress=4,
        status="running",
        params={"title": "Bulk tag"},
    )
    return {"ada": ada, "role": role, "rule": rule, "job": job}


def test_main_pages_load_without_a_policy_violation(page, login_as, owner, crm_data, violations):
    login_as(owner.user)
    pages = [
        reverse("crm:dashboard"),
        reverse("contacts:contact_list"),
        reverse("contacts:contact_detail", kwargs={"public_id": crm_data["ada"].public_id}),
        reverse("contacts:score_reasons", kwargs={"public_id": crm_data["ada"].public_id}),
        reverse("contacts:import_start"),
        reverse("crm:role_detail", kwargs={"public_id": crm_data["role"].public_id}),
        reverse("crm:audit_log"),
        reverse("crm:customize"),
        reverse("contacts:scoring"),
        reverse("crm:job_progress", kwargs={"public_id": crm_data["job"].public_id}),
        reverse("crm:members"),
        reverse("contacts:company_list"),
        reverse("contacts:inbox"),
    ]
    for url in pages:
        visit(page, violations, url)


def test_the_job_page_shows_its_progress_bar(page, login_as, owner, crm_data, violations):
    login_as(owner.user)
    visit(
        page,
        violations,
        reverse("crm:job_progress", kwargs={"public_id": crm_data["job"].public_id}),
    )

    bar = page.locator("progress.progress-bar")
    expect(bar).to_have_attribute("value", "40")
    assert bar.evaluate("el => getComputedStyle(el).width") != "auto"
    assert violations() == []


def test_tag_colour_and_score_ring_come_from_data_attributes(
    page, login_as, owner, crm_data, violations
):
    login_as(owner.user)
    visit(
        page,
        violations,
        reverse("contacts:contact_detail", kwargs={"public_id": crm_data["ada"].public_id}),
    )

    chip = page.locator("#record-header .tag-chip", has_text="vip")
    expect(chip).to_be_visible()
    assert chip.evaluate("el => el.style.getPropertyValue('--tag')") == "#ff0066"
    meter = page.locator("#record-header .score-meter")
    assert meter.evaluate("el => el.style.getPropertyValue('--score')") == "72"
    assert "conic-gradient" in meter.evaluate("el => getComputedStyle(el).backgroundImage")


def test_picking_a_theme_repaints_the_page_and_saves_it(page, login_as, owner, violations):
    login_as(owner.user)
    visit(page, violations, reverse("crm:customize"))

    page.locator("label.theme-card", has_text="Paper").click()

    expect(page.locator("html")).to_have_attribute("data-theme", "paper")
    expect(page.locator("#theme-status")).to_have_attribute("data-saved-theme", "paper")
    assert UserPreference.objects.get(user=owner.user).theme == "paper"
    assert violations() == []


def test_archived_toggle_submits_the_list_and_the_bulk_bar_opens(
    page, login_as, owner, crm_data, violations
):
    login_as(owner.user)
    visit(page, violations, reverse("contacts:contact_list"))
    table = page.locator("#contact-table")
    expect(table).not_to_contain_text("Grace")

    page.locator("label.archived-toggle input").check()

    expect(table).to_contain_text("Grace")
    expect(page).to_have_url(re.compile(r"archived=1"))

    page.locator('#contact-table input[name="ids"]').first.check()
    bar = page.locator("#bulk-bar")
    expect(bar).to_be_visible()
    expect(bar.locator("[data-bulk-status]")).to_have_text("1 selected")
    expect(page.locator("#bulk-actions .button").first).to_be_visible()  # loaded by htmx
    assert violations() == []


def test_search_suggestions_replace_each_other(page, login_as, owner, crm_data, violations):
    login_as(owner.user)
    visit(page, violations, reverse("crm:dashboard"))
    search = page.get_by_role("combobox", name="Search")

    search.fill("Ad")
    expect(page.locator(".search-suggest")).to_contain_text("Ada Lovelace")
    search.fill("Ada")
    page.wait_for_load_state("networkidle")

    expect(page.locator(".search-suggest")).to_have_count(1)
    assert violations() == []


def test_deleting_a_scoring_rule_asks_first(page, login_as, owner, crm_data, violations):
    rule = crm_data["rule"]
    login_as(owner.user)
    visit(page, violations, reverse("contacts:scoring"))
    question = f"Delete the rule “{rule.name}”? This can't be undone; scores will be recomputed."
    confirm = page.get_by_role("alertdialog")  # the app's one confirmation dialog (app.js)

    page.locator("main").get_by_role("button", name="Delete", exact=True).click()
    expect(confirm).to_have_text(re.compile(re.escape(question)))
    confirm.get_by_role("button", name="Cancel").click()
    page.wait_for_load_state("networkidle")
    assert ScoringRule.objects.filter(pk=rule.pk).exists()

    page.locator("main").get_by_role("button", name="Delete", exact=True).click()
    confirm.get_by_role("button", name="Delete rule").click()
    expect(page.locator("main")).not_to_contain_text("VP titles")

    assert not ScoringRule.objects.filter(pk=rule.pk).exists()
    assert violations() == []


def test_the_rule_form_offers_only_the_operators_of_the_chosen_field(
    page, login_as, owner, violations
):
    login_as(owner.user)
    visit(page, violations, reverse("contacts:scoring"))

    page.locator("select[name=field]").select_option("lead_score")

    assert page.locator("select[name=op] option[value=gt]").is_enabled()
    assert page.locator("select[name=op] option[value=contains]").is_disabled()


def test_import_upload_and_map_steps_work_under_the_policy(
    page, login_as, owner, settings, tmp_path, violations
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    people = tmp_path / "people.csv"
    people.write_text("First Name,Email\nAda,ada@example.com\n", encoding="utf-8")
    login_as(owner.user)
    visit(page, violations, reverse("contacts:import_start"))

    page.locator('input[type="file"]').set_input_files(str(people))
    expect(page.locator("[data-dropzone-file]")).to_contain_text("people.csv")
    page.get_by_role("button", name="Upload and map columns").click()
    page.wait_for_url(re.compile(r"/contacts/import/[0-9a-f-]+/map/$"))
    page.wait_for_load_state("networkidle")

    consent = page.locator("select[name=default_consent_status]")
    warning = page.locator("[data-consent-warning]")
    expect(warning).to_be_hidden()
    consent.select_option("opted_in")
    expect(warning).to_be_visible()
    assert violations() == []


def test_django_admin_works_under_the_policy(page, login_as, org, violations):
    """Django's admin ships no inline script, so it needs no exception to the policy."""
    login_as(UserFactory(is_staff=True, is_superuser=True))
    ContactFactory(org=org, first_name="Ada")

    for url in ("/admin/", "/admin/contacts/contact/", "/admin/contacts/contact/add/"):
        visit(page, violations, url)
        expect(page.locator("#site-name")).to_be_visible()

    page.goto("/admin/contacts/contact/")
    page.locator("#action-toggle").check()  # the change list's own script
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")
    assert violations() == []


# The watcher itself -------------------------------------------------------------------------


def _inline_code_page(request):
    return HttpResponse(
        "<!doctype html><html><head><style>p { color: red }</style></head><body>"
        '<p style="color: blue" onclick="alert(1)">x</p><script>window.ran = true;</script>'
        "</body></html>"
    )


class InlineCodeURLConf:
    urlpatterns = [path("inline/", _inline_code_page)]


def test_the_watcher_reports_inline_code(page, settings, live_server, violations):
    settings.ROOT_URLCONF = InlineCodeURLConf

    page.goto("/inline/")
    page.wait_for_load_state("networkidle")

    found = "\n".join(violations())
    assert "script-src" in found
    assert "style-src" in found
    assert page.evaluate("window.ran") is None  # and the browser refused to run it
