"""No view builds an HTML response out of a string: every page goes through a template, which
escapes what people sent, and an error written in code goes out as text/plain.

The reflected XSS this guards against was `HttpResponseBadRequest(f"... {error}")`: a
text/html answer with the user's own filter in it. This scan reads every module of the
project and fails on any HttpResponse* whose content is not a constant string unless it
names a content type that is not HTML, so the next feature cannot bring it back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["crm", "contacts", "ai"]
SAFE_TYPES = ("text/plain", "text/csv", "application/json")


def _response_classes() -> set[str]:
    import django.http as http

    return {
        name
        for name in dir(http)
        if name.startswith("HttpResponse") and name != "HttpResponseRedirectBase"
    } - {
        # Their first argument is a URL or a list of methods, and they carry no body.
        "HttpResponseRedirect",
        "HttpResponsePermanentRedirect",
        "HttpResponseNotModified",
        "HttpResponseNotAllowed",
    }


def _name(func) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def unsafe_responses(source: str, filename: str) -> list[str]:
    classes = _response_classes()
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call) or _name(node.func) not in classes:
            continue
        content = node.args[0] if node.args else None
        for keyword in node.keywords:
            if keyword.arg == "content":
                content = keyword.value
        if content is None or (
            isinstance(content, ast.Constant) and isinstance(content.value, str | bytes)
        ):
            continue
        content_type = next((k.value for k in node.keywords if k.arg == "content_type"), None)
        if isinstance(content_type, ast.Constant) and str(content_type.value).startswith(
            SAFE_TYPES
        ):
            continue
        found.append(f"{filename}:{node.lineno}: {_name(node.func)} built from a value")
    return found


def test_no_module_builds_an_html_response_from_a_value():
    problems = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            problems += unsafe_responses(path.read_text(), str(path.relative_to(ROOT)))

    assert not problems, (
        "Render these through a template (it escapes) or answer as text/plain:\n"
        + "\n".join(problems)
    )


def test_the_scan_catches_the_export_bug_it_was_written_for():
    bad = 'def view(request, error):\n    return HttpResponseBadRequest(f"Fix: {error}")\n'
    plain = (
        "def view(request, error):\n"
        '    return HttpResponseBadRequest(f"Fix: {error}", content_type="text/plain")\n'
    )
    fixed = 'def view(request):\n    return HttpResponseBadRequest("Fix the filter.")\n'

    assert unsafe_responses(bad, "bad.py") == [
        "bad.py:2: HttpResponseBadRequest built from a value"
    ]
    assert unsafe_responses(plain, "plain.py") == []
    assert unsafe_responses(fixed, "fixed.py") == []
