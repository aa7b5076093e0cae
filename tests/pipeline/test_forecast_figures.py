"""The forecast's figures: open, weighted, commit, best case and closed won for a period, in
the base currency; the breakdowns; quotas and attainment; record scope; constant queries."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.permissions import Policy
from pipeline.forecast import access
from pipeline.forecast.figures import compute_forecast, quota_attainment, quotas_overlapping
from pipeline.forecast.periods import custom_period, named_period
from pipeline.forecast.rates import RateBook
from pipeline.models import Quota
from tests.factories import (
    DealFactory,
    ExchangeRateFactory,
    PipelineFactory,
    QuotaFactory,
    StageFactory,
    TeamFactory,
    member,
)

pytestmark = pytest.mark.django_db

D = Decimal
TODAY = dt.date(2026, 5, 13)
UTC = dt.UTC


def at(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def world(org):
    east, west = TeamFactory(org=org, name="East"), TeamFactory(org=org, name="West")
    rep_a = member(org, "team", team=east)
    rep_b = member(org, "team", team=west)
    rep_c = member(org, "team")
    p1 = PipelineFactory(org=org, name="New business", position=0)
    p2 = PipelineFactory(org=org, name="Renewals", position=1)
    s1 = StageFactory(org=org, pipeline=p1, name="Qualify", position=0, probability=10)
    s2 = StageFactory(
        org=org,
        pipeline=p1,
        name="Propose",
        position=1,
        probability=50,
        forecast_category="best_case",
    )
    s3 = StageFactory(
        org=org,
        pipeline=p1,
        name="Negotiate",
        position=2,
        probability=80,
        forecast_category="commit",
    )
    t1 = StageFactory(org=org, pipeline=p2, name="Renewal due", position=0, probability=30)
    ExchangeRateFactory(org=org, currency="EUR", rate="1.10", effective_date=dt.date(2026, 1, 1))
    ExchangeRateFactory(org=org, currency="EUR", rate="1.20", effective_date=dt.date(2026, 5, 1))
    a, b, c = rep_a.user, rep_b.user, rep_c.user

    def deal(stage, owner, value, currency="USD", close=None, **kw):
        return DealFactory(
            org=org,
            stage=stage,
            owner=owner,
            value=D(value),
            currency=currency,
            expected_close_date=dt.date.fromisoformat(close) if close else None,
            **kw,
        )

    deals = {
        "qualify_a": deal(s1, a, "1000", close="2026-04-10"),
        "propose_a": deal(s2, a, "2000", close="2026-05-20"),
        "eur_commit_a": deal(s3, a, "1000", "EUR", close="2026-06-15"),
        "override_b": deal(
            s1, b, "500", close="2026-06-01", probability=90, forecast_category="commit"
        ),
        "omitted_b": deal(s3, b, "300", close="2026-05-05", forecast_category="omitted"),
        "won_b": deal(s2, b, "1000", "EUR", status="won", closed_at=at("2026-04-20")),
        "lost_a": deal(s3, a, "5000", status="lost", closed_at=at("2026-04-25")),
        "next_quarter_c": deal(t1, c, "4000", close="2026-07-15"),
        "archived_a": deal(s3, a, "9999", close="2026-05-01", is_archived=True),
        "undated_a": deal(s1, a, "700"),
        "chf_c": deal(t1, c, "800", "CHF", close="2026-05-10"),
        "won_march_a": deal(s1, a, "10000", status="won", closed_at=at("2026-03-30")),
    }
    return {
        "org": org,
        "a": rep_a,
        "b": rep_b,
        "c": rep_c,
        "stages": (s1, s2, s3, t1),
        "pipelines": (p1, p2),
        "deals": deals,
        "east": east,
        "west": west,
    }


def forecast_for(world, policy=None, filters=None, period=None, quotas=None):
    org = world["org"]
    deals = access.forecast_deals(org, policy, filters)
    period = period or named_period("this_quarter", TODAY)
    return compute_forecast(org, deals, period, today=TODAY, tz=UTC, quotas=quotas)


def test_the_figures_of_the_quarter_in_the_base_currency(world):
    result = forecast_for(world)
    s = result.summary
    assert result.period.start == dt.date(2026, 4, 1) and result.period.end == dt.date(2026, 6, 30)
    assert s.open_count == 4
    # 1000 + 2000 + 1000 EUR × 1.20 (today's rate) + 500
    assert s.open_value == D("4700.00")
    # 10% + 50% + 80% (stage) + 90% (the deal's own probability)
    assert s.weighted == D("100.00") + D("1000.00") + D("960.00") + D("450.00")
    # won 1000 EUR at 1.10, the rate of the day it closed (Apr 20)
    assert s.won == D("1100.00") and s.won_count == 1
    # won + open commit (the EUR deal's stage, and the deal set to commit by hand)
    assert s.commit == D("1100.00") + D("1200.00") + D("500.00")
    assert s.best_case == s.commit + D("2000.00")
    assert s.omitted_count == 1
    assert all(isinstance(v, Decimal) for v in (s.open_value, s.weighted, s.commit, s.won))


def test_undated_missing_rates_and_the_rates_used_are_reported(world):
    result = forecast_for(world)
    assert result.undated_count == 1
    assert [(m.currency, m.deals, m.amount) for m in result.missing] == [("CHF", 1, D("800.00"))]
    used = {(r.currency, r.rate, r.effective_date) for r in result.rates_used}
    assert used == {
        ("EUR", D("1.2000000000"), dt.date(2026, 5, 1)),
        ("EUR", D("1.1000000000"), dt.date(2026, 1, 1)),
    }


def test_a_new_rate_applies_from_its_effective_date(world):
    ExchangeRateFactory(
        org=world["org"], currency="EUR", rate="1.50", effective_date=dt.date(2026, 5, 14)
    )
    assert forecast_for(world).summary.open_value == D("4700.00")  # not yet in effect
    org = world["org"]
    later = compute_forecast(
        org,
        access.forecast_deals(org, None),
        named_period("this_quarter", TODAY),
        today=dt.date(2026, 5, 14),
        tz=UTC,
    )
    assert later.summary.open_value == D("5000.00")


def test_breakdown_by_month_counts_open_by_close_date_and_won_by_close_day(world):
    months = {b.key: b for b in forecast_for(world).by_month}
    assert list(months) == [dt.date(2026, 4, 1), dt.date(2026, 5, 1), dt.date(2026, 6, 1)]
    april, may, june = months.values()
    assert (april.open_value, april.won) == (D("1000.00"), D("1100.00"))
    assert (may.open_value, may.weighted, may.won) == (D("2000.00"), D("1000.00"), D("0.00"))
    assert (june.open_value, june.weighted) == (D("1700.00"), D("1410.00"))
    assert june.commit == D("1700.00")


def test_breakdown_by_stage_pipeline_rep_and_team(world):
    result = forecast_for(world)
    stages = {b.label: b for b in result.by_stage}
    assert list(stages) == ["Qualify", "Propose", "Negotiate", "Won in the period"]
    assert (stages["Qualify"].open_value, stages["Qualify"].weighted) == (D("1500.00"), D("550.00"))
    assert stages["Qualify"].detail == "New business"
    assert stages["Won in the period"].won == D("1100.00")
    owners = {b.label: b for b in result.by_owner}
    a, b = world["a"].user.display_name, world["b"].user.display_name
    assert owners[a].open_value == D("4200.00") and owners[a].detail == "East"
    assert owners[b].commit == D("1600.00") and owners[b].won == D("1100.00")
    teams = {t.label: t for t in result.by_team}
    assert teams["East"].weighted == D("2060.00")
    assert teams["West"].best_case == D("1600.00")
    assert [p.label for p in result.by_pipeline] == ["New business"]


def test_filters_narrow_the_figures(world):
    only_b = access.DealFilters(owner=world["b"].user)
    assert forecast_for(world, filters=only_b).summary.open_value == D("500.00")
    east = access.DealFilters(team=world["east"])
    assert forecast_for(world, filters=east).summary.open_value == D("4200.00")
    renewals = access.DealFilters(pipeline=world["pipelines"][1])
    result = forecast_for(world, filters=renewals, period=named_period("next_quarter", TODAY))
    assert result.summary.open_value == D("4000.00")


def test_custom_period(world):
    result = forecast_for(world, period=custom_period(dt.date(2026, 3, 1), dt.date(2026, 4, 30)))
    assert result.summary.won == D("11100.00")
    assert [b.key for b in result.by_month] == [dt.date(2026, 3, 1), dt.date(2026, 4, 1)]


def test_rep_with_own_scope_sees_only_their_deals(world):
    result = forecast_for(world, policy=Policy(world["a"]))
    assert result.summary.open_value == D("4200.00")
    assert [b.label for b in result.by_owner] == [world["a"].user.display_name]
    assert result.summary.won == D("0.00")


def test_director_sees_their_team(world):
    director = member(world["org"], "director", team=world["west"])
    result = forecast_for(world, policy=Policy(director))
    assert result.summary.open_value == D("500.00")
    assert result.summary.won == D("1100.00")


def test_board_member_sees_every_deal(world):
    result = forecast_for(world, policy=Policy(member(world["org"], "board")))
    assert result.summary.open_value == D("4700.00")


def test_quotas_attainment_per_rep_and_period(world):
    org, a, b = world["org"], world["a"].user, world["b"].user
    QuotaFactory(org=org, user=a, period="quarter", period_start=dt.date(2026, 4, 1), amount=50000)
    QuotaFactory(org=org, user=b, period="quarter", period_start=dt.date(2026, 4, 1), amount=2000)
    QuotaFactory(org=org, user=b, period="month", period_start=dt.date(2026, 5, 1), amount=1000)
    QuotaFactory(org=org, user=a, period="quarter", period_start=dt.date(2026, 1, 1), amount=8000)
    quotas = Quota.objects.for_org(org)
    period = named_period("this_quarter", TODAY)
    table = quota_attainment(
        org,
        quotas_overlapping(quotas, period.start, period.end),
        access.forecast_deals(org, None),
        tz=UTC,
    )
    rows = {(r.rep, r.period_label): r for r in table.rows}
    assert len(rows) == 3  # Q1's quota is outside the quarter
    b_q2 = rows[(b.display_name, "Q2 2026")]
    assert (b_q2.won, b_q2.attainment, b_q2.gap) == (D("1100.00"), D("55.0"), D("900.00"))
    assert rows[(b.display_name, "May 2026")].attainment == D("0.0")
    assert rows[(a.display_name, "Q2 2026")].attainment == D("0.0")
    q1 = quota_attainment(
        org,
        quotas.filter(period_start=dt.date(2026, 1, 1)),
        access.forecast_deals(org, None),
        tz=UTC,
    )
    assert q1.rows[0].won == D("10000.00")
    assert q1.rows[0].attainment == D("125.0")
    # In the rep view, the quota of exactly this period sits beside the rep's figures.
    owners = {o.label: o for o in forecast_for(world, quotas=quotas).by_owner}
    assert owners[b.display_name].quota == D("2000.00")
    assert owners[b.display_name].attainment == D("55.0")


def test_query_count_does_not_grow_with_the_deals(world):
    org = world["org"]
    s1 = world["stages"][0]
    book = RateBook.load(org)
    period = named_period("this_quarter", TODAY)
    quotas = Quota.objects.for_org(org)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            compute_forecast(
                org,
                access.forecast_deals(org, None),
                period,
                today=TODAY,
                tz=UTC,
                book=book,
                quotas=quotas,
            )
        return len(ctx.captured_queries)

    before = count()
    for n in range(40):
        DealFactory(
            org=org,
            stage=s1,
            owner=world["c"].user,
            value=D(n + 1),
            currency="EUR",
            expected_close_date=dt.date(2026, 5, 1 + n % 28),
        )
    assert count() == before


def test_won_deals_count_on_their_close_day_in_the_organizations_time_zone(org):
    import zoneinfo

    tz = zoneinfo.ZoneInfo("America/New_York")
    stage = StageFactory(org=org)
    ExchangeRateFactory(org=org, currency="EUR", rate="2", effective_date=dt.date(2026, 5, 1))
    ExchangeRateFactory(org=org, currency="EUR", rate="1", effective_date=dt.date(2026, 4, 1))
    late_april = dt.datetime(2026, 5, 1, 2, 0, tzinfo=UTC)  # Apr 30, 22:00 in New York
    for currency in ("USD", "EUR"):
        DealFactory(
            org=org,
            stage=stage,
            value=D("100"),
            currency=currency,
            status="won",
            closed_at=late_april,
        )
    result = compute_forecast(
        org,
        access.forecast_deals(org, None),
        named_period("this_quarter", TODAY),
        today=TODAY,
        tz=tz,
    )
    months = {b.key: b for b in result.by_month}
    # Both in April; the EUR one at April's rate (1), not May's (2).
    assert months[dt.date(2026, 4, 1)].won == D("200.00")
    assert months[dt.date(2026, 5, 1)].won == D("0.00")


@pytest.mark.parametrize(
    "amount, text",
    [
        ("950", "950"),
        ("12500", "12.5K"),
        ("1019500311.50", "1.02B"),
        ("495366834.03", "495M"),
        ("79626091", "79.6M"),
        ("2000000", "2M"),
    ],
)
def test_compact_amounts_for_the_figure_cards(amount, text):
    from pipeline.forecast.figures import compact_amount

    assert compact_amount(D(amount)) == text
