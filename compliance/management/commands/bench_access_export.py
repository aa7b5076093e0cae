"""Benchmark the access export: `manage.py bench_access_export [--activities N] [--runs R]`.

Seeds, in its own organization `--org-slug` (created on first use), one contact with
`--activities` timeline entries (10,000 by default, bulk-created), a few notes, tasks and
orders, then builds the contact's access export `--runs` times (5 by default) and prints
the time of each run, the minimum, median and maximum, and the archive's size:

    runs: 0.61s 0.58s 0.57s 0.58s 0.59s
    min=0.57s median=0.58s max=0.61s (10,000 activities, 512.3 KiB zip)
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from compliance.services.access import build_access_export
from contacts.models import Activity, Contact, Note, Task
from crm import rls
from crm.bench import bench_organization
from crm.models import Organization
from pipeline.models import Order

EMAIL = "subject@access-bench.example"


class Command(BaseCommand):
    help = "Time the access export of one contact with a long timeline."

    def add_arguments(self, parser):
        parser.add_argument("--activities", type=int, default=10_000)
        parser.add_argument("--runs", type=int, default=5)
        parser.add_argument("--org-slug", default="bench-access-export")

    def handle(self, *args, **options):
        org = self._org(options["org_slug"])
        with transaction.atomic(), rls.tenant(org.pk):
            contact = self._seed(org, options["activities"])
        times, size = [], 0
        for _ in range(options["runs"]):
            with transaction.atomic(), rls.tenant(org.pk):
                fresh = Contact.objects.for_org(org).select_related("company", "owner")
                started = time.perf_counter()
                size = len(build_access_export(fresh.get(pk=contact.pk)))
                times.append(time.perf_counter() - started)
        self.stdout.write("runs: " + " ".join(f"{t:.2f}s" for t in times))
        count = Activity.objects.for_org(org).filter(contact=contact).count()
        self.stdout.write(
            f"min={min(times):.2f}s median={statistics.median(times):.2f}s"
            f" max={max(times):.2f}s ({count:,} activities, {size / 1024:.1f} KiB zip)"
        )

    def _org(self, slug: str) -> Organization:
        return bench_organization(slug, "Access export bench")

    def _seed(self, org, activities: int) -> Contact:
        contact = Contact.objects.for_org(org).filter(email=EMAIL).first()
        if contact is None:
            contact = Contact.objects.for_org(org).create(
                org=org,
                first_name="Subject",
                last_name="Of Access",
                email=EMAIL,
                custom={"loyalty_tier": "gold"},
            )
        have = Activity.objects.for_org(org).filter(contact=contact).count()
        if have >= activities:
            return contact
        now = timezone.now()
        started = time.perf_counter()
        Activity.objects.for_org(org).bulk_create(
            [
                Activity(
                    org=org,
                    contact=contact,
                    type=Activity.Type.CALL if n % 3 else Activity.Type.NOTE,
                    subject=f"Call number {n} about the renewal",
                    body="Talked through the proposal and agreed on next steps. " * 3,
                    data={"duration": n % 60, "outcome": "connected"},
                    occurred_at=now - dt.timedelta(minutes=n),
                )
                for n in range(have, activities)
            ],
            batch_size=2000,
        )
        if not Note.objects.for_org(org).filter(contact=contact).exists():
            Note.objects.for_org(org).bulk_create(
                [Note(org=org, contact=contact, body=f"Note {n}") for n in range(50)]
            )
            Task.objects.for_org(org).bulk_create(
                [Task(org=org, contact=contact, title=f"Follow up {n}") for n in range(50)]
            )
            Order.objects.for_org(org).bulk_create(
                [
                    Order(
                        org=org,
                        contact=contact,
                        title=f"Order {n}",
                        value=100 + n,
                        currency="EUR",
                        order_date=now.date(),
                    )
                    for n in range(20)
                ]
            )
        self.stdout.write(
            f"seeded {activities - have:,} activities in {time.perf_counter() - started:.1f}s"
        )
        return contact
