"""Benchmark the orders registry and custom objects at scale:
`manage.py bench_orders --contacts 1000000 --orders 2000000`.

Part "filters" seeds (or tops up) the bench organization with N contacts (contacts.demo, as
bench_contacts does), M orders on about two in five of them (statuses, sources, currencies
and three years of order dates in realistic shares), two custom object types (Course and
Property) with records and A associations to contacts; the two noise organizations get 5 %
of each, so every query must really filter by org. Orders, records and associations are
loaded with COPY, the ids reserved up front, a big load without the tables' secondary
indexes and keys (rebuilt once at the end). Then VACUUM ANALYZE, and the real contact list is
requested through Django's test client with DEBUG off, once per scenario (a filter over
orders or associations) as an admin ("all" scope) and as a rep ("own" scope): the page, and
the count the page loads next (contacts:contact_count, exact up to 10,000). One line each:

    scenario            member  page p50   p95  count p50   p95  queries  shown

Timed runs are separate from the run that counts queries. `--explain` prints EXPLAIN ANALYZE
of each scenario's slowest query; `--skip-seed` measures what is there.

Part "inbound" hands over to pipeline.bench_inbound.run_inbound_bench (orders received
through the signed inbound URL, in batches, and the same batches replayed).
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.demo import top_up
from contacts.models import Contact
from crm.models import Membership, Organization
from crm.services import Actor, organization_create
from crm.services.orgs import ensure_builtin_roles
from pipeline.bench_orders_seed import (
    LINK_COLUMNS,
    ORDER_COLUMNS,
    RECORD_COLUMNS,
    Seeder,
    check_columns,
)
from pipeline.models import ObjectAssociation, ObjectRecord, ObjectType, Order

ACTOR = Actor.system("bench_orders")
ADMIN_EMAIL = "bench-admin@bench.test"
NOISE_ORGS = ("bench-noise-1", "bench-noise-2")
NOISE_SHARE = 20  # each noise organization gets 1/20 of every count
COUNT_TEXT = re.compile(r'<span id="list-count">([^<]*?) contacts?</span>')


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def scenarios(org) -> list[tuple[str, dict]]:
    """(name, filter) of each measured contact list."""
    course = ObjectType.objects.for_org(org).get(key="course")
    prop = ObjectType.objects.for_org(org).get(key="property")
    base = org.base_currency

    def one(field, op, value):
        return {"groups": [{"conditions": [{"field": field, "op": op, "value": value}]}]}

    def where(object_type, field, op, value):
        return {
            "type": str(object_type.public_id),
            "where": {"field": field, "op": op, "value": value},
        }

    return [
        # No filter: the list's own cost, which every scenario below includes.
        ("no_filter", None),
        ("paid_last_90_days", one("orders", "has", {"status": ["paid"], "days": 90})),
        ("refunded_webhook", one("orders", "has", {"status": ["refunded"], "source": ["webhook"]})),
        ("no_paid_order", one("orders", "has_none", {"status": ["paid"]})),
        ("total_paid_gt_1000", one("orders.total_paid", "gt", {"amount": 1000, "currency": base})),
        (
            "total_paid_gt_10000",
            one("orders.total_paid", "gt", {"amount": 10000, "currency": base}),
        ),
        ("total_paid_lt_100", one("orders.total_paid", "lt", {"amount": 100, "currency": base})),
        ("more_than_8_orders", one("orders.count", "gt", {"count": 8})),
        ("with_a_course", one("objects", "associated", {"type": str(course.public_id)})),
        ("course_advanced", one("objects", "associated", where(course, "level", "eq", "Advanced"))),
        ("course_seats_gt_60", one("objects", "associated", where(course, "seats", "gt", 60))),
        ("no_property", one("objects", "not_associated", {"type": str(prop.public_id)})),
    ]


class Command(BaseCommand):
    help = "Seed contacts, orders and associated records; time contact filters over them."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=1_000_000, metavar="N")
        parser.add_argument("--orders", type=int, default=2_000_000, metavar="N")
        parser.add_argument("--associations", type=int, default=1_000_000, metavar="N")
        parser.add_argument("--records", type=int, default=100_000, metavar="N")
        parser.add_argument("--runs", type=int, default=30)
        parser.add_argument("--org-slug", default="bench")
        parser.add_argument("--part", choices=["filters", "inbound", "all"], default="all")
        parser.add_argument("--inbound-orders", type=int, default=20_000, metavar="N")
        parser.add_argument("--batch", type=int, default=500, help="orders per inbound request")
        parser.add_argument("--only", default="", help="comma-separated scenario names")
        parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE slow queries")
        parser.add_argument("--skip-seed", action="store_true", help="Measure what is there")

    # Seeding ---------------------------------------------------------------------------------

    def _user(self, email: str, first: str):
        User = get_user_model()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=None, first_name=first)
        return user

    def _org(self, slug: str, name: str) -> Organization:
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            owner = self._user(f"owner@{slug}.test", "Owner")
            org = organization_create(name=name, slug=slug, owner=owner, actor=ACTOR)
        roles = ensure_builtin_roles(org)
        for index in range(4):
            rep = self._user(f"rep{index}@{slug}.test", f"Rep {index}")
            Membership.objects.for_org(org).get_or_create(
                org=org, user=rep, defaults={"role": roles["team"]}
            )
        if slug not in NOISE_ORGS:
            admin = self._user(ADMIN_EMAIL, "Bench")
            Membership.objects.for_org(org).get_or_create(
                org=org, user=admin, defaults={"role": roles["admin"]}
            )
        wanted = sorted({*(org.enabled_modules or []), "orders", "custom_objects"})
        if list(org.enabled_modules or []) != wanted:
            org.enabled_modules = wanted
            org.save(update_fields=["enabled_modules"])
        return org

    def _seed_org(self, org, options, share: int, rng) -> None:
        log = self.stdout.write
        with transaction.atomic():
            top_up(org, max(1, options["contacts"] // share), rng, log, company_share=50)
        seeder = Seeder(org, rng, log)
        with transaction.atomic():
            seeder.orders(max(1, options["orders"] // share))
        with transaction.atomic():
            types = seeder.object_types()
            records = seeder.records(types, max(2, options["records"] // share))
        with transaction.atomic():
            seeder.associations(types, records, options["associations"] // share)

    def _seed(self, slug: str, options) -> Organization:
        for model, columns in (
            (Order, ORDER_COLUMNS),
            (ObjectRecord, RECORD_COLUMNS),
            (ObjectAssociation, LINK_COLUMNS),
        ):
            check_columns(model, columns)
        rng = random.Random(options["contacts"])
        started = time.perf_counter()
        for noise_slug in NOISE_ORGS:
            noise = self._org(noise_slug, noise_slug.replace("-", " ").title())
            self._seed_org(noise, options, NOISE_SHARE, rng)
        org = self._org(slug, "Bench")
        self._seed_org(org, options, 1, rng)
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
        self.stdout.write(f"seeded in {time.perf_counter() - started:.1f}s; {command}…")
        with connection.cursor() as cursor:
            for table in (
                "contacts_contact",
                "pipeline_order",
                "pipeline_objectrecord",
                "pipeline_objectassociation",
            ):
                cursor.execute(f"{command} {table}")
        return org

    # Measuring -------------------------------------------------------------------------------

    def _client(self, org, user) -> Client:
        client = Client()
        client.force_login(user)
        session = client.session
        session["active_org_id"] = org.pk
        session.save()
        return client

    def _members(self, org) -> list[tuple[str, object]]:
        """The admin ("all" scope) and the rep ("own") who owns the most contacts."""
        admin = get_user_model().objects.get(email__iexact=ADMIN_EMAIL)
        reps = Membership.objects.for_org(org).filter(role__key="team", is_active=True)
        best, most = None, -1
        for membership in reps.select_related("user"):
            owned = Contact.objects.for_org(org).filter(owner_id=membership.user_id)[:50_001]
            count = owned.count()
            if count > most:
                best, most = membership.user, count
        return [("all", admin), ("own", best)] if best is not None else [("all", admin)]

    def _time(self, client, url: str, runs: int):
        """(timings, queries, response) of `runs` requests of `url` after two warm-ups."""
        for _ in range(2):
            response = client.get(url)
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}")
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        queries = list(captured.captured_queries)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            _ = client.get(url).content
            timings.append((time.perf_counter() - started) * 1000)
        return timings, queries, response

    def _explain(self, name: str, queries: list[dict]) -> None:
        selects = [q for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
        if not selects:
            return
        slowest = max(selects, key=lambda q: float(q.get("time") or 0))
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
            plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())
        self.stdout.write(f"  slowest query of {name} ({slowest['time']}s):\n{plan}")

    def _filters(self, org, options) -> list[dict]:
        runs = max(options["runs"], 1)
        wanted = {s for s in options["only"].split(",") if s}
        members = self._members(org)
        list_url, count_url = reverse("contacts:contact_list"), reverse("contacts:contact_count")
        header = (
            f"{'scenario':<22}{'member':<8}{'page p50':>9}{'p95':>8}{'count p50':>11}"
            f"{'p95':>8}{'queries':>9}  shown"
        )
        self.stdout.write(header)
        results = []
        with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver", "localhost"]):
            for name, spec in scenarios(org):
                if wanted and name not in wanted:
                    continue
                query = "?filters=" + json.dumps(spec, separators=(",", ":")) if spec else ""
                for scope, user in members:
                    client = self._client(org, user)
                    page, queries, _ = self._time(client, list_url + query, runs)
                    count, count_queries, response = self._time(client, count_url + query, runs)
                    found = COUNT_TEXT.search(response.content.decode())
                    shown_text = found.group(1).replace("More than ", ">") if found else "?"
                    row = {
                        "scenario": name,
                        "member": scope,
                        "page_p50": round(statistics.median(page), 1),
                        "page_p95": round(_percentile(page, 0.95), 1),
                        "count_p50": round(statistics.median(count), 1),
                        "count_p95": round(_percentile(count, 0.95), 1),
                        "queries": len(queries),
                        "shown": shown_text,
                    }
                    results.append(row)
                    self.stdout.write(
                        f"{name:<22}{scope:<8}{row['page_p50']:>9.1f}{row['page_p95']:>8.1f}"
                        f"{row['count_p50']:>11.1f}{row['count_p95']:>8.1f}{len(queries):>9}  "
                        f"{shown_text}"
                    )
                    if options["explain"]:
                        self._explain(f"{name}/{scope} page", queries)
                        self._explain(f"{name}/{scope} count", count_queries)
        return results

    def _inbound(self, org, options):
        # Written alongside this command (pipeline.bench_inbound); imported only when asked for.
        try:
            from pipeline.bench_inbound import run_inbound_bench
        except ImportError as exc:
            raise CommandError(f"The inbound part is not available: {exc}") from exc
        return run_inbound_bench(
            org, orders=options["inbound_orders"], batch=options["batch"], stdout=self.stdout
        )

    def handle(self, *args, **options):
        slug = options["org_slug"]
        if options["skip_seed"]:
            org = Organization.objects.filter(slug=slug).first()
            if org is None:
                raise CommandError(f"No organization {slug!r}: run without --skip-seed first.")
            org = self._org(slug, org.name)
        else:
            org = self._seed(slug, options)
        contacts = Contact.objects.for_org(org).count()
        orders = Order.objects.for_org(org).count()
        links = ObjectAssociation.objects.for_org(org).count()
        self.stdout.write(
            f"Bench: {contacts:,} contacts, {orders:,} orders, {links:,} associations; "
            f"{max(options['runs'], 1)} runs per figure (ms)"
        )
        figures: dict = {"org": slug, "contacts": contacts, "orders": orders}
        if options["part"] in ("filters", "all"):
            figures["filters"] = self._filters(org, options)
        if options["part"] in ("inbound", "all"):
            inbound = self._inbound(org, options)
            if isinstance(inbound, dict):
                figures["inbound"] = inbound
        self.stdout.write(json.dumps(figures, default=str))
