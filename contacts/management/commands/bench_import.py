"""Benchmark the contact import end to end.

    python manage.py bench_import [--rows 250000 1000000] [--keep-files]

For each size it makes a fresh organization holding 10% of the rows as existing contacts,
writes a realistic CSV (mixed columns, two custom fields, 10% rows updating existing contacts,
1% bad rows), then:
  * times a plain PostgreSQL COPY of the same file into a bare table (the floor),
  * runs `manage.py import_contacts` on it in a separate process (the real pipeline, with
    DEBUG off as a deployed worker runs) and samples the memory of that process and of its
    converting workers,
and prints one line per size. It also times mapping suggestions for a 100-column header.

    python manage.py bench_import --values [--distinct 10000]

times the match-values step's page for an owner column and a List column of 10,000
different values each (contacts/importing/bench_values.py).

    python manage.py bench_import --accuracy [-v 2] [--raise-floors]

imports each export of the corpus (tests/fixtures/exports/) with the automatic mapping and
prints, per system, the rows, the people who arrived and were lost, and the field accuracy
(-v 2 adds what was wrong; --raise-floors records better figures in the corpus test's
floors.json).
Run it on a scratch database: every run leaves its organizations behind.
"""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from contacts.importing.mapper import suggest_mapping
from contacts.models import CustomFieldDefinition
from crm.models import Membership, Organization, User
from crm.services.orgs import ensure_builtin_roles

FIRST = [
    "Ava",
    "Ben",
    "Chloé",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Inès",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
]
LAST = [
    "Andersson",
    "Brown",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Huang",
    "Ivanova",
    "Johnson",
    "Kowalski",
    "López",
    "Müller",
    "Nakamura",
    "O'Brien",
    "Patel",
]
TITLES = [
    "VP Sales",
    "CTO",
    "Head of Operations",
    "Account Executive",
    "Marketing Manager",
    "Founder",
    "Procurement Lead",
    "Engineer",
    "Director of Finance",
    "",
]
CITIES = [
    ("Berlin", "DE", "+49 30 {:04d} {:04d}"),
    ("Austin", "US", "+1 512 55{:01d} {:04d}"),
    ("Lyon", "FR", "+33 4 72 {:02d} {:02d} {:02d}"),
    ("Leeds", "GB", "+44 113 2{:02d} {:04d}"),
]
STAGES = ["Lead", "Subscriber", "MQL", "Opportunity", "Customer", ""]
FITS = ["Strong", "Medium", "Weak"]
HEADERS = [
    "First Name",
    "Last Name",
    "Email",
    "Phone Number",
    "Job Title",
    "Company Name",
    "Website URL",
    "City",
    "Country/Region",
    "Lifecycle Stage",
    "Tags",
    "Annual Budget",
    "Industry Fit",
]


