"""What changed between a snapshot and now, or between two snapshots.

Each deal that changed is put under one heading, the first that applies:
won, lost, removed (archived or deleted), added (or reopened), slipped to a later period,
pulled in to an earlier one, amount changed. Its effect is the change of its contribution
to the commit and the weighted forecast (won + open × probability) of the period that holds
the later moment (this month or this quarter), in the base currency. Stage moves,
probability and category changes and new exchange rates also move the totals; what they add
up to is shown as "other changes", so the headings and it always sum to the change of the
totals.

Speed: the deals that changed are found in SQL (an anti-join of the present, or the later
snapshot, with the earlier snapshot's lines), so only they reach Python. An amount is
compared at the earlier snapshot's rates, so a new exchange rate alone does not make every
deal in that currency "changed".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm.selectors import org_timezone

from ..models import Deal, ForecastSnapshot, ForecastSnapshotLine, Stage
from ..money import ZERO
from . import access
from .lines import (
    CURRENT_FIELDS,
    NO_DAY,
    RECENT_DAYS,
    SNAPSHOT_FIELDS,
    LineState,
    current_lines,
    in_period,
    missing_rates,
    period_totals,
    value_at,
)
from .periods import (
    Period,
    month_end,
    month_label,
    month_start,
    period_of,
    quarter_end,
    quarter_label,
    quarter_start,
)
from .rates import MissingRate, RateBook
from .snapshot import snapshot_nearest

KINDS = [
    ("won", "Won"),
    ("lost", "Lost"),
    ("removed", "Removed (archived or deleted)"),
    ("added", "Added"),
    ("slipped", "Slipped to a later period"),
    ("pulled_in", "Pulled in"),
    ("amount", "Amount changed"),
]
KIND_LABELS = dict(KINDS)
GRANULARITIES = [("quarter", "Quarter"), ("month", "Month")]
ONE = Decimal(1)


@dataclass
class Change:
    kind: str
    deal_id: int
    title: str
    public_id: object
    owner: str
    before: LineState | None
    after: LineState | None
    commit_delta: Decimal = ZERO
    weighted_delta: Decimal = ZERO
    also: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]


@dataclass
class KindTotal:
    kind: str
    label: str
    count: int = 0
    commit: Decimal = ZERO
    weighted: Decimal = ZERO


@dataclass
class Comparison:
    base: ForecastSnapshot
    target: ForecastSnapshot | None  # None: now
    target_time: dt.datetime
    period: Period
    granularity: str
    base_currency: str
    changes: list[Change]
    kinds: list[KindTotal]
    commit_before: Decimal
    commit_after: Decimal
    weighted_before: Decimal
    weighted_after: Decimal
    missing_now: list[MissingRate]
    missing_before: list[str]

    @property
    def commit_delta(self) -> Decimal:
        return self.commit_after - self.commit_before

    @property
    def weighted_delta(self) -> Decimal:
        return self.weighted_after - self.weighted_before

    @property
    def other(self) -> KindTotal:
        listed_commit = sum((k.commit for k in self.kinds), ZERO)
        listed_weighted = sum((k.weighted for k in self.kinds), ZERO)
        return KindTotal(
            "other",
            "Other changes (stage moves, probability, category, exchange rates)",
            commit=self.commit_delta - listed_commit,
            weighted=self.weighted_delta - listed_weighted,
        )

    def changes_of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]


def period_around(day: dt.date, granularity: str) -> Period:
    if granularity == "month":
        start = month_start(day)
        return Period("this_month", start, month_end(day), month_label(start))
    start = quarter_start(day)
    return Period("this_quarter", start, quarter_end(day), quarter_label(start))


def _snapshot_lines(org, snapshot: ForecastSnapshot, scope: Q):
    # Snapshot lines carry `org` but are not an org-scoped model: filter on it by hand.
    return (
        ForecastSnapshotLine.objects.filter(org_id=org.pk, snapshot_id=snapshot.pk)
        .filter(scope)
        .annotate(close_key=Coalesce("expected_close_date", Value(NO_DAY)))
        .order_by()
    )


def _state(status, category, close, value, weighted) -> LineState:
    return LineState(status, category, close, Decimal(value), Decimal(weighted))


def compare(
    org,
    policy,
    filters: access.DealFilters | None,
    *,
    base: ForecastSnapshot,
    target: ForecastSnapshot | None = None,
    now: dt.datetime | None = None,
    granularity: str = "quarter",
) -> Comparison:
    """What changed from snapshot `base` to snapshot `target` (None: to `now`) among the
    deals the member may see (`policy` None: all), narrowed by `filters`."""
    tz = org_timezone(org)
    target_time = target.taken_at if target is not None else (now or timezone.now())
    target_day = target_time.astimezone(tz).date()
    base_day = base.taken_at.astimezone(tz).date()
    period = period_around(target_day, granularity)
    scope = Q()
    if policy is not None:
        scope &= access.scope_filter(policy, owner_field="deal__owner")
    if filters is not None:
        scope &= filters.q(org, prefix="deal__")
    before = _snapshot_lines(org, base, scope)
    book = RateBook.load(org)
    missing_now: list[MissingRate] = []
    if target is None:
        after_states, removed_ids, totals_after, missing_now, extra = _against_now(
            org, policy, filters, before, book, tz, base_day, target_day, period, base.taken_at
        )
    else:
        after_states, removed_ids, totals_after, extra = _against_snapshot(
            org, scope, before, target, period
        )
    changed_ids = set(after_states) | removed_ids
    before_states = {}
    info = dict(extra)
    rows = before.filter(deal_id__in=changed_ids).values_list(
        "deal_id",
        "status",
        "category",
        "expected_close_date",
        "value_base",
        "weighted_base",
        "deal__title",
        "deal__public_id",
        "deal__currency",
        "deal__owner__email",
        "deal__owner__first_name",
        "deal__owner__last_name",
    )
    for deal_id, status, category, close, value, weighted, *deal in rows:
        before_states[deal_id] = _state(status, category, close, value, weighted)
        info.setdefault(deal_id, _deal_info(*deal))
    base_rates = {k: Decimal(v) for k, v in (base.totals or {}).get("rates", {}).items()}
    target_rates = (
        {k: Decimal(v) for k, v in (target.totals or {}).get("rates", {}).items()}
        if target is not None
        else None
    )
    missing_before = sorted((base.totals or {}).get("missing_rates", {}))
    changes = []
    for deal_id in changed_ids:
        a, b = before_states.get(deal_id), after_states.get(deal_id)
        title, public_id, currency, owner, created_at, value_at_base = info.get(
            deal_id, ("", None, "", "", None, None)
        )
        unrated_before = a is None and b is not None and currency in missing_before
        if unrated_before and created_at is not None and created_at < base.taken_at:
            continue  # not in the earlier snapshot for want of a rate: not new
        if target_rates is not None:
            amount_changed = _amount_changed_between(a, b, currency, base_rates, target_rates)
        else:
            amount_changed = (
                a is not None and value_at_base is not None and a.value != value_at_base
            )
        kind = _classify(a, b, granularity, amount_changed)
        if kind is None:
            continue
        change = Change(
            kind=kind,
            deal_id=deal_id,
            title=title,
            public_id=public_id,
            owner=owner,
            before=a,
            after=b,
        )
        change.commit_delta = (b.commit_in(period) if b else ZERO) - (
            a.commit_in(period) if a else ZERO
        )
        change.weighted_delta = (b.weighted_in(period) if b else ZERO) - (
            a.weighted_in(period) if a else ZERO
        )
        if kind in ("slipped", "pulled_in") and amount_changed:
            change.also.append("amount changed")
        changes.append(change)
    order = {kind: index for index, (kind, _) in enumerate(KINDS)}
    changes.sort(
        key=lambda c: (order[c.kind], -abs(c.commit_delta), -abs(c.weighted_delta), c.title)
    )
    kinds = {kind: KindTotal(kind, label) for kind, label in KINDS}
    for change in changes:
        total = kinds[change.kind]
        total.count += 1
        total.commit += change.commit_delta
        total.weighted += change.weighted_delta
    commit_before, weighted_before = period_totals(before, SNAPSHOT_FIELDS, period)
    return Comparison(
        base=base,
        target=target,
        target_time=target_time,
        period=period,
        granularity=granularity,
        base_currency=book.base_currency,
        changes=changes,
        kinds=list(kinds.values()),
        commit_before=commit_before,
        commit_after=totals_after[0],
        weighted_before=weighted_before,
        weighted_after=totals_after[1],
        missing_now=missing_now,
        missing_before=missing_before,
    )


def _deal_info(title, public_id, currency, email, first, last, created_at=None, value_at=None):
    name = f"{first or ''} {last or ''}".strip() or (email or "Unassigned")
    return (title, public_id, currency, name, created_at, value_at)


def _classify(a: LineState | None, b: LineState | None, granularity: str, amount_changed: bool):
    open_ = Deal.Status.OPEN
    if b is None:
        return "removed" if a is not None and a.status == open_ else None
    if a is None or a.status != open_:
        if b.status == open_:
            return "added"
        if a is None:
            return b.status if b.status in ("won", "lost") else None
        return None
    if b.status in (Deal.Status.WON, Deal.Status.LOST):
        return b.status
    before, after = period_of(a.close, granularity), period_of(b.close, granularity)
    if before != after:
        if before is None:
            return "pulled_in"  # it had no date; now it has one
        if after is None or after > before:
            return "slipped"
        return "pulled_in"
    if amount_changed:
        return "amount"
    return None


def _amount_changed_between(a, b, currency, rates_a: dict, rates_b: dict) -> bool:
    """Whether the deal's own amount changed between two snapshots, whatever the rates did:
    each value is rounded to cents, so equal amounts differ by at most a cent per rate."""
    if a is None or b is None:
        return False
    ra, rb = rates_a.get(currency, ONE), rates_b.get(currency, ONE)
    return abs(a.value * rb - b.value * ra) > Decimal("0.01") * max(ra, rb)


def _against_now(org, policy, filters, before, book, tz, base_day, today, period, since):
    closed_since = base_day - dt.timedelta(days=RECENT_DAYS)
    deals = access.forecast_deals(org, policy, filters)
    present = current_lines(deals, book, today=today, tz=tz, closed_since=closed_since)
    counted = present.filter(fc_rate__isnull=False)
    # Only a deal written since the snapshot (every service saves updated_at), or one whose
    # stage was (its forecast category), can differ from its line: the anti-join below then
    # reads a few thousand deals instead of every open one (0.45 s → see the note).
    touched = Q(updated_at__gte=since)
    restaged = list(
        Stage.objects.for_org(org).filter(updated_at__gte=since).values_list("pk", flat=True)
    )
    if restaged:
        touched |= Q(stage_id__in=restaged)
    changed = (
        counted.filter(touched)
        .annotate(
            fc_value_at_base=value_at(
                book, day=base_day, tz=tz, closed_since=closed_since, until=today
            )
        )
        .exclude(
            Exists(
                before.filter(
                    deal_id=OuterRef("pk"),
                    status=OuterRef("status"),
                    category=OuterRef("fc_category"),
                    close_key=OuterRef("fc_close_key"),
                    value_base=OuterRef("fc_value_at_base"),
                )
            )
        )
    )
    after_states, extra = {}, {}
    rows = changed.values_list(
        "pk",
        "status",
        "fc_category",
        "fc_close",
        "fc_value",
        "fc_weighted",
        "title",
        "public_id",
        "currency",
        "owner__email",
        "owner__first_name",
        "owner__last_name",
        "created_at",
        "fc_value_at_base",
    )
    for pk, status, category, close, value, weighted, *deal in rows:
        after_states[pk] = _state(status, category, close, value, weighted)
        extra[pk] = _deal_info(*deal)
    # Open then and gone now: archived since (a deleted deal takes its lines with it).
    archived = Deal.objects.for_org(org).filter(is_archived=True).values("pk")
    removed = before.filter(status=Deal.Status.OPEN, deal_id__in=archived)
    removed_ids = set(removed.values_list("deal_id", flat=True))
    totals = period_totals(counted.filter(in_period(period, tz)), CURRENT_FIELDS, period)
    missing = [
        MissingRate(row["currency"], row["n"], row["amount"], book.first_effective(row["currency"]))
        for row in missing_rates(present, book, closed_since)
    ]
    return after_states, removed_ids, totals, missing, extra


def _against_snapshot(org, scope, before, target: ForecastSnapshot, period):
    after = _snapshot_lines(org, target, scope)
    changed = after.exclude(
        Exists(
            before.filter(
                deal_id=OuterRef("deal_id"),
                status=OuterRef("status"),
                category=OuterRef("category"),
                close_key=OuterRef("close_key"),
                value_base=OuterRef("value_base"),
            )
        )
    )
    after_states, extra = {}, {}
    rows = changed.values_list(
        "deal_id",
        "status",
        "category",
        "expected_close_date",
        "value_base",
        "weighted_base",
        "deal__title",
        "deal__public_id",
        "deal__currency",
        "deal__owner__email",
        "deal__owner__first_name",
        "deal__owner__last_name",
    )
    for deal_id, status, category, close, value, weighted, *deal in rows:
        after_states[deal_id] = _state(status, category, close, value, weighted)
        extra[deal_id] = _deal_info(*deal)
    removed = before.filter(status=Deal.Status.OPEN).exclude(
        Exists(after.filter(deal_id=OuterRef("deal_id")))
    )
    removed_ids = set(removed.values_list("deal_id", flat=True))
    return after_states, removed_ids, period_totals(after, SNAPSHOT_FIELDS, period), extra


def default_base(org, target_time: dt.datetime):
    """The snapshot to compare with by default: the one nearest to a week before
    `target_time`, among those taken before it."""
    return snapshot_nearest(org, target_time - dt.timedelta(days=7), before=target_time)
