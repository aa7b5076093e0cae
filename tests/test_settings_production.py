"""DJANGO_ENV=production refuses to start while a secret is missing, and runs with DEBUG off
once everything is set. Settings are imported in a fresh interpreter, as a server would."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "test-production-secret-key-with-enough-length-0123456789",
    "FIELD_ENCRYPTION_KEYS": "dGVzdC1rZXktdGhhdC1pcy0zMi1ieXRlcy1sb25nISE=",
    "DATABASE_URL": "postgres://crm:secret@db.internal:5432/crm",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "ALLOWED_HOSTS": "crm.example.com",
}

REPORT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "print('DEBUG', settings.DEBUG); print('HOSTS', ','.join(settings.ALLOWED_HOSTS)); "
    "print('SECURE_COOKIES', settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE)"
)


def load_settings(env_overrides: dict[str, str], drop: tuple[str, ...] = ()):
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing from the developer's shell may stand in for a missing production secret.
        if key not in PRODUCTION_ENV and key not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(env_overrides)
    for key in drop:
        env.pop(key, None)
    env["DJANGO_SETTINGS_MODULE"] = "crm.settings"
    # Nor may a developer's .env file.
    env["ENV_FILE"] = os.devnull
    return subprocess.run(
        [sys.executable, "-c", REPORT_SETTINGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_without_secret_key_refuses_to_start_naming_it():
    result = load_settings(PRODUCTION_ENV, drop=("SECRET_KEY",))

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DJANGO_ENV=production." in (
        result.stderr
    )


def test_production_without_encryption_keys_refuses_to_start_naming_them():
    result = load_settings(PRODUCTION_ENV, drop=("FIELD_ENCRYPTION_KEYS",))

    assert result.returncode != 0
    assert "ImproperlyConfigured: FIELD_ENCRYPTION_KEYS must be set" in result.stderr


def test_production_with_every_secret_set_loads_with_debug_off():
    # DEBUG=1 in the environment must not switch debugging on in production.
    result = load_settings({**PRODUCTION_ENV, "DEBUG": "1"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "DEBUG False",
        "HOSTS crm.example.com",
        "SECURE_COOKIES True",
    ]
