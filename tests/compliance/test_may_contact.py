"""The one answer to "may we contact this address on this channel for this purpose now?"."""

import pytest

from compliance.models import PrivacySettings, Suppression
from compliance.selectors import (
    address_for,
    channel_verdicts,
    jurisdictions,
    may_contact,
    may_contact_many,
)
from tests.factories import ContactFactory, SuppressionFactory

pytestmark = pytest.mark.django_db


def mode(org, value):
    PrivacySettings.objects.for_org(org).update_or_create(org=org, defaults={"mode": value})


def person(org, **fields):
    values = {"email": "eve@example.com", "mobile": "+4915112345678", "country": "DE"}
    return ContactFactory(org=org, **{**values, **fields})


@pytest.mark.parametrize(
    ("org_mode", "country", "expected"),
    [
        ("off", "DE", set()),
        ("gdpr", "US", {"gdpr"}),
        ("ccpa", "DE", {"ccpa"}),
        ("both", "DE", {"gdpr"}),
        ("both", "gb", {"gdpr"}),
        ("both", "US", {"ccpa"}),
        ("both", "BR", {"gdpr", "ccpa"}),
        ("both", "", {"gdpr", "ccpa"}),
    ],
)
def test_jurisdiction_follows_the_mode_and_the_country(org_mode, country, expected):
    assert jurisdictions(org_mode, country) == expected


def test_without_a_mode_marketing_is_allowed_until_the_person_opts_out(org):
    contact = person(org)
    verdict = may_contact(contact, "email", "marketing")
    assert verdict.allowed and verdict.code == "not_opted_out"
    contact.consent_email = False
    verdict = may_contact(contact, "email", "marketing")
    assert not verdict.allowed and verdict.code == "opted_out_channel"
    assert "opted out of email" in verdict.reason


def test_an_overall_opt_out_refuses_every_marketing_channel_but_not_transactional(org):
    contact = person(org, consent_status="opted_out", consent_sms=True)
    for channel in ("email", "sms", "phone", "whatsapp"):
        assert may_contact(contact, channel, "marketing").code == "opted_out"
        assert may_contact(contact, channel, "transactional").allowed


def test_gdpr_needs_explicit_consent_confirmed_by_double_opt_in_for_email(org):
    mode(org, "gdpr")
    contact = person(org)
    assert may_contact(contact, "email").code == "no_consent"
    contact.consent_email, contact.consent_status = True, "pending"
    assert may_contact(contact, "email").code == "awaiting_confirmation"
    contact.consent_status = "unknown"
    assert may_contact(contact, "email").code == "unconfirmed"
    contact.consent_status = "opted_in"
    assert may_contact(contact, "email").allowed
    # Other channels need their own consent, not the email's.
    assert may_contact(contact, "sms").code == "no_consent"
    contact.consent_sms = True
    assert may_contact(contact, "sms").allowed
    assert "GDPR" in may_contact(person(org, email="x@example.com"), "email").reason


def test_ccpa_allows_marketing_until_an_opt_out(org):
    mode(org, "ccpa")
    contact = person(org, country="US")
    verdict = may_contact(contact, "sms")
    assert verdict.allowed and "CCPA" in verdict.reason
    contact.consent_sms = False
    assert not may_contact(contact, "sms").allowed


def test_both_modes_go_by_the_contacts_country(org):
    mode(org, "both")
    assert may_contact(person(org, country="US", email="us@example.com"), "email").allowed
    assert not may_contact(person(org, country="FR", email="fr@example.com"), "email").allowed


@pytest.mark.parametrize("reason", ["bounce", "complaint", "manual", "do_not_contact"])
@pytest.mark.parametrize("purpose", ["marketing", "transactional"])
def test_a_suppressed_address_is_refused_for_every_purpose_naming_its_reason(org, reason, purpose):
    contact = person(org, consent_email=True, consent_status="opted_in")
    SuppressionFactory(org=org, channel="email", address="eve@example.com", reason=reason)
    verdict = may_contact(contact, "email", purpose)
    assert not verdict.allowed
    assert verdict.code == f"suppressed_{reason}"
    label = dict(Suppression.Reason.choices)[reason].lower()
    assert label in verdict.reason and "eve@example.com" in verdict.reason


def test_an_unsubscribe_suppression_covers_marketing_only(org):
    contact = person(org)
    SuppressionFactory(
        org=org, channel="email", address="eve@example.com", reason="unsubscribe", scope="marketing"
    )
    assert may_contact(contact, "email", "marketing").code == "suppressed_unsubscribe"
    assert may_contact(contact, "email", "transactional").allowed


def test_a_suppression_covers_its_channel_only_and_a_lifted_one_nothing(org):
    from django.utils import timezone

    contact = person(org)
    row = SuppressionFactory(org=org, channel="sms", address="+4915112345678", reason="manual")
    assert not may_contact(contact, "sms").allowed
    assert may_contact(contact, "whatsapp").allowed
    assert may_contact(contact, "email").allowed
    Suppression.objects.for_org(org).filter(pk=row.pk).update(lifted_at=timezone.now())
    assert may_contact(contact, "sms").allowed


def test_another_organizations_suppression_does_not_count(org, other_org):
    contact = person(org)
    SuppressionFactory(org=other_org, channel="email", address="eve@example.com")
    assert may_contact(contact, "email").allowed


def test_no_address_no_message(org):
    contact = ContactFactory(org=org, email="", phone="", mobile="", first_name="Nobody")
    assert may_contact(contact, "email").code == "no_address"
    assert may_contact(contact, "sms").reason == "The contact has no phone number."


def test_calls_fall_back_to_the_landline_and_texts_do_not(org):
    contact = ContactFactory(org=org, phone="+442071234567", mobile="")
    assert address_for(contact, "phone") == "+442071234567"
    assert address_for(contact, "sms") == "+442071234567"
    assert address_for(contact, "whatsapp") == ""


def test_the_bulk_answer_equals_the_single_one_in_two_queries(org, django_assert_max_num_queries):
    mode(org, "gdpr")
    contacts = [
        person(org, email=f"p{i}@example.com", consent_email=i % 2 == 0, consent_status="opted_in")
        for i in range(12)
    ]
    SuppressionFactory(org=org, channel="email", address="p4@example.com", reason="bounce")
    with django_assert_max_num_queries(2):
        bulk = may_contact_many(org, contacts, "email", "marketing")
    for contact in contacts:
        assert bulk[contact.pk] == may_contact(contact, "email", "marketing")
    assert bulk[contacts[4].pk].code == "suppressed_bounce"


def test_unknown_channels_and_purposes_are_refused_loudly(org):
    contact = person(org)
    with pytest.raises(ValueError):
        may_contact(contact, "fax")
    with pytest.raises(ValueError):
        may_contact(contact, "email", "spam")


def test_the_contact_page_gets_one_verdict_per_channel(org):
    contact = person(org, consent_whatsapp=False)
    SuppressionFactory(org=org, channel="email", address="eve@example.com", reason="complaint")
    verdicts = dict(channel_verdicts(contact))
    assert list(verdicts) == ["Email", "SMS", "Calls", "WhatsApp"]
    assert verdicts["Email"].code == "suppressed_complaint"
    assert verdicts["WhatsApp"].code == "opted_out_channel"
    assert verdicts["SMS"].allowed
