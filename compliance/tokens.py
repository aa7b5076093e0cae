"""Signed links for people outside the app: the preference center, the one-click unsubscribe
and the double opt-in confirmation.

A link carries public ids only, signed with the deployment's SECRET_KEY under a salt per
purpose, so a preference link cannot be used as a confirmation link or the other way round,
and nothing in a link can be changed without the signature failing. Each link names the
organization as well as the record: the reader looks the record up inside that
organization only, so a link whose organization and record do not belong together finds
nothing.

- Preference and unsubscribe links do not expire (they sit in every marketing email ever
  sent). They carry PREFERENCE_LINK_VERSION: raising it makes every link issued before
  unreadable, should the links of a deployment ever need to be withdrawn at once.
- An opt-in link is timestamped and read with a maximum age: the organization's
  confirmation_hours (PrivacySettings), never more than MAX_CONFIRMATION_HOURS.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core import signing

PREFERENCE_SALT = "compliance.preference-link"
OPT_IN_SALT = "compliance.opt-in-link"
PREFERENCE_LINK_VERSION = 1
MAX_CONFIRMATION_HOURS = 720
# A signed link is about 150 characters; anything far longer is not one of ours.
MAX_TOKEN_LENGTH = 400


class LinkError(Exception):
    """A link that cannot be used. `expired` tells an old link from a broken one; the page a
    person sees says no more than that."""

    def __init__(self, *, expired: bool = False):
        super().__init__("expired link" if expired else "invalid link")
        self.expired = expired


@dataclass(frozen=True)
class LinkTarget:
    """What a readable link points at: an organization's public id and a record's."""

    org_public_id: uuid.UUID
    record_public_id: uuid.UUID


def preference_token(contact) -> str:
    """The contact's preference center (and one-click unsubscribe) token."""
    payload = [contact.org.public_id.hex, contact.public_id.hex, PREFERENCE_LINK_VERSION]
    return signing.dumps(payload, salt=PREFERENCE_SALT)


def opt_in_token(confirmation) -> str:
    """The token of a double opt-in confirmation link (timestamped when made)."""
    payload = [confirmation.org.public_id.hex, confirmation.public_id.hex]
    return signing.dumps(payload, salt=OPT_IN_SALT)


def _target(values, *, length: int) -> LinkTarget:
    if not isinstance(values, list) or len(values) != length:
        raise LinkError()
    try:
        return LinkTarget(uuid.UUID(hex=str(values[0])), uuid.UUID(hex=str(values[1])))
    except ValueError:
        raise LinkError() from None


def _loads(token: str, *, salt: str, max_age: int | None = None):
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise LinkError()
    try:
        return signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired:
        raise LinkError(expired=True) from None
    except (signing.BadSignature, ValueError, UnicodeError):
        raise LinkError() from None


def read_preference_token(token: str) -> LinkTarget:
    """The organization and contact of a preference token, or LinkError."""
    values = _loads(token, salt=PREFERENCE_SALT)
    target = _target(values, length=3)
    if values[2] != PREFERENCE_LINK_VERSION:
        raise LinkError()
    return target


def read_opt_in_token(token: str, *, max_hours: int = MAX_CONFIRMATION_HOURS) -> LinkTarget:
    """The organization and confirmation of an opt-in token no older than `max_hours`
    (capped at MAX_CONFIRMATION_HOURS), or LinkError (expired=True when it is older)."""
    hours = max(1, min(int(max_hours), MAX_CONFIRMATION_HOURS))
    return _target(_loads(token, salt=OPT_IN_SALT, max_age=hours * 3600), length=2)
