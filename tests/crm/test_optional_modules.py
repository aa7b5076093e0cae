"""Optional modules (Settings → Organization → Modules): the orders registry and custom objects
are off for a new organization; only members who may edit settings turn them on or off; each
change is audited; while a module is off its pages say so and its menu entries are hidden."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.test import RequestFactory

from crm.decorators import module_enabled
from crm.models import AuditEvent, Organization
from crm.optional_modules import OPTIONAL_MODULE_KEYS, is_enabled
from crm.permissions import Policy
from crm.services import Actor, organization_create
from crm.services.org_settings import organization_set_modules

from ..factories import UserFactory, member

pytestmark = pytest.mark.django_db

PAGE = "/settings/organization/"
SAVE = "/settings/organization/modules/"


def test_a_new_organization_has_every_optional_module_off():
    org = organization_create(name="Fresh Org", owner=UserFactory())
    assert org.enabled_modules == []
    assert not any(is_enabled(org, key) for key in OPTIONAL_MODULE_KEYS)


def test_an_unknown_module_key_is_a_programming_error(org):
    with pytest.raises(ValueError):
        is_enabled(org, "payments")


def test_the_page_lists_the_modules_with_what_they_do(owner, client_as):
    page = client_as(owner).get(PAGE).content.decode()
    assert "Orders registry" in page
    assert "never charges" in page
    assert "Custom objects" in page
    assert 'name="modules" value="orders"' in page


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_admins_turn_modules_on_and_off_and_each_change_is_audited(org, client_as, role):
    client = client_as(member(org, role))

    response = client.post(SAVE, {"modules": ["orders", "custom_objects"]})
    assert response.status_code == 302
    org.refresh_from_db()
    assert org.enabled_modules == ["orders", "custom_objects"]

    client.post(SAVE, {"modules": ["custom_objects"]})
    org.refresh_from_db()
    assert org.enabled_modules == ["custom_objects"]

    client.post(SAVE, {"modules": ["custom_objects"]})  # no change: no audit row
    events = AuditEvent.objects.for_org(org).filter(verb="organization.modules_changed")
    assert [e.changes["enabled_modules"] for e in events.order_by("id")] == [
        [[], ["orders", "custom_objects"]],
        [["orders", "custom_objects"], ["custom_objects"]],
    ]


@pytest.mark.parametrize("role", ["executive", "team", "viewer"])
def test_members_without_settings_edit_cannot_switch_modules(org, client_as, role):
    response = client_as(member(org, role)).post(SAVE, {"modules": ["orders"]})
    assert response.status_code == 403
    org.refresh_from_db()
    assert org.enabled_modules == []


def test_the_service_checks_the_right_and_refuses_unknown_modules(org):
    rep = member(org, "team")
    with pytest.raises(PermissionDenied):
        organization_set_modules(
            org=org, actor=Actor(user=rep.user), policy=Policy(rep), enabled={"orders"}
        )
    admin = member(org, "admin")
    with pytest.raises(ValidationError) as exc:
        organization_set_modules(
            org=org,
            actor=Actor(user=admin.user),
            policy=Policy(admin),
            enabled={"orders", "<script>x</script>"},
        )
    assert "There is no module" in str(exc.value)
    assert Organization.objects.get(pk=org.pk).enabled_modules == []


def test_an_unknown_module_posted_to_the_page_is_a_message_not_an_error(owner, client_as, org):
    response = client_as(owner).post(SAVE, {"modules": ["orders", "bogus"]}, follow=True)
    assert response.status_code == 200
    assert "There is no module" in response.content.decode()
    org.refresh_from_db()
    assert org.enabled_modules == []


def _view(request):
    return HttpResponse("the module's page")


def test_a_page_of_a_module_that_is_off_says_so_with_404(org, owner, client_as):
    request = RequestFactory().get("/anything/")
    request.user = owner.user
    request.org = org
    request.membership = owner
    guarded = module_enabled("orders")(_view)

    response = guarded(request)
    assert response.status_code == 404
    assert b"Orders registry is off" in response.content
    assert b"the module's page" not in response.content

    org.enabled_modules = ["orders"]
    response = guarded(request)
    assert response.status_code == 200
    assert response.content == b"the module's page"
