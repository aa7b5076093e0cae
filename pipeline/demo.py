"""Demo pipelines for `manage.py seed_demo` (this module registers the hook; seed_demo
imports every app's `demo` module).

Acme gets two pipelines, "Sales pipeline" (the default, from the B2B template) and
"Renewals" (post-sales), a small product catalog, about 150 deals with line items across the
stages, a few won and lost with their reasons, and a stage history over the last six months;
EUR and GBP deals with dated exchange rates into Acme's base currency; quarterly quotas per rep
for this quarter and the last; and the forecast snapshot of a week ago, taken while the deals
stood as they did then, so "what changed since last week" lists deals added, moved, won,
lost, slipped, pulled in and changed in amount. Globex gets its default pipeline and a dozen
deals of its own.

Pipelines, products, reasons, rates and quotas go through the services. The deals, their
stage history, line items and timeline entries are written with bulk_create (one service
call per deal and per move would take seconds): the rows keep the services' invariants, so
a deal's value is the sum of its lines, its stage_entered_at is its last history row's time,
each history row's seconds_in_from_stage is the time since the row before, and a closed deal
has its date and reason.

Deterministic (seeded random, dates relative to the day it runs) and idempotent: an
organization that has deals keeps them; pipelines, products, rates and quotas are added only
where missing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from contacts.models import Activity, Company, Contact, Tag
from crm import demo
from crm.models import Membership
from crm.selectors import org_timezone
from crm.services import Actor

from .forecast.periods import add_months, quarter_start
from .forecast.snapshot import take_snapshot
from .models import (
    Deal,
    DealContact,
    DealReason,
    DealTag,
    ExchangeRate,
    ForecastSnapshot,
    LineItem,
    Pipeline,
    Product,
    Quota,
    Stage,
    StageHistory,
)
from .money import ZERO, cents, line_total
from .services.catalog import product_create
from .services.forecast_settings import exchange_rate_create, quota_set
from .services.pipelines import ensure_default_pipeline, pipeline_create

ACTOR = Actor.system("seed_demo")
SEED = 20260514
WEEK = dt.timedelta(days=7)
HISTORY_DAYS = 182
POSITION_STEP = 1024.0

RENEWALS = "Renewals"
RENEWALS_TEMPLATE = "post_sales"

# Products: (sku, name, unit price, currency, kind). "seat" lines sell many units.
PRODUCTS = [
    ("PLT-SEAT", "Platform licence, annual seat", "1200.00", "USD", "seat"),
    ("API-ADD", "API add-on, annual", "2400.00", "USD", "addon"),
    ("SUP-PREM", "Premium support, annual", "6000.00", "USD", "support"),
    ("SVC-ONB", "Onboarding package", "4500.00", "USD", "service"),
    ("SVC-MIG", "Data migration", "3000.00", "USD", "service"),
    ("SVC-TRN", "Training day on site", "1800.00", "USD", "training"),
    ("PLT-SEAT-EU", "Platform licence, annual seat (EUR)", "1100.00", "EUR", "seat"),
    ("SVC-ONB-EU", "Onboarding package (EUR)", "4200.00", "EUR", "service"),
    ("PLT-SEAT-UK", "Platform licence, annual seat (GBP)", "950.00", "GBP", "seat"),
    ("SVC-ONB-UK", "Onboarding package (GBP)", "3600.00", "GBP", "service"),
]
# Units of the base currency (USD) one unit is worth, from six months ago to this month.
RATE_PATHS = {
    "EUR": ["1.0712", "1.0785", "1.0840", "1.0796", "1.0868", "1.0921", "1.0883"],
    "GBP": ["1.2610", "1.2688", "1.2745", "1.2702", "1.2791", "1.2836", "1.2804"],
}
QUOTA_AMOUNTS = ["90000", "120000", "150000", "180000"]

# Who owns Acme's deals (built-in role keys), and how many of every hundred each owns.
OWNER_WEIGHTS = {
    "team": 34,
    "director": 20,
    "executive": 14,
    "admin": 12,
    "owner": 10,
    "partner": 10,
}
SOURCES = ["Website", "Referral", "Outbound", "Event", "Partner", "Inbound call"]
PRIORITIES = [("low", 15), ("normal", 60), ("high", 20), ("urgent", 5)]
WIN_NOTES = ["Signed after the pilot.", "Procurement approved this week.", ""]
LOSS_NOTES = ["They went quiet after the demo.", "Budget moved to next year.", ""]
SALES_TITLES = ["{c}: {n} seats", "{c} platform rollout", "{c}: analytics expansion", "{c} pilot"]
RENEWAL_TITLES = ["{c} renewal {y}", "{c}: support upgrade", "{c} seat expansion"]


@dataclass(frozen=True)
class PipelinePlan:
    """How many deals a pipeline gets, and how they end up."""

    deals: int
    won: int
    lost: int
    won_last_week: int
    lost_last_week: int
    new_last_week: int
    open_weights: tuple[int, ...]  # share of open deals per stage, first stage first
    renewal: bool = False


ACME_PLANS = {
    None: PipelinePlan(100, 12, 9, 2, 1, 4, (30, 24, 18, 13, 9, 6)),  # the default pipeline
    RENEWALS: PipelinePlan(50, 8, 4, 1, 1, 2, (25, 25, 20, 18, 12), renewal=True),
}
GLOBEX_PLANS = {None: PipelinePlan(12, 2, 1, 0, 0, 1, (30, 24, 18, 13, 9, 6))}
# Open deals whose amount or close date changed in the last week (after the snapshot).
AMOUNT_CHANGES, SLIPS, PULL_INS = 3, 3, 2


@dataclass
class Event:
    at: dt.datetime
    from_stage: int | None  # index into the pipeline's stages
    to_stage: int
    from_status: str
    to_status: str


@dataclass
class DealPlan:
    pipeline: Pipeline
    stages: list[Stage]
    title: str
    currency: str
    owner_id: int | None
    team_id: int | None
    contact_id: int | None
    company_id: int | None
    priority: str
    source: str
    probability: int | None
    forecast_category: str
    events: list[Event]
    close_date: dt.date | None
    lines: list[dict] = field(default_factory=list)
    manual_value: Decimal | None = None
    reason: DealReason | None = None
    note: str = ""
    tag_ids: list[int] = field(default_factory=list)
    public_id: uuid.UUID = field(default_factory=uuid.uuid4)
    position: float = 0.0
    # How it stood a week ago where that differs from now (None: the same).
    value_before: Decimal | None = None
    close_before: dt.date | None = None
    deal: Deal | None = None

    @property
    def value(self) -> Decimal:
        if self.lines:
            return sum((line["total"] for line in self.lines), ZERO)
        return self.manual_value or ZERO

    def state(self, moment: dt.datetime):
        """(stage index, status, stage entered at, closed at) at `moment`, or None when the
        deal did not exist yet."""
        past = [e for e in self.events if e.at <= moment]
        if not past:
            return None
        last = past[-1]
        closed_at = last.at if last.to_status != Deal.Status.OPEN else None
        return last.to_stage, last.to_status, last.at, closed_at


# Set-up through the services --------------------------------------------------------------


def _pipelines(org) -> dict:
    """{None: the default pipeline, "Renewals": ...} for the plans' keys."""
    default = ensure_default_pipeline(org, actor=ACTOR)
    found = {None: default}
    renewals = Pipeline.objects.for_org(org).filter(name__iexact=RENEWALS).first()
    if renewals is None:
        renewals = pipeline_create(
            org=org, actor=ACTOR, name=RENEWALS, template_key=RENEWALS_TEMPLATE
        )
    found[RENEWALS] = renewals
    return found


