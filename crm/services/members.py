"""Who may get into an organization: invitations, memberships and teams.

Rules that hold for every function here:
- A person acting must be an active member allowed to edit Settings (a system job acts with
  full rights).
- Nobody grants a role they do not hold every right of (crm.permissions.Policy.grant_refusal),
  nor changes, deactivates or reactivates a member whose role they could not grant.
- Only an Owner grants or takes away the Owner role.
- Nobody changes their own role.
- A team change must not let anyone reach records the actor cannot reach
  (Policy.placement_refusal).
- An organization always keeps at least one active Owner.
- Deactivating a member only closes the door; records they own stay where they are.
- Invitation links carry a random token; only its SHA-256 is stored, so a database leak
  reveals no usable link.

A little over 600 lines because those rules bind invitations and memberships alike and are
read best in one place; invitations are the part to move out if it grows.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from urllib.parse import urljoin

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from .. import rls
from ..field_sizes import char_max_length
from ..models import AuditEvent, Invitation, Membership, Role, Team
from ..permissions import Policy
from .audit import Actor, audit, diff, emit_event, snapshot

logger = logging.getLogger(__name__)

# Where a visitor's invitation token waits while they sign in or sign up.
INVITATION_SESSION_KEY = "invitation_token"

MEMBERSHIP_FIELDS = ["role", "team", "is_active", "deactivated_at"]


class MemberError(ValidationError):
    """A change to members, invitations or teams that breaks a rule; the message says which."""


class InvitationError(MemberError):
    """An invitation that cannot be used (unknown, expired, revoked, used, or not yours)."""


# Helpers ------------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def actor_membership(org, actor: Actor) -> Membership | None:
    if actor.user is None:
        return None
    return (
        Membership.objects.for_org(org)
        .active()
        .filter(user=actor.user)
        .select_related("role")
        .first()
    )


def actor_is_owner(org, actor: Actor) -> bool:
    """Whether `actor` may grant or take away the Owner role in `org`."""
    if actor.user is None:
        return actor.type == AuditEvent.ActorType.SYSTEM
    membership = actor_membership(org, actor)
    return bool(membership and membership.role.is_owner)


def _require_owner(org, actor: Actor, what: str) -> None:
    if not actor_is_owner(org, actor):
        raise PermissionDenied(f"Only an Owner may {what}.")


def settings_editor_policy(org, actor: Actor, what: str) -> Policy | None:
    """The policy of the member acting, or None for a system job. A person acting must be
    an active member allowed to edit Settings, whoever called the service; `what` ends the
    refusal ("change members")."""
    if actor.user is None and actor.type == AuditEvent.ActorType.SYSTEM:
        return None
    policy = Policy(actor_membership(org, actor))
    if not policy.can("settings", "edit"):
        raise PermissionDenied(f"Your role may not {what}.")
    return policy


def _check_grant(
    policy: Policy | None, role: Role, team: Team | None, *, user_id=None, team_changed=True
) -> None:
    """Refuse giving `role` in `team` (to `user_id`, None for someone new) when the actor
    does not hold all of it; see Policy.grant_refusal and Policy.placement_refusal."""
    if policy is None:
        return
    refusal = policy.grant_refusal(role) or policy.placement_refusal(
        role, team, user_id=user_id, team_changed=team_changed
    )
    if refusal:
        raise PermissionDenied(refusal)


def _check_offer_manageable(policy: Policy | None, invitation: Invitation, what: str) -> None:
    """Like _check_manages, for a pending invitation: its offer is the inviter's to change."""
    if policy is not None and not policy.may_grant_role(invitation.role):
        raise PermissionDenied(
            f"You can't {what} the invitation for {invitation.email}: it offers the "
            f"{invitation.role.name} role, which has rights your own role doesn't have."
        )


def _check_manages(policy: Policy | None, membership: Membership, what: str) -> None:
    """Refuse touching a member whose role the actor could not grant: taking a role away
    is for those who could give it."""
    if policy is not None and not policy.may_grant_role(membership.role):
        raise PermissionDenied(
            f"You can't {what} {membership.user.display_name}: their role, "
            f"{membership.role.name}, has rights your own role doesn't have."
        )


