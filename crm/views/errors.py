"""The pages for 403, 404 and 500 (set as handler403/404/500 in crm/urls.py).

403 and 404 are rendered inside the app's layout for a signed-in member (sidebar, top bar, a
way back), and in a small public layout for anyone else. A 403 names the missing right when
the refusal carries one (crm.permissions.RightMissing) and otherwise shows the refusal's own
text; both are our words, autoescaped. Another organization's record is never a 403: views
fetch through `for_org`, so it is a 404 that says nothing about it.

The 500 page is a static template rendered without the request: no context processors, no
database query, nothing that could fail again while the site is already failing.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseServerError
from django.template.response import SimpleTemplateResponse, TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import requires_csrf_token

logger = logging.getLogger(__name__)

APP_LAYOUT = "base.html"
PUBLIC_LAYOUT = "errors/public.html"
PLAIN_500 = "Something went wrong on our side. Please try again in a moment."


def _layout(request) -> str:
    """The app's shell for a signed-in member of an organization, the public one otherwise."""
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return APP_LAYOUT if signed_in and getattr(request, "org", None) is not None else PUBLIC_LAYOUT


def _back_url(request) -> str:
    """Where "Go back" leads: the previous page of this site when the browser says so."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return ""


def _render(request, template: str, status: int, context: dict):
    context = {"layout": _layout(request), "back_url": _back_url(request), **context}
    response = TemplateResponse(request, template, context, status=status)
    return response.render()


@requires_csrf_token
def page_not_found(request, exception=None):
    return _render(request, "404.html", 404, {})


@requires_csrf_token
def permission_denied(request, exception=None):
    missing_right = getattr(exception, "description", "")
    reason = ""
    if not missing_right and isinstance(exception, PermissionDenied) and exception.args:
        reason = str(exception.args[0])
    return _render(request, "403.html", 403, {"missing_right": missing_right, "reason": reason})


def server_error(request=None):
    """The static 500 page, rendered with an empty context (not the request's)."""
    response = SimpleTemplateResponse("500.html", status=500)
    try:
        return response.render()  # a handler's response is not rendered for it
    except Exception:  # the error page itself must never fail
        logger.exception("the 500 page could not be rendered")
        return HttpResponseServerError(PLAIN_500, content_type="text/plain; charset=utf-8")
