"""Dates on every page in the organization's time zone (ARCHITECTURE: time is stored in UTC,
shown in the user's/org's time zone)."""

from __future__ import annotations

from django.utils import timezone

from .selectors import org_timezone


class OrganizationTimezoneMiddleware:
    """Activates the active organization's time zone for the request (after
    OrganizationMiddleware has set request.org); signed-out pages stay in UTC."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        org = getattr(request, "org", None)
        if org is None:
            return self.get_response(request)
        with timezone.override(org_timezone(org)):
            return self.get_response(request)
