"""Secrets at rest: encrypted with MultiFernet, so keys can rotate.

`encrypt()` uses the first key of CRM_ENCRYPTION_KEYS; `decrypt()` tries each, so adding a
new key in front rotates without making old values unreadable. Without configured keys one
key is derived from SECRET_KEY (development and tests).

Also the two helpers every secret-bearing feature needs: a random token with a readable
prefix, and the digest used to look a presented token up without storing it in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _random
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret none of the configured keys decrypts (a key was removed too early)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = hashlib.sha256(b"crm.secrets:" + secret_key.encode()).digest()
        keys = (base64.urlsafe_b64encode(derived).decode(),)
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def _box() -> MultiFernet:
    return _fernet(tuple(getattr(settings, "CRM_ENCRYPTION_KEYS", ()) or ()), settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return _box().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _box().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with the configured keys."
        ) from None


def new_token(prefix: str = "", nbytes: int = 24) -> str:
    """A URL-safe random token, e.g. new_token("whsec_")."""
    return prefix + _random.token_urlsafe(nbytes)


def digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is looked up (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())
