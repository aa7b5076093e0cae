"""Settings → Members: the people of an organization, their invitations and teams;
and the page an invitation link opens."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from .. import rls
from ..decorators import member_required
from ..forms import InvitationForm, MemberUpdateForm, TeamForm
from ..middleware import SESSION_ORG_KEY
from ..models import Invitation, Membership, Team, UserPreference
from ..permissions import policy_for
from ..services import Actor
from ..services.members import (
    INVITATION_SESSION_KEY,
    InvitationError,
    MemberError,
    invitation_accept,
    invitation_create,
    invitation_email_matches,
    invitation_for_token,
    invitation_problem,
    invitation_revoke,
    member_deactivate,
    member_reactivate,
    member_update,
    team_create,
    team_rename,
)

PAGE = "crm/members.html"


def _error_text(exc) -> str:
    """The reason of a refused change: a MemberError's messages, or a PermissionDenied's text
    (the services say there why a grant is refused)."""
    if isinstance(exc, PermissionDenied):
        return str(exc) or "Your role may not make this change."
    return " ".join(exc.messages)


# What the member services refuse with; shown where the member is, never as an error page.
REFUSED = (MemberError, PermissionDenied)


def _members(org):
    return (
        Membership.objects.for_org(org)
        .select_related("user", "role", "team")
        .order_by("-is_active", "user__first_name", "user__last_name", "user__email")
    )


def _pending_invitations(org):
    return (
        Invitation.objects.for_org(org)
        .pending()
        .select_related("role", "team", "invited_by")
        .order_by("expires_at")
    )


def _teams(org):
    return Team.objects.for_org(org).annotate(
        member_count=Count("memberships", filter=Q(memberships__is_active=True))
    )


def _choices(request):
    """Roles (those the member may grant) and teams for the inline selects, loaded once
    per page, not once per row."""
    form = MemberUpdateForm(org=request.org, policy=policy_for(request))
    return {
        "role_choices": form.grantable_roles,
        "team_choices": list(form.fields["team"].queryset),
    }


def _row(request, membership, *, error="", confirming=""):
    """One member row: may the current member change it? Only someone who could grant a
    member's role touches that member (so only an Owner touches an Owner); nobody changes
    their own role or deactivates themselves. The services check all of it again."""
    policy = policy_for(request)
    can_edit = policy.can("settings", "edit")
    locked = not policy.may_grant_role(membership.role)
    is_self = membership.user_id == request.user.pk
    editable = can_edit and not locked and membership.is_active
    return {
        "m": membership,
        "error": error,
        "editable": editable,
        "role_editable": editable and not is_self,
        "can_toggle": can_edit and not locked and not is_self,
        "is_self": is_self,
        "confirming": confirming,
    }


def _page_context(request, *, invite_form=None, team_form=None):
    org = request.org
    members = list(_members(org))
    invitations = list(_pending_invitations(org))
    for invitation in invitations:
        # An offer of a role the member could not grant is not theirs to withdraw.
        invitation.manageable = policy_for(request).may_grant_role(invitation.role)
    return {
        "rows": [_row(request, m) for m in members],
        "active_count": sum(1 for m in members if m.is_active),
        "inactive_count": sum(1 for m in members if not m.is_active),
        "invitations": invitations,
        "teams": _teams(org),
        "invite_form": invite_form
        or InvitationForm(org=org, policy=policy_for(request), prefix="invite"),
        "team_form": team_form or TeamForm(prefix="team"),
        "can_edit": policy_for(request).can("settings", "edit"),
        "invitation_ttl_days": settings.INVITATION_TTL_DAYS,
        **_choices(request),
    }


def _post_only(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


@member_required("settings", "view")
def members(request):
    return render(request, PAGE, _page_context(request))


@member_required("settings", "edit")
def member_invite(request):
    if (refused := _post_only(request)) is not None:
        return refused
    form = InvitationForm(
        request.POST, org=request.org, policy=policy_for(request), prefix="invite"
    )
    if form.is_valid():
        try:
            invitation = invitation_create(
                org=request.org,
                actor=Actor.from_request(request),
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                team=form.cleaned_data["team"],
                base_url=request.build_absolute_uri("/"),
            )
        except PermissionDenied as exc:
            form.add_error("role", _error_text(exc))
        except MemberError as exc:
            form.add_error("email", _error_text(exc))
        else:
            messages.success(
                request, f"Invitation sent to {invitation.email} as {invitation.role.name}."
            )
            if request.htmx:
                return render(request, f"{PAGE}#invitations", _page_context(request))
            return redirect("crm:members")
    context = _page_context(request, invite_form=form)
    if request.htmx:
        return render(request, f"{PAGE}#invitations", context)
    return render(request, PAGE, context)


@member_required("settings", "edit")
def invitation_revoke_view(request, invitation_public_id):
    invitation = get_object_or_404(
        Invitation.objects.for_org(request.org), public_id=invitation_public_id
    )
    if (refused := _post_only(request)) is not None:
        return refused
    try:
        invitation_revoke(invitation=invitation, actor=Actor.from_request(request))
    except REFUSED as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"Invitation for {invitation.email} revoked.")
    if request.htmx:
        return render(request, f"{PAGE}#invitations", _page_context(request))
    return redirect("crm:members")


def _member(request, membership_public_id):
    return get_object_or_404(
        Membership.objects.for_org(request.org).select_related("user", "role", "team"),
        public_id=membership_public_id,
    )


def _row_response(request, membership, **row):
    membership = _member(request, membership.public_id)
    context = {"row": _row(request, membership, **row), **_choices(request)}
    return render(request, f"{PAGE}#member_row", context)


@member_required("settings", "edit")
def member_update_view(request, membership_public_id):
    """POST changes a member's role and team; GET gives back their row (a cancelled
    confirmation puts the row back this way) or, without HTMX, the members page."""
    membership = _member(request, membership_public_id)
    if request.method == "GET":
        if request.htmx:
            return _row_response(request, membership)
        return redirect("crm:members")
    if (refused := _post_only(request)) is not None:
        return refused
    form = MemberUpdateForm(request.POST, org=request.org, policy=policy_for(request))
    error = ""
    if form.is_valid():
        try:
            member_update(
                membership=membership,
                actor=Actor.from_request(request),
                role=form.cleaned_data["role"],
                team=form.cleaned_data["team"],
            )
        except REFUSED as exc:
            error = _error_text(exc)
        else:
            messages.success(request, f"{membership.user.display_name} updated.")
    else:
        error = "Choose a role and team from the lists."
    if error:
        messages.error(request, error)
    if request.htmx:
        return _row_response(request, membership, error=error)
    return redirect("crm:members")


def _toggle_view(request, membership_public_id, *, action):
    """Deactivate or reactivate: GET asks for confirmation, POST does it."""
    membership = _member(request, membership_public_id)
    if request.method == "GET":
        if request.htmx:
            return _row_response(request, membership, confirming=action)
        return render(request, "crm/members_confirm.html", {"m": membership, "action": action})
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    service = member_deactivate if action == "deactivate" else member_reactivate
    try:
        service(membership=membership, actor=Actor.from_request(request))
    except REFUSED as exc:
        messages.error(request, _error_text(exc))
    else:
        name = membership.user.display_name
        if action == "deactivate":
            messages.success(request, f"{name} can no longer sign in to {request.org.name}.")
        else:
            messages.success(request, f"{name} has access to {request.org.name} again.")
    if request.htmx:
        return _row_response(request, membership)
    return redirect("crm:members")


@member_required("settings", "edit")
def member_deactivate_view(request, membership_public_id):
    return _toggle_view(request, membership_public_id, action="deactivate")


@member_required("settings", "edit")
def member_reactivate_view(request, membership_public_id):
    return _toggle_view(request, membership_public_id, action="reactivate")


@member_required("settings", "edit")
def team_create_view(request):
    if (refused := _post_only(request)) is not None:
        return refused
    form = TeamForm(request.POST, prefix="team")
    if form.is_valid():
        try:
            team = team_create(
                org=request.org, actor=Actor.from_request(request), name=form.cleaned_data["name"]
            )
        except REFUSED as exc:
            form.add_error("name", _error_text(exc))
        else:
            messages.success(request, f"Team {team.name} added.")
            return redirect(f"{reverse('crm:members')}#teams")
    return render(request, PAGE, _page_context(request, team_form=form))


@member_required("settings", "edit")
def team_rename_view(request, team_public_id):
    team = get_object_or_404(Team.objects.for_org(request.org), public_id=team_public_id)
    if (refused := _post_only(request)) is not None:
        return refused
    old_name = team.name
    try:
        team = team_rename(
            team=team, actor=Actor.from_request(request), name=request.POST.get("name", "")
        )
    except REFUSED as exc:
        messages.error(request, _error_text(exc))
    else:
        if team.name != old_name:
            messages.success(request, f"Team {old_name} is now {team.name}.")
    return redirect(f"{reverse('crm:members')}#teams")


# The invitation link -------------------------------------------------------------------------


def _switch_to(request, org):
    request.session[SESSION_ORG_KEY] = org.id
    UserPreference.objects.update_or_create(user=request.user, defaults={"last_org": org})


@never_cache
def accept_invitation(request, token):
    """Anyone holding the link may open it. A visitor is offered sign-in or sign-up (with
    the invited address filled in) and comes back here; a signed-in user sees the
    organization and role and accepts with one click."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    invitation = invitation_for_token(token)
    if invitation is None:
        context = {"invitation": None, "problem": invitation_problem(None)}
        return render(request, "crm/invitation.html", context, status=404)
    # The page works in the invitation's organization, whichever one the visitor is in.
    with transaction.atomic(), rls.tenant(invitation.org_id):
        return _invitation_page(request, token, invitation)


