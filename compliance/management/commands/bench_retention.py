"""Benchmark the retention preview: `manage.py bench_retention [--contacts N] [--org-slug S]`.

Seeds (or reuses) an organization with `--contacts` generated contacts (1,000,000 by
default) through the demo's COPY loader, spreads their last activity and archive dates over
six years (one set-based UPDATE, so the rules have something to find), then times
`preview()` of three typical rules, `--runs` times each, and prints p50/p95/max:

    no activity 24 months, leads   p50=310ms p95=350ms max=420ms  affects 123,456
    archived > 12 months, anonymize ...
"""

from __future__ import annotations

import random
import statistics
import time

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from compliance.models import RetentionPolicy
from compliance.services import retention
from contacts.demo.seed import top_up
from crm.bench import bench_organization, percentile
from crm.models import Organization

RULES = [
    ("no activity 24 months, leads", "delete", "no_activity", 24, "lead"),
    ("archived > 12 months, anonymize", "anonymize", "archived", 12, ""),
    ("created > 60 months, every stage", "delete", "created", 60, ""),
]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


class Command(BaseCommand):
    help = "Time the retention preview of three rules over a large organization."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=1_000_000)
        parser.add_argument("--runs", type=int, default=20)
        parser.add_argument("--org-slug", default="")
        parser.add_argument(
            "--age", action="store_true", help="spread the dates of an organization reused"
        )

    def handle(self, *args, **options):
        count = options["contacts"]
        org = self._org(options["org_slug"] or f"bench-retention-{count}")
        with transaction.atomic():
            added = top_up(org, count, random.Random(5), self.stdout.write, score=False)
        if added or options["age"]:
            self._age(org)
        rules = self._rules(org)
        for rule in rules:
            times, shown = [], None
            for _ in range(options["runs"]):
                began = time.perf_counter()
                shown = retention.preview(rule)
                times.append(time.perf_counter() - began)
            ordered = sorted(times)
            p95 = percentile(ordered, 0.95)
            self.stdout.write(
                f"{rule.name:<34} p50={_ms(statistics.median(ordered))} p95={_ms(p95)}"
                f" max={_ms(ordered[-1])}  affects {shown.count:,} (on hold {shown.on_hold:,})"
            )

    def _org(self, slug: str) -> Organization:
        return bench_organization(slug, f"Retention bench {slug}")

    def _age(self, org) -> None:
        """Spread last activity over six years, archive one contact in ten at a random
        point, and put one in a thousand on legal hold."""
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE contacts_contact SET
                    last_activity_at = now() - (id %% 2190) * interval '1 day',
                    created_at = now() - (2190 + id %% 300) * interval '1 day',
                    is_archived = (id %% 10 = 0),
                    archived_at = CASE WHEN id %% 10 = 0
                                       THEN now() - (id %% 900) * interval '1 day' END,
                    legal_hold = (id %% 1000 = 7)
                WHERE org_id = %s
                """,
                [org.pk],
            )
            cursor.execute("ANALYZE contacts_contact")
        self.stdout.write(f"aged the contacts in {time.perf_counter() - started:.1f}s")

    def _rules(self, org) -> list[RetentionPolicy]:
        out = []
        for name, action, condition, months, stage in RULES:
            rule, _ = RetentionPolicy.objects.for_org(org).get_or_create(
                org=org,
                name=name,
                defaults={
                    "action": action,
                    "condition": condition,
                    "months": months,
                    "lifecycle_stage": stage,
                },
            )
            out.append(rule)
        return out
