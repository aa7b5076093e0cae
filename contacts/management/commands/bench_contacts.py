"""Benchmark the contact pages at scale: `manage.py bench_contacts --contacts 1000000`.

Seeds (or tops up) an organization with N contacts plus two noise organizations (about 10 %
of N between them, so every query must really filter by org), runs VACUUM ANALYZE, then
requests the real views through Django's test client as an admin member with DEBUG off and
prints one line per scenario: the list (50 rows, then 25 and 100), search, a smart view, a
sort, a deep page, the contact page (random contacts) and the dashboard:

    list p50=12.3ms p95=20.1ms queries=6

Timed runs are separate from the run that counts queries, so counting costs nothing.
`--explain` also prints EXPLAIN ANALYZE of each scenario's slowest query.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection, reset_queries, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.demo import top_up
from contacts.models import Contact, SmartView
from crm.models import Membership, Organization
from crm.services import Actor, organization_create
from crm.services.orgs import ensure_builtin_roles

ADMIN_EMAIL = "bench-admin@bench.test"
NOISE_ORGS = ("bench-noise-1", "bench-noise-2")
NEXT_LINK = re.compile(r'rel="next" href="([^"]+)"')


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


class Command(BaseCommand):
    help = "Seed N contacts (reused on re-runs) and time the contact pages through the views."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=100_000, metavar="N")
        parser.add_argument("--runs", type=int, default=30)
        parser.add_argument("--org-slug", default="bench")
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
            org = organization_create(
                name=name, slug=slug, owner=owner, actor=Actor.system("bench_contacts")
            )
        roles = ensure_builtin_roles(org)
        for index in range(4):
            rep = self._user(f"rep{index}@{slug}.test", f"Rep {index}")
            Membership.objects.for_org(org).get_or_create(
                org=org, user=rep, defaults={"role": roles["team"]}
            )
        return org

    def _ensure_admin(self, org) -> None:
        """The member the scenarios run as: an admin of the measured org."""
        admin = self._user(ADMIN_EMAIL, "Bench")
        Membership.objects.for_org(org).get_or_create(
            org=org, user=admin, defaults={"role": ensure_builtin_roles(org)["admin"]}
        )

    def _seed(self, slug: str, total: int) -> Organization:
        rng = random.Random(total)
        started = time.perf_counter()
        org = self._org(slug, "Bench")
        self._ensure_admin(org)
        noise_each = max(1, total // 20)
        for noise_slug in NOISE_ORGS:
            noise = self._org(noise_slug, noise_slug.replace("-", " ").title())
            with transaction.atomic():
                top_up(noise, noise_each, rng, self.stdout.write, company_share=50)
        with transaction.atomic():
            top_up(org, total, rng, self.stdout.write, company_share=50)
        self.stdout.write(f"seeded in {time.perf_counter() - started:.1f}s; VACUUM ANALYZE…")
        with connection.cursor() as cursor:
            for table in ("contacts_contact", "contacts_contact_tags", "contacts_company"):
                cursor.execute(f"VACUUM ANALYZE {table}")
        return org

    # Measuring -------------------------------------------------------------------------------

    def _client(self, org) -> Client:
        admin = get_user_model().objects.get(email__iexact=ADMIN_EMAIL)
        client = Client()
        client.force_login(admin)
        session = client.session
        session["active_org_id"] = org.pk
        session.save()
        return client

    def _smart_view(self, org) -> SmartView:
        admin = get_user_model().objects.get(email__iexact=ADMIN_EMAIL)
        filters = {
            "groups": [
                {
                    "conditions": [
                        {
                            "field": "lifecycle_stage",
                            "op": "any_of",
                            "value": ["lead", "qualified"],
                        },
                        {"field": "lead_score", "op": "gt", "value": 50},
                        {"field": "created_at", "op": "in_last_days", "value": 365},
                    ]
                }
            ]
        }
        view, _ = SmartView.objects.for_org(org).get_or_create(
            org=org, owner=admin, name="Bench: warm leads", defaults={"filters": filters}
        )
        return view

    def _deep_url(self, client, start_url: str, depth: int) -> str:
        """The URL of page `depth`, found by following each page's "Next" link."""
        url = start_url
        for _ in range(depth - 1):
            found = NEXT_LINK.search(client.get(url).content.decode())
            if not found:
                break
            url = found.group(1).replace("&amp;", "&")
        return url

    def _measure(self, client, name: str, urls, runs: int, explain: bool) -> None:
        urls = list(urls) if isinstance(urls, list) else [urls]
        for url in urls[:2]:  # warm caches and connections
            response = client.get(url)
            if response.status_code != 200:
                self.stderr.write(f"{name}: {url} answered {response.status_code}")
                return
        # The log is cleared when a request starts; start the capture from an empty one.
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            client.get(urls[0])
        # Read now: the next request clears the log the capture points into.
        queries = list(captured.captured_queries)
        timings, cpu = [], []
        for run in range(runs):
            url = urls[run % len(urls)]
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            _ = response.content
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        db_ms = sum(float(q.get("time") or 0) for q in queries) * 1000
        # cpu: this process's own time (Python); db: the queries' time in one request. On a
        # busy machine wall-clock figures include waiting for a core; these two do not.
        self.stdout.write(
            f"{name} p50={statistics.median(timings):.1f}ms "
            f"p95={_percentile(timings, 0.95):.1f}ms queries={len(queries)} "
            f"(cpu p50={statistics.median(cpu):.1f}ms, db={db_ms:.1f}ms)"
        )
        if explain:
            self._explain(name, queries)

    def _explain(self, name: str, queries: list[dict]) -> None:
        slowest = max(queries, key=lambda q: float(q.get("time") or 0))
        sql = slowest["sql"]
        if not sql.lstrip().upper().startswith("SELECT"):
            return
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())
        self.stdout.write(
            f"  slowest query of {name} ({slowest['time']}s):\n    {sql[:400]}\n{plan}"
        )

    def handle(self, *args, **options):
        total, runs, slug = options["contacts"], options["runs"], options["org_slug"]
        if options["skip_seed"]:
            org = Organization.objects.get(slug=slug)
            self._ensure_admin(org)
        else:
            org = self._seed(slug, total)
        have = Contact.objects.for_org(org).count()
        self.stdout.write(f"{org.name}: {have:,} contacts; {runs} runs per scenario")
        list_url = reverse("contacts:contact_list")
        view = self._smart_view(org)
        rng = random.Random(7)
        with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver", "localhost"]):
            client = self._client(org)
            self._measure(client, "list", f"{list_url}", runs, options["explain"])
            self._measure(client, "search", f"{list_url}?q=oli", runs, options["explain"])
            self._measure(
                client, "view", f"{list_url}?view={view.public_id}", runs, options["explain"]
            )
            self._measure(client, "sort", f"{list_url}?sort=-lead_score", runs, options["explain"])
            deep = self._deep_url(client, f"{list_url}?sort=-created_at", 20)
            self._measure(client, "deep_page", deep, runs, options["explain"])
            self._measure(client, "list_size25", f"{list_url}?size=25", runs, options["explain"])
            self._measure(client, "list_size100", f"{list_url}?size=100", runs, options["explain"])
            max_id = Contact.objects.for_org(org).order_by("-pk").values_list("pk", flat=True)[0]
            min_id = Contact.objects.for_org(org).order_by("pk").values_list("pk", flat=True)[0]
            picks = []
            while len(picks) < max(runs, 2):
                found = (
                    Contact.objects.for_org(org)
                    .filter(pk__gte=rng.randrange(min_id, max_id + 1))
                    .order_by("pk")
                    .values_list("public_id", flat=True)
                    .first()
                )
                if found:
                    picks.append(reverse("contacts:contact_detail", args=[found]))
            self._measure(client, "contact_page", picks, runs, options["explain"])
            self._measure(client, "dashboard", reverse("crm:dashboard"), runs, options["explain"])
        self.stdout.write(json.dumps({"org": slug, "contacts": have}))
