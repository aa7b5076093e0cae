"""The weekly forecast snapshot: every open deal and every deal closed in the last
RECENT_DAYS days, as lines (see lines.py), with the totals and the rates of the day.

Beat runs `snapshot_all_orgs()` every Monday morning; a snapshot taken less than six days
before is kept and no second one is taken, so a retried task does no harm. Lines are built
in SQL and written with bulk_create in batches, so memory stays flat at any size. Snapshots
older than KEEP_DAYS are removed with their lines.

For a closed deal, the line's `expected_close_date` holds the day it closed (the day it
counts on), and its value uses that day's rate.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from crm import rls
from crm.models import Organization
from crm.selectors import org_timezone

from ..models import Deal, ForecastCategory, ForecastSnapshot, ForecastSnapshotLine
from ..money import ZERO
from .figures import COMMIT_CATEGORIES
from .lines import RECENT_DAYS, current_lines, missing_rates
from .rates import RateBook

logger = logging.getLogger("pipeline.forecast")

BATCH_SIZE = 2000
# A snapshot this recent makes the weekly run skip the organization.
WEEKLY_GAP = dt.timedelta(days=6)
KEEP_DAYS = 400


def _totals_keeper():
    return {
        "open_count": 0,
        "open_value": ZERO,
        "weighted": ZERO,
        "commit_open": ZERO,
        "best_case_open": ZERO,
        "omitted_count": 0,
    }


def _add(totals: dict, status: str, category: str, value: Decimal, weighted: Decimal) -> None:
    if status != Deal.Status.OPEN:
        return
    if category == ForecastCategory.OMITTED:
        totals["omitted_count"] += 1
        return
    totals["open_count"] += 1
    totals["open_value"] += value
    totals["weighted"] += weighted
    if category in COMMIT_CATEGORIES:
        totals["commit_open"] += value
    elif category == ForecastCategory.BEST_CASE:
        totals["best_case_open"] += value


def take_snapshot(org, *, now: dt.datetime | None = None, batch_size: int = BATCH_SIZE):
    """Snapshot the forecast of `org` as it stands at `now` (every deal, whatever the
    scope of anyone). Runs in the caller's organization context, in one transaction."""
    now = now or timezone.now()
    tz = org_timezone(org)
    today = now.astimezone(tz).date()
    closed_since = today - dt.timedelta(days=RECENT_DAYS)
    book = RateBook.load(org)
    deals = Deal.objects.for_org(org).filter(is_archived=False)
    lines = current_lines(deals, book, today=today, tz=tz, closed_since=closed_since)
    with transaction.atomic():
        snapshot = ForecastSnapshot.objects.for_org(org).create(
            org=org, taken_at=now, base_currency=book.base_currency, totals={}
        )
        totals = _totals_keeper()
        batch: list[ForecastSnapshotLine] = []
        rows = (
            lines.filter(fc_rate__isnull=False)
            .values_list(
                "pk",
                "pipeline_id",
                "stage_id",
                "owner_id",
                "status",
                "fc_category",
                "fc_close",
                "fc_value",
                "fc_weighted",
            )
            .iterator(chunk_size=batch_size)
        )
        count = 0
        for pk, pipeline_id, stage_id, owner_id, status, category, close, value, weighted in rows:
            batch.append(
                ForecastSnapshotLine(
                    org_id=org.pk,
                    snapshot=snapshot,
                    deal_id=pk,
                    pipeline_id_at=pipeline_id,
                    stage_id_at=stage_id,
                    owner_id_at=owner_id,
                    status=status,
                    category=category,
                    expected_close_date=close,
                    value_base=value,
                    weighted_base=weighted,
                )
            )
            _add(totals, status, category, value, weighted)
            count += 1
            if len(batch) >= batch_size:
                ForecastSnapshotLine.objects.bulk_create(batch)
                batch = []
        if batch:
            ForecastSnapshotLine.objects.bulk_create(batch)
        missing = missing_rates(lines, book, closed_since)
        snapshot.totals = {
            **{key: str(value) for key, value in totals.items()},
            "lines": count,
            "as_of": today.isoformat(),
            "rates": {code: str(rate) for code, rate in sorted(book.rates_on(today).items())},
            "missing_rates": {
                row["currency"]: {"deals": row["n"], "amount": str(row["amount"])}
                for row in missing
            },
        }
        snapshot.save(update_fields=["totals"])
    return snapshot


def take_weekly_snapshot(org, *, now: dt.datetime | None = None) -> ForecastSnapshot | None:
    """This week's snapshot of `org`, unless one was taken in the last six days (None
    then). Old snapshots past KEEP_DAYS go at the same time."""
    now = now or timezone.now()
    with transaction.atomic():
        recent = ForecastSnapshot.objects.for_org(org).filter(taken_at__gt=now - WEEKLY_GAP)
        if recent.exists():
            return None
        ForecastSnapshot.objects.for_org(org).filter(
            taken_at__lt=now - dt.timedelta(days=KEEP_DAYS)
        ).delete()
        return take_snapshot(org, now=now)


def snapshot_all_orgs(*, now: dt.datetime | None = None) -> int:
    """The weekly run over every organization, each in its own transaction and context:
    one organization failing is logged and does not stop the others. Returns how many
    snapshots were taken."""
    now = now or timezone.now()
    taken = 0
    for org in Organization.objects.order_by("id"):
        try:
            with transaction.atomic(), rls.tenant(org.id):
                if take_weekly_snapshot(org, now=now) is not None:
                    taken += 1
        except Exception:
            logger.exception("weekly forecast snapshot failed for organization %s", org.id)
    return taken


def latest_snapshots(org, *, limit: int = 30):
    return ForecastSnapshot.objects.for_org(org).order_by("-taken_at", "-id")[:limit]


def snapshot_nearest(org, moment: dt.datetime, *, before: dt.datetime | None = None):
    """The snapshot taken nearest to `moment` (and before `before` when given)."""
    snapshots = ForecastSnapshot.objects.for_org(org)
    if before is not None:
        snapshots = snapshots.filter(taken_at__lt=before)
    earlier = snapshots.filter(taken_at__lte=moment).order_by("-taken_at", "-id").first()
    later = snapshots.filter(taken_at__gt=moment).order_by("taken_at", "id").first()
    if earlier is None or later is None:
        return earlier or later
    return earlier if moment - earlier.taken_at <= later.taken_at - moment else later
