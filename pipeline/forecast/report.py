"""The pipeline report, from the stage history: for every stage of every pipeline, how many
deals entered it, how many of those went on (to a later stage, or won), the conversion rate
between the two, and the median time deals spent in the stage before leaving it.

- A deal "entered" a stage when a history row moved it into the stage as an open deal
  (created there, moved there, or reopened there) within the window.
- It "went on" when a later row of the same deal moved it to a stage further down the
  pipeline, or won it. Skipping stages counts: a deal moved from the first stage straight
  to the third went on from the first.
- Time in a stage is the history's `seconds_in_from_stage` of the rows that moved an open
  deal out of it (to another stage, won or lost) within the window; the median is computed by
  PostgreSQL (percentile_cont), so the report is two grouped queries whatever the size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField

from ..models import Deal, Pipeline, Stage, StageHistory

WINDOWS = [("90", "Last 90 days"), ("180", "Last 180 days"), ("365", "Last 12 months")]
DEFAULT_WINDOW = "180"


class Median(Aggregate):
    """PostgreSQL's percentile_cont(0.5): the median of a numeric column."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()
    allow_distinct = False


@dataclass
class StageRow:
    stage: Stage
    entered: int = 0
    advanced: int = 0
    won: int = 0
    exits: int = 0
    median_seconds: float | None = None

    @property
    def conversion(self) -> Decimal | None:
        """Percentage of the deals that entered the stage and went on."""
        if not self.entered:
            return None
        return (Decimal(self.advanced) * 100 / self.entered).quantize(Decimal("0.1"))

    @property
    def win_rate(self) -> Decimal | None:
        if not self.entered:
            return None
        return (Decimal(self.won) * 100 / self.entered).quantize(Decimal("0.1"))

    @property
    def median_days(self) -> Decimal | None:
        if self.median_seconds is None:
            return None
        return (Decimal(str(self.median_seconds)) / 86400).quantize(Decimal("0.1"))

    @property
    def median_text(self) -> str:
        return duration_text(self.median_seconds)


@dataclass
class PipelineReport:
    pipeline: Pipeline
    stages: list[StageRow]

    @property
    def has_data(self) -> bool:
        return any(row.entered or row.exits for row in self.stages)


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{max(int(seconds // 60), 0)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# Per history row: the furthest stage the deal reached in the same pipeline at or after it,
# and whether it was won there at or after it (windows running backwards in time), folded
# to one row per deal and stage entered, then counted per stage. A couple of passes over the
# window's history, whatever its size.
ENTRIES_SQL = """
WITH moves AS (
    SELECT h.id, h.deal_id, h.pipeline_id, h.to_stage_id, h.to_status, h.occurred_at,
           s.position
    FROM pipeline_stagehistory h
    LEFT JOIN pipeline_stage s ON s.id = h.to_stage_id AND s.org_id = h.org_id
    WHERE h.org_id = %s AND h.pipeline_id = ANY(%s) AND h.occurred_at >= %s
      {deals}
), marked AS (
    SELECT deal_id, to_stage_id, to_status, occurred_at, position,
           MAX(CASE WHEN to_status = 'open' THEN position END) OVER later AS furthest_after,
           BOOL_OR(to_status = 'won') OVER later AS won_after
    FROM moves
    WINDOW later AS (
        PARTITION BY deal_id, pipeline_id ORDER BY occurred_at DESC, id DESC
        ROWS UNBOUNDED PRECEDING
    )
), entered AS (
    SELECT to_stage_id, deal_id,
           BOOL_OR(furthest_after > position OR won_after) AS went_on,
           BOOL_OR(won_after) AS won
    FROM marked
    WHERE to_status = 'open' AND to_stage_id IS NOT NULL AND occurred_at < %s
    GROUP BY to_stage_id, deal_id
)
SELECT to_stage_id, COUNT(*), COUNT(*) FILTER (WHERE went_on), COUNT(*) FILTER (WHERE won)
FROM entered
GROUP BY to_stage_id
"""


def _entries(org, deals, pipelines, since, until):
    """(stage id, deals entered, deals that went on, deals won later) per stage."""
    condition, params = "", ()
    if deals is not None:
        inner, params = deals.order_by().values("pk").query.sql_with_params()
        condition = f"AND h.deal_id IN ({inner})"
    with connection.cursor() as cursor:
        cursor.execute(
            ENTRIES_SQL.format(deals=condition),
            [org.pk, [p.pk for p in pipelines], since, *params, until],
        )
        return cursor.fetchall()


def pipeline_report(org, deals, *, since: dt.datetime, until: dt.datetime, pipeline=None):
    """One PipelineReport per pipeline (or only `pipeline`), over the history of `deals`
    (the deals the member may see; None: every deal) between `since` and `until`."""
    pipelines = Pipeline.objects.for_org(org).order_by("position", "id")
    if pipeline is not None:
        pipelines = pipelines.filter(pk=pipeline.pk)
    pipelines = list(pipelines)
    stages = Stage.objects.for_org(org).filter(pipeline__in=pipelines).order_by("position", "id")
    rows: dict[int, StageRow] = {}
    by_pipeline: dict[int, list[StageRow]] = {p.pk: [] for p in pipelines}
    for stage in stages:
        rows[stage.pk] = StageRow(stage)
        by_pipeline[stage.pipeline_id].append(rows[stage.pk])

    history = StageHistory.objects.for_org(org).filter(pipeline__in=pipelines)
    if deals is not None:
        history = history.filter(deal__in=deals.values("pk"))
    for stage_id, entered, advanced, won in _entries(org, deals, pipelines, since, until):
        row = rows.get(stage_id)
        if row is not None:
            row.entered, row.advanced, row.won = entered, advanced, won

    # Rows that took an open deal out of a stage: to another stage, won or lost. A reopen
    # (from won or lost) measures time spent closed, not time in the stage.
    moved_out = (
        history.filter(
            from_stage__isnull=False,
            from_status=Deal.Status.OPEN,
            seconds_in_from_stage__isnull=False,
            occurred_at__gte=since,
            occurred_at__lt=until,
        )
        .exclude(to_status=Deal.Status.OPEN, to_stage_id=F("from_stage_id"))
        .order_by()
        .values("from_stage_id")
        .annotate(exits=Count("id"), median=Median("seconds_in_from_stage"))
    )
    for entry in moved_out:
        row = rows.get(entry["from_stage_id"])
        if row is not None:
            row.exits, row.median_seconds = entry["exits"], entry["median"]
    return [PipelineReport(p, by_pipeline[p.pk]) for p in pipelines]
