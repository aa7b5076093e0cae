from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.account.models import EmailAddress
from allauth.core import context as allauth_context
from allauth.socialaccount.forms import SignupForm as AllauthSocialSignupForm
from django import forms
from django.db import transaction

from .middleware import SESSION_ORG_KEY
from .models import Role, Team, UserPreference
from .services import organization_create
from .services.members import (
    INVITATION_SESSION_KEY,
    invitation_accept,
    invitation_for_token,
    invitation_problem,
)


def _pending_invitation(request):
    """The still-valid invitation this visitor opened before signing up, if any."""
    if request is None or not hasattr(request, "session"):
        return None, ""
    token = request.session.get(INVITATION_SESSION_KEY, "")
    invitation = invitation_for_token(token)
    if invitation is None or invitation_problem(invitation):
        return None, ""
    return invitation, token


def join_or_found_organization(request, user, *, invitation_token, organization_name):
    """The new account's first organization: the one that invited them, or a new one they own.
    Makes it the one they work in."""
    if invitation_token:
        invited_email = invitation_for_token(invitation_token).email
        membership = invitation_accept(token=invitation_token, user=user, via_signup=True)
        org = membership.org
        request.session.pop(INVITATION_SESSION_KEY, None)
        # The link was mailed to the invited address, so signing up with that address from
        # it proves the address: no second confirmation email.
        EmailAddress.objects.filter(user=user, email__iexact=invited_email).update(verified=True)
    else:
        org = organization_create(name=organization_name, owner=user)
    request.session[SESSION_ORG_KEY] = org.id
    UserPreference.objects.update_or_create(user=user, defaults={"last_org": org})
    return org


class _OrganizationSignupMixin:
    """Sign-up either founds an organization (asks its name) or, when the visitor came from
    an invitation link, joins the inviting organization (no name to ask)."""

    def _setup_organization_field(self):
        request = allauth_context.request
        self.invitation, self._invitation_token = _pending_invitation(request)
        if self.invitation is not None:
            del self.fields["organization_name"]

    def clean_organization_name(self):
        name = self.cleaned_data["organization_name"].strip()
        if not name:
            raise forms.ValidationError("Give your organization a name.")
        return name

    def _check_invitation_still_valid(self):
        if self.invitation is not None:
            self.invitation.refresh_from_db()
            problem = invitation_problem(self.invitation)
            if problem:
                raise forms.ValidationError(problem)


def _first_name_field():
    return forms.CharField(
        max_length=150,
        label="First name",
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )


def _last_name_field():
    return forms.CharField(
        max_length=150,
        label="Last name",
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )


def _organization_name_field():
    return forms.CharField(
        max_length=200,
        label="Organization name",
        help_text="Your company or team. You can invite colleagues once inside.",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )


class SignupForm(_OrganizationSignupMixin, AllauthSignupForm):
    """Sign-up makes a new organization with the new user as its Owner, or joins the
    organization whose invitation the visitor followed."""

    first_name = _first_name_field()
    last_name = _last_name_field()
    organization_name = _organization_name_field()

    field_order = [
        "first_name",
        "last_name",
        "email",
        "organization_name",
        "password1",
        "password2",
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup_organization_field()
        self.fields["email"].widget.attrs.update({"autocomplete": "email"})

    def clean(self):
        cleaned = super().clean()
        self._check_invitation_still_valid()
        return cleaned

    @transaction.atomic
    def save(self, request):
        user = super().save(request)
        user.first_name = self.cleaned_data.get("first_name", "")
        user.last_name = self.cleaned_data.get("last_name", "")
        user.save(update_fields=["first_name", "last_name"])
        join_or_found_organization(
            request,
            user,
            invitation_token=self._invitation_token,
            organization_name=self.cleaned_data.get("organization_name", ""),
        )
        return user


class SocialSignupForm(_OrganizationSignupMixin, AllauthSocialSignupForm):
    """What a Google sign-up completes when it cannot finish on its own: the same choice
    of organization as SignupForm. crm.adapters.SocialAccountAdapter.save_user acts on it."""

    first_name = _first_name_field()
    last_name = _last_name_field()
    organization_name = _organization_name_field()

    field_order = ["first_name", "last_name", "email", "organization_name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup_organization_field()
        user = getattr(self.sociallogin, "user", None)
        if user is not None and not self.is_bound:
            self.fields["first_name"].initial = user.first_name
            self.fields["last_name"].initial = user.last_name

    def clean(self):
        cleaned = super().clean()
        self._check_invitation_still_valid()
        return cleaned


# Members settings -----------------------------------------------------------------------------


class MemberUpdateForm(forms.Form):
    """Role and team of a member; the invitation form adds the email.

    The role list offers only the roles `policy`'s member may grant. Any role of the org
    still validates, so a forged choice reaches the service, whose refusal says why."""

    role = forms.ModelChoiceField(
        queryset=Role.objects.for_org(None),
        label="Role",
        empty_label=None,
        to_field_name="public_id",
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.for_org(None),
        label="Team",
        required=False,
        empty_label="No team",
        to_field_name="public_id",
    )

    def __init__(self, *args, org, policy, **kwargs):
        super().__init__(*args, **kwargs)
        role_field = self.fields["role"]
        role_field.queryset = Role.objects.for_org(org)
        self.grantable_roles = [r for r in role_field.queryset if policy.may_grant_role(r)]
        role_field.choices = [(r.public_id, r.name) for r in self.grantable_roles]
        self.fields["team"].queryset = Team.objects.for_org(org)


class InvitationForm(MemberUpdateForm):
    email = forms.EmailField(
        label="Email address",
        widget=forms.EmailInput(attrs={"autocomplete": "off", "placeholder": "name@company.com"}),
    )

    field_order = ["email", "role", "team"]

    def __init__(self, *args, org, policy, **kwargs):
        super().__init__(*args, org=org, policy=policy, **kwargs)
        if not self.is_bound and self.grantable_roles:
            by_key = {r.key: r for r in self.grantable_roles if r.is_builtin}
            self.fields["role"].initial = (by_key.get("team") or self.grantable_roles[0]).public_id


class TeamForm(forms.Form):
    name = forms.CharField(
        max_length=120,
        label="Team name",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "e.g. Enterprise"}),
    )