def _check_belongs(org, role: Role, team: Team | None) -> None:
    if role.org_id != org.id:
        raise MemberError("Choose one of this organization's roles.")
    if team is not None and team.org_id != org.id:
        raise MemberError("Choose one of this organization's teams.")


def _guard_last_owner(membership: Membership, message: str) -> None:
    """Refuse when `membership` is the only active Owner left. The owner rows are locked so
    two owners demoting each other at the same moment cannot both succeed."""
    owners = list(
        Membership.objects.for_org(membership.org_id)
        .select_for_update(of=("self",))
        .filter(is_active=True, role__is_builtin=True, role__key="owner")
        .values_list("pk", flat=True)
    )
    if not [pk for pk in owners if pk != membership.pk]:
        raise MemberError(message)


def _locked(membership: Membership) -> Membership:
    return (
        Membership.objects.for_org(membership.org_id)
        .select_for_update(of=("self",))
        .select_related("org", "user", "role", "team")
        .get(pk=membership.pk)
    )


def _membership_payload(membership: Membership) -> dict:
    return {
        "membership": membership.public_id,
        "user": membership.user.public_id,
        "email": membership.user.email,
        "role": membership.role.key,
        "team": membership.team.public_id if membership.team else None,
        "is_active": membership.is_active,
    }


# Invitations --------------------------------------------------------------------------------


def invitation_url(token: str, base_url: str = "") -> str:
    path = reverse("crm:accept_invitation", kwargs={"token": token})
    base = base_url or getattr(settings, "SITE_URL", "") or "http://localhost:8000"
    return urljoin(base, path)


def _send_invitation_email(invitation: Invitation, link: str, inviter_name: str) -> None:
    context = {
        "invitation": invitation,
        "org": invitation.org,
        "role": invitation.role,
        "inviter_name": inviter_name,
        "link": link,
        "expires_at": invitation.expires_at,
    }
    send_mail(
        subject=f"{inviter_name} invited you to {invitation.org.name}",
        message=render_to_string("crm/invitation_email.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
        html_message=render_to_string("crm/invitation_email.html", context),
    )


def invitation_create(
    *, org, actor: Actor, email: str, role: Role, team: Team | None = None, base_url: str = ""
) -> Invitation:
    """Invite `email` to `org` with `role` (and `team`), and email them the link.

    A pending invitation for the same address is refreshed (new link, role, team and expiry),
    so the old link stops working. The returned invitation carries the link in `.link`; it is
    the only time the link exists outside the email."""
    email = normalize_email(email)
    try:
        validate_email(email)
    except ValidationError as exc:
        raise MemberError("Enter a valid email address.") from exc
    _check_belongs(org, role, team)
    policy = settings_editor_policy(org, actor, "invite people")

    token = secrets.token_urlsafe(32)
    link = invitation_url(token, base_url)
    with transaction.atomic():
        known = Membership.objects.for_org(org).filter(user__email__iexact=email).first()
        if known is not None and known.is_active:
            raise MemberError(f"{email} is already a member of {org.name}.")
        # A former member comes back into `team` with what they owned: check that too.
        _check_grant(policy, role, team, user_id=known.user_id if known else None)
        expires_at = timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS)
        invitation = (
            Invitation.objects.for_org(org)
            .pending()
            .select_for_update()
            .filter(email__iexact=email)
            .first()
        )
        if invitation is not None:
            _check_offer_manageable(policy, invitation, "replace")
            before = snapshot(invitation, ["role", "team", "expires_at"])
            invitation.role = role
            invitation.team = team
            invitation.token_hash = hash_token(token)
            invitation.invited_by = actor.user
            invitation.expires_at = expires_at
            invitation.save(
                update_fields=["role", "team", "token_hash", "invited_by", "expires_at"]
            )
            verb = "member.reinvited"
            changes = diff(before, snapshot(invitation, ["role", "team", "expires_at"]))
        else:
            invitation = Invitation.objects.for_org(org).create(
                org=org,
                email=email,
                role=role,
                team=team,
                token_hash=hash_token(token),
                invited_by=actor.user,
                expires_at=expires_at,
            )
            verb = "member.invited"
            changes = diff({}, snapshot(invitation, ["email", "role", "team", "expires_at"]))
        audit(org=org, actor=actor, verb=verb, obj=invitation, object_repr=email, changes=changes)
        emit_event(
            org=org,
            event_type="member.invited",
            payload={
                "invitation": invitation.public_id,
                "email": email,
                "role": role.key,
                "team": team.public_id if team else None,
                "expires_at": expires_at,
            },
        )
        inviter_name = getattr(actor.user, "display_name", "") or actor.label or org.name
        # The email leaves only once the invitation is committed; a failure to send is logged
        # (robust=True) and the admin can send the invitation again.
        transaction.on_commit(
            lambda: _send_invitation_email(invitation, link, inviter_name), robust=True
        )
    invitation.link = link
    return invitation


