"""The inbound benchmark runs end to end on a small load: figures, and an unchanged count
after the replay."""

from __future__ import annotations

import io

import pytest

from pipeline.bench_inbound import run_inbound_bench
from pipeline.models import Order

pytestmark = pytest.mark.django_db


def test_the_inbound_bench_creates_then_replays_without_new_rows(org):
    out = io.StringIO()

    figures = run_inbound_bench(org, orders=45, batch=20, stdout=out, repeats=2)

    assert figures["rows_before_replay"] == figures["rows_after_replay"] == 90
    assert Order.objects.for_org(org).count() == 90
    assert len(figures["runs"]) == 2 and figures["median"] > 0
    assert "orders/s" in out.getvalue() and "unchanged" in out.getvalue()
