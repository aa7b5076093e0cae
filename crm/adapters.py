from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404

from .client_ip import client_ip
from .forms import _pending_invitation, join_or_found_organization


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request):
        """The sign-in rate limits count attempts per address: the same address the audit log
        records, believing X-Forwarded-For only from TRUSTED_PROXIES."""
        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine the client's address")
        return ip


class ProviderNotConfigured(SocialApp.DoesNotExist, Http404):
    """A sign-in provider without credentials: its URLs answer 404 instead of crashing, and
    allauth code that expects SocialApp.DoesNotExist still catches it."""


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def get_app(self, request, provider, client_id=None):
        try:
            return super().get_app(request, provider, client_id=client_id)
        except SocialApp.DoesNotExist:
            raise ProviderNotConfigured(f"Sign-in with {provider} is not set up.") from None

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
