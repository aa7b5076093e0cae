"""Inviting people by email and accepting the link: as an existing user, as a new user
signing up from it, and every way a link can be refused."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.models import AuditEvent, Invitation, Membership, Organization, OutboxEvent, UserPreference
from crm.services import Actor
from crm.services.members import (
    InvitationError,
    MemberError,
    invitation_accept,
    invitation_create,
    invitation_revoke,
    member_deactivate,
)
from tests.factories import PASSWORD, TeamFactory, UserFactory, member, pending_invitation, role

User = get_user_model()


@pytest.fixture(autouse=True)
def _test_speed_and_limits(settings):
    # allauth counts attempts in the shared Redis cache; repeated runs must not trip it.
    # A fast hasher keeps the many test users cheap.
    settings.ACCOUNT_RATE_LIMITS = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def invite(django_capture_on_commit_callbacks):
    """invite(client, org, email, role_key, team): post the invite form; the email leaves on
    commit, so commit callbacks run."""

    def send(client, org, email, role_key="team", team=None):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                reverse("crm:member_invite"),
                {
                    "invite-email": email,
                    "invite-role": str(role(org, role_key).public_id),
                    "invite-team": str(team.public_id) if team else "",
                },
            )

    return send


def invite_link(message):
    found = re.search(r"http://testserver/invitations/[\w-]+/", message.body)
    assert found, message.body
    return found.group(0)


def path_of(link):
    return link.removeprefix("http://testserver")


def token_of(link):
    return link.rstrip("/").rsplit("/", 1)[-1]


# Sending -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_invite_emails_a_link_and_stores_only_its_hash(client_as, owner, org, mailoutbox, invite):
    team = TeamFactory(org=org, name="Enterprise")

    response = invite(client_as(owner), org, "New.Hire@Example.test", "director", team)

    assert response.status_code == 302
    invitation = Invitation.objects.get(org=org)
    assert invitation.email == "new.hire@example.test"
    assert invitation.role.key == "director"
    assert invitation.team == team
    assert invitation.invited_by == owner.user
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["new.hire@example.test"]
    assert org.name in message.subject
    link = invite_link(message)
    token = token_of(link)
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invitation.objects.filter(pk=invitation.pk).values().get())
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert link in html
    assert "Director" in message.body


@pytest.mark.django_db
def test_invite_is_audited_and_emits_member_invited(client_as, owner, org, invite):
    invite(client_as(owner), org, "pat@example.test")

    invitation = Invitation.objects.get(org=org)
    event = AuditEvent.objects.get(org=org, verb="member.invited")
    assert event.actor_user == owner.user
    assert event.object_id == str(invitation.public_id)
    assert event.changes["email"] == [None, "pat@example.test"]
    assert event.changes["role"] == [None, "Team"]
    outbox = OutboxEvent.objects.get(org=org, event_type="member.invited")
    assert outbox.payload["email"] == "pat@example.test"
    assert outbox.payload["role"] == "team"


@pytest.mark.django_db
def test_invitation_expires_after_configured_days(org, owner, settings):
    settings.INVITATION_TTL_DAYS = 3

    invitation = invitation_create(
        org=org, actor=Actor.for_user(owner.user), email="x@example.test", role=role(org, "team")
    )

    expected = timezone.now() + timedelta(days=3)
    assert abs(invitation.expires_at - expected) < timedelta(minutes=1)


@pytest.mark.django_db
def test_inviting_an_active_member_is_refused_in_place(client_as, owner, org, members, invite):
    email = members["viewer"].user.email.upper()

    response = invite(client_as(owner), org, email)

    assert response.status_code == 200
    assert "already a member" in response.content.decode()
    assert not Invitation.objects.filter(org=org).exists()


@pytest.mark.django_db
def test_inviting_a_pending_email_again_refreshes_the_same_invitation(
    client_as, owner, org, mailoutbox, invite
):
    client = client_as(owner)
    invite(client, org, "pat@example.test", "viewer")
    first_link = invite_link(mailoutbox[0])

    invite(client, org, "PAT@example.test", "support")

    invitation = Invitation.objects.get(org=org)
    assert invitation.role.key == "support"
    second_link = invite_link(mailoutbox[1])
    assert second_link != first_link
    assert invitation.token_hash == hashlib.sha256(token_of(second_link).encode()).hexdigest()
    assert AuditEvent.objects.filter(org=org, verb="member.reinvited").count() == 1
    # The first link no longer opens anything.
    assert Client().get(path_of(first_link)).status_code == 404


@pytest.mark.django_db
def test_team_role_gets_403_inviting(client_as, members, org, invite):
    client = client_as(members["team"])

    response = invite(client, org, "pat@example.test")

    assert response.status_code == 403
    assert client.get(reverse("crm:members")).status_code == 403
    assert not Invitation.objects.filter(org=org).exists()


@pytest.mark.django_db
def test_admin_cannot_invite_an_owner(client_as, members, org, invite):
    response = invite(client_as(members["admin"]), org, "boss@example.test", "owner")

    assert response.status_code == 200
    assert "invite-role" in response.context["invite_form"].add_prefix("role")
    assert response.context["invite_form"].errors["role"]
    assert not Invitation.objects.filter(org=org).exists()
    with pytest.raises(PermissionDenied):
        invitation_create(
            org=org,
            actor=Actor.for_user(members["admin"].user),
            email="boss@example.test",
            role=role(org, "owner"),
        )


@pytest.mark.django_db
def test_owner_can_invite_an_owner(org, owner):
    invitation = invitation_create(
        org=org, actor=Actor.for_user(owner.user), email="co@example.test", role=role(org, "owner")
    )
    assert invitation.role.is_owner


@pytest.mark.django_db
def test_revoking_an_invitation_kills_the_link_and_is_audited(client_as, owner, org):
    invitation = pending_invitation(org, "pat@example.test")

    response = client_as(owner).post(reverse("crm:invitation_revoke", args=[invitation.public_id]))

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == "revoked"
    assert AuditEvent.objects.filter(org=org, verb="member.invitation_revoked").exists()
    page = Client().get(reverse("crm:accept_invitation", args=[invitation.raw_token]))
    assert page.status_code == 410
    assert "revoked" in page.content.decode()


@pytest.mark.django_db
def test_revoking_another_orgs_invitation_is_404(client_as, owner, other_org):
    invitation = pending_invitation(other_org)

    response = client_as(owner).post(reverse("crm:invitation_revoke", args=[invitation.public_id]))

    assert response.status_code == 404
    invitation.refresh_from_db()
    assert invitation.status == "pending"


# Accepting as an existing user ---------------------------------------------------------------


@pytest.mark.django_db
def test_existing_user_accepts_and_joins_with_the_invited_role(
    client_as, owner, org, other_org, mailoutbox, invite
):
    elsewhere = member(other_org, "owner", user=UserFactory(email="kim@example.test"))
    team = TeamFactory(org=org, name="Support desk")
    invite(client_as(owner), org, "Kim@Example.test", "support", team)
    link = path_of(invite_link(mailoutbox[0]))
    client = client_as(elsewhere)

    page = client.get(link)
    assert page.status_code == 200
    assert org.name in page.content.decode()
    assert "Support" in page.content.decode()
    response = client.post(link)

    assert response["Location"] == reverse("crm:dashboard")
    membership = Membership.objects.get(org=org, user=elsewhere.user)
    assert membership.is_active and membership.role.key == "support" and membership.team == team
    assert client.get(reverse("crm:dashboard")).wsgi_request.org == org
    assert UserPreference.objects.get(user=elsewhere.user).last_org == org
    invitation = Invitation.objects.get(org=org)
    assert invitation.accepted_by == elsewhere.user and invitation.status == "accepted"
    joined = AuditEvent.objects.get(org=org, verb="member.joined")
    assert joined.actor_user == elsewhere.user
    assert joined.changes["role"] == [None, "Support"]
    assert OutboxEvent.objects.filter(org=org, event_type="member.joined").exists()


@pytest.mark.django_db
def test_visitor_is_offered_sign_in_or_sign_up_with_email_prefilled(org):
    invitation = pending_invitation(org, "new@example.test")
    client = Client()

    page = client.get(reverse("crm:accept_invitation", args=[invitation.raw_token]))

    assert page.status_code == 200
    html = page.content.decode()
    link = reverse("crm:accept_invitation", args=[invitation.raw_token])
    assert "/accounts/signup/?email=new%40example.test" in html
    assert "/accounts/login/?next=" + link.replace("/", "%2F") in html
    login_page = client.get(page.context["login_url"])
    assert 'value="new@example.test"' in login_page.content.decode()
    signup_page = client.get(page.context["signup_url"])
    assert 'value="new@example.test"' in signup_page.content.decode()


@pytest.mark.django_db
def test_signing_in_from_an_invitation_comes_back_to_it(org, other_org):
    member(other_org, "owner", user=UserFactory(email="kim@example.test"))
    invitation = pending_invitation(org, "kim@example.test")
    link = reverse("crm:accept_invitation", args=[invitation.raw_token])
    client = Client()
    client.get(link)

    response = client.post(
        reverse("account_login") + "?next=" + link,
        {"login": "kim@example.test", "password": PASSWORD, "next": link},
    )

    assert response["Location"] == link
    assert b"Accept and join" in client.get(link).content


@pytest.mark.django_db
def test_accepting_while_signed_out_sends_to_sign_in(org):
    invitation = pending_invitation(org, "kim@example.test")
    link = reverse("crm:accept_invitation", args=[invitation.raw_token])

    response = Client().post(link)

    assert response["Location"].startswith(reverse("account_login"))
    invitation.refresh_from_db()
    assert invitation.status == "pending"


@pytest.mark.django_db
def test_accepting_reactivates_a_deactivated_former_member(org, owner, client_as):
    former = member(org, "viewer", user=UserFactory(email="back@example.test"))
    member_deactivate(membership=former, actor=Actor.for_user(owner.user))
    invitation = pending_invitation(org, "back@example.test", role_key="director")

    client_as(former.user).post(reverse("crm:accept_invitation", args=[invitation.raw_token]))

    former.refresh_from_db()
    assert former.is_active and former.deactivated_at is None
    assert former.role.key == "director"
    assert Membership.objects.filter(org=org, user=former.user).count() == 1


# Accepting as a new user ---------------------------------------------------------------------


def signup_from(client, invitation, email):
    link = reverse("crm:accept_invitation", args=[invitation.raw_token])
    client.get(link)
    form_page = client.get(reverse("account_signup") + f"?email={email}")
    response = client.post(
        reverse("account_signup"),
        {
            "first_name": "Noor",
            "last_name": "Haddad",
            "email": email,
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    return form_page, response


@pytest.mark.django_db
def test_new_user_signs_up_from_the_link_and_joins_without_founding_an_org(org):
    invitation = pending_invitation(org, "noor@example.test", role_key="executive")
    orgs_before = Organization.objects.count()
    client = Client()

    form_page, response = signup_from(client, invitation, "noor@example.test")

    assert "organization_name" not in form_page.context["form"].fields
    assert f"Join {org.name}" in form_page.content.decode()
    # The link came to this address, so it counts as verified: straight in, no second email.
    assert response["Location"] == reverse("crm:dashboard")
    user = User.objects.get(email="noor@example.test")
    membership = Membership.objects.get(user=user)
    assert membership.org == org and membership.role.key == "executive"
    assert Organization.objects.count() == orgs_before
    dashboard = client.get(reverse("crm:dashboard"))
    assert dashboard.status_code == 200
    assert dashboard.wsgi_request.org == org
    invitation.refresh_from_db()
    assert invitation.accepted_by == user


@pytest.mark.django_db
def test_new_user_signing_up_from_the_link_with_another_email_joins_after_verifying(
    org, mailoutbox
):
    invitation = pending_invitation(org, "noor@example.test", role_key="support")
    client = Client()

    _, response = signup_from(client, invitation, "noor.personal@example.test")

    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email="noor.personal@example.test")
    assert Membership.objects.get(user=user).org == org
    confirm = re.search(r"http://testserver/accounts/confirm-email/\S+/", mailoutbox[-1].body)
    landed = client.post(confirm.group(0), follow=True)
    assert landed.redirect_chain[-1][0] == reverse("crm:dashboard")
    assert landed.wsgi_request.org == org


# Refusals ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_expired_invitation_is_refused_with_clear_message(org, client_as, other_org):
    invitation = pending_invitation(org, "kim@example.test")
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    kim = member(other_org, "owner", user=UserFactory(email="kim@example.test"))
    link = reverse("crm:accept_invitation", args=[invitation.raw_token])

    page = Client().get(link)
    response = client_as(kim).post(link)

    assert page.status_code == 410
    assert "expired" in page.content.decode()
    assert response.status_code == 410
    assert not Membership.objects.filter(org=org, user=kim.user).exists()
    with pytest.raises(InvitationError, match="expired"):
        invitation_accept(token=invitation.raw_token, user=kim.user)


@pytest.mark.django_db
def test_revoked_invitation_cannot_be_accepted(org, owner, other_org):
    invitation = pending_invitation(org, "kim@example.test")
    invitation_revoke(invitation=invitation, actor=Actor.for_user(owner.user))
    kim = member(other_org, "owner", user=UserFactory(email="kim@example.test"))

    with pytest.raises(InvitationError, match="revoked"):
        invitation_accept(token=invitation.raw_token, user=kim.user)
    assert not Membership.objects.filter(org=org, user=kim.user).exists()


@pytest.mark.django_db
def test_used_invitation_cannot_be_used_again(org, other_org, client_as):
    invitation = pending_invitation(org, "kim@example.test")
    kim = member(other_org, "owner", user=UserFactory(email="kim@example.test"))
    link = reverse("crm:accept_invitation", args=[invitation.raw_token])
    client = client_as(kim)
    client.post(link)

    again = client.get(link)

    assert again.status_code == 410
    assert "already been used" in again.content.decode()
    with pytest.raises(InvitationError, match="already been used"):
        invitation_accept(token=invitation.raw_token, user=kim.user)
    assert AuditEvent.objects.filter(org=org, verb="member.joined").count() == 1


@pytest.mark.django_db
def test_unknown_link_is_404(client):
    response = client.get(reverse("crm:accept_invitation", args=["no-such-token"]))

    assert response.status_code == 404
    assert "not valid" in response.content.decode()


@pytest.mark.django_db
def test_accepting_with_a_different_email_is_refused(org, other_org, client_as):
    invitation = pending_invitation(org, "kim@example.test")
    someone = member(other_org, "owner", user=UserFactory(email="someone@example.test"))
    link = reverse("crm:accept_invitation", args=[invitation.raw_token])
    client = client_as(someone)

    page = client.get(link)
    response = client.post(link)

    assert b"Accept and join" not in page.content
    assert "was sent to kim@example.test" in page.content.decode()
    assert response.status_code == 400
    assert not Membership.objects.filter(org=org, user=someone.user).exists()
    invitation.refresh_from_db()
    assert invitation.status == "pending"


@pytest.mark.django_db
def test_email_match_ignores_case(org, other_org):
    invitation = pending_invitation(org, "Kim@Example.TEST")
    kim = member(other_org, "owner", user=UserFactory(email="kim@example.test"))

    membership = invitation_accept(token=invitation.raw_token, user=kim.user)

    assert membership.org == org


@pytest.mark.django_db
def test_service_refuses_role_or_team_of_another_org(org, other_org, owner):
    with pytest.raises(MemberError):
        invitation_create(
            org=org,
            actor=Actor.for_user(owner.user),
            email="x@example.test",
            role=role(other_org, "team"),
        )
    with pytest.raises(MemberError):
        invitation_create(
            org=org,
            actor=Actor.for_user(owner.user),
            email="x@example.test",
            role=role(org, "team"),
            team=TeamFactory(org=other_org),
        )


@pytest.mark.django_db
def test_htmx_invite_swaps_the_invitations_section(client_as, owner, org, mailoutbox):
    client = client_as(owner, htmx=True)

    response = client.post(
        reverse("crm:member_invite"),
        {"invite-email": "pat@example.test", "invite-role": str(role(org, "viewer").public_id)},
    )
    bad = client.post(
        reverse("crm:member_invite"),
        {"invite-email": "not-an-email", "invite-role": str(role(org, "viewer").public_id)},
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="invitations"')
    assert "pat@example.test" in html
    assert "Invitation sent to pat@example.test" in response["HX-Trigger"]
    assert bad.status_code == 200
    assert 'id="id_invite-email_error"' in bad.content.decode()
    assert Invitation.objects.filter(org=org).count() == 1


@pytest.mark.django_db
def test_htmx_revoke_swaps_the_invitations_section(client_as, owner, org):
    invitation = pending_invitation(org, "pat@example.test")

    response = client_as(owner, htmx=True).post(
        reverse("crm:invitation_revoke", args=[invitation.public_id])
    )

    assert response.status_code == 200
    assert "pat@example.test" not in response.content.decode()
    assert "No invitations waiting" in response.content.decode()
