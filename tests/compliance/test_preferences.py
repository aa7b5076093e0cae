"""The public preference center and the one-click unsubscribe: a signed link, no login,
every change ledgered with its evidence, Global Privacy Control honoured where CCPA
applies, and a broken or foreign link changing nothing."""

import pytest
from django.core import signing
from django.test import Client
from django.urls import resolve, reverse

from compliance.models import ConsentRecord, Suppression
from compliance.services.links import list_unsubscribe_headers, person_language
from compliance.tokens import PREFERENCE_SALT, preference_token
from contacts.models import Contact
from tests.factories import ContactFactory, PrivacySettingsFactory, SuppressionFactory

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (Test)"


@pytest.fixture
def ada(org):
    PrivacySettingsFactory(org=org, mode="gdpr", brand_name="Acme News", brand_color="#0f766e")
    return ContactFactory(
        org=org, email="ada@example.com", country="DE", consent_email=True, consent_sms=None
    )


def page_url(contact) -> str:
    return reverse("compliance:preferences", args=[preference_token(contact)])


def unsubscribe_url(contact) -> str:
    return reverse("compliance:unsubscribe", args=[preference_token(contact)])


def visitor() -> Client:
    return Client(HTTP_USER_AGENT=UA, enforce_csrf_checks=True)


def rows(contact):
    """The contact's ledger, less the row the factory's own save wrote (as "system")."""
    return list(
        ConsentRecord.objects.for_org(contact.org_id)
        .filter(contact=contact)
        .exclude(actor_kind="system")
        .order_by("id")
    )


def test_the_page_shows_the_brand_and_the_channels(ada):
    answer = visitor().get(page_url(ada))
    assert answer.status_code == 200
    html = answer.content.decode()
    assert "Acme News" in html
    assert 'data-brand-color="#0f766e"' in html
    assert 'name="consent_email" id="pref-consent_email" checked' in html
    assert 'name="consent_sms" id="pref-consent_sms">' in html
    assert "Your communication preferences" in html
    assert answer["Cache-Control"].startswith("no-store") or "no-store" in answer["Cache-Control"]
    assert rows(ada) == []  # looking changes nothing


def test_the_page_speaks_german_to_a_german_contact(org, ada):
    ada.language = "de"
    ada.save(update_fields=["language"])
    html = visitor().get(page_url(ada)).content.decode()
    assert '<html lang="de"' in html
    assert "Ihre Kommunikationseinstellungen" in html
    assert "Von allem abmelden" in html
    assert "Your communication preferences" not in html


def test_the_app_itself_stays_in_english_after_a_german_page(ada, client_as, owner):
    ada.language = "de"
    ada.save(update_fields=["language"])
    visitor().get(page_url(ada))
    assert (
        "Ihre" not in client_as(owner).get(reverse("compliance:privacy_settings")).content.decode()
    )


@pytest.mark.parametrize(
    ("language", "expected"),
    [("de", "de"), ("de-AT", "de"), ("de_CH", "de"), ("German", "de"), ("fr", "en"), ("", "en")],
)
def test_the_contacts_language_picks_the_page_language(language, expected):
    assert person_language(Contact(language=language)) == expected


def test_every_change_is_ledgered_with_its_evidence(ada):
    answer = visitor().post(
        page_url(ada),
        {"consent_sms": "on", "consent_whatsapp": "on", "action": "save"},
        REMOTE_ADDR="198.51.100.7",
    )
    assert answer.status_code == 302
    assert answer["Location"].endswith("?done=saved")
    ada.refresh_from_db()
    assert (ada.consent_email, ada.consent_sms, ada.consent_whatsapp) == (False, True, True)
    assert ada.consent_phone is None  # never given, box left empty: still unknown
    changed = {(r.field, r.old_value, r.new_value) for r in rows(ada)}
    assert changed == {
        ("consent_email", "true", "false"),
        ("consent_sms", "", "true"),
        ("consent_whatsapp", "", "true"),
        ("consent_status", "unknown", "opted_in"),
    }
    for row in rows(ada):
        assert row.actor_kind == "preference_center"
        assert row.form == "Preference center"
        assert row.ip_address == "198.51.100.7"
        assert row.user_agent == UA
    assert "Your choices are saved." in visitor().get(answer["Location"]).content.decode()


def test_saving_without_a_change_writes_nothing(ada):
    visitor().post(page_url(ada), {"consent_email": "on", "action": "save"})
    assert rows(ada) == []


def test_unsubscribe_from_everything(org, ada):
    answer = visitor().post(page_url(ada), {"action": "unsubscribe"})
    assert answer.status_code == 302
    ada.refresh_from_db()
    assert [getattr(ada, f) for f in ("consent_email", "consent_sms", "consent_phone")] == [
        False,
        False,
        False,
    ]
    assert ada.consent_whatsapp is False
    assert ada.consent_status == Contact.ConsentStatus.OPTED_OUT
    assert {r.actor_kind for r in rows(ada)} == {"unsubscribe"}
    suppression = Suppression.objects.for_org(org).get(address="ada@example.com")
    assert (suppression.channel, suppression.reason, suppression.scope) == (
        "email",
        "unsubscribe",
        "marketing",
    )
    assert suppression.lifted_at is None


