"""Benchmark the "may we contact?" answer: `manage.py bench_contactability [--contacts N]`.

Seeds `--contacts` contacts (100,000 by default) in the organization `--org-slug` (created
on first use, mode "both"), a tenth of them with a suppressed email address, a mix of
countries and consents. Then it times, with the contacts already read (as a send reads its
recipients):

- `may_contact()` for one contact, `--single` times over random contacts: its own two
  queries (the settings and the address's suppression) included;
- `may_contact_many()` for batches of 1,000 contacts: two queries per batch;
- a whole send: every seeded contact checked in batches of 1,000, reading the batch's
  contacts included.

It prints p50/p95/max per measure, for example

    single      p50=0.31ms p95=0.45ms max=1.90ms (n=2000)
    bulk 1,000  p50=9.8ms p95=12.1ms max=15.0ms (n=100)
    send 100,000 recipients: 1.21s (0.012ms per recipient)
"""

from __future__ import annotations

import random
import statistics
import time

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from compliance.models import PrivacySettings, Suppression
from compliance.selectors import CONTACTABILITY_COLUMNS, may_contact, may_contact_many
from contacts.models import Contact
from crm import rls
from crm.bench import bench_organization, percentile
from crm.models import Organization

COUNTRIES = ["DE", "FR", "US", "US", "GB", "BR", "", "ES", "CA", "NL"]
STATUSES = ["opted_in", "opted_in", "unknown", "pending", "opted_out"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms"


def _summary(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = percentile(ordered, 0.95)
    return (
        f"{label:<11} p50={_ms(statistics.median(ordered))} p95={_ms(p95)}"
        f" max={_ms(ordered[-1])} (n={len(ordered)})"
    )


class Command(BaseCommand):
    help = "Time the may-we-contact answer for one contact, for 1,000, and for a whole send."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=100_000)
        parser.add_argument("--single", type=int, default=2000)
        parser.add_argument("--channel", default="email")
        parser.add_argument("--org-slug", default="bench-contactability")

    def handle(self, *args, **options):
        org = self._org(options["org_slug"])
        with transaction.atomic(), rls.tenant(org.pk):
            self._seed(org, options["contacts"])
        with transaction.atomic(), rls.tenant(org.pk):
            self._measure(org, options)

    def _org(self, slug: str) -> Organization:
        return bench_organization(slug, "Contactability bench")

    def _seed(self, org, count: int) -> None:
        have = Contact.objects.for_org(org).count()
        PrivacySettings.objects.for_org(org).update_or_create(
            org=org, defaults={"mode": PrivacySettings.Mode.BOTH}
        )
        if have >= count:
            return
        rng = random.Random(17)
        started = time.perf_counter()
        batch: list[Contact] = []
        suppressed: list[Suppression] = []
        for n in range(have, count):
            email = f"person{n}@bench.example"
            batch.append(
                Contact(
                    org=org,
                    first_name=f"Person {n}",
                    email=email,
                    mobile=f"+1555{n:07d}",
                    country=rng.choice(COUNTRIES),
                    consent_status=rng.choice(STATUSES),
                    consent_email=rng.choice([True, True, False, None]),
                    consent_sms=rng.choice([True, None]),
                )
            )
            if n % 10 == 0:
                reason = rng.choice(["bounce", "unsubscribe", "complaint", "manual"])
                scope = "marketing" if reason == "unsubscribe" else "all"
                suppressed.append(
                    Suppression(org=org, channel="email", address=email, reason=reason, scope=scope)
                )
            if len(batch) == 5000:
                Contact.objects.for_org(org).bulk_create(batch)
                Suppression.objects.for_org(org).bulk_create(suppressed)
                batch, suppressed = [], []
        Contact.objects.for_org(org).bulk_create(batch)
        Suppression.objects.for_org(org).bulk_create(suppressed)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE contacts_contact")
            cursor.execute("ANALYZE compliance_suppression")
        self.stdout.write(
            f"seeded {count - have:,} contacts in {time.perf_counter() - started:.1f}s"
        )

    def _measure(self, org, options) -> None:
        channel = options["channel"]
        ids = list(Contact.objects.for_org(org).values_list("id", flat=True))
        rng = random.Random(3)
        columns = CONTACTABILITY_COLUMNS

        sample = (
            Contact.objects.for_org(org)
            .only(*columns)
            .filter(id__in=rng.sample(ids, min(options["single"], len(ids))))
        )
        singles = []
        refused = 0
        for contact in sample:
            began = time.perf_counter()
            verdict = may_contact(contact, channel, "marketing")
            singles.append(time.perf_counter() - began)
            refused += not verdict.allowed
        self.stdout.write(_summary("single", singles) + f" refused={refused}")

        bulks = []
        for _ in range(100):
            start = rng.randrange(0, max(1, len(ids) - 1000))
            contacts = list(
                Contact.objects.for_org(org).only(*columns).filter(id__in=ids[start : start + 1000])
            )
            began = time.perf_counter()
            may_contact_many(org, contacts, channel, "marketing")
            bulks.append(time.perf_counter() - began)
        self.stdout.write(_summary("bulk 1,000", bulks))

        began = time.perf_counter()
        allowed = 0
        for first in range(0, len(ids), 1000):
            contacts = list(
                Contact.objects.for_org(org).only(*columns).filter(id__in=ids[first : first + 1000])
            )
            allowed += sum(v.allowed for v in may_contact_many(org, contacts, channel).values())
        total = time.perf_counter() - began
        self.stdout.write(
            f"send {len(ids):,} recipients: {total:.2f}s ({_ms(total / max(1, len(ids)))} per"
            f" recipient, reading included), {allowed:,} allowed"
        )
