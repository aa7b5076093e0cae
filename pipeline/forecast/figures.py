"""The forecast's figures for a period, in the organization's base currency.

- Open pipeline: the value of open deals expected to close in the period.
- Weighted pipeline: the same deals, each at its probability (the deal's own when set, else
  its stage's).
- Commit: deals won in the period plus open deals in the commit category.
- Best case: commit plus open deals in the best case category.
- Closed won: deals won in the period (the day they closed, in the organization's time
  zone).

A deal's forecast category is its own when set by hand, else its stage's; a won deal is
"closed" and a lost one "omitted". Omitted open deals count in none of the figures; an open
deal whose category is "closed" counts as commit. Archived deals never count, nor do deals
without an expected close date (the page says how many there are).

Speed: the figures and every breakdown come from two GROUP BY queries (open deals by
currency, category, month, stage, owner and pipeline; won deals by currency, day, stage,
owner and pipeline), whose row count depends on those dimensions, never on the number of
deals. Amounts are converted in Python with Decimal from those sums: open deals at the rate
in effect on `today`, won deals at the rate of the day they closed.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Case, CharField, Count, DateField, F, Q, Sum, Value, When
from django.db.models.functions import TruncDate, TruncMonth

from crm.models import Membership, User
from crm.selectors import start_of_day

from ..models import Deal, ForecastCategory, Quota, Stage
from ..money import ZERO, cents
from .periods import (
    Period,
    add_months,
    month_label,
    month_start,
    quota_period_end,
    quota_period_label,
)
from .rates import Converter, MissingRate, RateBook, UsedRate

HUNDRED = Decimal(100)
COMMIT_CATEGORIES = frozenset({ForecastCategory.COMMIT, ForecastCategory.CLOSED})
UNASSIGNED = "Unassigned"
NO_TEAM = "No team"


def effective_category_expression(prefix: str = ""):
    """A deal's forecast category: won is "closed", lost "omitted"; an open deal's own
    category when set, else its stage's."""
    return Case(
        When(Q(**{f"{prefix}status": Deal.Status.WON}), then=_text(ForecastCategory.CLOSED)),
        When(Q(**{f"{prefix}status": Deal.Status.LOST}), then=_text(ForecastCategory.OMITTED)),
        When(Q(**{f"{prefix}forecast_category": ""}), then=F(f"{prefix}stage__forecast_category")),
        default=F(f"{prefix}forecast_category"),
        output_field=CharField(),
    )


def _text(value: str):
    return Value(value, output_field=CharField())


