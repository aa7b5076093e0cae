"""The orders benchmark command at a tiny size: it seeds contacts, orders, object types,
records and associations in the bench organization and the noise ones, prints one line per
scenario and member, and hands the inbound part to pipeline.bench_inbound. (The figures
themselves are for a full-size run on a quiet machine.)"""

import io
import json
import re
import sys
import types

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count

from contacts.models import Contact
from crm.models import Organization
from pipeline import bench_orders_seed
from pipeline.management.commands import bench_orders
from pipeline.models import ObjectAssociation, ObjectRecord, ObjectType, Order

LINE = re.compile(
    r"^(?P<name>\w+)\s+(?P<member>all|own)\s+(?P<p50>\d+\.\d)\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d"
    r"\s+(?P<queries>\d+)\s+(?P<shown>>?[\d,]+)$"
)
SIZES = {"contacts": 80, "orders": 200, "associations": 60, "records": 20}


def run(**options) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("bench_orders", stdout=out, stderr=err, **options)
    assert err.getvalue() == ""
    return out.getvalue()


def test_seeds_and_prints_one_line_per_scenario_and_member(db):
    out = run(runs=2, part="filters", **SIZES)

    rows = [m for m in map(LINE.match, out.splitlines()) if m]
    bench = Organization.objects.get(slug="bench")
    names = [name for name, _ in bench_orders.scenarios(bench)]
    assert [(m["name"], m["member"]) for m in rows] == [
        (name, member) for name in names for member in ("all", "own")
    ]
    assert all(int(m["queries"]) > 0 for m in rows)
    shown = {(m["name"], m["member"]): int(m["shown"].replace(",", "")) for m in rows}
    # The admin sees at least what the rep sees, and something matches the broad filters.
    assert all(shown[(name, "all")] >= shown[(name, "own")] for name in names)
    assert shown[("no_paid_order", "all")] > 0
    assert shown[("with_a_course", "all")] > 0

    assert set(bench.enabled_modules) >= {"orders", "custom_objects"}
    assert Contact.objects.for_org(bench).count() == 80
    orders = Order.objects.for_org(bench)
    assert orders.count() == 200
    statuses = dict(orders.values_list("status").annotate(n=Count("id")))
    assert statuses["paid"] > statuses.get("failed", 0)
    assert not orders.filter(status="paid", paid_date=None).exists()
    assert ObjectType.objects.for_org(bench).count() == 2
    assert ObjectRecord.objects.for_org(bench).count() == 20
    links = ObjectAssociation.objects.for_org(bench)
    assert links.count() == 60
    # A record and a contact are linked at most once (the constraint would have refused).
    assert links.values("record", "contact").distinct().count() == 60
    for slug in bench_orders.NOISE_ORGS:
        noise = Organization.objects.get(slug=slug)
        assert Order.objects.for_org(noise).count() == 10
        assert ObjectAssociation.objects.for_org(noise).count() == 3

    # A second run tops up to the sizes asked for, and --skip-seed measures what is there.
    run(runs=1, part="filters", only="with_a_course", **{**SIZES, "orders": 260})
    assert Order.objects.for_org(bench).count() == 260
    out = run(runs=1, part="filters", skip_seed=True, only="paid_last_90_days")
    assert "Bench: 80 contacts, 260 orders, 60 associations" in out
    assert [m["name"] for m in map(LINE.match, out.splitlines()) if m] == ["paid_last_90_days"] * 2


def index_and_key_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        names = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass", [table])
        return names | {row[0] for row in cursor.fetchall()}


def test_a_big_load_drops_and_rebuilds_every_index_and_key(db, monkeypatch):
    before = {table: index_and_key_names(table) for table in bench_orders_seed.BENCH_TABLES}
    monkeypatch.setattr(bench_orders_seed, "BIG_LOAD", 10)

    out = run(runs=1, part="filters", only="no_property", **SIZES)

    assert "pipeline_order: rebuilt" in out
    assert "pipeline_objectassociation: rebuilt" in out
    assert {table: index_and_key_names(table) for table in bench_orders_seed.BENCH_TABLES} == before


def test_the_inbound_part_hands_over_to_run_inbound_bench(db, monkeypatch):
    calls = []

    def run_inbound_bench(org, *, orders, batch, stdout):
        calls.append((org.slug, orders, batch))
        stdout.write("inbound: fake")

    fake = types.ModuleType("pipeline.bench_inbound")
    fake.run_inbound_bench = run_inbound_bench
    monkeypatch.setitem(sys.modules, "pipeline.bench_inbound", fake)

    out = run(part="inbound", inbound_orders=40, batch=7, **SIZES)

    assert calls == [("bench", 40, 7)]
    assert "inbound: fake" in out
    assert not LINE.search(out)


def test_skip_seed_without_a_bench_organization_says_what_to_do(db):
    with pytest.raises(CommandError, match="run without --skip-seed first"):
        run(skip_seed=True, part="filters")


def test_the_inbound_part_runs_the_real_inbound_bench_at_a_tiny_size(db):
    out = run(part="inbound", inbound_orders=12, batch=5, **SIZES)

    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["org"] == "bench"
    assert "inbound" in figures
    bench = Organization.objects.get(slug="bench")
    assert Order.objects.for_org(bench).count() > SIZES["orders"]