def _products(org) -> dict[str, list[tuple[Product, str]]]:
    """The catalog by currency: [(product, kind)]."""
    have = {p.sku: p for p in Product.objects.for_org(org).exclude(sku="")}
    out: dict[str, list[tuple[Product, str]]] = {}
    for sku, name, price, currency, kind in PRODUCTS:
        product = have.get(sku)
        if product is None:
            product = product_create(
                org=org,
                actor=ACTOR,
                data={"name": name, "sku": sku, "unit_price": price, "currency": currency},
            )
        out.setdefault(product.currency, []).append((product, kind))
    return out


def _rates(org, today: dt.date) -> None:
    have = set(ExchangeRate.objects.for_org(org).values_list("currency", "effective_date"))
    months = len(next(iter(RATE_PATHS.values())))
    for currency, path in RATE_PATHS.items():
        if currency == org.base_currency:
            continue
        for index, rate in enumerate(path):
            day = add_months(today.replace(day=1), index - (months - 1))
            if (currency, day) not in have:
                exchange_rate_create(
                    org=org,
                    actor=ACTOR,
                    data={"currency": currency, "rate": Decimal(rate), "effective_date": day},
                )


def _quotas(org, owners: list, today: dt.date) -> None:
    this_quarter = quarter_start(today)
    last_quarter = quarter_start(this_quarter - dt.timedelta(days=1))
    have = set(
        Quota.objects.for_org(org)
        .filter(period=Quota.Period.QUARTER)
        .values_list("user_id", "period_start")
    )
    for user in owners:
        amount = Decimal(random.Random(f"{SEED}-{user.email}").choice(QUOTA_AMOUNTS))
        for start in (last_quarter, this_quarter):
            if (user.pk, start) not in have:
                quota_set(
                    org=org,
                    actor=ACTOR,
                    data={
                        "user": user,
                        "period": "quarter",
                        "period_start": start,
                        "amount": amount,
                    },
                )


