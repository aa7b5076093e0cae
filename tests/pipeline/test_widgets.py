"""The dashboard's deal figures: open deals and this month's wins, in the member's scope, with
the month starting in the organization's time zone."""

import datetime as dt
import zoneinfo

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from tests.factories import DealFactory, member

pytestmark = pytest.mark.django_db


def _figures(client_as, who) -> dict:
    widgets = client_as(who).get(reverse("crm:dashboard")).context["widgets"]
    return {w["label"]: w["value"] for w in widgets}


def test_figures_follow_record_scope_and_the_org_month(client_as, org):
    cache.clear()
    org.timezone = "Pacific/Auckland"
    org.save(update_fields=["timezone"])
    admin, rep = member(org, "admin"), member(org, "team")
    tz = zoneinfo.ZoneInfo("Pacific/Auckland")
    local_now = timezone.now().astimezone(tz)
    month_start = dt.datetime.combine(local_now.date().replace(day=1), dt.time.min, tzinfo=tz)
    DealFactory(org=org, owner=rep.user)
    DealFactory(org=org, owner=admin.user)
    DealFactory(org=org, owner=admin.user, is_archived=True)
    DealFactory(
        org=org, owner=rep.user, status="won", closed_at=month_start + dt.timedelta(minutes=1)
    )
    # One minute before the month began where the organization is (still "this month" in UTC
    # for most of the year's days): not counted.
    DealFactory(
        org=org, owner=rep.user, status="won", closed_at=month_start - dt.timedelta(minutes=1)
    )

    assert _figures(client_as, admin)["Open deals"] == "2"
    assert _figures(client_as, admin)["Deals won this month"] == "1"
    assert _figures(client_as, rep)["Open deals"] == "1"
    assert _figures(client_as, rep)["Deals won this month"] == "1"


def test_members_without_the_pipeline_see_no_deal_figures(client_as, org):
    support = member(org, "support")
    assert "Open deals" not in _figures(client_as, support)
