"""GET /healthz: 200 when the database, Redis and a Celery worker all answer; 503 naming
whatever is down."""

import socket

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import override_settings
from django.urls import reverse

from crm.celery import app as celery_app
from tests.factories import UserFactory


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True))
    return client


def closed_port() -> int:
    """A local TCP port nothing listens on (bound once by us, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Both Celery tests run in the serial pass (marked slow): a worker started by one test would
# answer the other's ping if they ran at the same time on the shared broker.
# transactional_db: building the worker runs Celery's Django fixup, which closes this thread's
# database connection, and that would end the transaction the plain `db` fixture wraps tests in.
@pytest.mark.slow
def test_healthz_is_ok_with_database_redis_and_a_running_worker(transactional_db, client):
    client.force_login(UserFactory(is_staff=True))
    # The worker runs in a thread of this process with the project's app and answers control
    # commands (ping) over the real broker; the built-in ping task is not needed for that.
    with (
        start_worker(celery_app, perform_ping_check=False, shutdown_timeout=30),
        override_settings(HEALTHZ_CELERY_TIMEOUT=5.0),
    ):
        response = client.get(reverse("healthz"))

    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["down"] == []
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "celery": True,
    }
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.slow
@override_settings(HEALTHZ_CELERY_TIMEOUT=0.5)
def test_healthz_names_celery_when_no_worker_answers(staff_client):
    client = staff_client
    response = client.get(reverse("healthz"))

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "down"
    assert body["down"] == ["celery"]
    assert "no Celery worker answered" in body["checks"]["celery"]["error"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True


@override_settings(HEALTHZ_CELERY_TIMEOUT=0.2)
def test_healthz_names_redis_when_redis_is_unreachable(staff_client):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = staff_client.get(reverse("healthz"))

    body = response.json()
    assert response.status_code == 503
    assert "redis" in body["down"]
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_healthz_answers_only_get(client, db):
    response = client.post(reverse("healthz"))

    assert response.status_code == 405


@override_settings(HEALTHZ_CELERY_TIMEOUT=0.2)
@pytest.mark.parametrize("who", ["visitor", "member"])
def test_healthz_tells_the_public_only_up_or_down(client, db, who):
    """Exception text names hosts, ports and internals: only staff see it."""
    if who == "member":
        client.force_login(UserFactory(is_staff=False))
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = client.get(reverse("healthz"))

    assert response.status_code == 503
    assert response.json() == {"status": "down"}
    assert b"127.0.0.1" not in response.content
    assert b"Error" not in response.content


def test_healthcheck_command_prints_the_detail(db, capsys):
    from django.core.management import CommandError, call_command

    with (
        override_settings(HEALTHZ_CELERY_TIMEOUT=0.2),
        override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"),
        pytest.raises(CommandError, match="redis"),
    ):
        call_command("healthcheck")

    assert "ConnectionError" in capsys.readouterr().out