# Planning ---------------------------------------------------------------------------------


def _weighted(rng: random.Random, pairs):
    items, weights = zip(*pairs, strict=True)
    return rng.choices(items, weights=weights)[0]


def _path(rng: random.Random, start: int, final: int, last: int) -> list[int]:
    """The stages a deal passes through from `start` to `final` (sometimes skipping one, now
    and then stepping back once), `last` being the pipeline's last stage index."""
    path = [start]
    while path[-1] < final:
        step = 2 if rng.random() < 0.15 and path[-1] + 2 <= final else 1
        path.append(path[-1] + step)
    if final < last and rng.random() < 0.12:
        path += [final + 1, final]
    return path


def _times(rng: random.Random, start: dt.datetime, end: dt.datetime, count: int) -> list:
    """`count` moments after `start`, in order, the last one `end`: the gaps between them are
    random shares of the span, none tiny."""
    weights = [rng.uniform(0.3, 1.0) for _ in range(count)]
    total, span, out, elapsed = sum(weights), end - start, [], 0.0
    for weight in weights:
        elapsed += weight
        out.append(start + span * (elapsed / total))
    if out:
        out[-1] = end
    return out


def _events(rng, *, outcome: str, stages: list, final: int, now, created=None, closed=None):
    """The history of one deal: created, its moves, and its close (won or lost)."""
    last = len(stages) - 1
    start = 0 if rng.random() < 0.85 or final == 0 else 1
    path = _path(rng, start, final, last)
    if created is None:
        oldest = 30 if outcome != "open" else 2
        created = now - dt.timedelta(days=rng.uniform(oldest, HISTORY_DAYS), hours=rng.random())
    if outcome == "open":
        # Most open deals moved lately; some sit where they are (and rot).
        recent = now - dt.timedelta(days=rng.uniform(0.2, 24))
        end = recent if rng.random() < 0.7 and recent > created else now - dt.timedelta(hours=2)
    elif closed is not None:
        end = closed
    else:
        earliest = created + dt.timedelta(days=8)
        end = earliest + (now - WEEK - earliest) * rng.random()
    moves = _times(rng, created, end, len(path) - 1 + (outcome != "open"))
    events = [Event(created, None, path[0], "", Deal.Status.OPEN)]
    for index, (before, after) in enumerate(itertools.pairwise(path)):
        events.append(Event(moves[index], before, after, Deal.Status.OPEN, Deal.Status.OPEN))
    if outcome != "open":
        events.append(Event(moves[-1], final, final, Deal.Status.OPEN, outcome))
    return events


