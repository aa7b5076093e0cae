"""The pipeline benchmark command at a tiny size: it seeds the deals, their history, the noise
organizations and last week's snapshot, and prints one line per scenario in bench_contacts'
format. (The figures themselves are the lead's to run, at 100k, on a quiet machine.)"""

import io
import re

from django.core.management import call_command
from django.db import connection
from django.db.models import Count

from crm.models import Organization
from pipeline.management.commands import bench_pipeline
from pipeline.models import Deal, ForecastSnapshot, StageHistory

SCENARIOS = ["board", "column", "move", "table", "forecast", "changes"]
LINE = re.compile(
    r"^(?P<name>\w+) p50=\d+\.\dms p95=\d+\.\dms queries=(?P<queries>\d+) "
    r"\(cpu p50=\d+\.\dms, db=\d+\.\dms\)$"
)


def test_bench_pipeline_seeds_and_prints_one_line_per_scenario(db):
    out, err = io.StringIO(), io.StringIO()

    call_command("bench_pipeline", deals=120, runs=2, stdout=out, stderr=err)

    assert err.getvalue() == ""
    lines = [m for m in map(LINE.match, out.getvalue().splitlines()) if m]
    assert [m["name"] for m in lines] == SCENARIOS
    assert all(int(m["queries"]) > 0 for m in lines)
    bench = Organization.objects.get(slug="bench")
    deals = Deal.objects.for_org(bench)
    assert deals.filter(status="open").count() == 120
    assert deals.exclude(status="open").exists()
    assert not deals.exclude(status="open").filter(close_reason=None).exists()
    # Every deal has its history, from its creation on.
    created = StageHistory.objects.for_org(bench).filter(from_status="")
    assert created.values("deal").distinct().count() == deals.count()
    assert ForecastSnapshot.objects.for_org(bench).count() == 1
    for slug in bench_pipeline.NOISE_ORGS:
        noise = Organization.objects.get(slug=slug)
        assert Deal.objects.for_org(noise).filter(status="open").count() == 6


def index_and_key_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        names = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass", [table])
        return names | {row[0] for row in cursor.fetchall()}


def test_a_big_load_rebuilds_every_index_and_key_then_tops_up(db, monkeypatch):
    before = {table: index_and_key_names(table) for table in bench_pipeline.BARE_TABLES}
    monkeypatch.setattr(bench_pipeline, "is_big_load", lambda count: count >= 30)
    out = io.StringIO()

    call_command("bench_pipeline", deals=40, seed_only=True, stdout=out)

    assert "dropped" in out.getvalue() and "rebuilt" in out.getvalue()
    assert {table: index_and_key_names(table) for table in bench_pipeline.BARE_TABLES} == before
    bench = Organization.objects.get(slug="bench")
    snapshot = ForecastSnapshot.objects.for_org(bench).get()

    call_command("bench_pipeline", deals=60, seed_only=True, stdout=io.StringIO())

    per_status = dict(Deal.objects.for_org(bench).values_list("status").annotate(n=Count("id")))
    assert per_status["open"] == 60
    assert ForecastSnapshot.objects.for_org(bench).get() == snapshot
    out = io.StringIO()
    call_command("bench_pipeline", deals=60, runs=1, skip_seed=True, stdout=out)
    assert "Bench: 60 open deals" in out.getvalue()
