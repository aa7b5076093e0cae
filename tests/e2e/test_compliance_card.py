"""The Compliance card on a contact's page, in a real browser, as an admin: it loads by
HTMX; a consent change to "No" turns the email marketing verdict to "Not allowed" and adds
a row to the card's history; an SMS suppression for a spam complaint stops text messages
until it is lifted with a note, and then shows among the lifted ones."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from compliance.models import ConsentRecord, Suppression
from tests.factories import ContactFactory, PrivacySettingsFactory, UserFactory, member

pytestmark = pytest.mark.e2e


@pytest.fixture
def admin(org):
    return member(org, "admin", user=UserFactory(first_name="Greta", last_name="Lindqvist"))


def test_consent_change_then_suppress_and_lift_sms_on_the_card(page, login_as, org, admin):
    PrivacySettingsFactory(org=org, mode="gdpr")
    eve = ContactFactory(
        org=org,
        first_name="Eve",
        last_name="Kraus",
        email="eve@example.com",
        mobile="+4915112345678",
        country="DE",
        consent_email=True,
        consent_sms=True,
        consent_status="opted_in",
        owner=admin.user,
    )
    login_as(admin.user)
    page.goto(reverse("contacts:contact_detail", args=[eve.public_id]))

    card = page.locator("#compliance-card")
    expect(card.get_by_role("table", name="May we contact this person?")).to_be_visible()
    email_marketing = card.locator('tr[data-channel="email"] td[data-purpose="marketing"]')
    sms_marketing = card.locator('tr[data-channel="sms"] td[data-purpose="marketing"]')
    sms_transactional = card.locator('tr[data-channel="sms"] td[data-purpose="transactional"]')
    expect(email_marketing).to_contain_text("Allowed")
    expect(email_marketing).to_contain_text("The contact consented to email.")
    expect(sms_marketing).to_contain_text("Allowed")

    # Email consent to "No", with a legal basis and a note.
    card.locator("summary", has_text="Change consent").click()
    consent_form = card.locator("details.compliance-consent form")
    consent_form.get_by_role("group", name="Email", exact=True).get_by_label(
        "No", exact=True
    ).check()
    consent_form.get_by_label("Legal basis").select_option(label="Legitimate interest")
    consent_form.get_by_label("Note").fill("Asked by phone to stop the newsletter")
    consent_form.get_by_role("button", name="Save consent").click()

    expect(email_marketing).to_contain_text("Not allowed")
    expect(email_marketing).to_contain_text("The contact opted out of email.")
    expect(card.locator('tr[data-channel="email"] td').first).to_have_text("No")
    newest = card.locator("table.consent-history tbody tr").first
    expect(newest).to_contain_text("Email consent")
    expect(newest).to_contain_text("Yes → No")
    expect(newest).to_contain_text("Greta Lindqvist")
    expect(newest).to_contain_text("Legitimate interest")
    expect(newest).to_contain_text("Asked by phone to stop the newsletter")
    entry = (
        ConsentRecord.objects.for_org(org)
        .filter(contact=eve, field="consent_email", new_value="false")
        .get()
    )
    assert (entry.actor_kind, entry.actor_user_id, entry.legal_basis, entry.old_value) == (
        "member",
        admin.user.pk,
        "legitimate_interest",
        "true",
    )

    # Suppress SMS for a spam complaint: every text message stops, not only marketing.
    card.locator("summary", has_text="Suppress an address").click()
    suppress_form = card.locator("details.compliance-suppress form")
    suppress_form.get_by_label("Channel").select_option(label="SMS")
    suppress_form.get_by_label("Reason").select_option(label="Spam complaint")
    suppress_form.get_by_role("button", name="Suppress").click()

    active = card.locator("ul.compliance-suppressions > li")
    expect(active).to_have_count(1)
    expect(active).to_contain_text("SMS")
    expect(active).to_contain_text("+4915112345678")
    expect(active).to_contain_text("Spam complaint, all messages")
    expect(sms_marketing).to_contain_text("Not allowed")
    expect(sms_transactional).to_contain_text("Not allowed")
    expect(sms_transactional).to_contain_text(
        "+4915112345678 is suppressed for text messages: spam complaint"
    )

    # Lift it with a note: it leaves the active list for the lifted one.
    active.locator("summary", has_text="Lift").click()
    active.get_by_label("Why may this address be contacted again?").fill(
        "Complaint withdrawn in writing"
    )
    active.get_by_role("button", name="Lift suppression").click()

    expect(card.locator("ul.compliance-suppressions")).to_have_count(0)
    expect(card).to_contain_text("None of this contact's addresses is suppressed.")
    lifted = card.locator("details.compliance-lifted")
    expect(lifted.locator("summary")).to_have_text("1 lifted suppression")
    lifted.locator("summary").click()
    expect(lifted.locator("li")).to_contain_text("SMS")
    expect(lifted.locator("li")).to_contain_text("Spam complaint")
    expect(lifted.locator("li")).to_contain_text("by Greta Lindqvist")
    expect(lifted.locator("li")).to_contain_text("Complaint withdrawn in writing")
    expect(sms_transactional).to_contain_text("Allowed")
    expect(sms_marketing).to_contain_text("The contact consented to text messages.")
    suppression = Suppression.objects.for_org(org).get()
    assert (suppression.reason, suppression.lifted_by_id) == ("complaint", admin.user.pk)