def _lines(rng: random.Random, catalog: list[tuple[Product, str]], renewal: bool) -> list[dict]:
    kinds = {kind: product for product, kind in catalog}
    if renewal:
        wanted = ["seat"] + (["support"] if "support" in kinds and rng.random() < 0.6 else [])
    else:
        extras = [k for k in kinds if k != "seat"]
        wanted = ["seat", *rng.sample(extras, k=min(len(extras), rng.choice([0, 1, 1, 2])))]
    lines = []
    for position, kind in enumerate(k for k in wanted if k in kinds):
        product = kinds[kind]
        if kind == "seat":
            quantity = Decimal(rng.choice([5, 10, 15, 20, 25, 40, 60, 80]))
        elif kind == "training":
            quantity = Decimal(rng.choice([1, 2, 3]))
        else:
            quantity = Decimal(1)
        discount_kind, discount = "none", ZERO
        roll = rng.random()
        if roll < 0.25:
            discount_kind, discount = "percent", Decimal(rng.choice([5, 10, 15]))
        elif roll < 0.32 and kind != "seat":
            discount_kind, discount = "fixed", Decimal(rng.choice([250, 500]))
        quantity = quantity.quantize(Decimal("0.001"))
        lines.append(
            {
                "product": product,
                "name": product.name,
                "quantity": quantity,
                "unit_price": product.unit_price,
                "discount_kind": discount_kind,
                "discount": discount,
                "total": line_total(quantity, product.unit_price, discount_kind, discount),
                "position": position,
            }
        )
    return lines


@dataclass
class Pools:
    owners: list  # [(user, team_id, weight)]
    companies: list  # [(company_id, name)]
    contacts_by_company: dict
    tag_ids: list
    won_reasons: list
    lost_reasons: list
    catalog: dict


