"""The weekly forecast snapshot and "what changed since last week", on a fixed clock."""

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.urls import reverse

from crm.permissions import Policy
from pipeline.forecast import access
from pipeline.forecast.changes import compare, default_base
from pipeline.forecast.snapshot import snapshot_all_orgs, take_snapshot, take_weekly_snapshot
from pipeline.models import Deal, ForecastSnapshot, ForecastSnapshotLine
from pipeline.tasks import weekly_forecast_snapshot_task
from tests.factories import (
    DealFactory,
    ExchangeRateFactory,
    ForecastSnapshotFactory,
    OrganizationFactory,
    PipelineFactory,
    StageFactory,
    member,
)

pytestmark = pytest.mark.django_db

D = Decimal
UTC = dt.UTC
T0 = dt.datetime(2026, 5, 4, 5, 0, tzinfo=UTC)  # a Monday, when beat runs
T1 = dt.datetime(2026, 5, 11, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(org):
    rep, other_rep = member(org, "team"), member(org, "team")
    pipeline = PipelineFactory(org=org)
    s1 = StageFactory(org=org, pipeline=pipeline, name="Qualify", position=0, probability=10)
    s3 = StageFactory(
        org=org,
        pipeline=pipeline,
        name="Negotiate",
        position=1,
        probability=80,
        forecast_category="commit",
    )
    ExchangeRateFactory(org=org, currency="EUR", rate="1.10", effective_date=dt.date(2026, 1, 1))

    def deal(title, stage, value, close, currency="USD", owner=rep):
        return DealFactory(
            org=org,
            title=title,
            stage=stage,
            value=D(value),
            currency=currency,
            owner=owner.user,
            expected_close_date=dt.date.fromisoformat(close),
        )

    deals = {
        "won": deal("Won deal", s3, "1000", "2026-05-20"),
        "lost": deal("Lost deal", s1, "2000", "2026-05-25"),
        "slip": deal("Slipping deal", s3, "3000", "2026-06-10"),
        "pull": deal("Pulled deal", s1, "4000", "2026-08-01"),
        "amount": deal("Bigger deal", s3, "1000", "2026-06-05", "EUR"),
        "archived": deal("Archived deal", s1, "500", "2026-05-30", owner=other_rep),
        "same": deal("Quiet deal", s1, "100", "2026-05-15"),
        "eur_same": deal("Quiet euro deal", s1, "1000", "2026-05-28", "EUR"),
    }
    return {"org": org, "rep": rep, "other_rep": other_rep, "s1": s1, "s3": s3, "deals": deals}


def change_the_week(world):
    """What happens between T0 and T1."""
    org, deals = world["org"], world["deals"]
    Deal.objects.for_org(org).filter(pk=deals["won"].pk).update(
        status="won", closed_at=dt.datetime(2026, 5, 8, 15, tzinfo=UTC)
    )
    Deal.objects.for_org(org).filter(pk=deals["lost"].pk).update(
        status="lost", closed_at=dt.datetime(2026, 5, 9, 15, tzinfo=UTC)
    )
    Deal.objects.for_org(org).filter(pk=deals["slip"].pk).update(
        expected_close_date=dt.date(2026, 7, 15)
    )
    Deal.objects.for_org(org).filter(pk=deals["pull"].pk).update(
        expected_close_date=dt.date(2026, 6, 1)
    )
    Deal.objects.for_org(org).filter(pk=deals["amount"].pk).update(value=D("1500"))
    Deal.objects.for_org(org).filter(pk=deals["archived"].pk).update(is_archived=True)
    Deal.objects.for_org(org).filter(pk=deals["same"].pk).update(stage=world["s3"])
    DealFactory(
        org=org,
        title="New deal",
        stage=world["s3"],
        value=D("200"),
        owner=world["rep"].user,
        expected_close_date=dt.date(2026, 6, 30),
    )
    # The euro is worth more from May 10 on.
    ExchangeRateFactory(org=org, currency="EUR", rate="1.20", effective_date=dt.date(2026, 5, 10))


def test_snapshot_stores_a_line_per_open_deal_in_the_base_currency(world):
    snapshot = take_snapshot(world["org"], now=T0, batch_size=3)
    lines = {
        line.deal_id: line
        for line in ForecastSnapshotLine.objects.filter(org=world["org"], snapshot=snapshot)
    }
    assert len(lines) == 8
    amount = lines[world["deals"]["amount"].pk]
    assert (amount.value_base, amount.weighted_base, amount.category) == (
        D("1100.00"),
        D("880.00"),
        "commit",
    )
    assert amount.expected_close_date == dt.date(2026, 6, 5)
    assert snapshot.taken_at == T0 and snapshot.base_currency == "USD"
    assert snapshot.totals["lines"] == 8
    assert snapshot.totals["rates"] == {"EUR": "1.1000000000", "USD": "1"}
    assert D(snapshot.totals["commit_open"]) == D("5100.00")


def test_a_deal_without_a_rate_is_left_out_and_noted(world):
    DealFactory(
        org=world["org"],
        stage=world["s1"],
        currency="CHF",
        value=D("10"),
        expected_close_date=dt.date(2026, 5, 5),
    )
    snapshot = take_snapshot(world["org"], now=T0)
    assert snapshot.totals["lines"] == 8
    assert snapshot.totals["missing_rates"] == {"CHF": {"deals": 1, "amount": "10.00"}}


def test_what_changed_since_the_snapshot(world):
    org = world["org"]
    base = take_snapshot(org, now=T0)
    change_the_week(world)
    result = compare(org, None, None, base=base, now=T1)
    kinds = {c.title: c.kind for c in result.changes}
    assert kinds == {
        "Won deal": "won",
        "Lost deal": "lost",
        "Slipping deal": "slipped",
        "Pulled deal": "pulled_in",
        "Bigger deal": "amount",
        "Archived deal": "removed",
        "New deal": "added",
    }
    effects = {k.kind: (k.count, k.commit, k.weighted) for k in result.kinds}
    assert effects["won"] == (1, D("0.00"), D("200.00"))
    assert effects["lost"] == (1, D("0.00"), D("-200.00"))
    assert effects["slipped"] == (1, D("-3000.00"), D("-2400.00"))
    assert effects["pulled_in"] == (1, D("0.00"), D("400.00"))
    # 1000 EUR at 1.10 became 1500 EUR at 1.20
    assert effects["amount"] == (1, D("700.00"), D("560.00"))
    assert effects["removed"] == (1, D("0.00"), D("-50.00"))
    assert effects["added"] == (1, D("200.00"), D("160.00"))
    assert result.period.label == "Q2 2026"
    assert (result.commit_before, result.commit_after) == (D("5100.00"), D("3100.00"))
    assert (result.weighted_before, result.weighted_after) == (D("4450.00"), D("3200.00"))
    # The quiet deal's stage move and the new euro rate: not listed, but accounted for.
    assert (result.other.commit, result.other.weighted) == (D("100.00"), D("80.00"))


def test_what_changed_between_two_snapshots(world):
    org = world["org"]
    base = take_snapshot(org, now=T0)
    change_the_week(world)
    target = take_snapshot(org, now=T1)
    result = compare(org, None, None, base=base, target=target)
    assert {c.title: c.kind for c in result.changes} == {
        "Won deal": "won",
        "Lost deal": "lost",
        "Slipping deal": "slipped",
        "Pulled deal": "pulled_in",
        "Bigger deal": "amount",
        "Archived deal": "removed",
        "New deal": "added",
    }
    assert result.commit_delta == D("-2000.00")
    assert result.weighted_delta == D("-1250.00")
    assert (result.other.commit, result.other.weighted) == (D("100.00"), D("80.00"))


def test_month_granularity_sees_a_slip_within_the_quarter(world):
    org = world["org"]
    base = take_snapshot(org, now=T0)
    Deal.objects.for_org(org).filter(pk=world["deals"]["same"].pk).update(
        expected_close_date=dt.date(2026, 6, 15)
    )
    by_quarter = compare(org, None, None, base=base, now=T1)
    assert by_quarter.changes == []
    by_month = compare(org, None, None, base=base, now=T1, granularity="month")
    assert [(c.title, c.kind) for c in by_month.changes] == [("Quiet deal", "slipped")]
    assert by_month.period.label == "May 2026"


def test_changes_respect_record_scope(world):
    org = world["org"]
    base = take_snapshot(org, now=T0)
    change_the_week(world)
    mine = compare(org, Policy(world["other_rep"]), None, base=base, now=T1)
    assert [c.title for c in mine.changes] == ["Archived deal"]
    filtered = compare(
        org, None, access.DealFilters(owner=world["other_rep"].user), base=base, now=T1
    )
    assert [c.title for c in filtered.changes] == ["Archived deal"]


def test_default_base_is_the_snapshot_nearest_a_week_ago(world):
    org = world["org"]
    for days in (1, 6, 9, 20):
        ForecastSnapshotFactory(org=org, taken_at=T1 - dt.timedelta(days=days))
    assert default_base(org, T1).taken_at == T1 - dt.timedelta(days=6)
    assert default_base(org, T1 - dt.timedelta(days=30)) is None


def test_weekly_snapshot_skips_an_organization_snapshotted_this_week(world):
    org = world["org"]
    assert take_weekly_snapshot(org, now=T0) is not None
    assert take_weekly_snapshot(org, now=T0 + dt.timedelta(days=2)) is None
    assert take_weekly_snapshot(org, now=T1) is not None
    assert ForecastSnapshot.objects.for_org(org).count() == 2


def test_the_weekly_task_snapshots_every_organization_in_its_own_context(world):
    other = OrganizationFactory()
    stage = StageFactory(org=other)
    DealFactory(org=other, stage=stage, expected_close_date=dt.date(2026, 5, 5))
    with mock.patch("django.utils.timezone.now", return_value=T0):
        weekly_forecast_snapshot_task.apply().get()
    mine = ForecastSnapshot.objects.for_org(world["org"]).get()
    theirs = ForecastSnapshot.objects.for_org(other).get()
    assert (mine.totals["lines"], theirs.totals["lines"]) == (8, 1)
    assert ForecastSnapshotLine.objects.filter(snapshot=theirs, org=world["org"]).count() == 0
    assert snapshot_all_orgs(now=T0 + dt.timedelta(hours=1)) == 0  # already taken this week


def test_the_change_page_on_a_fixed_clock(world, client_as):
    org = world["org"]
    take_snapshot(org, now=T0)
    change_the_week(world)
    owner = member(org, "owner")
    with mock.patch("django.utils.timezone.now", return_value=T1):
        client = client_as(owner)
        page = client.get(reverse("pipeline:forecast_changes"))
        html = page.content.decode()
        assert page.status_code == 200
        assert "Slipping deal" in html and "Slipped to a later period" in html
        assert "-2,000.00" in html  # commit
        export = client.get(reverse("pipeline:forecast_changes") + "?format=csv&table=deals")
        text = b"".join(export.streaming_content).decode("utf-8-sig")
        assert "Pulled deal" in text and "Archived deal" in text
        rep_page = client_as(world["other_rep"]).get(reverse("pipeline:forecast_changes"))
        assert b"Archived deal" in rep_page.content and b"Slipping deal" not in rep_page.content


def test_admin_takes_a_snapshot_by_hand_and_others_may_not(world, client_as):
    org = world["org"]
    url = reverse("pipeline:forecast_snapshot_take")
    assert client_as(member(org, "board")).post(url).status_code == 403
    assert client_as(member(org, "admin")).post(url).status_code == 302
    assert ForecastSnapshot.objects.for_org(org).count() == 1


def test_the_command_takes_a_snapshot_of_one_organization(world):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    call_command("take_forecast_snapshot", "--org", world["org"].slug, stdout=out)
    assert "8 deal line(s)" in out.getvalue()
    assert ForecastSnapshot.objects.for_org(world["org"]).count() == 1
    with pytest.raises(CommandError):
        call_command("take_forecast_snapshot", "--org", "no-such-org")
