"""Content-Security-Policy on every response (Django 5.2 has no built-in CSP).

The policy allows scripts and styles only from our own origin: no inline script or style
elements, no style or on* attributes, no eval (so htmx's hx-on and js: values are off too).
Should an escaping bug ever let markup into a page, the browser still refuses to run it. Page
data reaches scripts through `json_script` or data-attributes; see static/js/.

X-Content-Type-Options and Referrer-Policy come from Django's SecurityMiddleware
(SECURE_CONTENT_TYPE_NOSNIFF, SECURE_REFERRER_POLICY in settings).
"""

from __future__ import annotations

from django.conf import settings

# Where "Continue with Google" sends its form: Chromium applies form-action to the redirect
# that follows a form POST, so the provider's sign-in origin must be allowed when it is on.
GOOGLE_SIGN_IN_ORIGIN = "https://accounts.google.com"


def content_security_policy() -> str:
    form_action = ["'self'"]
    if getattr(settings, "GOOGLE_LOGIN_ENABLED", False):
        form_action.append(GOOGLE_SIGN_IN_ORIGIN)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # data: URLs for small images (an SVG in a stylesheet): an image cannot run script.
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": form_action,
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class ContentSecurityPolicyMiddleware:
    """Adds the policy to every response that does not set its own."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = content_security_policy()

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
