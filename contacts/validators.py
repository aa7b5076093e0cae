"""The field checks that every writer shares: the contact and company forms, the services
behind them (and so any API), the CSV import and custom fields all call these, so a value
refused in one place is refused everywhere, with the same message.

Each check raises django's ValidationError with a message fit to show next to the field or
in an import report. The import runs them on every distinct cell (about 10k rows/s), so the
cheap tests come first and compiled patterns are cached.

Admin-written patterns run on RE2 (google-re2), whose matching time grows linearly with the
text: no pattern can make a worker backtrack for ever, as `(a+)+$` does with Python's re.
"""

from __future__ import annotations

import functools
import logging
import re
import zoneinfo

import re2
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

log = logging.getLogger(__name__)

# Web addresses ------------------------------------------------------------------------------

WEB_SCHEMES = ("http", "https")
URL_MAX_LENGTH = 500  # the URL columns' length (Contact.linkedin_url, Company.website)

# A scheme as RFC 3986 spells it, at the start of the text ("javascript:", "HTTPS:"); a
# colon before a port number ("acme.com:8080") is a host and port typed without a scheme.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?!\d)")
# Whitespace and control characters: browsers drop some of them while reading a scheme
# ("java\tscript:"), and no web address people type holds them.
_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_WEB_URL = URLValidator(schemes=list(WEB_SCHEMES))


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:80] + "…"


def clean_url(value, *, max_length: int = URL_MAX_LENGTH) -> str:
    """A web address with an http or https scheme and a real host; "" stays "".

    Without a scheme, https:// is assumed ("acme.com/pricing" → "https://acme.com/pricing"),
    as the form always did. Any other scheme ("javascript:", "data:", "ftp://"), a relative
    or protocol-relative address ("//evil.com") and anything with whitespace or control
    characters is refused: these values end up in links."""
    text = "" if value is None else str(value).strip()
    if not text:
        return ""
    if len(text) > max_length:
        raise ValidationError(
            f"A web address can have at most {max_length} characters.", code="url_too_long"
        )
    refused = ValidationError(
        f"“{_shown(text)}” is not a web address. Use one that starts with http:// or https://.",
        code="invalid_url",
    )
    if _UNSAFE_CHARS.search(text):
        raise refused
    scheme = _SCHEME.match(text)
    if scheme is not None:
        if scheme.group(1).lower() not in WEB_SCHEMES:
            raise refused
        url = text
    elif text[0] in "/\\":
        raise refused
    else:
        url = f"https://{text}"
    try:
        _WEB_URL(url)
    except ValidationError:
        raise refused from None
    return url


# What may follow a link's scheme: a host, not a path or another slash.
_SAFE_LINK = re.compile(r"https?://[^\s/\\?#]", re.IGNORECASE)
# What browsers strip from both ends of an attribute's URL before they read it.
_EDGE_CHARS = "".join(chr(c) for c in range(0x21)) + "\x7f"


def safe_url(value) -> str:
    """`value` when it is an http(s) link fit for an href, else "".

    For rendering, whatever is stored (values saved before the validators above, or
    written by some path that forgot them). The text must start with the literal letters
    of "http://" or "https://" after the characters browsers trim: entity or percent
    encoded schemes ("jav&#x09;ascript:", "%6Aavascript:"), tabs inside a scheme and
    every other scheme fail that test, as does whitespace or a control character anywhere
    (no web address the validator stores holds one)."""
    if value is None:
        return ""
    text = str(value).strip(_EDGE_CHARS)
    if not _SAFE_LINK.match(text) or _UNSAFE_CHARS.search(text):
        return ""
    return text


# Other standard fields ---------------------------------------------------------------------------


def clean_timezone(value) -> str:
    """An IANA time zone name ("Europe/Berlin"); "" stays ""."""
    text = "" if value is None else str(value).strip()
    if not text:
        return ""
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"“{_shown(text)}” is not a time zone such as Europe/Berlin.", code="invalid_timezone"
        ) from None
    return text


def clean_twitter_handle(value) -> str:
    """A handle without its "@"; "" stays "". Shown as a link to x.com/<handle>."""
    return ("" if value is None else str(value).strip()).lstrip("@")


# Admin-written patterns -------------------------------------------------------------------------

MAX_PATTERN_LENGTH = 300  # CustomFieldDefinition.regex

# Python spells "end of text" \Z where RE2 spells it \z; patterns written for re keep
# working. An escaped backslash ("\\Z", a backslash then Z) is left alone.
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

# RE2's words for what it refuses, and what to tell the admin instead.
_UNSUPPORTED = [
    (re.compile(r"invalid escape sequence: \\[1-9k]"), "a backreference such as \\1"),
    (re.compile(r"invalid perl operator: \(\?P$"), "a named backreference (?P=name)"),
    (re.compile(r"invalid perl operator: \(\?<?[=!]"), "a lookahead or lookbehind"),
    (re.compile(r"invalid perl operator: \(\?>"), "an atomic group (?>…)"),
    (re.compile(r"invalid perl operator: \(\?\("), "a conditional group (?(…)…)"),
    (
        re.compile(r"bad repetition operator: (?:[*+?]|\{[\d,]*\})\+"),
        "a possessive quantifier such as a++",
    ),
]


def _for_re2(pattern: str) -> str:
    return _ESCAPE.sub(lambda m: r"\z" if m.group(1) == "Z" else m.group(0), pattern)


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # refusals are reported to the admin, not to stderr
    options.never_capture = True  # only "does it match" is asked: no groups to keep
    return options


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str):
    """(compiled pattern, None) or (None, why RE2 cannot run it). Cached per process: the
    import asks once per distinct cell, forms once per save."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return None, f"A pattern can have at most {MAX_PATTERN_LENGTH} characters."
    try:
        return re2.compile(_for_re2(pattern), _options()), None
    except re2.error as exc:
        detail = exc.args[0] if exc.args else b""
        detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    for test, feature in _UNSUPPORTED:
        if test.search(detail):
            return None, f"This pattern uses {feature}, which is not supported."
    return None, f"This pattern does not compile: {detail}."


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used for a field check, or None when it can."""
    return _compiled(pattern)[1]


def pattern_matches(pattern: str, text: str) -> bool | None:
    """Whether the whole of `text` matches `pattern`; None when the pattern cannot run.

    A pattern saved before patterns were checked against RE2 is skipped rather than
    applied: refusing every value would lock people out of the field for a rule they
    cannot see. It is logged once per process and the definition's form tells the admin."""
    compiled, problem = _compiled(pattern)
    if compiled is None:
        _log_unusable(pattern, problem)
        return None
    return compiled.fullmatch(text) is not None


@functools.lru_cache(maxsize=256)
def _log_unusable(pattern: str, problem: str) -> None:
    log.warning("custom field pattern %r is not applied: %s", pattern, problem)
