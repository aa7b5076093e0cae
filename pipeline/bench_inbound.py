"""Benchmark of the inbound order URL: orders per second into one organization, received the
way a shop sends them (signed JSON batches POSTed to /pipeline/inbound/orders/<token>/,
through the whole middleware stack with Django's test client), and proof that replaying the
same batches is idempotent.

    run_inbound_bench(org, orders=20_000, batch=500, stdout=sys.stdout)

- The organization gets the orders module on and its inbound URL (made if missing).
- Customers: one contact per four orders (emails inbound-bench-<n>@bench.test), loaded once
  with bulk_create when missing. A shop's customers mostly exist by the time they order, and
  contacts made by the URL go one by one through the contacts service (with audit, event,
  timeline), which is not what this measures.
- `repeats` runs (3 by default), each sending `orders` new orders (external ids of the run)
  in batches of `batch`; bodies are built before the clock starts, signing is timed. Each
  run's rate is printed, then the median, min and max over the runs.
- Then the last run's batches are sent again with fresh signatures: every order must come
  back "unchanged", and the organization's order count must be what it was.

Returns the figures as a dict (bench_orders and the tests read it).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.test import Client, override_settings
from django.urls import reverse

from contacts.models import Contact
from crm import rls
from crm.services import Actor

from .models import Order
from .services.order_inbound import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ensure_inbound,
    sign,
    signing_secret,
    url_token,
)
from .services.order_upsert import MAX_ITEMS

ACTOR = Actor.system("bench_inbound")
REPEATS = 3
ORDERS_PER_CUSTOMER = 4
STATUSES = ("paid", "paid", "paid", "pending", "partially_paid", "refunded", "canceled")
CURRENCIES = ("EUR", "EUR", "USD", "GBP")


class BenchFailure(AssertionError):
    """The endpoint did not answer as a working one must (a failed batch, a changed count)."""


def _host() -> str:
    for host in settings.ALLOWED_HOSTS:
        if host and host != "*" and "*" not in host:
            return host.lstrip(".")
    return "localhost"


def _prepare(org, customers: int) -> tuple[str, str, list[str]]:
    """The orders module on, the inbound URL's token and secret, the customers' emails."""
    if "orders" not in (org.enabled_modules or []):
        org.enabled_modules = sorted({*(org.enabled_modules or []), "orders"})
        org.save(update_fields=["enabled_modules"])
    emails = [f"inbound-bench-{n}@bench.test" for n in range(customers)]
    with transaction.atomic(), rls.tenant(org.pk):
        inbound = ensure_inbound(org, actor=ACTOR)
        have = set(
            Contact.objects.for_org(org).filter(email__in=emails).values_list("email", flat=True)
        )
        missing = [
            Contact(org=org, email=email, first_name="Bench", last_name=f"Buyer {n}")
            for n, email in enumerate(emails)
            if email not in have
        ]
        Contact.objects.for_org(org).bulk_create(missing, batch_size=2000)
        token, secret = url_token(inbound), signing_secret(inbound)
    # Fresh statistics, as autovacuum keeps them in production (it may be off on a dev
    # machine, and plans made on the statistics of an empty table are not what we measure).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE contacts_contact, pipeline_order")
    return token, secret, emails


def _bodies(run: str, orders: int, batch: int, emails: list[str]) -> list[tuple[int, bytes]]:
    """(orders in it, JSON body) per request of one run."""
    start = dt.date(2025, 1, 1)
    out = []
    for first in range(0, orders, batch):
        items = []
        for n in range(first, min(first + batch, orders)):
            status = STATUSES[n % len(STATUSES)]
            items.append(
                {
                    "external_id": f"{run}-{n}",
                    "title": f"Order {run}-{n}",
                    "value": f"{(n * 37) % 5000 + 9}.{n % 100:02d}",
                    "currency": CURRENCIES[n % len(CURRENCIES)],
                    "status": status,
                    "order_date": (start + dt.timedelta(days=n % 365)).isoformat(),
                    "paid_date": (start + dt.timedelta(days=n % 365 + 1)).isoformat()
                    if status == "paid"
                    else None,
                    "email": emails[n % len(emails)],
                }
            )
        out.append((len(items), json.dumps({"orders": items}).encode()))
    return out


def _send(client: Client, path: str, secret: str, body: bytes, expect: str, size: int) -> None:
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    response = client.post(
        path,
        data=body,
        content_type="application/json",
        headers={
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(secret, msg_id, stamp, body),
        },
    )
    if response.status_code != 200:
        raise BenchFailure(f"a batch answered {response.status_code}: {response.content[:300]!r}")
    counts = response.json()["counts"]
    if counts[expect] != size:
        raise BenchFailure(f"a batch of {size} answered {counts} (expected all {expect})")


def _order_count(org) -> int:
    with transaction.atomic(), rls.tenant(org.pk):
        return Order.objects.for_org(org).filter(source=Order.Source.WEBHOOK).count()


def _send_all(client, path, secret, bodies, expect) -> float:
    started = time.perf_counter()
    for size, body in bodies:
        _send(client, path, secret, body, expect, size)
    return time.perf_counter() - started


@override_settings(DEBUG=False)
def run_inbound_bench(org, *, orders: int, batch: int, stdout, repeats: int = REPEATS) -> dict:
    if orders < 1 or repeats < 1:
        raise ValueError("orders and repeats must be at least 1.")
    batch = max(1, min(batch, MAX_ITEMS))
    customers = max(1, orders // ORDERS_PER_CUSTOMER)
    token, secret, emails = _prepare(org, customers)
    path = reverse("pipeline:order_inbound", args=[token])
    client = Client(HTTP_HOST=_host())
    stdout.write(
        f"Inbound orders into {org.slug}: {orders:,} orders per run in batches of {batch} "
        f"({-(-orders // batch)} requests), {customers:,} customers, {repeats} runs"
    )

    rates, bodies = [], []
    for index in range(repeats):
        bodies = _bodies(uuid.uuid4().hex[:10], orders, batch, emails)
        seconds = _send_all(client, path, secret, bodies, "created")
        rates.append(orders / seconds)
        stdout.write(f"  run {index + 1}: {seconds:.2f} s, {orders / seconds:,.0f} orders/s")

    before = _order_count(org)
    replay_seconds = _send_all(client, path, secret, bodies, "unchanged")
    after = _order_count(org)
    if after != before:
        raise BenchFailure(f"replaying changed the order count: {before:,} → {after:,}")

    figures = {
        "orders": orders,
        "batch": batch,
        "runs": [round(rate, 1) for rate in rates],
        "median": round(statistics.median(rates), 1),
        "min": round(min(rates), 1),
        "max": round(max(rates), 1),
        "replay": round(orders / replay_seconds, 1),
        "rows_before_replay": before,
        "rows_after_replay": after,
    }
    stdout.write(
        f"  created: median {figures['median']:,.0f} orders/s "
        f"(min {figures['min']:,.0f}, max {figures['max']:,.0f}) · target ≥ 500"
    )
    stdout.write(
        f"  replay of the last run: {figures['replay']:,.0f} orders/s, every order "
        f"unchanged, {after:,} webhook orders before and after"
    )
    return figures
