"""Browser tests: Playwright drives Debian's Chromium against pytest-django's live_server.

Run them alone with `pytest -m e2e`. The live server runs in a thread of this process, so
mail sent by the app lands in django.core.mail.outbox (the locmem backend of test runs).
"""

import os
import shutil
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from playwright.sync_api import sync_playwright

# Playwright's sync API keeps an asyncio event loop running in the test thread, and Django
# refuses ORM calls from a thread with a running loop unless this variable is set. Django
# reads it on every such call, so setting it when this conftest is imported (before any
# fixture touches the database) is enough; tests/conftest.py sets it as well.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the whole run; every test gets a fresh context (cookies, storage)."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def browser_context(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    in_flight = set()
    context.on("request", lambda request: in_flight.add(request))
    context.on("requestfinished", lambda request: in_flight.discard(request))
    context.on("requestfailed", lambda request: in_flight.discard(request))
    yield context
    # Requests still in flight (an HTMX count fired by the last action) must finish before
    # the test's data is flushed: each request runs in one transaction, and a TRUNCATE
    # meeting one half-way through can deadlock with it.
    deadline = time.monotonic() + 5
    while in_flight and context.pages and time.monotonic() < deadline:
        context.pages[0].wait_for_timeout(50)
    context.close()
    # A request the browser gave up on (HTMX cancels a count when the list changes again)
    # is no longer in flight for the browser, but the live server still runs it to the end.
    _wait_for_other_transactions(deadline=time.monotonic() + 5)


# Backends of this database, other than the test's own, in the middle of a statement or a
# transaction: a live-server request still running.
_BUSY_BACKENDS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
"""


# How long the database must stay quiet before the flush: a request the server accepted
# just before the browser closed may not have reached its first query yet.
_QUIET_CHECKS = 4


def _wait_for_other_transactions(*, deadline: float) -> None:
    quiet = 0
    with connection.cursor() as cursor:
        while time.monotonic() < deadline and quiet < _QUIET_CHECKS:
            cursor.execute(_BUSY_BACKENDS)
            quiet = quiet + 1 if cursor.fetchone()[0] == 0 else 0
            time.sleep(0.05)


@pytest.fixture
def page(browser_context):
    """A blank tab whose relative URLs go to the live server."""
    return browser_context.new_page()


@pytest.fixture
def login_as(browser_context, live_server):
    """login_as(user) signs the browser in without going through the login form, so tests
    that are not about signing in do not depend on how the login page looks."""

    def sign_in(user):
        client = Client()
        client.force_login(user)
        session_cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        browser_context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": session_cookie.value,
                    "url": live_server.url,
                }
            ]
        )
        return user

    return sign_in
