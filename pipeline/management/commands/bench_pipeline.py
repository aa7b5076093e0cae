"""Benchmark the pipeline pages at scale: `manage.py bench_pipeline --deals 100000`.

Seeds (or tops up) one pipeline of a bench organization with N open deals, a few closed ones
(one per CLOSED_EVERY open deals, won and lost with reasons) and their stage history, plus
noise deals in two other organizations (5 % of N each, so every query must really filter by
org). Rows are generated in Python and loaded with COPY, ids reserved up front. The forecast
snapshot is taken as the deals stood "a week ago", then a week of changes follows (deals
added, moved on a stage, changed in amount, slipped), so "what changed" has work to do.
Then VACUUM ANALYZE, and the real views are requested through Django's test client, logged in
as the organization's owner, with DEBUG off; one line per scenario:

    board p50=12.3ms p95=20.1ms queries=9 (cpu p50=…ms, db=…ms)

Scenarios: the board's first screen, a column's next page (as HTMX loads it), a move (the
board's JSON POST, back and forth between two stages), the deals table filtered by owner and
value, the forecast page and the "what changed" view. Timed runs are separate from the run
that counts queries. `--explain` prints EXPLAIN ANALYZE of each scenario's slowest query;
`--skip-seed` measures what is there; `--seed-only` seeds and stops.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import re
import statistics
import time
import uuid
from contextlib import contextmanager
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries, transaction
from django.db.models import F, Max
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from contacts.models import Company
from crm.bulk_load import copy_lines, drop_for_load
from crm.models import Membership, Organization
from crm.services import Actor, organization_create
from crm.services.orgs import ensure_builtin_roles
from pipeline.forecast.snapshot import take_snapshot
from pipeline.models import (
    Deal,
    DealReason,
    ExchangeRate,
    ForecastSnapshot,
    Stage,
    StageHistory,
)
from pipeline.services.forecast_settings import exchange_rate_create
from pipeline.services.pipelines import ensure_default_pipeline

ACTOR = Actor.system("bench_pipeline")
NOISE_ORGS = ("bench-noise-1", "bench-noise-2")
NOISE_SHARE = 20  # each noise organization gets N / NOISE_SHARE deals
CLOSED_EVERY = 50  # one closed deal (won or lost) per this many open ones
# Of the deals seeded, this share arrives after the snapshot ("added" in what changed);
# this share of the others changes in amount, slips, or moves on a stage after it.
ADDED_SHARE = 0.005
CHANGED_SHARE = 0.01
STAGE_WEIGHTS = (30, 24, 18, 13, 9, 6)
POSITION_STEP = 1024.0
COMPANIES = 500
RATES = {"EUR": "1.0850", "GBP": "1.2700"}
# Loads at least this big, and at least as big as the deal table already is, drop the tables'
# secondary indexes, unique constraints and foreign keys and rebuild each once afterwards: far
# cheaper than maintaining them (and checking every row's keys at commit) row by row. (A
# rebuild costs the whole table, so a load into a much bigger table keeps them.)
BIG_LOAD = 20_000
BARE_TABLES = ("pipeline_deal", "pipeline_stagehistory", "pipeline_forecastsnapshotline")
NULL = "\\N"
# The deal table's columns, in COPY order. A model change that adds a column stops the
# seeding with a clear message instead of a half-understood COPY error.
DEAL_COLUMNS = [
    "id",
    "public_id",
    "created_at",
    "updated_at",
    "org_id",
    "title",
    "value",
    "currency",
    "value_is_manual",
    "pipeline_id",
    "stage_id",
    "position",
    "probability",
    "priority",
    "owner_id",
    "team_id",
    "contact_id",
    "company_id",
    "expected_close_date",
    "status",
    "closed_at",
    "close_reason_id",
    "close_note",
    "source",
    "forecast_category",
    "custom",
    "stage_entered_at",
    "last_activity_at",
    "is_archived",
    "archived_at",
    "created_by_id",
]
HISTORY_COLUMNS = [
    "public_id",
    "created_at",
    "org_id",
    "deal_id",
    "pipeline_id",
    "from_stage_id",
    "to_stage_id",
    "from_status",
    "to_status",
    "seconds_in_from_stage",
    "actor_id",
    "actor_label",
    "occurred_at",
]
COLUMN_LINK = re.compile(r'hx-get="([^"]*/column/[0-9a-f-]{36}/\?[^"]*cursor=[^"]+)"')
WORDS = ["platform", "renewal", "expansion", "pilot", "rollout", "licences", "support"]
PRIORITIES = ["low", "normal", "normal", "normal", "high", "urgent"]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat()


def _seconds(later: dt.datetime, earlier: dt.datetime) -> str:
    return str(int((later - earlier).total_seconds()))


def is_big_load(count: int) -> bool:
    if count < BIG_LOAD:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'pipeline_deal'::regclass")
        rows = cursor.fetchone()[0]
    return count >= max(rows, 0)


@contextmanager
def bare_tables(log, big: bool):
    """For a big load: the deal, history and snapshot line tables without their secondary
    indexes and keys inside the block, rebuilt (and the keys validated, one join each) when it
    ends. Inside the caller's transaction: a failure leaves the tables as they were."""
    if not big:
        yield
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Settle the foreign key checks earlier writes left pending, or the ALTERs fail.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        restore = drop_for_load(cursor, BARE_TABLES)
    log(f"  dropped {len(restore)} indexes and keys for the load")
    yield
    with connection.cursor() as cursor:
        for statement in restore:
            cursor.execute(statement)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    log(f"  rebuilt {len(restore)} indexes and keys ({time.perf_counter() - started:.1f}s)")


