"""Settings → Privacy: only roles with the compliance module see it, only those who may edit
compliance change it, bad values are refused field by field, and every change is audited."""

import pytest
from django.urls import reverse

from compliance.models import PrivacySettings
from crm.models import AuditEvent
from crm.navigation import navigation_for
from crm.permissions import Policy
from tests.factories import PrivacySettingsFactory, member

pytestmark = pytest.mark.django_db

URL = reverse("compliance:privacy_settings")
VALID = {
    "mode": "both",
    "confirmation_hours": "24",
    "consent_text": "Yes, send me news about products and events.",
    "consent_text_version": "v2",
    "brand_name": "Acme News",
    "brand_color": "#0F766E",
}


def stored(org) -> PrivacySettings | None:
    return PrivacySettings.objects.for_org(org).first()


def test_an_owner_saves_the_settings_and_it_is_audited(org, owner, client_as):
    answer = client_as(owner).post(URL, VALID)
    assert answer.status_code == 302
    row = stored(org)
    assert (row.mode, row.confirmation_hours, row.brand_color) == ("both", 24, "#0f766e")
    assert row.consent_text == VALID["consent_text"]
    assert (row.consent_text_version, row.brand_name) == ("v2", "Acme News")
    event = AuditEvent.objects.for_org(org).get(verb="privacy.settings_changed")
    assert event.actor_user_id == owner.user_id
    assert event.changes["mode"] == [None, "both"]  # a first save: no row before


def test_the_page_explains_each_mode(org, owner, client_as):
    PrivacySettingsFactory(org=org, mode="ccpa")
    html = client_as(owner).get(URL).content.decode()
    for words in ("No privacy regime", "double opt-in", "Global Privacy Control", "country"):
        assert words in html
    assert 'id="mode-ccpa" value="ccpa" aria-describedby="mode-ccpa-help" checked' in html


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("brand_color", "red"),
        ("brand_color", "#12345"),
        ("brand_color", "#12345g"),
        ("confirmation_hours", "0"),
        ("confirmation_hours", "721"),
        ("mode", "everything"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_saved(org, owner, client_as, field, value):
    answer = client_as(owner).post(URL, {**VALID, field: value})
    assert answer.status_code == 400
    assert b'class="errorlist"' in answer.content
    assert stored(org) is None
    assert not AuditEvent.objects.for_org(org).filter(verb="privacy.settings_changed").exists()


def test_a_team_rep_gets_403(org, client_as):
    rep = member(org, "team")
    assert client_as(rep).get(URL).status_code == 403
    assert client_as(rep).post(URL, VALID).status_code == 403
    assert stored(org) is None


def test_a_director_sees_but_cannot_change(org, client_as):
    director = member(org, "director")  # compliance: view only
    page = client_as(director).get(URL)
    assert page.status_code == 200
    assert b"Save privacy settings" not in page.content
    assert client_as(director).post(URL, VALID).status_code == 403
    assert stored(org) is None


def test_the_settings_menu_lists_privacy_for_compliance_roles_only(org):
    def entries(role_key):
        membership = member(org, role_key)
        _, settings_entries = navigation_for(Policy(membership), "/")
        return [entry["label"] for entry in settings_entries]

    assert "Privacy" in entries("owner")
    assert "Privacy" in entries("director")
    assert "Privacy" not in entries("team")


def test_another_organizations_settings_stay_apart(org, other_org, client_as):
    client_as(member(other_org, "owner")).post(URL, VALID)
    assert stored(org) is None
    assert stored(other_org).mode == "both"
