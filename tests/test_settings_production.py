"""DJANGO_ENV=production refuses to start while a secret is missing, and runs with DEBUG off
once everything is set. Settings are imported in a fresh interpreter, as a server would."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "test-production-secret-key-with-enough-length-0123456789",
    "DATABASE_URL": "postgres://crm:secret@db.internal:5432/crm",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "ALLOWED_HOSTS": "crm.example.com",
}

REPORT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "print('DEBUG', settings.DEBUG); print('HOSTS', ','.join(settings.ALLOWED_HOSTS)); "
    "print('SECURE_COOKIES', settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE)"
)
REPORT_TRANSPORT = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT, "
    "s.SECURE_REDIRECT_EXEMPT, s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_HTTPONLY)"
)


def load_settings(
    env_overrides: dict[str, str], drop: tuple[str, ...] = (), report: str = REPORT_SETTINGS
):
    env = {
        key: value
        for key, value in os.environ.items()
        # Nothing from the developer's shell may stand in for a missing production secret.
        if key not in PRODUCTION_ENV
        and key not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ENV", "SECRET_KEY"}
    }
    env.update(env_overrides)
    for key in drop:
        env.pop(key, None)
    env["DJANGO_SETTINGS_MODULE"] = "crm.settings"
    # Nor may a developer's .env file.
    env["ENV_FILE"] = os.devnull
    return subprocess.run(
        [sys.executable, "-c", report],
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


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"])
def test_production_without_a_server_setting_refuses_to_start_naming_it(name):
    result = load_settings(PRODUCTION_ENV, drop=(name,))

    assert result.returncode != 0
    assert name in result.stderr


def test_production_with_every_secret_set_loads_with_debug_off():
    # DEBUG=1 in the environment must not switch debugging on in production.
    result = load_settings({**PRODUCTION_ENV, "DEBUG": "1"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "DEBUG False",
        "HOSTS crm.example.com",
        "SECURE_COOKIES True",
    ]


def test_production_turns_on_hsts_secure_cookies_and_the_https_redirect():
    result = load_settings(PRODUCTION_ENV, report=REPORT_TRANSPORT)

    assert result.returncode == 0, result.stderr
    # A year of HSTS with subdomains; the health probe stays reachable over plain HTTP.
    assert result.stdout.split() == ["31536000", "True", "True", "['^healthz$']", "True", "True"]


def test_without_a_secret_key_nothing_starts_outside_the_test_suite():
    for mode in ("development", "staging", ""):
        result = load_settings({"DJANGO_ENV": mode} if mode else {})

        assert result.returncode != 0, mode
        assert "ImproperlyConfigured: SECRET_KEY is not set." in result.stderr


def test_debug_is_off_unless_asked_for():
    secret = {"DJANGO_ENV": "development", "SECRET_KEY": PRODUCTION_ENV["SECRET_KEY"]}

    quiet = load_settings(secret)
    asked = load_settings({**secret, "DEBUG": "1"})

    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.splitlines()[0] == "DEBUG False"
    assert asked.stdout.splitlines()[0] == "DEBUG True"


def test_the_test_suite_alone_runs_without_a_secret(settings):
    assert settings.TESTING is True
    assert settings.DEBUG is False
    result = load_settings({"DJANGO_ENV": "test"})
    assert result.returncode == 0, result.stderr


def test_production_passes_djangos_deployment_checklist():
    """`manage.py check --deploy` finds nothing but the HSTS preload list, which a deployment
    opts into itself (SECURE_HSTS_PRELOAD): submitting a domain there is hard to undo."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ENV", "SECRET_KEY"}
    }
    env.update(PRODUCTION_ENV, DJANGO_SETTINGS_MODULE="crm.settings", ENV_FILE=os.devnull)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    found = re.findall(r"\(security\.\w+\)", result.stdout + result.stderr)
    assert found == ["(security.W021)"], result.stdout + result.stderr


def documented_settings() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#\s?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_documents_only_settings_that_exist():
    """.env.example once promised Twilio, encryption keys and an AI command bar that nothing
    read. Every variable it names must be read by the settings, the dev scripts or the
    compose stack."""
    readers = "\n".join(
        path.read_text()
        for path in [
            ROOT / "crm" / "settings.py",
            *sorted((ROOT / "scripts").glob("*.py")),
            ROOT / "docker-compose.yml",
            ROOT / "Dockerfile",
            ROOT / "Makefile",
        ]
    )
    documented = documented_settings()

    assert len(documented) > 20  # the parse found the file's variables
    assert sorted(name for name in documented if name not in readers) == []
