"""Probes behind GET /healthz: the database, Redis and at least one Celery worker; and, for
staff, how far behind the outbox relay is."""

import time

import redis
from django.conf import settings
from django.db import connection

from . import outbox


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_redis():
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def check_celery():
    from crm.celery import app

    # limit=1: return as soon as one worker answers instead of waiting out the whole timeout.
    replies = app.control.ping(timeout=settings.HEALTHZ_CELERY_TIMEOUT, limit=1)
    if not replies:
        raise RuntimeError("no Celery worker answered")


CHECKS = {"database": check_database, "redis": check_redis, "celery": check_celery}


def run_checks():
    results = {}
    for name, probe in CHECKS.items():
        started = time.perf_counter()
        try:
            probe()
        except Exception as exc:  # a probe failing for any reason means "down"
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


def relay_lag():
    """Events the outbox relay has not processed yet and the age of the oldest (seconds).
    Information, not a probe: a relay that lags leaves the app up, so it never turns the
    status to "down"."""
    try:
        return outbox.lag()
    except Exception as exc:  # the database being down is reported by its own probe
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
