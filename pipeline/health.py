"""A deal's health: a level (healthy, at risk, rotting) with the reasons that made it.

The rules are deterministic and read only the deal and whether it has an open task, so a
board of a hundred cards needs one extra query (`open_task_deal_ids`), not one per card."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from contacts.models import Task

from .models import Deal

# Without a logged activity for this long, an open deal is at risk.
NO_ACTIVITY_DAYS = 14

HEALTHY, AT_RISK, ROTTING = "healthy", "at_risk", "rotting"
LABELS = {HEALTHY: "Healthy", AT_RISK: "At risk", ROTTING: "Rotting"}


@dataclass(frozen=True)
class Health:
    level: str
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS[self.level]

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "On track"


def open_task_deal_ids(org, deal_ids) -> set[int]:
    """Which of `deal_ids` have at least one open task."""
    return set(
        Task.objects.for_org(org)
        .filter(deal_id__in=list(deal_ids), status=Task.Status.OPEN)
        .order_by()
        .values_list("deal_id", flat=True)
        .distinct()
    )


def _days(delta: dt.timedelta) -> int:
    return max(delta.days, 0)


def deal_health(deal: Deal, *, has_open_task: bool, now: dt.datetime | None = None) -> Health:
    """The health of an open deal. Closed and archived deals are simply healthy: nothing is
    left to do on them."""
    if deal.status != Deal.Status.OPEN or deal.is_archived:
        return Health(HEALTHY)
    now = now or timezone.now()
    today = timezone.localdate(now)
    reasons: list[str] = []
    rotting = False
    limit = deal.stage.rotting_days
    in_stage = _days(now - deal.stage_entered_at)
    if limit is not None and in_stage > limit:
        rotting = True
        reasons.append(f"In {deal.stage.name} for {in_stage} days (rots after {limit})")
    if deal.expected_close_date is not None and deal.expected_close_date < today:
        late = (today - deal.expected_close_date).days
        reasons.append(f"Close date passed {late} day{'s' if late != 1 else ''} ago")
    last = deal.last_activity_at or deal.created_at
    if last is not None and _days(now - last) >= NO_ACTIVITY_DAYS:
        reasons.append(f"No activity in {_days(now - last)} days")
    if not has_open_task:
        reasons.append("No open task")
    if rotting:
        return Health(ROTTING, reasons)
    return Health(AT_RISK if reasons else HEALTHY, reasons)


def health_by_deal(org, deals, now: dt.datetime | None = None) -> dict[int, Health]:
    """Health of each deal (deals need their stage loaded), in one extra query."""
    deals = list(deals)
    with_tasks = open_task_deal_ids(org, [d.pk for d in deals])
    return {d.pk: deal_health(d, has_open_task=d.pk in with_tasks, now=now) for d in deals}
