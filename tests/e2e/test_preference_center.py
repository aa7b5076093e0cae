"""The public preference center in a real browser, with no login: unsubscribe from
everything, then turn email back on, each step leaving its entry in the consent ledger; the
brand colour reaches the page without breaking the CSP."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from compliance.models import ConsentRecord
from compliance.tokens import preference_token
from tests.factories import ContactFactory, PrivacySettingsFactory

pytestmark = pytest.mark.e2e


def email_entries(contact):
    return list(
        ConsentRecord.objects.for_org(contact.org_id)
        .filter(contact=contact, field="consent_email")
        .exclude(actor_kind="system")  # the factory's own save
        .order_by("id")
        .values_list("old_value", "new_value", "actor_kind", "form")
    )


def test_unsubscribe_then_resubscribe_to_email(page, org):
    PrivacySettingsFactory(org=org, mode="gdpr", brand_name="Acme News", brand_color="#7c3aed")
    ada = ContactFactory(org=org, email="ada@example.com", country="DE", consent_email=True)
    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content" in msg.text else None)

    page.goto(reverse("compliance:preferences", args=[preference_token(ada)]))
    expect(page.get_by_role("heading", name="Your communication preferences")).to_be_visible()
    expect(page.locator(".public-brand")).to_have_text("Acme News")
    brand = page.locator(".public-brand").evaluate("el => getComputedStyle(el).backgroundColor")
    assert brand == "rgb(124, 58, 237)"
    expect(page.get_by_label("Email")).to_be_checked()

    page.get_by_role("button", name="Unsubscribe from everything").click()
    expect(page.get_by_role("status")).to_contain_text("You are unsubscribed from everything")
    expect(page.get_by_label("Email")).not_to_be_checked()
    assert email_entries(ada) == [("true", "false", "unsubscribe", "Preference center")]

    page.get_by_label("Email").check()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status")).to_contain_text("Your choices are saved.")
    expect(page.get_by_label("Email")).to_be_checked()
    assert email_entries(ada) == [
        ("true", "false", "unsubscribe", "Preference center"),
        ("false", "true", "preference_center", "Preference center"),
    ]
    ada.refresh_from_db()
    assert (ada.consent_email, ada.consent_status) == (True, "opted_in")
    assert violations == []
