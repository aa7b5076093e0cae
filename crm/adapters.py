from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.db import transaction

from .forms import _pending_invitation, join_or_found_organization


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        return settings.GOOGLE_LOGIN_ENABLED

    def is_auto_signup_allowed(self, request, sociallogin):
        # A Google sign-up that founds an organization must ask for its name first; one that
        # follows an invitation has nothing to ask and can finish on its own.
        invitation, _ = _pending_invitation(request)
        return invitation is not None and super().is_auto_signup_allowed(request, sociallogin)

    @transaction.atomic
    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form)
        cleaned = getattr(form, "cleaned_data", None) or {}
        if cleaned.get("first_name") or cleaned.get("last_name"):
            user.first_name = cleaned.get("first_name", user.first_name)
            user.last_name = cleaned.get("last_name", user.last_name)
            user.save(update_fields=["first_name", "last_name"])
        _, token = _pending_invitation(request)
        organization_name = cleaned.get("organization_name") or (
            f"{user.first_name or user.email.split('@')[0]}'s organization"
        )
        join_or_found_organization(
            request, user, invitation_token=token, organization_name=organization_name
        )
        return user