def _phone(i: int, city) -> str:
    name, _, pattern = city
    if name == "Lyon":
        return pattern.format(i % 100, (i // 100) % 100, (i // 10000) % 100)
    if name == "Austin":
        return pattern.format(i % 10, (i // 10) % 10000)
    if name == "Leeds":
        return pattern.format(i % 100, (i // 100) % 10000)
    return pattern.format(1000 + i % 9000, (i // 9000) % 10000)


def write_file(
    path: str, rows: int, existing: int, run: str, rng: random.Random, warn_percent: int = 10
) -> None:
    """`warn_percent` of the rows carry one value the import can't take as it is, each kind
    in turn: an unreadable phone (kept as typed), a bad email beside a name (left out), a
    number that isn't one, a stage no choice fits."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(HEADERS)
        for i in range(rows):
            city = CITIES[i % len(CITIES)]
            if i % 10 == 0 and i // 10 < existing:  # 10%: an existing contact, changed
                email = f"existing{i // 10}@{run}.bench.test"
            else:
                email = f"new{i}@{run}.bench.test"
            phone = _phone(i, city)
            budget = f"{rng.randint(1, 500) * 1000}"
            stage = rng.choice(STAGES)
            if i % 100 < warn_percent:
                kind = (i // 100) % 4
                if kind == 0:
                    email = f"not-an-email-{i}"
                elif kind == 1:
                    phone = f"12-{i % 1000}"
                elif kind == 2:
                    budget = "lots"
                else:
                    stage = "Evaluating"
            co = i % 5000
            out.writerow(
                [
                    rng.choice(FIRST),
                    rng.choice(LAST),
                    email,
                    phone,
                    rng.choice(TITLES),
                    f"Company {co}",
                    f"https://www.company{co}.example",
                    city[0],
                    city[1],
                    stage,
                    "bench;2026" if i % 3 else "bench",
                    budget,
                    rng.choice(FITS),
                ]
            )


def write_workbook(csv_path: str) -> str:
    """The CSV's rows as an .xlsx next to it (streamed: openpyxl's write-only mode)."""
    from openpyxl import Workbook

    path = os.path.splitext(csv_path)[0] + ".xlsx"
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            sheet.append(row)
    workbook.save(path)
    return path


def make_org(run: str, existing: int, kind: str = "csv") -> Organization:
    """An organization for one import of the run's file (`kind`: its format), holding the
    `existing` contacts the file's update rows match."""
    org = Organization.objects.create(
        name=f"Bench import {run} {kind}", slug=f"bench-import-{run}-{kind}"
    )
    roles = ensure_builtin_roles(org)
    user, _ = User.objects.get_or_create(email="bench-import@bench.test")
    Membership.objects.for_org(org).get_or_create(
        org=org, user=user, defaults={"role": roles["owner"]}
    )
    CustomFieldDefinition.objects.for_org(org).create(
        org=org, key="annual_budget", label="Annual budget", field_type="currency", currency="USD"
    )
    CustomFieldDefinition.objects.for_org(org).create(
        org=org, key="industry_fit", label="Industry fit", field_type="list", choices=FITS
    )
    with (
        connection.cursor() as cur,
        cur.copy(
            "COPY contacts_contact (org_id, public_id, created_at, updated_at, first_name,"
            " last_name, email, other_emails, phone, mobile, job_title, department, deal_role,"
            " status, lifecycle_stage, lead_score, source, street, city, region, postal_code,"
            " country, language, timezone, linkedin_url, twitter_handle, consent_status,"
            " consent_type, consent_source, gdpr_basis, custom, is_archived) FROM STDIN"
        ) as copy,
    ):
        for i in range(existing):
            copy.write_row(
                (
                    org.id,
                    uuid.uuid4(),
                    "2025-01-01T00:00:00Z",
                    "2025-01-01T00:00:00Z",
                    "Old",
                    f"Name{i}",
                    f"existing{i}@{run}.bench.test",
                    "[]",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "active",
                    "lead",
                    0,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "unknown",
                    "",
                    "",
                    "",
                    "{}",
                    False,
                )
            )
    with connection.cursor() as cur:
        cur.execute("ANALYZE contacts_contact")
    return org


def plain_copy_seconds(path: str) -> float:
    with connection.cursor() as cur:
        cols = ", ".join(f"c{i} text" for i in range(len(HEADERS)))
        cur.execute(f"CREATE TEMP TABLE bench_bare ({cols})")
        started = time.perf_counter()
        with (
            open(path, "rb") as fh,
            cur.copy("COPY bench_bare FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while block := fh.read(1 << 20):
                copy.write(block)
        seconds = time.perf_counter() - started
        cur.execute("DROP TABLE bench_bare")
    return seconds


class PostgresCpu:
    """CPU seconds used by the PostgreSQL server's processes on this machine (backends, WAL
    writer, checkpointer...) between start and the last sample. Backends end with their
    connections, taking their counters with them, so the caller samples while it waits.
    None when the server's processes cannot be read (another user's server)."""

    def __init__(self):
        self.readable = True
        self.start = self._read()
        self.latest = dict(self.start)

    def _read(self) -> dict[int, float]:
        seen = {}
        try:
            for proc in psutil.process_iter(["name", "cpu_times"]):
                times = proc.info["cpu_times"]
                if proc.info["name"] in ("postgres", "postmaster") and times is not None:
                    seen[proc.pid] = times.user + times.system
        except psutil.AccessDenied:
            self.readable = False
        return seen

    def sample(self) -> None:
        self.latest.update(self._read())

    def seconds(self) -> float | None:
        if not self.readable:
            return None
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.latest.items())


def run_import(path: str, org: Organization) -> tuple[dict, float, float, float, dict]:
    """Run the import in its own process; returns its summary, seconds, the peak RSS of the
    import process and the peak of its RSS plus the unique memory (USS) of its converting
    workers, which are forked from it and share the rest of their pages with it (sampled
    every 0.1 s), and the CPU seconds spent by the import's processes and by PostgreSQL."""
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    postgres = PostgresCpu()
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 - our own manage.py with our arguments
        [sys.executable, "manage.py", "import_contacts", path, "--org", org.slug],
        cwd=settings.BASE_DIR,
        # As a deployed worker runs: with DEBUG on, Django keeps the text of the last 9,000
        # queries of every connection, which is memory the import itself does not use.
        env={**os.environ, "DEBUG": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    largest = tree_peak = 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = watched.memory_info().rss
            workers = sum(p.memory_full_info().uss for p in watched.children(recursive=True))
            largest, tree_peak = max(largest, rss), max(tree_peak, rss + workers)
        except psutil.Error:
            pass
        postgres.sample()
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"import failed: {err[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    postgres.sample()
    cpu = {
        "python": (children.ru_utime + children.ru_stime)
        - (children_before.ru_utime + children_before.ru_stime),
        "postgres": postgres.seconds(),
    }
    return summary, seconds, largest / 1e6, tree_peak / 1e6, cpu


class Command(BaseCommand):
    help = "Benchmark the CSV import (prints rows/s, peak memory and the plain COPY floor)."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, nargs="+", default=[250_000, 1_000_000])
        parser.add_argument("--keep-files", action="store_true")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--warnings",
            type=int,
            default=10,
            metavar="PERCENT",
            help="Share of rows with one value the import can't take as it is (default 10).",
        )
        parser.add_argument(
            "--xlsx",
            action="store_true",
            help="Also import each file's rows as an Excel workbook (the COPY floor stays CSV).",
        )
        parser.add_argument(
            "--accuracy",
            action="store_true",
            help="Instead, import each export of tests/fixtures/exports/ with the automatic "
            "mapping into a scratch organization and print the field accuracy per system.",
        )
        parser.add_argument(
            "--values",
            action="store_true",
            help="Instead, time the match-values step's page for columns of --distinct values.",
        )
        parser.add_argument("--distinct", type=int, default=10_000)
        parser.add_argument(
            "--raise-floors",
            action="store_true",
            help="With --accuracy: record better figures in tests/fixtures/exports/floors.json.",
        )

    def handle(self, *args, **opts):
        if opts["values"]:
            from contacts.importing import bench_values

            bench_values.run(self.stdout, distinct=opts["distinct"])
            return
        if opts["accuracy"]:
            self._accuracy_figures(opts["verbosity"], raise_floors=opts["raise_floors"])
            return
        self._mapping_figure()
        rng = random.Random(opts["seed"])
        workdir = tempfile.mkdtemp(prefix="bench-import-")
        for rows in opts["rows"]:
            run = f"{rows}-{uuid.uuid4().hex[:6]}"
            path = os.path.join(workdir, f"contacts-{rows}.csv")
            write_file(
                path, rows, existing=rows // 10, run=run, rng=rng, warn_percent=opts["warnings"]
            )
            floor = plain_copy_seconds(path)
            files = [path]
            if opts["xlsx"]:
                files.append(write_workbook(path))
            for file in files:
                # Each format into its own organization, each with the same existing contacts.
                org = make_org(run, existing=rows // 10, kind=os.path.splitext(file)[1][1:])
                self._import_figure(file, rows, org, floor)
                if not opts["keep_files"]:
                    os.remove(file)

    def _import_figure(self, path: str, rows: int, org: Organization, floor: float) -> None:
        size_mb = os.path.getsize(path) / 1e6
        summary, seconds, peak_mb, tree_mb, cpu = run_import(path, org)
        rate = rows / seconds
        postgres = "n/a" if cpu["postgres"] is None else f"{cpu['postgres']:.1f}s"
        self.stdout.write(
            f"import rows={rows} file={os.path.basename(path)} {size_mb:.0f}MB "
            f"seconds={seconds:.1f} rows_per_s={rate:,.0f} "
            f"load_seconds={summary['load_seconds']} "
            f"created={summary['created']} updated={summary['updated']} "
            f"skipped={summary['skipped']} errors={summary['errors']} "
            f"warnings={summary.get('warnings', 'n/a')} "
            f"peak_rss={peak_mb:.0f}MB peak_with_workers={tree_mb:.0f}MB "
            f"plain_copy={floor:.2f}s "
            f"ratio={seconds / floor:.1f}x "
            f"cpu_python={cpu['python']:.1f}s cpu_postgres={postgres}"
        )

    def _accuracy_figures(self, verbosity: int, *, raise_floors: bool = False) -> None:
        """The corpus's field accuracy (contacts/importing/accuracy.py, as the corpus test
        measures it), each system in a scratch organization of its own. The uploads go to
        a temporary folder and the end-of-import emails nowhere: only the figures matter."""
        from django.test.utils import override_settings

        from contacts.importing import accuracy

        run = uuid.uuid4().hex[:6]
        results = []
        with (
            tempfile.TemporaryDirectory(prefix="bench-accuracy-") as media,
            override_settings(
                MEDIA_ROOT=media, EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"
            ),
        ):
            for system in accuracy.systems():
                slug = f"bench-accuracy-{run}-{system.replace('_', '-')}"
                membership = accuracy.make_org(slug, f"Bench accuracy {run} {system}")
                results.append(accuracy.measure(system, membership))
        if verbosity > 1:
            for result in results:
                self.stdout.write(accuracy.mismatch_table(result))
        self.stdout.write(accuracy.summary_table(results))
        if raise_floors:
            accuracy.raise_floors(results)
            self.stdout.write(f"floors recorded in {accuracy.FLOORS}")

    def _mapping_figure(self) -> None:
        headers = [
            f"{h} {i // len(HEADERS)}" if i >= len(HEADERS) else h
            for i, h in enumerate(HEADERS * 8)
        ][:100]
        rows = [[f"value {c}" for c in range(100)] for _ in range(200)]
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            suggest_mapping(headers, rows)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        self.stdout.write(
            f"mapping columns=100 sample_rows=200 p50={timings[10]:.1f}ms max={timings[-1]:.1f}ms"
        )
