"""Secrets at rest (crm.secrets): encrypted, readable after a key rotation, refused clearly
when no configured key opens them."""

import pytest
from cryptography.fernet import Fernet

from crm import secrets


@pytest.fixture(autouse=True)
def _fresh_keys():
    secrets._fernet.cache_clear()
    yield
    secrets._fernet.cache_clear()


def test_a_secret_is_stored_encrypted_and_reads_back(settings):
    settings.CRM_ENCRYPTION_KEYS = []
    token = secrets.encrypt("whsec_abc")
    assert "whsec_abc" not in token
    assert secrets.decrypt(token) == "whsec_abc"
    assert secrets.encrypt("whsec_abc") != token  # a fresh nonce each time


def test_adding_a_key_in_front_rotates_without_losing_old_values(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CRM_ENCRYPTION_KEYS = [old]
    stored = secrets.encrypt("s3cret")

    settings.CRM_ENCRYPTION_KEYS = [new, old]
    assert secrets.decrypt(stored) == "s3cret"
    rewritten = secrets.encrypt("s3cret")

    settings.CRM_ENCRYPTION_KEYS = [new]
    assert secrets.decrypt(rewritten) == "s3cret"
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt(stored)


def test_digest_and_comparison():
    assert secrets.digest("abc") == secrets.digest("abc")
    assert secrets.digest("abc") != secrets.digest("abd")
    assert len(secrets.digest("abc")) == 64
    assert secrets.same("x", "x") and not secrets.same("x", "y")
    assert secrets.new_token("ck_").startswith("ck_")
    assert secrets.new_token() != secrets.new_token()
