"""A deal's health: each rule with its reason, on a fixed clock."""

import datetime as dt

import pytest
from django.utils import timezone

from pipeline.health import AT_RISK, HEALTHY, ROTTING, deal_health, health_by_deal
from tests.factories import DealFactory, OrganizationFactory, StageFactory, TaskFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def _deal(org, **kwargs):
    stage = StageFactory(org=org, name="Proposal", rotting_days=kwargs.pop("rotting_days", None))
    return DealFactory(
        org=org,
        stage=stage,
        stage_entered_at=kwargs.pop("entered", NOW - dt.timedelta(days=1)),
        last_activity_at=kwargs.pop("last_activity", NOW - dt.timedelta(days=1)),
        **kwargs,
    )


def test_a_fresh_deal_with_a_task_is_healthy():
    org = OrganizationFactory()
    deal = _deal(org)
    assert deal_health(deal, has_open_task=True, now=NOW).level == HEALTHY


def test_each_rule_gives_its_reason():
    org = OrganizationFactory()
    deal = _deal(
        org,
        rotting_days=10,
        entered=NOW - dt.timedelta(days=12),
        last_activity=NOW - dt.timedelta(days=20),
        expected_close_date=dt.date(2026, 6, 10),
    )
    health = deal_health(deal, has_open_task=False, now=NOW)
    assert health.level == ROTTING
    assert health.reasons == [
        "In Proposal for 12 days (rots after 10)",
        "Close date passed 5 days ago",
        "No activity in 20 days",
        "No open task",
    ]


def test_no_task_alone_is_at_risk_and_closed_deals_are_left_alone():
    org = OrganizationFactory()
    deal = _deal(org)
    assert deal_health(deal, has_open_task=False, now=NOW).level == AT_RISK
    deal.status = "won"
    deal.closed_at = NOW
    assert deal_health(deal, has_open_task=False, now=NOW).level == HEALTHY


def test_health_by_deal_reads_open_tasks_in_one_query(django_assert_num_queries):
    org = OrganizationFactory()
    deals = [_deal(org) for _ in range(5)]
    TaskFactory(org=org, deal=deals[0])
    TaskFactory(org=org, deal=deals[1], status="done", completed_at=timezone.now())
    for deal in deals:
        assert deal.stage.name  # loaded, as the board's select_related does
    with django_assert_num_queries(1):
        result = health_by_deal(org, deals, now=NOW)
    assert result[deals[0].pk].level == HEALTHY
    assert result[deals[1].pk].reasons == ["No open task"]
