"""Demo pipelines (pipeline/demo.py): Acme's two pipelines and ~150 deals with a history over
six months, rates, quotas and last week's forecast snapshot; consistent with what the services
write, deterministic, and added once."""

import datetime as dt
import io
import itertools
import random
from collections import defaultdict
from decimal import Decimal

from django.core.management import call_command
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from crm.models import Organization
from crm.services import Actor
from pipeline import demo
from pipeline.forecast.periods import quarter_start
from pipeline.models import (
    Deal,
    DealReason,
    ExchangeRate,
    ForecastSnapshot,
    ForecastSnapshotLine,
    LineItem,
    Pipeline,
    Product,
    Quota,
    StageHistory,
)
from pipeline.services.deals import deal_move
from tests.factories import CompanyFactory, ContactFactory, member

ROLES = ["owner", "admin", "director", "executive", "team", "partner", "viewer"]


def _counts(org) -> dict:
    return {
        model.__name__: model.objects.for_org(org).count()
        for model in (
            Pipeline,
            Deal,
            StageHistory,
            LineItem,
            Product,
            ExchangeRate,
            Quota,
            ForecastSnapshot,
        )
    }


def _people(org, companies: int = 8) -> None:
    for key in ROLES:
        if key != "owner":
            member(org, key)
    for n in range(companies):
        company = CompanyFactory(org=org, name=f"Firm {n}")
        ContactFactory(org=org, company=company)


def test_seed_demo_gives_acme_its_pipelines_deals_and_forecast_once(db):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    acme = Organization.objects.get(slug="acme")
    globex = Organization.objects.get(slug="globex")
    first = _counts(acme), _counts(globex)

    call_command("seed_demo", stdout=out)

    assert (_counts(acme), _counts(globex)) == first
    now = timezone.now()
    pipelines = dict(Pipeline.objects.for_org(acme).values_list("name", "template"))
    assert pipelines == {"Sales pipeline": "b2b_sales", "Renewals": "post_sales"}
    deals = Deal.objects.for_org(acme)
    assert deals.count() == 150
    per_pipeline = dict(deals.values_list("pipeline__name").annotate(n=Count("id")))
    assert per_pipeline == {"Sales pipeline": 100, "Renewals": 50}
    # Across the stages of both pipelines.
    assert deals.filter(status="open").values("stage").distinct().count() >= 9
    for status, kind in (("won", DealReason.Kind.WON), ("lost", DealReason.Kind.LOST)):
        closed = deals.filter(status=status)
        assert 5 <= closed.count() <= 25
        assert not closed.filter(close_reason=None).exists()
        assert not closed.filter(closed_at=None).exists()
        assert set(closed.values_list("close_reason__kind", flat=True)) == {kind}
    # History over the last six months, up to the last few days.
    span = StageHistory.objects.for_org(acme).aggregate(
        old=Min("occurred_at"), new=Max("occurred_at")
    )
    assert span["old"] < now - dt.timedelta(days=120)
    assert span["new"] > now - dt.timedelta(days=7)
    assert deals.aggregate(old=Min("created_at"))["old"] < now - dt.timedelta(days=120)
    # Line items from the catalog, foreign currencies with their rates.
    assert LineItem.objects.for_org(acme).exclude(product=None).count() > 100
    currencies = set(deals.values_list("currency", flat=True))
    assert {"USD", "EUR", "GBP"} <= currencies
    assert acme.base_currency == "USD"
    rated = set(ExchangeRate.objects.for_org(acme).values_list("currency", flat=True))
    assert rated == {"EUR", "GBP"}
    assert ExchangeRate.objects.for_org(acme).filter(effective_date__lte=now.date()).count() >= 12
    # Quotas per rep for this quarter and the last.
    this_quarter = quarter_start(now.date())
    last_quarter = quarter_start(this_quarter - dt.timedelta(days=1))
    owners = set(deals.values_list("owner_id", flat=True))
    for start in (this_quarter, last_quarter):
        quota_owners = set(
            Quota.objects.for_org(acme).filter(period_start=start).values_list("user", flat=True)
        )
        assert owners <= quota_owners
    # Last week's snapshot, and a week of changes since.
    snapshot = ForecastSnapshot.objects.for_org(acme).get()
    assert abs(snapshot.taken_at - (now - dt.timedelta(days=7))) < dt.timedelta(hours=1)
    assert ForecastSnapshotLine.objects.filter(snapshot=snapshot).count() > 100
    assert deals.filter(created_at__gt=snapshot.taken_at).exists()
    assert deals.filter(status="won", closed_at__gt=snapshot.taken_at).exists()
    assert deals.filter(status="lost", closed_at__gt=snapshot.taken_at).exists()
    assert (
        StageHistory.objects.for_org(acme)
        .filter(occurred_at__gt=snapshot.taken_at, to_status="open", from_stage__isnull=False)
        .exists()
    )
    # Globex: its own default pipeline and a few deals, nothing of Acme's.
    assert Deal.objects.for_org(globex).count() == 12
    assert set(Deal.objects.for_org(globex).values_list("pipeline__org", flat=True)) == {globex.pk}