@dataclass
class Bucket:
    """The figures of one slice of the forecast (the whole, a month, a stage, a rep...)."""

    key: object = None
    label: str = ""
    detail: str = ""
    open_count: int = 0
    open_value: Decimal = ZERO
    weighted: Decimal = ZERO
    commit_open: Decimal = ZERO
    best_case_open: Decimal = ZERO
    won_count: int = 0
    won: Decimal = ZERO
    omitted_count: int = 0
    quota: Decimal | None = None

    def add_open(self, category: str, value: Decimal, weighted: Decimal, count: int) -> None:
        if category == ForecastCategory.OMITTED:
            self.omitted_count += count
            return
        self.open_count += count
        self.open_value += value
        self.weighted += weighted
        if category in COMMIT_CATEGORIES:
            self.commit_open += value
        elif category == ForecastCategory.BEST_CASE:
            self.best_case_open += value

    def add_won(self, value: Decimal, count: int) -> None:
        self.won_count += count
        self.won += value

    def absorb(self, other: Bucket) -> None:
        for name in ("open_count", "open_value", "weighted", "commit_open", "best_case_open"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("won_count", "won", "omitted_count"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.quota is not None:
            self.quota = (self.quota or ZERO) + other.quota

    def finish(self) -> Bucket:
        """Round every amount to cents (sums are kept exact until here)."""
        for name in ("open_value", "weighted", "commit_open", "best_case_open", "won"):
            setattr(self, name, cents(getattr(self, name)))
        if self.quota is not None:
            self.quota = cents(self.quota)
        return self

    @property
    def commit(self) -> Decimal:
        return self.won + self.commit_open

    @property
    def best_case(self) -> Decimal:
        return self.commit + self.best_case_open

    @property
    def is_empty(self) -> bool:
        return not (self.open_count or self.won_count)

    @property
    def attainment(self) -> Decimal | None:
        """Won as a percentage of the quota (None without a quota, or a zero one)."""
        if not self.quota:
            return None
        return (self.won * HUNDRED / self.quota).quantize(Decimal("0.1"))


def compact_amount(value: Decimal) -> str:
    """A large amount in a few characters for a figure card: 1.41B, 12.3M, 48K, 950."""
    for limit, unit, suffix in ((10**9, 10**9, "B"), (10**6, 10**6, "M"), (10**4, 10**3, "K")):
        if abs(value) >= limit:
            scaled = value / unit
            digits = 2 if abs(scaled) < 10 else 1 if abs(scaled) < 100 else 0
            text = f"{scaled:,.{digits}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return text + suffix
    return f"{value:,.0f}"


@dataclass
class Forecast:
    period: Period
    base_currency: str
    today: dt.date
    summary: Bucket
    by_month: list[Bucket]
    by_stage: list[Bucket]
    by_owner: list[Bucket]
    by_team: list[Bucket]
    by_pipeline: list[Bucket]
    undated_count: int
    rates_used: list[UsedRate] = field(default_factory=list)
    missing: list[MissingRate] = field(default_factory=list)


def _open_rows(deals, period: Period):
    """Open deals expected in the period, summed by currency, own category, month, stage,
    owner and pipeline. No join: the stage's probability and category are applied in
    Python, so the amount of deals without a probability of their own is summed apart
    (`at_stage`) from the value × probability of the others (`own_x100`)."""
    return (
        deals.filter(
            status=Deal.Status.OPEN,
            expected_close_date__gte=period.start,
            expected_close_date__lte=period.end,
        )
        .annotate(fc_month=TruncMonth("expected_close_date"))
        .order_by()
        .values("currency", "forecast_category", "fc_month", "stage_id", "owner_id")
        .annotate(
            n=Count("id"),
            amount=Sum("value"),
            at_stage=Sum("value", filter=Q(probability__isnull=True), default=ZERO),
            own_x100=Sum(F("value") * F("probability"), default=ZERO),
        )
    )


def won_between(deals, start: dt.date, end: dt.date, tz: dt.tzinfo):
    """Won deals whose close day (in `tz`) lies in [start, end]."""
    return deals.filter(
        status=Deal.Status.WON,
        closed_at__gte=start_of_day(start, tz),
        closed_at__lt=start_of_day(end + dt.timedelta(days=1), tz),
    )


def _won_rows(deals, period: Period, tz: dt.tzinfo, base_currency: str):
    """Won deals of the period by currency, close day, stage and owner. A deal in the base
    currency needs no day's rate: its month is enough, which keeps the rows few."""
    close_day = Case(
        When(
            currency=base_currency,
            then=TruncDate(TruncMonth("closed_at", tzinfo=tz), tzinfo=tz),
        ),
        default=TruncDate("closed_at", tzinfo=tz),
        output_field=DateField(),
    )
    return (
        won_between(deals, period.start, period.end, tz)
        .annotate(fc_day=close_day)
        .order_by()
        .values("currency", "fc_day", "stage_id", "owner_id")
        .annotate(n=Count("id"), amount=Sum("value"))
    )


class _Buckets(dict):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        bucket = self[key] = self.make(key)
        return bucket


def owner_labels(org, user_ids) -> dict:
    """user id -> (name, team id, team name), for the owners of the figures."""
    ids = {uid for uid in user_ids if uid is not None}
    if not ids:
        return {}
    labels = {}
    memberships = (
        Membership.objects.for_org(org).filter(user_id__in=ids).select_related("user", "team")
    )
    for m in memberships:
        team = m.team
        labels[m.user_id] = (
            m.user.display_name,
            team.pk if team else None,
            team.name if team else NO_TEAM,
        )
    for user in User.objects.filter(pk__in=ids - set(labels)):
        labels[user.pk] = (user.display_name, None, NO_TEAM)
    return labels


def compute_forecast(
    org,
    deals,
    period: Period,
    *,
    today: dt.date,
    tz: dt.tzinfo,
    book: RateBook | None = None,
    quotas=None,
) -> Forecast:
    """The figures for `period` over `deals` (already limited to the organization, its
    unarchived deals, the member's scope and the page's filters). `quotas` (a Quota
    queryset) adds each rep's quota for exactly this period to the rep view."""
    book = book or RateBook.load(org)
    converter = Converter(book)
    summary = Bucket(label="Total")
    months = _Buckets(lambda key: Bucket(key=key, label=month_label(key)))
    stages = _Buckets(lambda key: Bucket(key=key))
    owners = _Buckets(lambda key: Bucket(key=key))
    pipelines = _Buckets(lambda key: Bucket(key=key))
    for month in period.months():
        months[month]  # every month of the period shows, even an empty one
    stage_list = list(
        Stage.objects.for_org(org)
        .select_related("pipeline")
        .order_by("pipeline__position", "pipeline_id", "position", "id")
    )
    stage_rules = {s.pk: (s.probability, s.forecast_category, s.pipeline_id) for s in stage_list}

    for row in _open_rows(deals, period):
        rate = converter.rate(row["currency"], today, deals=row["n"], amount=row["amount"])
        if rate is None:
            continue
        probability, category, pipeline_id = stage_rules.get(
            row["stage_id"], (0, ForecastCategory.PIPELINE, None)
        )
        value = row["amount"] * rate
        weighted = (row["at_stage"] * probability + row["own_x100"]) * rate / HUNDRED
        parts = (row["forecast_category"] or category, value, weighted, row["n"])
        for bucket in (
            summary,
            months[row["fc_month"]],
            stages[row["stage_id"]],
            owners[row["owner_id"]],
            pipelines[pipeline_id],
        ):
            bucket.add_open(*parts)

    for row in _won_rows(deals, period, tz, book.base_currency):
        value = converter.convert(row["amount"], row["currency"], row["fc_day"], deals=row["n"])
        if value is None:
            continue
        pipeline_id = stage_rules.get(row["stage_id"], (0, "", None))[2]
        for bucket in (
            summary,
            months[month_start(row["fc_day"])],
            owners[row["owner_id"]],
            pipelines[pipeline_id],
        ):
            bucket.add_won(value, row["n"])
        stages["won"].add_won(value, row["n"])

    undated = deals.filter(status=Deal.Status.OPEN, expected_close_date__isnull=True).count()
    by_stage = _label_stages(stage_list, stages)
    owner_info = owner_labels(org, owners.keys())
    if quotas is not None:
        _attach_quotas(org, owners, quotas, period)
    by_owner, by_team = _label_owners(owners, owner_info)
    by_pipeline = _label_pipelines(org, pipelines)
    return Forecast(
        period=period,
        base_currency=book.base_currency,
        today=today,
        summary=summary.finish(),
        by_month=[months[key].finish() for key in sorted(months)],
        by_stage=by_stage,
        by_owner=by_owner,
        by_team=by_team,
        by_pipeline=by_pipeline,
        undated_count=undated,
        rates_used=converter.rates_used(),
        missing=converter.missing(),
    )


def _label_stages(known: list[Stage], stages: dict) -> list[Bucket]:
    won = stages.pop("won", None)
    rows = []
    several = len({stage.pipeline_id for stage in known}) > 1
    for stage in known:
        bucket = stages.pop(stage.pk, None)
        if bucket is None:
            continue
        bucket.label = stage.name
        bucket.detail = stage.pipeline.name if several else ""
        bucket.key = stage.pk
        rows.append(bucket.finish())
    for key, bucket in stages.items():  # a stage deleted since: still counted
        bucket.label = f"Stage #{key}"
        rows.append(bucket.finish())
    if won is not None:
        won.label = "Won in the period"
        won.key = "won"
        rows.append(won.finish())
    return rows


def _label_owners(owners: dict, info: dict) -> tuple[list[Bucket], list[Bucket]]:
    teams: dict = {}
    rows = []
    for user_id, bucket in owners.items():
        name, team_id, team_name = info.get(user_id, (UNASSIGNED, None, NO_TEAM))
        bucket.label = name if user_id is not None else UNASSIGNED
        bucket.detail = team_name if user_id is not None else ""
        team_key = team_id if user_id is not None else "unassigned"
        team = teams.get(team_key)
        if team is None:
            label = team_name if user_id is not None else UNASSIGNED
            team = teams[team_key] = Bucket(key=team_key, label=label)
        team.absorb(bucket)
        rows.append(bucket.finish())
    rows.sort(key=lambda b: (b.key is None, b.label.lower()))
    team_rows = [t.finish() for t in teams.values()]
    team_rows.sort(key=lambda b: (not isinstance(b.key, int), b.label.lower()))
    return rows, team_rows


def _label_pipelines(org, pipelines: dict) -> list[Bucket]:
    from ..models import Pipeline

    rows = []
    for pipeline in Pipeline.objects.for_org(org).order_by("position", "id"):
        bucket = pipelines.pop(pipeline.pk, None)
        if bucket is not None:
            bucket.label = pipeline.name
            rows.append(bucket.finish())
    return rows


def _attach_quotas(org, owners: dict, quotas, period: Period) -> None:
    """Each rep's quota for exactly this period (a quarter's or a month's)."""
    kind = _period_kind(period)
    if kind is None:
        return
    for user_id, amount in quotas.filter(period=kind, period_start=period.start).values_list(
        "user_id", "amount"
    ):
        owners[user_id].quota = amount


def _period_kind(period: Period) -> str | None:
    if period.start.day != 1:
        return None
    if quota_period_end("month", period.start) == period.end:
        return Quota.Period.MONTH
    if period.start.month % 3 == 1 and quota_period_end("quarter", period.start) == period.end:
        return Quota.Period.QUARTER
    return None


# Quotas and attainment ---------------------------------------------------------------------


@dataclass
class QuotaRow:
    quota: Quota
    rep: str
    team: str
    period_label: str
    period_end: dt.date
    amount: Decimal
    won: Decimal = ZERO
    won_count: int = 0

    @property
    def attainment(self) -> Decimal | None:
        if not self.amount:
            return None
        return (self.won * HUNDRED / self.amount).quantize(Decimal("0.1"))

    @property
    def gap(self) -> Decimal:
        return max(self.amount - self.won, ZERO)

    @property
    def bar_percent(self) -> int:
        value = self.attainment
        return 0 if value is None else int(min(value, HUNDRED))


@dataclass
class QuotaTable:
    rows: list[QuotaRow]
    base_currency: str
    rates_used: list[UsedRate]
    missing: list[MissingRate]


def quotas_overlapping(quotas, start: dt.date, end: dt.date):
    """Quotas whose period shares a day with [start, end] (a quarter starts at most two
    months before a day it holds)."""
    return quotas.filter(
        period_start__lte=end, period_start__gte=add_months(month_start(start), -2)
    )


def quota_attainment(org, quotas, deals, *, tz: dt.tzinfo, book: RateBook | None = None):
    """Each quota with the rep's deals won in the quota's own period (in the base currency
    at the rate of each close day). `deals` carries the member's scope and filters."""
    book = book or RateBook.load(org)
    converter = Converter(book)
    quota_list = list(quotas.order_by("-period_start", "user_id", "period"))
    info = owner_labels(org, {q.user_id for q in quota_list})
    rows = []
    for quota in quota_list:
        name, _, team = info.get(quota.user_id, (UNASSIGNED, None, NO_TEAM))
        end = quota_period_end(quota.period, quota.period_start)
        rows.append(
            QuotaRow(
                quota=quota,
                rep=name,
                team=team,
                period_label=quota_period_label(quota.period, quota.period_start),
                period_end=end,
                amount=quota.amount,
            )
        )
    if rows:
        first = min(row.quota.period_start for row in rows)
        last = max(row.period_end for row in rows)
        users = {row.quota.user_id for row in rows}
        won = (
            won_between(deals.filter(owner_id__in=users), first, last, tz)
            .annotate(fc_day=TruncDate("closed_at", tzinfo=tz))
            .order_by()
            .values("owner_id", "currency", "fc_day")
            .annotate(n=Count("id"), amount=Sum("value"))
        )
        by_owner = defaultdict(list)
        for entry in won:
            value = converter.convert(entry["amount"], entry["currency"], entry["fc_day"])
            if value is not None:
                by_owner[entry["owner_id"]].append((entry["fc_day"], value, entry["n"]))
        for row in rows:
            for day, value, count in by_owner.get(row.quota.user_id, ()):
                if row.quota.period_start <= day <= row.period_end:
                    row.won += value
                    row.won_count += count
            row.won = cents(row.won)
    rows.sort(key=lambda r: (-r.quota.period_start.toordinal(), r.rep.lower(), r.quota.period))
    return QuotaTable(rows, book.base_currency, converter.rates_used(), converter.missing())