def _check_columns(model, columns) -> None:
    # Generated columns (the title's search vector) are computed by PostgreSQL.
    have = {f.column for f in model._meta.concrete_fields if not f.generated}
    wanted = set(columns) | ({"id"} if model is StageHistory else set())
    if have != wanted:
        raise CommandError(
            f"{model.__name__} has columns the bench does not write or no longer has: "
            f"{sorted(have ^ wanted)}. Update DEAL_COLUMNS / HISTORY_COLUMNS."
        )


class Seeder:
    """Writes one organization's bench deals and their history with COPY."""

    def __init__(self, org, rng: random.Random, now: dt.datetime, log):
        self.org = org
        self.rng = rng
        self.now = now
        self.log = log
        self.pipeline = ensure_default_pipeline(org, actor=ACTOR)
        # A team's pipeline was set up long before its deals: as old as the rates.
        Stage.objects.for_org(org).filter(pipeline=self.pipeline).update(
            updated_at=now - dt.timedelta(days=400)
        )
        self.stages = list(
            Stage.objects.for_org(org).filter(pipeline=self.pipeline).order_by("position", "id")
        )
        if not self.stages:
            raise CommandError(f"{org.name}'s pipeline has no stages.")
        members = Membership.objects.for_org(org).active().select_related("user")
        self.owners = [(m.user_id, m.user.email) for m in members.order_by("user_id")]
        self.companies = self._companies()
        self.reasons = {
            kind: list(
                DealReason.objects.for_org(org)
                .filter(kind=kind, is_active=True)
                .values_list("id", flat=True)
            )
            for kind in (DealReason.Kind.WON, DealReason.Kind.LOST)
        }
        self._rates()
        tops = (
            Deal.objects.for_org(org)
            .filter(pipeline=self.pipeline)
            .values("stage_id")
            .annotate(top=Max("position"))
        )
        self.positions = {row["stage_id"]: row["top"] or 0.0 for row in tops}
        # Nine in ten deals in the base currency, the rest in EUR and GBP (converted).
        self.currencies = [org.base_currency] * 90
        for code, share in (("EUR", 6), ("GBP", 4)):
            if code != org.base_currency:
                self.currencies += [code] * share
        self.uuid_bits = random.Random().getrandbits  # fresh ids on every run

    def _companies(self) -> list[int]:
        companies = Company.objects.for_org(self.org)
        have = companies.count()
        if have < COMPANIES:
            companies.bulk_create(
                [
                    Company(org=self.org, name=f"Bench company {n}", domain=f"bench{n}.example")
                    for n in range(have, COMPANIES)
                ],
                batch_size=1000,
            )
        return list(companies.order_by("id").values_list("id", flat=True)[:COMPANIES])

    def _rates(self) -> None:
        have = set(ExchangeRate.objects.for_org(self.org).values_list("currency", flat=True))
        for currency, rate in RATES.items():
            if currency != self.org.base_currency and currency not in have:
                exchange_rate_create(
                    org=self.org,
                    actor=ACTOR,
                    data={
                        "currency": currency,
                        "rate": Decimal(rate),
                        "effective_date": (self.now - dt.timedelta(days=400)).date(),
                    },
                )

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.uuid_bits(128), version=4))

    def open_count(self) -> int:
        return (
            Deal.objects.for_org(self.org)
            .filter(pipeline=self.pipeline, status=Deal.Status.OPEN)
            .count()
        )

    def copy(self, count: int, *, closed: int = 0, newer_than: dt.datetime | None = None):
        """COPY `count` open deals (and `closed` won or lost ones) with their history.
        `newer_than`: they all arrived after that moment. Returns the ids written."""
        total = count + closed
        if total <= 0:
            return range(0)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            # Reserve an id range: nobody else may insert deals until this transaction ends.
            cursor.execute("LOCK TABLE pipeline_deal IN SHARE ROW EXCLUSIVE MODE")
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('pipeline_deal', 'id'), "
                "GREATEST((SELECT COALESCE(MAX(id), 0) FROM pipeline_deal), "
                "nextval(pg_get_serial_sequence('pipeline_deal', 'id'))) + %s)",
                [total],
            )
            last_id = cursor.fetchone()[0]
            first_id = last_id - total + 1
            history: list[str] = []
            statuses = ["open"] * count + [
                status
                for status in ("won" if n % 3 else "lost" for n in range(closed))
                if self.reasons[status]
            ]
            deals = self._deal_lines(first_id, statuses, history, newer_than)
            copy_lines(cursor, "pipeline_deal", DEAL_COLUMNS, deals)
            copy_lines(cursor, "pipeline_stagehistory", HISTORY_COLUMNS, iter(history))
        self.log(
            f"  {self.org.name}: copied {len(statuses):,} deals and {len(history):,} history "
            f"rows ({time.perf_counter() - started:.1f}s)"
        )
        return range(first_id, first_id + len(statuses))

    def _deal_lines(self, first_id: int, statuses, history: list[str], newer_than):
        r = self.rng.random
        now, org_id = self.now, str(self.org.pk)
        pipeline_id = str(self.pipeline.pk)
        stage_ids = [s.pk for s in self.stages]
        weights = STAGE_WEIGHTS[: len(stage_ids)] + (5,) * max(0, len(stage_ids) - 6)
        stage_pool = [k for k, w in enumerate(weights) for _ in range(w)]
        today = now.date()
        age = (now - newer_than).total_seconds() if newer_than else 90 * 86400.0
        for n, status in enumerate(statuses):
            deal_id = first_id + n
            k = stage_pool[int(r() * len(stage_pool))]
            stage_id = stage_ids[k]
            # When it entered its stage (or closed), and when it was created before that.
            entered = now - dt.timedelta(seconds=r() * age)
            if newer_than is not None:
                created = newer_than + (entered - newer_than) * r()
            else:
                created = entered - dt.timedelta(seconds=r() * 60 * 86400)
            owner_id, owner_label = self.owners[int(r() * len(self.owners))]
            currency = self.currencies[int(r() * len(self.currencies))]
            company = (
                str(self.companies[int(r() * len(self.companies))])
                if self.companies and r() < 0.7
                else NULL
            )
            closed_at = reason = NULL
            if status == "open":
                self.positions[stage_id] = position = (
                    self.positions.get(stage_id, 0.0) + POSITION_STEP
                )
                close_day = today + dt.timedelta(days=int(r() * 300) - 30)
            else:
                position = 0.0
                closed = entered
                closed_at = _stamp(closed)
                reason = str(self.rng.choice(self.reasons[status]))
                close_day = closed.date()
            value = f"{int(r() * 200_000) + 500}.{int(r() * 100):02d}"
            yield (
                "\t".join(
                    (
                        str(deal_id),
                        self._uuid(),
                        _stamp(created),
                        # Last written when it entered its stage (or closed), as the
                        # services would have left it.
                        _stamp(entered),
                        org_id,
                        f"Deal {deal_id} {WORDS[deal_id % len(WORDS)]}",
                        value,
                        currency,
                        "t",
                        pipeline_id,
                        str(stage_id),
                        repr(position),
                        NULL,
                        PRIORITIES[int(r() * len(PRIORITIES))],
                        str(owner_id),
                        NULL,
                        NULL,
                        company,
                        close_day.isoformat(),
                        status,
                        closed_at,
                        reason,
                        "",
                        "",
                        "",
                        "{}",
                        _stamp(entered),
                        _stamp(entered),
                        "f",
                        NULL,
                        str(owner_id),
                    )
                )
                + "\n"
            )
            # The history: created in the first stage, one move per stage on the way (evenly
            # spread until it entered its stage, or until most of the way to its close), and
            # the close.
            reached = entered if status == "open" else created + (entered - created) * 0.8
            previous = created
            rows = [(created, None, 0, "", "open", None)]
            for step in range(1, k + 1):
                moment = created + (reached - created) * (step / k)
                rows.append((moment, step - 1, step, "open", "open", _seconds(moment, previous)))
                previous = moment
            if status != "open":
                rows.append((entered, k, k, "open", status, _seconds(entered, previous)))
            for moment, from_k, to_k, from_status, to_status, seconds in rows:
                history.append(
                    "\t".join(
                        (
                            self._uuid(),
                            _stamp(moment),
                            org_id,
                            str(deal_id),
                            pipeline_id,
                            NULL if from_k is None else str(stage_ids[from_k]),
                            str(stage_ids[to_k]),
                            from_status,
                            to_status,
                            NULL if seconds is None else str(seconds),
                            str(owner_id),
                            owner_label,
                            _stamp(moment),
                        )
                    )
                    + "\n"
                )

    def week_of_changes(self, ids: range) -> int:
        """After the snapshot: some deals change in amount, slip by two months or move on a
        stage (with their history row)."""
        rng = self.rng
        open_ids = list(
            Deal.objects.for_org(self.org)
            .filter(pk__gte=ids.start, pk__lt=ids.stop, status=Deal.Status.OPEN)
            .values_list("pk", flat=True)
        )
        picked = rng.sample(open_ids, k=min(len(open_ids), max(3, int(len(ids) * CHANGED_SHARE))))
        third = max(1, len(picked) // 3)
        deals = Deal.objects.for_org(self.org)
        # Written as the services write: each change saves updated_at.
        moved_at = self.now - dt.timedelta(days=2)
        deals.filter(pk__in=picked[:third]).update(
            value=F("value") * Decimal("1.25"), updated_at=moved_at
        )
        deals.filter(pk__in=picked[third : 2 * third]).update(
            expected_close_date=F("expected_close_date") + dt.timedelta(days=60),
            updated_at=moved_at,
        )
        movers = picked[2 * third :]
        rows = []
        for stage, following in itertools.pairwise(self.stages):
            chosen = list(deals.filter(pk__in=movers, stage=stage).values_list("pk", "owner_id"))
            # +0.5 keeps every card's position distinct in its new column (they are all
            # multiples of POSITION_STEP there).
            deals.filter(pk__in=[pk for pk, _ in chosen]).update(
                stage=following,
                stage_entered_at=moved_at,
                position=F("position") + 0.5,
                updated_at=moved_at,
            )
            rows += [
                StageHistory(
                    org=self.org,
                    deal_id=pk,
                    pipeline=self.pipeline,
                    from_stage=stage,
                    to_stage=following,
                    from_status="open",
                    to_status="open",
                    actor_id=owner_id,
                    occurred_at=moved_at,
                )
                for pk, owner_id in chosen
            ]
        StageHistory.objects.for_org(self.org).bulk_create(rows, batch_size=2000)
        return len(picked)


class Command(BaseCommand):
    help = "Seed N open deals (reused on re-runs) and time the pipeline pages through the views."

    def add_arguments(self, parser):
        parser.add_argument("--deals", type=int, default=100_000, metavar="N")
        parser.add_argument("--runs", type=int, default=30)
        parser.add_argument("--org-slug", default="bench")
        parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE slow queries")
        parser.add_argument("--skip-seed", action="store_true", help="Measure what is there")
        parser.add_argument("--seed-only", action="store_true", help="Seed, then stop")

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
        return org

    def _seed_org(self, org, total: int, rng: random.Random, now: dt.datetime) -> None:
        seeder = Seeder(org, rng, now, self.stdout.write)
        missing = total - seeder.open_count()
        if missing <= 0:
            return
        closed = missing // CLOSED_EVERY
        if ForecastSnapshot.objects.for_org(org).exists():
            with bare_tables(self.stdout.write, big=is_big_load(missing)):
                seeder.copy(missing, closed=closed)
            return
        added = min(missing, max(1, int(missing * ADDED_SHARE)))
        week_ago = now - dt.timedelta(days=7)
        seeder.now = week_ago
        with bare_tables(self.stdout.write, big=is_big_load(missing)):
            ids = seeder.copy(missing - added, closed=closed)
            started = time.perf_counter()
            snapshot = take_snapshot(org, now=week_ago)
            self.stdout.write(
                f"  {org.name}: forecast snapshot of a week ago, "
                f"{snapshot.totals.get('lines', 0):,} lines ({time.perf_counter() - started:.1f}s)"
            )
        ForecastSnapshot.objects.for_org(org).filter(pk=snapshot.pk).update(created_at=week_ago)
        seeder.now = now
        changed = seeder.week_of_changes(ids)
        seeder.copy(added, newer_than=week_ago)
        self.stdout.write(f"  {org.name}: {added:,} deals added and {changed:,} changed since")

    def _seed(self, slug: str, total: int) -> Organization:
        _check_columns(Deal, DEAL_COLUMNS)
        _check_columns(StageHistory, HISTORY_COLUMNS)
        rng = random.Random(total)
        now = timezone.now().replace(microsecond=0)
        started = time.perf_counter()
        org = self._org(slug, "Bench")
        for noise_slug in NOISE_ORGS:
            noise = self._org(noise_slug, noise_slug.replace("-", " ").title())
            with transaction.atomic():
                self._seed_org(noise, max(1, total // NOISE_SHARE), rng, now)
        with transaction.atomic():
            self._seed_org(org, total, rng, now)
            committing = time.perf_counter()
        self.stdout.write(f"  committed in {time.perf_counter() - committing:.1f}s")
        # VACUUM cannot run in a transaction (a test's): ANALYZE alone then.
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
        self.stdout.write(f"seeded in {time.perf_counter() - started:.1f}s; {command}…")
        with connection.cursor() as cursor:
            for table in (
                "pipeline_deal",
                "pipeline_stagehistory",
                "pipeline_forecastsnapshotline",
                "pipeline_forecastsnapshot",
            ):
                cursor.execute(f"{command} {table}")
        return org

    # Measuring -------------------------------------------------------------------------------

    def _client(self, org) -> Client:
        owner = (
            Membership.objects.for_org(org)
            .filter(role__key="owner", is_active=True)
            .select_related("user")
            .order_by("id")
            .first()
        )
        if owner is None:
            raise CommandError(f"{org.name} has no active owner to measure as.")
        client = Client()
        client.force_login(owner.user)
        session = client.session
        session["active_org_id"] = org.pk
        session.save()
        return client

    def _report(self, name: str, timings, cpu, queries, explain: bool) -> None:
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

    def _measure(self, client, name: str, urls, runs: int, explain: bool, **extra) -> None:
        urls = list(urls) if isinstance(urls, list) else [urls]
        for url in urls[:2]:  # warm caches and connections
            response = client.get(url, **extra)
            if response.status_code != 200:
                self.stderr.write(f"{name}: {url} answered {response.status_code}")
                return
        # The log is cleared when a request starts; start the capture from an empty one.
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            client.get(urls[0], **extra)
        # Read now: the next request clears the log the capture points into.
        queries = list(captured.captured_queries)
        timings, cpu = [], []
        for run in range(runs):
            url = urls[run % len(urls)]
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(url, **extra)
            _ = response.content
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        self._report(name, timings, cpu, queries, explain)

    def _measure_move(self, client, name: str, deal, stages, runs: int, explain: bool) -> None:
        """The board's move (a drag, answered with JSON), back and forth between two stages:
        each run puts the card at the top of the other column."""
        url = reverse("pipeline:deal_move", args=[deal.public_id])
        headers = {"accept": "application/json"}

        def move(run: int):
            target = stages[(run + 1) % 2]
            data = {"stage": str(target.public_id), "position": "top"}
            return client.post(url, data, headers=headers)

        for run in range(2):
            response = move(run)
            if response.status_code != 200 or not response.json().get("ok"):
                self.stderr.write(f"{name}: {url} answered {response.status_code}")
                return
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            move(0)
        queries = list(captured.captured_queries)
        timings, cpu = [], []
        for run in range(1, runs + 1):
            started, started_cpu = time.perf_counter(), time.process_time()
            response = move(run)
            _ = response.content
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        self._report(name, timings, cpu, queries, explain)

    def _explain(self, name: str, queries: list[dict]) -> None:
        selects = [q for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
        if not selects:
            return
        slowest = max(selects, key=lambda q: float(q.get("time") or 0))
        sql = slowest["sql"]
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())
        self.stdout.write(
            f"  slowest query of {name} ({slowest['time']}s):\n    {sql[:400]}\n{plan}"
        )

    def handle(self, *args, **options):
        total, runs, slug = options["deals"], max(options["runs"], 1), options["org_slug"]
        if options["skip_seed"]:
            org = Organization.objects.filter(slug=slug).first()
            if org is None:
                raise CommandError(f"No organization {slug!r}: run without --skip-seed first.")
        else:
            org = self._seed(slug, total)
        if options["seed_only"]:
            return
        pipeline = ensure_default_pipeline(org, actor=ACTOR)
        stages = list(Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position"))
        deals = Deal.objects.for_org(org).filter(pipeline=pipeline)
        have = deals.filter(status=Deal.Status.OPEN).count()
        self.stdout.write(
            f"{org.name}: {have:,} open deals in {pipeline.name}; {runs} runs per scenario"
        )
        if len(stages) < 2 or not have:
            raise CommandError("The bench needs open deals in a pipeline of two stages or more.")
        board_url = f"{reverse('pipeline:board')}?pipeline={pipeline.public_id}"
        rep = (
            Membership.objects.for_org(org)
            .filter(role__key="team", is_active=True)
            .select_related("user")
            .order_by("user_id")
            .first()
        )
        owner_filter = f"owner={rep.user.public_id}&" if rep else ""
        table_url = f"{reverse('pipeline:deal_list')}?{owner_filter}value_min=50000"
        mover = (
            deals.filter(status=Deal.Status.OPEN, is_archived=False, stage=stages[0])
            .order_by("position", "id")
            .first()
        ) or deals.filter(status=Deal.Status.OPEN).first()
        pair = [mover.stage, next(s for s in stages if s.pk != mover.stage_id)]
        explain = options["explain"]
        with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver", "localhost"]):
            client = self._client(org)
            self._measure(client, "board", board_url, runs, explain)
            page = client.get(board_url).content.decode()
            columns = [link.replace("&amp;", "&") for link in COLUMN_LINK.findall(page)]
            if columns:
                self._measure(
                    client, "column", columns, runs, explain, headers={"hx-request": "true"}
                )
            else:
                self.stderr.write("column: no column has a next page (too few deals?)")
            self._measure_move(client, "move", mover, pair, runs, explain)
            self._measure(client, "table", table_url, runs, explain)
            self._measure(client, "forecast", reverse("pipeline:forecast"), runs, explain)
            self._measure(client, "changes", reverse("pipeline:forecast_changes"), runs, explain)
        self.stdout.write(json.dumps({"org": slug, "deals": have}))