def test_demo_deals_hold_the_services_invariants(org, owner):
    _people(org)
    now = timezone.now()

    added = demo.seed_pipelines(org, plans=demo.ACME_PLANS, rng=random.Random(3), now=now)

    assert added == 150
    deals = Deal.objects.for_org(org)
    history = defaultdict(list)
    for row in StageHistory.objects.for_org(org).order_by("occurred_at", "id"):
        history[row.deal_id].append(row)
    for deal in deals.select_related("stage"):
        rows = history[deal.pk]
        assert rows[0].from_stage_id is None and rows[0].from_status == ""
        assert rows[0].seconds_in_from_stage is None
        assert deal.created_at == rows[0].occurred_at
        assert deal.stage_entered_at == rows[-1].occurred_at
        assert rows[-1].to_stage_id == deal.stage_id and rows[-1].to_status == deal.status
        assert all(r.occurred_at <= now for r in rows)
        assert all(r.pipeline_id == deal.pipeline_id for r in rows)
        for previous, row in itertools.pairwise(rows):
            assert row.from_stage_id == previous.to_stage_id
            assert row.from_status == previous.to_status
            elapsed = int((row.occurred_at - previous.occurred_at).total_seconds())
            assert row.seconds_in_from_stage == elapsed
        if deal.status == "open":
            assert deal.closed_at is None and deal.close_reason_id is None
        else:
            assert deal.closed_at == rows[-1].occurred_at
    # A deal with lines is worth their sum, in their currency; one without has a typed value.
    lines = LineItem.objects.for_org(org).values("deal").annotate(total=Sum("total"))
    sums = {row["deal"]: row["total"] for row in lines}
    for deal in deals:
        if deal.pk in sums:
            assert deal.value == sums[deal.pk] and not deal.value_is_manual
            currencies = set(
                LineItem.objects.for_org(org)
                .filter(deal=deal)
                .values_list("product__currency", flat=True)
            )
            assert currencies == {deal.currency}
        else:
            assert deal.value_is_manual and deal.value > Decimal(0)
    # Cards have distinct positions in every column, and the services move them as usual.
    open_deals = deals.filter(status="open")
    assert open_deals.values("position").distinct().count() == open_deals.count()
    card = open_deals.select_related("pipeline", "stage", "org").order_by("id").first()
    target = card.pipeline.stages.exclude(pk=card.stage_id).first()
    moved = deal_move(deal=card, actor=Actor.system("test"), stage=target)
    assert moved.stage_id == target.pk
    last = StageHistory.objects.for_org(org).filter(deal=card).order_by("-occurred_at").first()
    assert last.from_stage_id == card.stage_id and last.seconds_in_from_stage > 0


def test_demo_data_is_deterministic_and_added_once(org, other_org):
    now = timezone.now()
    signatures = []
    for each in (org, other_org):
        member(each, "owner")
        _people(each)
        demo.seed_pipelines(each, plans=demo.ACME_PLANS, rng=random.Random(11), now=now)
        rows = (
            Deal.objects.for_org(each)
            .order_by("created_at", "id")
            .values_list(
                "status", "stage__position", "value", "currency", "expected_close_date", "position"
            )
        )
        signatures.append(list(rows))
    assert signatures[0] == signatures[1]

    before = _counts(org)
    assert demo.seed_pipelines(org, plans=demo.ACME_PLANS, rng=random.Random(12), now=now) == 0
    assert _counts(org) == before