def _plan_deals(rng, org, pipeline, plan: PipelinePlan, pools: Pools, now, today) -> list:
    stages = list(Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position", "id"))
    if not stages:
        return []
    last = len(stages) - 1
    outcomes = (
        ["won_recent"] * plan.won_last_week
        + ["won"] * (plan.won - plan.won_last_week)
        + ["lost_recent"] * plan.lost_last_week
        + ["lost"] * (plan.lost - plan.lost_last_week)
        + ["new"] * plan.new_last_week
    )
    outcomes += ["open"] * (plan.deals - len(outcomes))
    rng.shuffle(outcomes)
    base = org.base_currency
    foreign = [c for c in ("EUR", "GBP") if c != base and c in pools.catalog]
    plans = []
    for outcome in outcomes:
        status = outcome.removesuffix("_recent")
        if status == "new":
            status = "open"
        if status == "won":
            final = last if rng.random() < 0.7 else max(last - 1, 0)
        else:  # open, and lost (deals are lost early more often than late, as they sit)
            final = _weighted(rng, zip(range(last + 1), plan.open_weights, strict=False))
        created = closed = None
        if outcome == "new":
            created = now - dt.timedelta(days=rng.uniform(0.5, 6))
            final = min(final, 1)
        if outcome.endswith("_recent"):
            closed = now - dt.timedelta(days=rng.uniform(0.5, 6))
        events = _events(
            rng, outcome=status, stages=stages, final=final, now=now, created=created, closed=closed
        )
        company_id, company_name = rng.choice(pools.companies) if pools.companies else (None, "")
        contacts = pools.contacts_by_company.get(company_id) or [None]
        user, team_id = _weighted(rng, [((u, t), w) for u, t, w in pools.owners])
        roll = rng.random()
        currency = base
        if foreign and roll < 0.3:
            currency = foreign[0] if roll < 0.18 or len(foreign) == 1 else foreign[1]
        if currency not in pools.catalog:
            currency = base
        templates = RENEWAL_TITLES if plan.renewal else SALES_TITLES
        title = rng.choice(templates).format(
            c=company_name or "Walk-in", n=rng.choice([10, 25, 40, 60]), y=today.year
        )
        deal = DealPlan(
            pipeline=pipeline,
            stages=stages,
            title=title,
            currency=currency,
            owner_id=user.pk,
            team_id=team_id,
            contact_id=rng.choice(contacts),
            company_id=company_id,
            priority=_weighted(rng, PRIORITIES),
            source=rng.choice(SOURCES),
            probability=rng.choice([35, 55, 75]) if rng.random() < 0.08 else None,
            forecast_category=(
                rng.choice(["commit", "best_case", "omitted"])
                if status == "open" and rng.random() < 0.07
                else ""
            ),
            events=events,
            close_date=None,
        )
        if rng.random() < 0.78 and currency in pools.catalog:
            deal.lines = _lines(rng, pools.catalog[currency], plan.renewal)
        else:
            deal.manual_value = Decimal(rng.randrange(20, 900) * 100).quantize(Decimal("0.01"))
        if status == "open":
            deal.close_date = today + dt.timedelta(days=rng.randint(-15, 110))
        else:
            closed_day = events[-1].at.astimezone(org_timezone(org)).date()
            deal.close_date = closed_day + dt.timedelta(days=rng.randint(-3, 3))
            reasons = pools.won_reasons if status == "won" else pools.lost_reasons
            deal.reason = rng.choice(reasons) if reasons else None
            deal.note = rng.choice(WIN_NOTES if status == "won" else LOSS_NOTES)
            if deal.reason is None:  # no reason to give: it stays open instead
                deal.events = [e for e in events if e.to_status == Deal.Status.OPEN]
                deal.close_date = today + dt.timedelta(days=rng.randint(5, 90))
        if pools.tag_ids and rng.random() < 0.3:
            deal.tag_ids = rng.sample(pools.tag_ids, k=min(len(pools.tag_ids), rng.choice([1, 2])))
        plans.append(deal)
    return plans


def _last_week_changes(rng, plans: list, now, today) -> None:
    """Open deals whose amount or expected close date changed since the snapshot."""
    week_ago = now - WEEK
    steady = [
        p for p in plans if p.events[-1].to_status == Deal.Status.OPEN and p.events[0].at < week_ago
    ]
    rng.shuffle(steady)
    manual = [p for p in steady if not p.lines][:AMOUNT_CHANGES]
    for plan in manual:
        plan.value_before = cents(plan.value * Decimal(rng.choice(["0.6", "0.75", "0.85"])))
    rest = [p for p in steady if p not in manual]
    for plan in rest[:SLIPS]:
        plan.close_before = today + dt.timedelta(days=rng.randint(2, 12))
        plan.close_date = plan.close_before + dt.timedelta(days=rng.randint(40, 70))
    for plan in rest[SLIPS : SLIPS + PULL_INS]:
        plan.close_before = today + dt.timedelta(days=rng.randint(70, 100))
        plan.close_date = today + dt.timedelta(days=rng.randint(4, 15))


# Writing ----------------------------------------------------------------------------------


def _apply_state(deal: Deal, plan: DealPlan, state, *, before: bool) -> None:
    stage_index, status, entered_at, closed_at = state
    deal.stage = plan.stages[stage_index]
    deal.status = status
    deal.stage_entered_at = entered_at
    deal.closed_at = closed_at
    deal.last_activity_at = entered_at
    closed = status != Deal.Status.OPEN
    deal.close_reason = plan.reason if closed else None
    deal.close_note = plan.note if closed else ""
    value = plan.value_before if before and plan.value_before is not None else plan.value
    deal.value = value
    close = plan.close_before if before and plan.close_before is not None else plan.close_date
    deal.expected_close_date = close


def _new_deal(org, plan: DealPlan) -> Deal:
    return Deal(
        org=org,
        public_id=plan.public_id,
        title=plan.title[:200],
        currency=plan.currency,
        value_is_manual=not plan.lines,
        pipeline=plan.pipeline,
        probability=plan.probability,
        priority=plan.priority,
        owner_id=plan.owner_id,
        team_id=plan.team_id,
        contact_id=plan.contact_id,
        company_id=plan.company_id,
        source=plan.source,
        forecast_category=plan.forecast_category,
        created_by_id=plan.owner_id,
        position=plan.position,
    )


def _positions(plans: list) -> None:
    """Card positions, POSITION_STEP apart across all the deals: the latest to arrive in its
    stage first. A column's cards keep that order whichever column a deal is in, so the
    positions hold a week ago and today alike."""
    ranked = sorted(
        enumerate(plans), key=lambda pair: (-pair[1].events[-1].at.timestamp(), pair[0])
    )
    for index, (_n, plan) in enumerate(ranked):
        plan.position = (index + 1) * POSITION_STEP


def _history_rows(org, plans: list, labels: dict, *, after=None, until=None) -> list:
    rows = []
    for plan in plans:
        previous = None
        for event in plan.events:
            in_window = (after is None or event.at > after) and (until is None or event.at <= until)
            if in_window:
                seconds = None
                if previous is not None and event.from_stage is not None:
                    seconds = int((event.at - previous).total_seconds())
                rows.append(
                    StageHistory(
                        org=org,
                        deal=plan.deal,
                        pipeline=plan.pipeline,
                        from_stage=None
                        if event.from_stage is None
                        else plan.stages[event.from_stage],
                        to_stage=plan.stages[event.to_stage],
                        from_status=event.from_status,
                        to_status=event.to_status,
                        seconds_in_from_stage=seconds,
                        actor_id=plan.owner_id,
                        actor_label=labels.get(plan.owner_id, "")[:200],
                        occurred_at=event.at,
                    )
                )
            previous = event.at
    return rows


def _timeline_rows(org, plans: list) -> list:
    rows = []
    for plan in plans:
        deal = plan.deal
        base = {"deal": str(deal.public_id), "deal_title": deal.title}
        for event in plan.events:
            to_stage = plan.stages[event.to_stage].name
            if event.from_stage is None:
                kind, subject, data = Activity.Type.DEAL_CREATED, f"Deal created: {deal.title}", {}
            elif event.to_status == Deal.Status.WON:
                reason = plan.reason.name if plan.reason else ""
                kind, subject = Activity.Type.DEAL_WON, f"Deal won: {deal.title} ({reason})"
                data = {"reason": reason}
            elif event.to_status == Deal.Status.LOST:
                reason = plan.reason.name if plan.reason else ""
                kind, subject = Activity.Type.DEAL_LOST, f"Deal lost: {deal.title} ({reason})"
                data = {"reason": reason}
            else:
                from_stage = plan.stages[event.from_stage].name
                kind = Activity.Type.DEAL_STAGE_CHANGED
                subject = f"{deal.title}: moved from {from_stage} to {to_stage}"
                data = {"from": from_stage, "to": to_stage}
            rows.append(
                Activity(
                    org=org,
                    type=kind,
                    deal=deal,
                    contact_id=deal.contact_id,
                    company_id=deal.company_id,
                    actor_id=plan.owner_id,
                    subject=subject[:300],
                    data={**base, **data},
                    occurred_at=event.at,
                )
            )
    return rows


def _write_deals(org, plans: list, moment: dt.datetime, *, before: bool) -> list:
    """Insert the deals that exist at `moment` and are not written yet, as they stood then."""
    fresh = []
    for plan in plans:
        if plan.deal is not None:
            continue
        state = plan.state(moment)
        if state is None:
            continue
        plan.deal = _new_deal(org, plan)
        _apply_state(plan.deal, plan, state, before=before)
        fresh.append(plan)
    Deal.objects.for_org(org).bulk_create([p.deal for p in fresh])
    return fresh


STATE_FIELDS = [
    "stage",
    "status",
    "stage_entered_at",
    "closed_at",
    "last_activity_at",
    "close_reason",
    "close_note",
    "value",
    "expected_close_date",
]


def _state_of(deal: Deal) -> tuple:
    return tuple(getattr(deal, Deal._meta.get_field(name).attname) for name in STATE_FIELDS)


def _write_plans(org, plans: list, now: dt.datetime, labels: dict) -> None:
    week_ago = now - WEEK
    _positions(plans)
    # 1. The deals as they stood a week ago, with their history until then; the snapshot.
    _write_deals(org, plans, week_ago, before=True)
    StageHistory.objects.for_org(org).bulk_create(_history_rows(org, plans, labels, until=week_ago))
    if not ForecastSnapshot.objects.for_org(org).exists():
        snapshot = take_snapshot(org, now=week_ago)
        ForecastSnapshot.objects.for_org(org).filter(pk=snapshot.pk).update(created_at=week_ago)
    # 2. The week since: deals added, moved, won, lost, changed in amount or close date.
    changed = []
    for plan in plans:
        if plan.deal is not None:
            before = _state_of(plan.deal)
            _apply_state(plan.deal, plan, plan.state(now), before=False)
            if _state_of(plan.deal) != before:
                changed.append(plan.deal)
    _write_deals(org, plans, now, before=False)
    for deal in changed:  # a few dozen: one plain UPDATE each beats bulk_update's CASEs
        values = {name: getattr(deal, name) for name in STATE_FIELDS}
        Deal.objects.for_org(org).filter(pk=deal.pk).update(**values)
    StageHistory.objects.for_org(org).bulk_create(_history_rows(org, plans, labels, after=week_ago))
    written = [p for p in plans if p.deal is not None]
    LineItem.objects.for_org(org).bulk_create(
        [LineItem(org=org, deal=p.deal, **line) for p in written for line in p.lines]
    )
    DealContact.objects.for_org(org).bulk_create(
        [
            DealContact(org=org, deal=p.deal, contact_id=p.contact_id, role="decision_maker")
            for p in written
            if p.contact_id
        ]
    )
    DealTag.objects.bulk_create(
        [DealTag(org_id=org.pk, deal=p.deal, tag_id=t) for p in written for t in p.tag_ids]
    )
    Activity.objects.for_org(org).bulk_create(_timeline_rows(org, written))
    # auto_now_add stamped the rows with today; date them when they happened.
    ids = [p.deal.pk for p in written]
    first_move = (
        StageHistory.objects.for_org(org)
        .filter(deal=OuterRef("pk"))
        .order_by("occurred_at", "id")
        .values("occurred_at")[:1]
    )
    Deal.objects.for_org(org).filter(pk__in=ids).update(created_at=Subquery(first_move))
    StageHistory.objects.for_org(org).filter(deal_id__in=ids).update(created_at=F("occurred_at"))
    Activity.objects.for_org(org).filter(deal_id__in=ids).update(created_at=F("occurred_at"))


def _pools(org, catalog: dict, owner_keys: dict) -> Pools:
    memberships = (
        Membership.objects.for_org(org)
        .active()
        .filter(role__key__in=list(owner_keys))
        .select_related("user", "role")
        .order_by("user_id")
    )
    owners = [(m.user, m.team_id, owner_keys[m.role.key]) for m in memberships]
    companies = list(Company.objects.for_org(org).order_by("id").values_list("id", "name"))
    contacts_by_company: dict = {}
    for contact_id, company_id in (
        Contact.objects.for_org(org)
        .filter(company__isnull=False)
        .order_by("id")
        .values_list("id", "company_id")
    ):
        contacts_by_company.setdefault(company_id, []).append(contact_id)
    reasons = DealReason.objects.for_org(org).filter(is_active=True).order_by("position", "id")
    return Pools(
        owners=owners,
        companies=companies,
        contacts_by_company=contacts_by_company,
        tag_ids=list(Tag.objects.for_org(org).order_by("id").values_list("id", flat=True)),
        won_reasons=[r for r in reasons if r.kind == DealReason.Kind.WON],
        lost_reasons=[r for r in reasons if r.kind == DealReason.Kind.LOST],
        catalog=catalog,
    )


def seed_pipelines(org, *, plans: dict, rng: random.Random, now=None, full: bool = True) -> int:
    """The org's demo pipelines and deals (see the module docstring). `full` adds the catalog,
    rates and quotas. Returns how many deals it added (0 when the org had deals already)."""
    now = now or timezone.now()
    today = now.astimezone(org_timezone(org)).date()
    pipelines = _pipelines(org) if RENEWALS in plans else {None: ensure_default_pipeline(org)}
    catalog = _products(org) if full else {}
    if full:
        _rates(org, today)
    pools = _pools(org, catalog, OWNER_WEIGHTS)
    if full:
        _quotas(org, sorted({u for u, _t, _w in pools.owners}, key=lambda u: u.pk), today)
    if not pools.owners or Deal.objects.for_org(org).exists():
        return 0
    deal_plans = []
    for key, plan in plans.items():
        deal_plans += _plan_deals(rng, org, pipelines[key], plan, pools, now, today)
    _last_week_changes(rng, deal_plans, now, today)
    labels = {user.pk: user.email for user, _t, _w in pools.owners}
    _write_plans(org, deal_plans, now, labels)
    return len(deal_plans)


@demo.register
def seed_pipeline_demo(command, orgs, options) -> None:
    """Acme's two pipelines with about 150 deals and the forecast around them; Globex's
    default pipeline with a dozen deals."""
    rng = random.Random(SEED)
    acme, globex = orgs[0], orgs[1]
    with transaction.atomic():
        added = seed_pipelines(acme, plans=ACME_PLANS, rng=rng)
        added_globex = seed_pipelines(globex, plans=GLOBEX_PLANS, rng=rng, full=False)
    if added or added_globex:
        command.stdout.write(
            f"Acme: {added} deals in two pipelines, with history, rates, quotas and a forecast "
            f"snapshot; Globex: {added_globex} deals"
        )


# The demo orders build on the deals above, so their hook registers after this module's.
from . import demo_orders  # noqa: E402, F401
from .demo_objects import seed_object_demo  # noqa: E402, F401