def _invitation_page(request, token, invitation):
    context = {"invitation": invitation, "problem": invitation_problem(invitation)}
    if context["problem"]:
        return render(request, "crm/invitation.html", context, status=410)

    if not request.user.is_authenticated:
        if request.method == "POST":
            return redirect(f"{reverse('account_login')}?{urlencode({'next': request.path})}")
        # The sign-up form reads the invitation from here, so a new account joins this
        # organization instead of founding one.
        request.session[INVITATION_SESSION_KEY] = token
        context["login_url"] = (
            f"{reverse('account_login')}?"
            f"{urlencode({'next': request.path, 'email': invitation.email})}"
        )
        context["signup_url"] = (
            f"{reverse('account_signup')}?{urlencode({'email': invitation.email})}"
        )
        return render(request, "crm/invitation.html", context)

    context["email_matches"] = invitation_email_matches(invitation, request.user)
    context["already_member"] = (
        Membership.objects.for_org(invitation.org).active().filter(user=request.user).exists()
    )
    if request.method == "POST":
        try:
            membership = invitation_accept(
                token=token, user=request.user, actor=Actor.from_request(request)
            )
        except InvitationError as exc:
            context["error"] = _error_text(exc)
            return render(request, "crm/invitation.html", context, status=400)
        request.session.pop(INVITATION_SESSION_KEY, None)
        _switch_to(request, membership.org)
        messages.success(
            request, f"Welcome to {membership.org.name}. You joined as {membership.role.name}."
        )
        return redirect("crm:dashboard")
    return render(request, "crm/invitation.html", context)
