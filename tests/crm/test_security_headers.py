"""Every response carries the browser-side defences: a Content-Security-Policy without inline
script or eval that forbids framing, X-Content-Type-Options: nosniff and a Referrer-Policy.
The pages are found by walking the URL configuration, so a new page is covered the day it lands.
"""

import re
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from crm.security_headers import ContentSecurityPolicyMiddleware, content_security_policy
from tests.test_tenancy_urls import ROUTES

PAGES_WITHOUT_PARAMETERS = [
    route.url({}) for route in ROUTES if not route.params and not route.is_regex
]


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    parsed = {}
    for part in header.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def assert_protected(response, url):
    assert "Content-Security-Policy" in response, f"{url}: no CSP"
    policy = directives(response)
    assert policy["script-src"] == ["'self'"], url
    assert policy["style-src"] == ["'self'"], url
    assert policy["object-src"] == ["'none'"], url
    assert policy["frame-ancestors"] == ["'none'"], url
    assert policy["base-uri"] == ["'self'"], url
    assert "'unsafe-inline'" not in response["Content-Security-Policy"], url
    assert "'unsafe-eval'" not in response["Content-Security-Policy"], url
    assert response["X-Content-Type-Options"] == "nosniff", url
    assert response["Referrer-Policy"] == "same-origin", url


def test_every_page_of_the_url_configuration_has_the_headers(owner, client_as):
    assert len(PAGES_WITHOUT_PARAMETERS) > 20
    client = client_as(owner)
    for url in PAGES_WITHOUT_PARAMETERS:
        assert_protected(client.get(url), url)


def test_pages_for_visitors_errors_and_redirects_have_the_headers(owner, client_as):
    visitor = Client()
    cases = [
        (visitor, reverse("account_login")),  # 200 page for a logged-out visitor
        (visitor, reverse("crm:dashboard")),  # redirect to sign in
        (visitor, "/admin/login/"),
        (client_as(owner), "/no/such/page/"),  # 404
        (client_as(owner), reverse("contacts:export_csv") + "?filters=%7Bnot+json"),  # 400
        (client_as(owner), reverse("healthz")),  # JSON
    ]
    for client, url in cases:
        assert_protected(client.get(url), url)


def test_a_view_may_set_its_own_policy():
    def view(request):
        response = HttpResponse("ok")
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    response = ContentSecurityPolicyMiddleware(view)(None)

    assert response["Content-Security-Policy"] == "default-src 'none'"


@pytest.mark.parametrize(("enabled", "expected"), [(False, False), (True, True)])
def test_google_sign_in_is_an_allowed_form_target_only_when_it_is_on(settings, enabled, expected):
    """Chromium applies form-action to the redirect after "Continue with Google"'s POST."""
    settings.GOOGLE_LOGIN_ENABLED = enabled

    form_action = content_security_policy().split("form-action ")[1].split(";")[0]

    assert ("https://accounts.google.com" in form_action) is expected
    assert form_action.startswith("'self'")


# No inline code for the policy to refuse ------------------------------------------------------
# The browser test (tests/e2e/test_csp.py) proves the main pages; this reads every template and
# every Python module that builds HTML, so a page no browser test opens is held to it too.

ROOT = Path(__file__).resolve().parents[2]
INLINE_CODE = {
    "inline <script>": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I),
    "<style> block": re.compile(r"<style[\s>]", re.I),
    'style="" attribute': re.compile(r"""\sstyle\s*=\s*["'{]""", re.I),
    "on*= handler": re.compile(r"""\son[a-z]+\s*=\s*["']""", re.I),
    "hx-on (eval)": re.compile(r"\shx-on[:-]", re.I),
    "javascript: URL": re.compile(r"""=\s*["']\s*javascript:""", re.I),
}
# Mail is not shown under the site's policy, and mail clients need inline styles.
MAIL_TEMPLATES = re.compile(r"_email\.(html|txt)$")


def inline_code_in(text: str) -> list[str]:
    text = re.sub(r"{#.*?#}|{% comment %}.*?{% endcomment %}", "", text, flags=re.S)
    return [label for label, pattern in INLINE_CODE.items() if pattern.search(text)]


def test_no_template_carries_inline_script_style_or_handlers():
    found = {
        str(template.relative_to(ROOT)): problems
        for template in sorted((ROOT / "templates").rglob("*.html"))
        if not MAIL_TEMPLATES.search(template.name)
        and (problems := inline_code_in(template.read_text(encoding="utf-8")))
    }

    assert found == {}, "Move these into static/js or static/css (data-attributes for values)"


def test_no_python_module_builds_inline_script_style_or_handlers():
    modules = [
        path
        for app in ("crm", "contacts", "ai")
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
    ]
    found = {
        str(path.relative_to(ROOT)): problems
        for path in modules
        if (problems := inline_code_in(path.read_text(encoding="utf-8")))
    }

    assert found == {}


def test_the_inline_code_check_sees_each_kind():
    page = (
        '<script>x()</script><style>p{}</style><p style="color:red" onclick="x()" '
        'hx-on::after-request="x()"><a href="javascript:x()">'
    )
    allowed = (
        '<script src="/static/js/app.js" defer></script>'
        '<script id="s" type="application/json">{}</script>{# <style> in a comment #}'
        '<a href="/" data-style="x" hx-confirm="Sure?">'
    )

    assert inline_code_in(page) == list(INLINE_CODE)
    assert inline_code_in(allowed) == []
