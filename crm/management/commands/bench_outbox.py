"""Benchmark the outbox relay: `manage.py bench_outbox --events 50000`.

Seeds N outbox events spread round-robin over a few organizations of its own, runs the relay
(crm.outbox.relay_once, as beat's task does) until they are all processed, and prints one line
per scenario:

    unwanted  events=50000 orgs=10 relays=1 batch=500 seconds=7.81 events/s=6400 passes=100
    owner     events=50000 orgs=10 relays=1 batch=500 seconds=22.10 events/s=2262 passes=100 ...

- "unwanted": events no consumer registered for (a bulk tag change writes one per contact):
  the relay's own cost, claiming and marking them processed.
- "owner": `contact.owner_changed` events of a bulk reassignment (one giver, one new owner)
  through the contacts app's notification consumer: one notification per batch.

Other organizations' pending events are relayed too (the relay serves everyone); their count
is printed first. The bench organizations and everything they hold are deleted at the end.
"""

from __future__ import annotations

import threading
import time
import uuid

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from crm import outbox
from crm.models import Membership, Organization, OutboxEvent, User
from crm.services.orgs import ensure_builtin_roles

SLUG_PREFIX = "bench-outbox-"
SEED_CHUNK = 5000


class Command(BaseCommand):
    help = "Seed N outbox events and print how many the relay processes per second."

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=20_000, metavar="N")
        parser.add_argument("--orgs", type=int, default=10)
        parser.add_argument("--batch", type=int, default=outbox.BATCH_SIZE)
        parser.add_argument("--relays", type=int, default=1, help="relays running at once")
        parser.add_argument(
            "--scenario", choices=["unwanted", "owner", "both"], default="both", help="what to seed"
        )

    def handle(self, *args, **options):
        self._cleanup()
        pending = OutboxEvent.objects.all_orgs().filter(processed_at__isnull=True).count()
        self.stdout.write(f"pending before seeding (other organizations): {pending}")
        orgs = [self._org(n) for n in range(options["orgs"])]
        try:
            scenarios = ["unwanted", "owner"] if options["scenario"] == "both" else []
            for scenario in scenarios or [options["scenario"]]:
                self._run(scenario, orgs, options)
        finally:
            self._cleanup()

    # Seeding ---------------------------------------------------------------------------------

    def _org(self, n: int):
        org = Organization.objects.create(name=f"Outbox bench {n}", slug=f"{SLUG_PREFIX}{n}")
        roles = ensure_builtin_roles(org)
        giver, owner = (
            User.objects.create_user(email=f"{SLUG_PREFIX}{n}-{who}@bench.test", first_name=who)
            for who in ("giver", "owner")
        )
        for user in (giver, owner):
            Membership.objects.for_org(org).create(org=org, user=user, role=roles["owner"])
        return org, giver, owner

    def _seed(self, scenario: str, orgs, count: int) -> None:
        rows = []
        for n in range(count):
            org, giver, owner = orgs[n % len(orgs)]
            if scenario == "owner":
                event_type = "contact.owner_changed"
                payload = {
                    "contact": str(uuid.uuid4()),
                    "owner": str(owner.public_id),
                    "actor": str(giver.public_id),
                    "bulk": True,
                }
            else:
                event_type, payload = "contact.updated", {"contact": str(uuid.uuid4())}
            rows.append(OutboxEvent(org=org, event_type=event_type, payload=payload))
            if len(rows) >= SEED_CHUNK:
                OutboxEvent.objects.for_org(org).bulk_create(rows)
                rows = []
        OutboxEvent.objects.for_org(org).bulk_create(rows)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE crm_outboxevent")

    # Running -----------------------------------------------------------------------------------

    def _run(self, scenario: str, orgs, options) -> None:
        org_ids = [org.id for org, _, _ in orgs]
        self._seed(scenario, orgs, options["events"])
        bench_pending = OutboxEvent.objects.all_orgs().filter(
            org_id__in=org_ids, processed_at__isnull=True
        )
        passes = [0]
        lock = threading.Lock()

        def relay():
            try:
                while True:
                    claimed = outbox.relay_once(limit=options["batch"])
                    with lock:
                        passes[0] += bool(claimed)
                    if not claimed and not bench_pending.exists():
                        return
            finally:
                if threading.current_thread() is not threading.main_thread():
                    connection.close()

        started = time.perf_counter()
        if options["relays"] > 1:
            threads = [threading.Thread(target=relay) for _ in range(options["relays"])]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            relay()
        seconds = time.perf_counter() - started
        line = (
            f"{scenario:<9} events={options['events']} orgs={len(orgs)} relays={options['relays']}"
            f" batch={options['batch']} seconds={seconds:.2f}"
            f" events/s={options['events'] / seconds:.0f} passes={passes[0]}"
        )
        if scenario == "owner":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM crm_notification WHERE org_id = ANY(%s)", [org_ids]
                )
                line += f" notifications={cursor.fetchone()[0]}"
        self.stdout.write(line)

    def _cleanup(self) -> None:
        """Delete the bench organizations with plain SQL: the ORM's cascade would look up
        deliveries by event id, which no index serves (they are read by organization)."""
        org_ids = list(
            Organization.objects.filter(slug__startswith=SLUG_PREFIX).values_list("id", flat=True)
        )
        if not org_ids:
            return
        with transaction.atomic(), connection.cursor() as cursor:
            for table in (
                "crm_outboxdelivery",
                "crm_outboxevent",
                "crm_notification",
                "crm_membership",
                "crm_role",
            ):
                cursor.execute(f"DELETE FROM {table} WHERE org_id = ANY(%s)", [org_ids])  # noqa: S608
            cursor.execute("DELETE FROM crm_organization WHERE id = ANY(%s)", [org_ids])
        User.objects.filter(email__startswith=SLUG_PREFIX).delete()
