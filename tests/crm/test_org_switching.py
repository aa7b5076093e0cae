"""Every request works in exactly one organization: switching, remembering the choice, and
what a deactivated member finds."""

import pytest
from django.test import Client
from django.urls import reverse

from crm.models import UserPreference
from crm.services import Actor
from crm.services.members import member_deactivate
from tests.factories import PASSWORD, UserFactory, member


@pytest.fixture(autouse=True)
def _test_speed_and_limits(settings):
    # allauth counts attempts in the shared Redis cache; repeated runs must not trip it.
    # A fast hasher keeps the many test users cheap.
    settings.ACCOUNT_RATE_LIMITS = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def two_org_user(org, other_org):
    """A user who is a member of both test organizations (working in `org` first)."""
    user = UserFactory(email="both@example.test")
    return member(org, "admin", user=user), member(other_org, "viewer", user=user)


def switch(client, target_org):
    return client.post(reverse("crm:switch_org", args=[target_org.public_id]), {"next": "/"})


@pytest.mark.django_db
def test_switching_changes_the_org_of_every_request(client_as, two_org_user, org, other_org):
    in_org, _ = two_org_user
    client = client_as(in_org)
    assert client.get(reverse("crm:dashboard")).wsgi_request.org == org

    response = switch(client, other_org)

    assert response["Location"] == "/"
    page = client.get(reverse("crm:dashboard"))
    assert page.wsgi_request.org == other_org
    assert page.wsgi_request.membership.role.key == "viewer"
    assert f"Now working in {other_org.name}" in page.content.decode()


@pytest.mark.django_db
def test_switch_is_remembered_for_the_next_sign_in(client_as, two_org_user, other_org):
    in_org, _ = two_org_user
    switch(client_as(in_org), other_org)

    assert UserPreference.objects.get(user=in_org.user).last_org == other_org
    fresh = Client()
    fresh.post(reverse("account_login"), {"login": "both@example.test", "password": PASSWORD})
    assert fresh.get(reverse("crm:dashboard")).wsgi_request.org == other_org


@pytest.mark.django_db
def test_org_switcher_lists_only_active_memberships(client_as, two_org_user, other_org, org):
    in_org, in_other = two_org_user
    owner_of_other = member(other_org, "owner")
    member_deactivate(membership=in_other, actor=Actor.for_user(owner_of_other.user))

    html = client_as(in_org).get(reverse("crm:dashboard")).content.decode()

    assert reverse("crm:switch_org", args=[other_org.public_id]) not in html


@pytest.mark.django_db
def test_cannot_switch_to_an_org_you_do_not_belong_to(client_as, owner, other_org, org):
    client = client_as(owner)

    response = switch(client, other_org)

    assert response.status_code == 404
    assert client.get(reverse("crm:dashboard")).wsgi_request.org == org
    assert not UserPreference.objects.filter(user=owner.user, last_org=other_org).exists()


@pytest.mark.django_db
def test_cannot_switch_to_an_org_that_deactivated_you(client_as, two_org_user, other_org, org):
    in_org, in_other = two_org_user
    member_deactivate(membership=in_other, actor=Actor.for_user(member(other_org, "owner").user))
    client = client_as(in_org)

    assert switch(client, other_org).status_code == 404
    assert client.get(reverse("crm:dashboard")).wsgi_request.org == org


@pytest.mark.django_db
def test_deactivated_member_of_a_single_org_lands_on_no_access(client_as, owner, org):
    leaving = member(org, "team", user=UserFactory(email="gone@example.test"))
    member_deactivate(membership=leaving, actor=Actor.for_user(owner.user))
    client = Client()

    response = client.post(
        reverse("account_login"), {"login": "gone@example.test", "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("crm:no_access")
    assert response.status_code == 403
    assert response.wsgi_request.org is None
    assert client.get(reverse("crm:members")).status_code == 302
    # An open session loses access at once too: the middleware reads the membership per request.
    still_open = client_as(leaving)
    assert still_open.get(reverse("crm:dashboard"))["Location"] == reverse("crm:no_access")


@pytest.mark.django_db
def test_deactivated_in_current_org_lands_in_the_other_one(client_as, two_org_user, org, other_org):
    in_org, _ = two_org_user
    client = client_as(in_org)  # the session works in `org`
    UserPreference.objects.create(user=in_org.user, last_org=org)
    member_deactivate(membership=in_org, actor=Actor.for_user(member(org, "owner").user))

    page = client.get(reverse("crm:dashboard"))

    assert page.status_code == 200
    assert page.wsgi_request.org == other_org
    assert client.get(reverse("crm:members")).status_code == 403  # viewer there
