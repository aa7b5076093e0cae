"""Settings → Organization: the "Send samples to the AI provider" switch. Off by default;
only members who may edit settings change it; it says what is sent and to whom; every change
is audited; without a provider on the deployment it cannot be turned on."""

import pytest
from django.urls import reverse

from crm.models import AuditEvent, Organization
from crm.navigation import navigation_for
from crm.permissions import Policy
from crm.services import Actor, organization_create
from crm.services.org_settings import organization_set_ai_send_samples

from ..factories import UserFactory, member

pytestmark = pytest.mark.django_db

URL = "/settings/organization/"


@pytest.fixture
def provider(settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_MODEL = "gpt-4o-mini"


def test_the_page_lives_under_settings():
    assert reverse("crm:organization_settings") == URL


def test_a_new_organization_does_not_send_samples():
    org = organization_create(name="Fresh Org", owner=UserFactory())
    assert org.ai_send_samples is False


def test_the_page_says_what_is_sent_and_to_whom(owner, client_as, provider):
    page = client_as(owner).get(URL).content.decode()
    assert "Send samples to the AI provider" in page
    assert "column names" in page
    assert "up to 5 sample values" in page
    assert "OpenAI" in page
    assert "gpt-4o-mini" in page
    assert 'name="ai_send_samples"' in page


def test_a_custom_endpoint_is_named_by_its_host_only(owner, client_as, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = "http://user:secret@llm.internal.example:8080/v1"
    page = client_as(owner).get(URL).content.decode()
    assert "llm.internal.example" in page
    assert "secret" not in page


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_and_admin_turn_it_on_and_off_and_each_change_is_audited(
    org, client_as, provider, role
):
    who = member(org, role)
    client = client_as(who)
    response = client.post(URL, {"ai_send_samples": "on"})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.ai_send_samples is True
    response = client.post(URL, {})
    org.refresh_from_db()
    assert org.ai_send_samples is False
    events = AuditEvent.objects.for_org(org).filter(verb="organization.settings_changed")
    assert [e.changes for e in events.order_by("id")] == [
        {"ai_send_samples": [False, True]},
        {"ai_send_samples": [True, False]},
    ]
    assert all(e.actor_user_id == who.user_id for e in events)


def test_saving_without_a_change_writes_no_audit_event(org, owner, client_as, provider):
    client_as(owner).post(URL, {})
    assert not AuditEvent.objects.for_org(org).filter(verb="organization.settings_changed")


@pytest.mark.parametrize("role", ["executive", "team", "viewer"])
def test_members_without_settings_rights_can_neither_see_nor_change_it(
    org, client_as, provider, role
):
    client = client_as(member(org, role))
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"ai_send_samples": "on"}).status_code == 403
    org.refresh_from_db()
    assert org.ai_send_samples is False


def test_a_role_that_may_only_view_settings_sees_the_switch_disabled_and_cannot_post(
    org, client_as, provider
):
    role = member(org, "viewer").role
    role.permissions = {**role.permissions, "settings": {"access": True, "view": True}}
    role.save()
    client = client_as(member(org, "viewer"))
    page = client.get(URL).content.decode()
    assert "disabled" in page
    assert client.post(URL, {"ai_send_samples": "on"}).status_code == 403
    org.refresh_from_db()
    assert org.ai_send_samples is False


def test_the_service_refuses_a_member_without_settings_edit(org, provider):
    from django.core.exceptions import PermissionDenied

    executive = member(org, "executive")
    with pytest.raises(PermissionDenied):
        organization_set_ai_send_samples(
            org=org,
            actor=Actor.for_user(executive.user),
            policy=Policy(executive),
            enabled=True,
        )
    assert Organization.objects.get(pk=org.pk).ai_send_samples is False


def test_without_a_provider_the_page_says_so_and_refuses_to_turn_it_on(
    org, owner, client_as, settings
):
    settings.OPENAI_API_KEY = ""
    client = client_as(owner)
    page = client.get(URL).content.decode()
    assert "No AI provider is configured on this deployment" in page
    response = client.post(URL, {"ai_send_samples": "on"})
    assert response.status_code == 400
    assert "No AI provider is configured on this deployment" in response.content.decode()
    org.refresh_from_db()
    assert org.ai_send_samples is False


def test_without_a_provider_a_setting_left_on_can_still_be_turned_off(
    org, owner, client_as, settings
):
    org.ai_send_samples = True
    org.save()
    settings.OPENAI_API_KEY = ""
    response = client_as(owner).post(URL, {})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.ai_send_samples is False


def test_one_organization_changing_it_leaves_the_other_alone(
    org, other_org, owner, client_as, provider
):
    client_as(owner).post(URL, {"ai_send_samples": "on"})
    other_org.refresh_from_db()
    assert other_org.ai_send_samples is False


def test_the_settings_menu_shows_it_to_those_who_may_see_settings(org):
    _, admin_settings = navigation_for(Policy(member(org, "admin")), URL)
    _, team_settings = navigation_for(Policy(member(org, "team")), URL)
    entry = next(e for e in admin_settings if e["label"] == "Organization")
    assert entry["url"] == URL and entry["active"]
    assert "Organization" not in [e["label"] for e in team_settings]