def invitation_revoke(*, invitation: Invitation, actor: Actor) -> Invitation:
    with transaction.atomic():
        invitation = (
            Invitation.objects.for_org(invitation.org_id)
            .select_for_update(of=("self",))
            .select_related("org", "role")
            .get(pk=invitation.pk)
        )
        policy = settings_editor_policy(invitation.org, actor, "withdraw invitations")
        if invitation.status != "pending":
            raise InvitationError(f"This invitation is already {invitation.status}.")
        _check_offer_manageable(policy, invitation, "withdraw")
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit(
            org=invitation.org,
            actor=actor,
            verb="member.invitation_revoked",
            obj=invitation,
            object_repr=invitation.email,
            changes={"revoked_at": [None, invitation.revoked_at]},
        )
        emit_event(
            org=invitation.org,
            event_type="member.invitation_revoked",
            payload={"invitation": invitation.public_id, "email": invitation.email},
        )
    return invitation


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation a link points at, whatever its state, or None for an unknown link."""
    if not token:
        return None
    # The link is opened by anyone, signed in to any organization (or none): its token is
    # the key, whichever organization sent it.
    with transaction.atomic(), rls.bypass("an invitation link is looked up by its token"):
        return (
            Invitation.objects.all_orgs()
            .select_related("org", "role", "team", "invited_by")
            .filter(token_hash=hash_token(token))
            .first()
        )


def invitation_problem(invitation: Invitation | None) -> str:
    """Why an invitation cannot be accepted any more, or "" when it still can."""
    if invitation is None:
        return (
            "This invitation link is not valid. Check that you copied all of it, "
            "or ask for a new one."
        )
    if invitation.accepted_at:
        return "This invitation has already been used. Sign in to reach the organization."
    if invitation.revoked_at:
        return (
            f"This invitation was revoked by an administrator of {invitation.org.name}. "
            "Ask them for a new one."
        )
    if invitation.expires_at <= timezone.now():
        return (
            f"This invitation expired on {invitation.expires_at:%d %b %Y}. "
            f"Ask an administrator of {invitation.org.name} to send a new one."
        )
    if not inviter_may_still_grant(invitation):
        return (
            f"This invitation can no longer be used: whoever sent it may no longer give the "
            f"{invitation.role.name} role in {invitation.org.name}. Ask an administrator of "
            f"{invitation.org.name} for a new one."
        )
    return ""


def inviter_may_still_grant(invitation: Invitation) -> bool:
    """Whether the person who sent `invitation` may still give its role and team: an
    invitation is a grant waiting to happen, so an inviter who was deactivated or lost the
    rights since cannot hand them out through an old link. Invitations without an inviter
    were made by a system job."""
    if invitation.invited_by_id is None:
        return True
    inviter = (
        Membership.objects.for_org(invitation.org)
        .active()
        .select_related("role")
        .filter(user_id=invitation.invited_by_id)
        .first()
    )
    policy = Policy(inviter)
    return not (
        policy.grant_refusal(invitation.role)
        or policy.placement_refusal(invitation.role, invitation.team, team_changed=False)
    )


def invitation_email_matches(invitation: Invitation, user) -> bool:
    return normalize_email(invitation.email) == normalize_email(user.email)


def invitation_accept(
    *, token: str, user, via_signup: bool = False, actor: Actor | None = None
) -> Membership:
    """Join the invitation's organization with its role and team.

    The signed-in user's email must be the invited one, unless they created their account
    from this very invitation (`via_signup`): holding the emailed link is the proof then.
    A deactivated former member is reactivated with the invited role."""
    actor = actor or Actor.for_user(user)
    with transaction.atomic():
        # The token is the key, whichever organization sent it (as in invitation_for_token).
        invitation = (
            Invitation.objects.all_orgs()
            .select_for_update(of=("self",))
            .select_related("org", "role", "team")
            .filter(token_hash=hash_token(token or ""))
            .first()
        )
        problem = invitation_problem(invitation)
        if problem or invitation is None:  # a missing invitation always has a problem
            raise InvitationError(problem)
        if not via_signup and not invitation_email_matches(invitation, user):
            raise InvitationError(
                f"This invitation was sent to {invitation.email}, but you are signed in as "
                f"{user.email}. Sign in with the invited address to accept it."
            )
        org = invitation.org
        membership = (
            Membership.objects.for_org(org)
            .select_for_update(of=("self",))
            .select_related("role", "team")
            .filter(user=user)
            .first()
        )
        if membership is not None and membership.is_active:
            raise InvitationError(f"You are already a member of {org.name}.")
        if membership is None:
            before = {}
            membership = Membership.objects.for_org(org).create(
                org=org, user=user, role=invitation.role, team=invitation.team
            )
        else:
            before = snapshot(membership, MEMBERSHIP_FIELDS)
            membership.role = invitation.role
            membership.team = invitation.team
            membership.is_active = True
            membership.deactivated_at = None
            membership.save(update_fields=["role", "team", "is_active", "deactivated_at"])
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        changes = diff(before, snapshot(membership, MEMBERSHIP_FIELDS))
        changes["invitation"] = [None, str(invitation.public_id)]
        audit(org=org, actor=actor, verb="member.joined", obj=membership, changes=changes)
        emit_event(
            org=org,
            event_type="member.joined",
            payload={**_membership_payload(membership), "invitation": invitation.public_id},
        )
    return membership


# Members ------------------------------------------------------------------------------------


def member_deactivate(*, membership: Membership, actor: Actor) -> Membership:
    """Close the organization to a member. What they own keeps its owner."""
    with transaction.atomic():
        membership = _locked(membership)
        org = membership.org
        policy = settings_editor_policy(org, actor, "deactivate members")
        if not membership.is_active:
            raise MemberError(f"{membership.user.display_name} is already deactivated.")
        if actor.user is not None and membership.user_id == actor.user.pk:
            raise MemberError("You cannot deactivate yourself. Ask another admin to do it.")
        if membership.role.is_owner:
            _require_owner(org, actor, "deactivate an Owner")
            _guard_last_owner(
                membership,
                f"{membership.user.display_name} is the last active Owner of {org.name}. "
                "Make someone else an Owner first.",
            )
        _check_manages(policy, membership, "deactivate")
        before = snapshot(membership, MEMBERSHIP_FIELDS)
        membership.is_active = False
        membership.deactivated_at = timezone.now()
        membership.save(update_fields=["is_active", "deactivated_at"])
        audit(
            org=org,
            actor=actor,
            verb="member.deactivated",
            obj=membership,
            changes=diff(before, snapshot(membership, MEMBERSHIP_FIELDS)),
        )
        emit_event(
            org=org, event_type="member.deactivated", payload=_membership_payload(membership)
        )
    return membership


def member_reactivate(*, membership: Membership, actor: Actor) -> Membership:
    with transaction.atomic():
        membership = _locked(membership)
        org = membership.org
        policy = settings_editor_policy(org, actor, "reactivate members")
        if membership.is_active:
            raise MemberError(f"{membership.user.display_name} is already active.")
        if membership.role.is_owner:
            _require_owner(org, actor, "give back Owner access")
        # Giving access back hands out the member's role (in their team) again.
        _check_grant(
            policy, membership.role, membership.team, user_id=membership.user_id, team_changed=False
        )
        before = snapshot(membership, MEMBERSHIP_FIELDS)
        membership.is_active = True
        membership.deactivated_at = None
        membership.save(update_fields=["is_active", "deactivated_at"])
        audit(
            org=org,
            actor=actor,
            verb="member.reactivated",
            obj=membership,
            changes=diff(before, snapshot(membership, MEMBERSHIP_FIELDS)),
        )
        emit_event(
            org=org, event_type="member.reactivated", payload=_membership_payload(membership)
        )
    return membership


def member_update(
    *, membership: Membership, actor: Actor, role: Role, team: Team | None
) -> Membership:
    """Change a member's role and team. Returns the membership unchanged (and audits
    nothing) when neither differs. A refused change writes nothing."""
    with transaction.atomic():
        membership = _locked(membership)
        org = membership.org
        _check_belongs(org, role, team)
        policy = settings_editor_policy(org, actor, "change members")
        role_changed = role.pk != membership.role_id
        team_changed = (team.pk if team else None) != membership.team_id
        if role_changed:
            if membership.role.is_owner:
                _require_owner(org, actor, "take away the Owner role")
                if membership.is_active:
                    _guard_last_owner(
                        membership,
                        f"{membership.user.display_name} is the last active Owner of "
                        f"{org.name}. Make someone else an Owner first.",
                    )
            if actor.user is not None and membership.user_id == actor.user.pk:
                raise MemberError("You can't change your own role. Ask another admin to do it.")
        if role_changed or team_changed:
            _check_manages(policy, membership, "change")
            _check_grant(policy, role, team, user_id=membership.user_id, team_changed=team_changed)
        before = snapshot(membership, ["role", "team"])
        membership.role = role
        membership.team = team
        changes = diff(before, snapshot(membership, ["role", "team"]))
        if not changes:
            return membership
        membership.save(update_fields=["role", "team"])
        audit(org=org, actor=actor, verb="member.updated", obj=membership, changes=changes)
        emit_event(org=org, event_type="member.updated", payload=_membership_payload(membership))
    return membership


# Teams --------------------------------------------------------------------------------------


def _clean_team_name(org, name: str, exclude_pk=None) -> str:
    name = (name or "").strip()
    if not name:
        raise MemberError("Give the team a name.")
    if len(name) > char_max_length(Team, "name"):
        raise MemberError("Keep the team name under 120 characters.")
    clash = Team.objects.for_org(org).filter(name__iexact=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise MemberError(f"There is already a team called {name}.")
    return name


def team_create(*, org, actor: Actor, name: str) -> Team:
    settings_editor_policy(org, actor, "change teams")
    name = _clean_team_name(org, name)
    try:
        with transaction.atomic():
            team = Team.objects.for_org(org).create(org=org, name=name)
            audit(
                org=org,
                actor=actor,
                verb="team.created",
                obj=team,
                changes={"name": [None, name]},
            )
            emit_event(
                org=org,
                event_type="team.created",
                payload={"team": team.public_id, "name": name},
            )
    except IntegrityError as exc:  # a concurrent create of the same name
        raise MemberError(f"There is already a team called {name}.") from exc
    return team


def team_rename(*, team: Team, actor: Actor, name: str) -> Team:
    settings_editor_policy(team.org, actor, "change teams")
    name = _clean_team_name(team.org, name, exclude_pk=team.pk)
    try:
        with transaction.atomic():
            team = (
                Team.objects.for_org(team.org_id)
                .select_for_update()
                .select_related("org")
                .get(pk=team.pk)
            )
            before = snapshot(team, ["name"])
            team.name = name
            changes = diff(before, snapshot(team, ["name"]))
            if not changes:
                return team
            team.save(update_fields=["name"])
            audit(org=team.org, actor=actor, verb="team.renamed", obj=team, changes=changes)
            emit_event(
                org=team.org,
                event_type="team.renamed",
                payload={"team": team.public_id, "name": name},
            )
    except IntegrityError as exc:
        raise MemberError(f"There is already a team called {name}.") from exc
    return team
