"""Benchmark Export all data: `manage.py bench_org_export [--contacts N] [--org-slug S]`.

Seeds (or reuses) an organization with `--contacts` contacts (1,000,000 by default) through
the demo's COPY loader, plus one timeline entry for every `--activity-every` contacts and a
deal for every `--deal-every` (bulk SQL), then runs the export in this process, as a worker
would (`crm.jobs.run_inline`), and prints its time, rows per second, the ZIP's size and the
peak memory (RSS) of the export alone: the process's high-water mark is reset just before it
starts (Linux: /proc/self/clear_refs), and a sampler thread reads the RSS as it runs.

Run it at two sizes and compare the peaks; a streamed export keeps them level:

    manage.py bench_org_export --contacts 100000
    manage.py bench_org_export --contacts 1000000
"""

from __future__ import annotations

import random
import resource
import threading
import time
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test import override_settings

from compliance.services import org_export
from contacts.demo.seed import top_up
from contacts.models import Activity
from crm import jobs
from crm.bench import bench_organization
from crm.models import BackgroundJob, Membership, Organization
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Pipeline, Stage

# The tables the seeding writes to (the consent ledger through its triggers).
ANALYZED = (
    "contacts_contact",
    "contacts_contact_tags",
    "contacts_contactlist_contacts",
    "contacts_activity",
    "pipeline_deal",
    "compliance_consentrecord",
)


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB (0 where unknown)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    """Start the high-water mark (VmHWM) afresh, so the seeding does not count."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class _Sampler(threading.Thread):
    """Reads the RSS every 50 ms while the export runs; keeps the highest."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = _status_kib("VmRSS")
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(0.05):
            self.peak = max(self.peak, _status_kib("VmRSS"))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.1f} MiB"


class Command(BaseCommand):
    help = "Seed an organization at scale and time Export all data, with its peak memory."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=1_000_000)
        parser.add_argument("--activity-every", type=int, default=10)
        parser.add_argument("--deal-every", type=int, default=100)
        parser.add_argument("--org-slug", default="", help="Default: bench-org-export-<contacts>.")

    def handle(self, *args, **options):
        count = options["contacts"]
        org = self._org(options["org_slug"] or f"bench-org-export-{count}")
        self._seed(org, count, options["activity_every"], options["deal_every"])
        with connection.cursor() as cursor:
            # Fresh statistics, as autovacuum would have them a minute after a load: with
            # stale ones (a few rows where a million were just written) the planner reads
            # every row of the organization for each chunk instead of walking the key.
            for table in ANALYZED:
                cursor.execute(f"ANALYZE {table}")
        owner = (
            Membership.objects.for_org(org)
            .active()
            .select_related("role", "user")
            .get(role__key="owner")
        )
        job = org_export.start_org_export(
            org=org, actor=Actor.for_user(owner.user), policy=Policy(owner)
        )
        reset = _reset_peak()
        baseline = _status_kib("VmRSS")
        sampler = _Sampler()
        sampler.start()
        started = time.perf_counter()
        # The "ready" email goes nowhere: the benchmark times the export, not a mail server.
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            jobs.run_inline(org_export.JOB_KIND, org.pk, job.pk)
        elapsed = time.perf_counter() - started
        sampled = sampler.stop()
        job = BackgroundJob.objects.for_org(org).get(pk=job.pk)
        if job.status != BackgroundJob.Status.DONE:
            self.stderr.write(f"The export ended {job.status}: {job.error}")
            return
        rows = sum(int(n) for n in (job.result.get("rows") or {}).values())
        size = job.result.get("size") or 0
        high_water = _status_kib("VmHWM") if reset else 0
        lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.stdout.write(
            f"contacts: {count:,}; rows exported: {rows:,} in {len(job.result['rows'])} objects"
        )
        for name, n in sorted((job.result.get("rows") or {}).items(), key=lambda kv: -kv[1])[:6]:
            self.stdout.write(f"  {name}: {n:,}")
        self.stdout.write(
            f"time: {elapsed:.1f}s; {rows / elapsed:,.0f} rows/s; zip: {size / 2**20:,.1f} MiB"
        )
        self.stdout.write(
            f"RSS before the export: {_mib(baseline)}; peak during it: sampled {_mib(sampled)}"
            + (f", VmHWM {_mib(high_water)}" if reset else "")
            + f"; process lifetime peak (incl. seeding): {_mib(lifetime)}"
        )
        org_export.zip_path(job).unlink(missing_ok=True)

    def _org(self, slug: str) -> Organization:
        return bench_organization(slug, f"Export bench {slug}")

    def _seed(self, org, count: int, activity_every: int, deal_every: int) -> None:
        started = time.perf_counter()
        rng = random.Random(17)
        with transaction.atomic():
            added = top_up(org, count, rng, self.stdout.write, score=False)
        if not added and Activity.objects.for_org(org).exists():
            self.stdout.write(f"reusing {org.slug}: {count:,} contacts already there")
            return
        with transaction.atomic():
            pipeline = Pipeline.objects.for_org(org).first() or Pipeline.objects.for_org(
                org
            ).create(org=org, name="Bench pipeline")
            stage = Stage.objects.for_org(org).filter(pipeline=pipeline).first()
            if stage is None:
                stage = Stage.objects.for_org(org).create(
                    org=org, pipeline=pipeline, name="Qualified", position=0, probability=20
                )
            with connection.cursor() as cursor:
                # One call on the timeline of every Nth contact, and a deal for every Mth.
                cursor.execute(
                    """
                    INSERT INTO contacts_activity
                        (public_id, created_at, org_id, type, contact_id, subject, body, data,
                         occurred_at)
                    SELECT gen_random_uuid(), now(), c.org_id, 'call', c.id,
                           'Call about the renewal', 'Talked through the proposal; next step '
                           || 'is a demo for the team.', '{"duration": 12}'::jsonb,
                           now() - (c.id %% 720) * interval '1 hour'
                    FROM contacts_contact c
                    WHERE c.org_id = %s AND c.id %% %s = 0
                    """,
                    [org.pk, activity_every],
                )
                activities = cursor.rowcount
                cursor.execute(
                    """
                    INSERT INTO pipeline_deal
                        (public_id, created_at, updated_at, org_id, title, value, currency,
                         value_is_manual, position, priority, status, close_note, source,
                         forecast_category, custom, stage_entered_at, is_archived,
                         pipeline_id, stage_id, contact_id)
                    SELECT gen_random_uuid(), now(), now(), c.org_id,
                           'Renewal ' || c.id, (c.id %% 50000) + 500, 'USD', true, c.id,
                           'normal', 'open', '', 'Bench', 'pipeline', '{}'::jsonb, now(),
                           false, %s, %s, c.id
                    FROM contacts_contact c
                    WHERE c.org_id = %s AND c.id %% %s = 0
                    """,
                    [pipeline.pk, stage.pk, org.pk, deal_every],
                )
                deals = cursor.rowcount
        self.stdout.write(
            f"seeded {added:,} contacts, {activities:,} activities, {deals:,} deals"
            f" in {time.perf_counter() - started:.1f}s"
        )
