"""Absolute links for people outside the app, and the language their pages speak.

Emails leave the request, so their links are absolute: they are built on SITE_URL, as the
invitation emails are (crm.services.members.invitation_url).
"""

from __future__ import annotations

from urllib.parse import urljoin

from django.conf import settings
from django.urls import reverse

from ..tokens import opt_in_token, preference_token

# The languages the public pages and emails are written in (locale/<code>/LC_MESSAGES).
PUBLIC_LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"
# Contact.language is free text: a code ("de", "de-AT", "de_CH") or a name.
_LANGUAGE_NAMES = {"english": "en", "englisch": "en", "german": "de", "deutsch": "de"}


def absolute(path: str) -> str:
    base = getattr(settings, "SITE_URL", "") or "http://localhost:8000"
    return urljoin(base, path)


def preference_path(contact) -> str:
    return reverse("compliance:preferences", args=[preference_token(contact)])


def preference_url(contact) -> str:
    """The contact's preference center, for an email footer."""
    return absolute(preference_path(contact))


def unsubscribe_url(contact) -> str:
    """The contact's one-click unsubscribe address (RFC 8058)."""
    return absolute(reverse("compliance:unsubscribe", args=[preference_token(contact)]))


def opt_in_url(confirmation) -> str:
    return absolute(reverse("compliance:confirm_opt_in", args=[opt_in_token(confirmation)]))


def person_language(contact) -> str:
    """The language to address the contact in: theirs when the public pages speak it,
    English otherwise."""
    text = (getattr(contact, "language", "") or "").strip().lower()
    if text in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[text]
    code = text.replace("_", "-").split("-", 1)[0]
    return code if code in PUBLIC_LANGUAGES else DEFAULT_LANGUAGE


def list_unsubscribe_headers(contact) -> dict[str, str]:
    """The headers a marketing email to `contact` carries (RFC 2369 and RFC 8058), so mail
    programs can offer their own unsubscribe button, which POSTs to our one-click URL."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(contact)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