def test_turning_email_back_on_lifts_the_own_unsubscribe_only(org, ada):
    visitor().post(page_url(ada), {"action": "unsubscribe"})
    before = len(rows(ada))
    visitor().post(page_url(ada), {"consent_email": "on", "action": "save"})
    ada.refresh_from_db()
    assert ada.consent_email is True
    assert ada.consent_status == Contact.ConsentStatus.OPTED_IN
    new = rows(ada)[before:]
    assert {(r.field, r.new_value, r.actor_kind) for r in new} == {
        ("consent_email", "true", "preference_center"),
        ("consent_status", "opted_in", "preference_center"),
    }
    assert (
        new[0].consent_text == "I agree to receive marketing email. I can unsubscribe at any time."
    )
    lifted = Suppression.objects.for_org(org).get(address="ada@example.com")
    assert lifted.lifted_at is not None and lifted.lift_note


def test_a_bounce_stays_suppressed_when_email_is_turned_on(org, ada):
    SuppressionFactory(org=org, channel="email", address="ada@example.com", reason="bounce")
    ada.consent_email = False
    ada.save(update_fields=["consent_email"])
    visitor().post(page_url(ada), {"consent_email": "on", "action": "save"})
    assert Suppression.objects.for_org(org).get(address="ada@example.com").lifted_at is None


def test_gpc_is_honoured_where_ccpa_applies(org):
    PrivacySettingsFactory(org=org, mode="ccpa")
    sam = ContactFactory(org=org, email="sam@example.com", country="US")
    answer = visitor().get(page_url(sam), HTTP_SEC_GPC="1")
    assert answer.status_code == 200
    assert b"data-gpc-honoured" in answer.content
    sam.refresh_from_db()
    assert sam.do_not_sell is True
    (row,) = rows(sam)
    assert (row.field, row.new_value) == ("do_not_sell", "true")
    assert row.evidence["gpc"] is True
    # The signal again: honoured, nothing new in the ledger.
    assert b"data-gpc-honoured" in visitor().get(page_url(sam), HTTP_SEC_GPC="1").content
    assert len(rows(sam)) == 1


def test_gpc_is_not_applied_without_ccpa(org):
    PrivacySettingsFactory(org=org, mode="gdpr")
    eva = ContactFactory(org=org, email="eva@example.com", country="DE")
    answer = visitor().get(page_url(eva), HTTP_SEC_GPC="1")
    assert answer.status_code == 200
    assert b"data-gpc-honoured" not in answer.content
    eva.refresh_from_db()
    assert eva.do_not_sell is False
    assert rows(eva) == []


def test_one_click_unsubscribe_works_without_cookies(org, ada):
    client = Client(enforce_csrf_checks=True)
    answer = client.post(
        unsubscribe_url(ada),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    assert not answer.cookies
    ada.refresh_from_db()
    assert ada.consent_email is False
    assert ada.consent_status == Contact.ConsentStatus.OPTED_OUT
    assert {(r.field, r.actor_kind) for r in rows(ada)} == {
        ("consent_email", "unsubscribe"),
        ("consent_status", "unsubscribe"),
    }
    assert (
        Suppression.objects.for_org(org)
        .filter(address="ada@example.com", reason="unsubscribe", lifted_at__isnull=True)
        .exists()
    )


def test_one_click_needs_its_body(ada):
    answer = Client().post(unsubscribe_url(ada), {})
    assert answer.status_code == 400
    ada.refresh_from_db()
    assert ada.consent_email is True


def test_the_unsubscribe_page_asks_first(ada):
    answer = visitor().get(unsubscribe_url(ada))
    assert answer.status_code == 200
    assert b'name="List-Unsubscribe" value="One-Click"' in answer.content
    ada.refresh_from_db()
    assert ada.consent_email is True
    done = visitor().post(unsubscribe_url(ada), {"List-Unsubscribe": "One-Click", "from_page": "1"})
    assert done.status_code == 200
    assert b"You are unsubscribed" in done.content


def test_an_altered_link_gets_a_plain_page_and_changes_nothing(ada):
    token = preference_token(ada)
    altered = token[:-2] + ("x" if token[-2] != "x" else "y") + token[-1]
    url = reverse("compliance:preferences", args=[altered])
    assert visitor().get(url).status_code == 404
    answer = visitor().post(url, {"action": "unsubscribe"})
    assert answer.status_code == 404
    assert b"This link is not valid" in answer.content
    one_click = Client().post(
        reverse("compliance:unsubscribe", args=[altered]), {"List-Unsubscribe": "One-Click"}
    )
    assert one_click.status_code == 404
    ada.refresh_from_db()
    assert ada.consent_email is True
    assert rows(ada) == []


def test_another_organizations_link_finds_nothing(org, other_org, ada):
    forged = signing.dumps([other_org.public_id.hex, ada.public_id.hex, 1], salt=PREFERENCE_SALT)
    answer = visitor().post(
        reverse("compliance:preferences", args=[forged]), {"action": "unsubscribe"}
    )
    assert answer.status_code == 404
    ada.refresh_from_db()
    assert ada.consent_status == "unknown"
    assert rows(ada) == []


def test_a_withdrawn_link_version_is_refused(ada):
    old = signing.dumps([ada.org.public_id.hex, ada.public_id.hex, 0], salt=PREFERENCE_SALT)
    assert visitor().get(reverse("compliance:preferences", args=[old])).status_code == 404


def test_list_unsubscribe_headers_point_at_the_one_click_url(ada, settings):
    settings.SITE_URL = "https://crm.example.com"
    headers = list_unsubscribe_headers(ada)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    value = headers["List-Unsubscribe"]
    assert value.startswith("<https://crm.example.com/compliance/u/") and value.endswith("/>")
    assert resolve(value[len("<https://crm.example.com") : -1]).url_name == "unsubscribe"
