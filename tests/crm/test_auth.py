"""Sign-up, email verification, login, logout, password reset and change (django-allauth
with our templates, forms and adapters)."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from crm.models import AuditEvent, Membership, Organization, Role, UserPreference
from crm.permissions import BUILTIN_ROLE_KEYS
from tests.factories import PASSWORD, UserFactory, member

User = get_user_model()

NEW_PASSWORD = "a-fresh-passphrase-77"


@pytest.fixture(autouse=True)
def _test_speed_and_limits(settings):
    # allauth counts attempts in the shared Redis cache; repeated runs must not trip it.
    # A fast hasher keeps the many test users cheap.
    settings.ACCOUNT_RATE_LIMITS = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def signup_data(**overrides):
    data = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@analytical.test",
        "organization_name": "Analytical Engines",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    data.update(overrides)
    return data


def link_in(message, pattern):
    found = re.search(pattern, message.body)
    assert found, f"no link matching {pattern} in:\n{message.body}"
    return found.group(0)


# Sign-up -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_signup_creates_org_with_user_as_owner_and_builtin_roles(client):
    response = client.post(reverse("account_signup"), signup_data())

    assert response.status_code == 302
    user = User.objects.get(email="ada@analytical.test")
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")
    org = Organization.objects.get(name="Analytical Engines")
    membership = Membership.objects.get(user=user, org=org)
    assert membership.is_active
    assert membership.role.key == "owner"
    assert set(Role.objects.for_org(org).values_list("key", flat=True)) == set(BUILTIN_ROLE_KEYS)
    assert AuditEvent.objects.filter(org=org, verb="organization.created").exists()
    assert UserPreference.objects.get(user=user).last_org == org


@pytest.mark.django_db
def test_signup_requires_email_verification_before_the_app_opens(client, mailoutbox):
    response = client.post(reverse("account_signup"), signup_data())

    assert response["Location"] == reverse("account_email_verification_sent")
    page = client.get(response["Location"])
    assert b"Check your email" in page.content
    assert not EmailAddress.objects.get(email="ada@analytical.test").verified
    assert client.get(reverse("crm:dashboard")).status_code == 302
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ada@analytical.test"]


@pytest.mark.django_db
def test_confirmation_link_logs_in_and_lands_on_the_dashboard(client, mailoutbox):
    client.post(reverse("account_signup"), signup_data())
    link = link_in(mailoutbox[0], r"http://testserver/accounts/confirm-email/\S+/")

    confirm_page = client.get(link)
    assert confirm_page.status_code == 200
    assert b"ada@analytical.test" in confirm_page.content
    assert b"auth-card" in confirm_page.content

    response = client.post(link, follow=True)

    assert response.redirect_chain[-1][0] == reverse("crm:dashboard")
    assert response.status_code == 200
    assert response.wsgi_request.org.name == "Analytical Engines"
    assert EmailAddress.objects.get(email="ada@analytical.test").verified


@pytest.mark.django_db
def test_signup_with_missing_organization_name_shows_error_in_place(client):
    response = client.post(reverse("account_signup"), signup_data(organization_name="  "))

    assert response.status_code == 200
    form = response.context["form"]
    assert "organization_name" in form.errors
    assert b'id="id_organization_name_error"' in response.content
    assert b'aria-invalid="true"' in response.content
    assert not User.objects.filter(email="ada@analytical.test").exists()
    assert not Organization.objects.filter(name__iexact="Analytical Engines").exists()


@pytest.mark.django_db
def test_signup_with_taken_email_creates_nothing(client, org):
    member(org, "team", user=UserFactory(email="ada@analytical.test"))
    orgs_before = Organization.objects.count()

    client.post(reverse("account_signup"), signup_data())

    assert Organization.objects.count() == orgs_before
    assert User.objects.filter(email="ada@analytical.test").count() == 1


@pytest.mark.django_db
def test_signup_page_has_labels_and_autocomplete_hints(client):
    page = client.get(reverse("account_signup")).content.decode()

    for field, hint in [
        ("first_name", "given-name"),
        ("last_name", "family-name"),
        ("email", "email"),
        ("organization_name", "organization"),
        ("password1", "new-password"),
    ]:
        assert f'<label for="id_{field}">' in page
        tag = re.search(rf'<input[^>]*name="{field}"[^>]*>', page).group(0)
        assert f'autocomplete="{hint}"' in tag, tag
    assert "Continue with Google" not in page


# Google --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_google_button_hidden_without_oauth_settings(client, settings):
    settings.GOOGLE_LOGIN_ENABLED = False
    assert b"Continue with Google" not in client.get(reverse("account_login")).content


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_google_sign_in_without_credentials_is_not_found_not_a_crash(client, settings, method):
    settings.SOCIALACCOUNT_PROVIDERS = {"google": {}}

    response = getattr(client, method)(reverse("google_login"))

    assert response.status_code == 404


@pytest.mark.django_db
def test_google_button_posts_to_allauth_provider_login_when_configured(client, settings):
    settings.GOOGLE_LOGIN_ENABLED = True
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {"APPS": [{"client_id": "test-client", "secret": "test-secret", "key": ""}]}
    }

    page = client.get(reverse("account_login")).content.decode()

    assert "Continue with Google" in page
    assert 'action="/accounts/google/login/?process=login"' in page


@pytest.mark.django_db
def test_google_signup_founds_an_organization_through_the_social_form(rf, settings):
    from allauth.socialaccount.models import SocialAccount, SocialLogin
    from django.contrib.sessions.middleware import SessionMiddleware

    from crm.adapters import SocialAccountAdapter
    from crm.forms import SocialSignupForm

    request = rf.post("/accounts/3rdparty/signup/")
    SessionMiddleware(lambda r: None).process_request(request)
    sociallogin = SocialLogin(
        user=User(email="grace@navy.test", first_name="Grace", last_name="Hopper"),
        account=SocialAccount(provider="google", uid="g-123", extra_data={}),
        email_addresses=[EmailAddress(email="grace@navy.test", verified=True, primary=True)],
    )
    form = SocialSignupForm(
        data={
            "first_name": "Grace",
            "last_name": "Hopper",
            "email": "grace@navy.test",
            "organization_name": "Compilers Inc",
        },
        sociallogin=sociallogin,
    )
    assert form.is_valid(), form.errors

    user = SocialAccountAdapter().save_user(request, sociallogin, form=form)

    membership = Membership.objects.get(user=user)
    assert membership.org.name == "Compilers Inc"
    assert membership.role.key == "owner"
    assert request.session["active_org_id"] == membership.org_id


# Login and logout ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_login_with_email_and_password_lands_on_dashboard(client, org):
    membership = member(org, "team", user=UserFactory(email="rep@acme.test"))

    response = client.post(
        reverse("account_login"), {"login": "REP@acme.test", "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("crm:dashboard")
    assert response.wsgi_request.user == membership.user
    assert response.wsgi_request.org == org


@pytest.mark.django_db
def test_login_with_wrong_password_shows_error_and_keeps_email(client, org):
    member(org, "team", user=UserFactory(email="rep@acme.test"))

    response = client.post(reverse("account_login"), {"login": "rep@acme.test", "password": "x"})

    assert response.status_code == 200
    assert response.context["form"].errors
    page = response.content.decode()
    assert 'class="errorlist nonfield"' in page
    assert 'value="rep@acme.test"' in page
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_login_page_prefills_email_from_link_and_hints_autocomplete(client):
    page = client.get(reverse("account_login") + "?email=kim%40acme.test").content.decode()

    assert 'value="kim@acme.test"' in page
    assert 'autocomplete="email"' in page
    assert 'autocomplete="current-password"' in page
    assert "auth-card" in page


@pytest.mark.django_db
def test_logout_asks_for_confirmation_then_signs_out(client_as, owner):
    client = client_as(owner)

    confirm = client.get(reverse("account_logout"))
    assert confirm.status_code == 200
    assert b"Sign out?" in confirm.content

    client.post(reverse("account_logout"))

    assert client.get(reverse("crm:dashboard"))["Location"].startswith(reverse("account_login"))


# Passwords -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_password_reset_mails_a_link_that_sets_a_new_password(org, mailoutbox):
    membership = member(org, "team", user=UserFactory(email="forgetful@acme.test"))
    client = Client()

    response = client.post(reverse("account_reset_password"), {"email": "forgetful@acme.test"})
    assert response["Location"] == reverse("account_reset_password_done")
    assert b"Check your email" in client.get(response["Location"]).content
    link = link_in(mailoutbox[0], r"http://testserver/accounts/password/reset/key/\S+/")

    form_page = client.get(link, follow=True)
    assert b"Choose a new password" in form_page.content
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        follow=True,
    )

    assert b"Password changed" in done.content
    membership.user.refresh_from_db()
    assert membership.user.check_password(NEW_PASSWORD)
    assert Client().login(email="forgetful@acme.test", password=NEW_PASSWORD)


@pytest.mark.django_db
def test_password_reset_link_with_bad_key_says_so(client, org):
    membership = member(org, "team")
    from allauth.account.utils import user_pk_to_url_str

    url = reverse(
        "account_reset_password_from_key",
        kwargs={"uidb36": user_pk_to_url_str(membership.user), "key": "not-a-key"},
    )

    response = client.get(url, follow=True)

    assert b"Link expired" in response.content


@pytest.mark.django_db
def test_password_change_keeps_user_signed_in(client_as, owner):
    client = client_as(owner)
    page = client.get(reverse("account_change_password"))
    assert b"Change password" in page.content
    assert b'autocomplete="current-password"' in page.content

    client.post(
        reverse("account_change_password"),
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    owner.user.refresh_from_db()
    assert owner.user.check_password(NEW_PASSWORD)
    assert client.get(reverse("crm:dashboard")).status_code == 200


def test_admin_login_goes_through_the_rate_limited_sign_in(client, db):
    """The admin's own password form had no rate limit; it now sends people to the app's
    sign-in page, which allauth limits."""
    response = client.get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))

    posted = client.post(
        "/admin/login/", {"username": "x@example.test", "password": "guess", "next": "/admin/"}
    )
    assert posted.status_code == 302
    assert posted["Location"].startswith(reverse("account_login"))


def test_sign_in_is_rate_limited_per_address(client, db, settings):
    import random

    address = f"198.51.{random.randint(0, 255)}.{random.randint(1, 254)}"  # a fresh budget
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/m/ip,3/5m/key"}
    url = reverse("account_login")
    limited = []
    for attempt in range(5):
        response = client.post(
            url,
            {"login": f"nobody{attempt}@example.test", "password": "wrong"},
            REMOTE_ADDR=address,
            # A forged header must not give each attempt a fresh address.
            HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}",
        )
        limited.append("Too many failed login attempts" in response.content.decode())

    assert limited == [False, False, False, True, True]
