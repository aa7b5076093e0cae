"""What the settings services of the pipeline app share: the permission check, name checks
that turn a unique-constraint race into a field error, the locks, and moving deals.

Locks: changes to an organization's set of pipelines (create, default, delete) and to its
reason lists lock the organization row; changes to a pipeline's stages lock the pipeline row;
deleting a stage also locks that stage row, which makes any concurrent move of a deal into it
wait (a foreign key check takes a share lock on the stage) and then fail cleanly instead of
orphaning the deal.

Moving deals is set-based: one INSERT of stage history per batch of deals and one UPDATE of
the deals, so a stage with thousands of deals moves in a few queries. Each moved deal gets a
history row (from, to, who, when, and for an open deal how long it had been in the stage it
leaves), enters its new stage now, and keeps its order behind the cards already there.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Min

from crm.field_sizes import char_max_length
from crm.models import Organization
from crm.permissions import RightMissing
from crm.services import Actor

from ..models import Deal, DealReason, Pipeline, Stage, StageHistory

# Bounds: a board with more columns than this is not readable, and lists stay short.
MAX_PIPELINES = 50
MAX_STAGES = 30
MAX_REASONS_PER_KIND = 50
PIPELINE_NAME_MAX = char_max_length(Pipeline, "name")
STAGE_NAME_MAX = char_max_length(Stage, "name")
REASON_NAME_MAX = char_max_length(DealReason, "name")
HISTORY_BATCH = 1000

PIPELINE_NAME_TAKEN = "Another pipeline already has this name."
STAGE_NAME_TAKEN = "Another stage of this pipeline already has this name."
REASON_NAME_TAKEN = "This list already has a reason with this name."
# The unique constraints behind the messages, for a race that gets past the checks.
NAME_CONSTRAINTS = {
    "pipeline_name_per_org": PIPELINE_NAME_TAKEN,
    "stage_name_per_pipeline": STAGE_NAME_TAKEN,
    "deal_reason_per_kind": REASON_NAME_TAKEN,
}


# Permissions and small helpers ------------------------------------------------------------


def require_settings_admin(policy) -> None:
    if policy is not None and not policy.is_settings_admin():
        raise RightMissing("settings", "edit")


def user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def deals_phrase(count: int) -> str:
    return "1 deal" if count == 1 else f"{count} deals"


@contextmanager
def unique_name(field: str = "name"):
    """Turns a unique-name violation that raced past the checks into a field error."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        diag = getattr(exc.__cause__, "diag", None)
        message = NAME_CONSTRAINTS.get(getattr(diag, "constraint_name", None) or "")
        if message is None:
            raise
        raise ValidationError({field: message}) from exc


def clean_name(value, *, max_length: int, what: str) -> str:
    text = " ".join(str(value if value is not None else "").split())
    if "\x00" in text:
        raise ValidationError({"name": "The name can't contain a NUL character."})
    if not text:
        raise ValidationError({"name": f"Give the {what} a name."})
    if len(text) > max_length:
        raise ValidationError({"name": f"Keep the name to {max_length} characters or fewer."})
    return text


# Locks -------------------------------------------------------------------------------------


def lock_org(org) -> None:
    """Serializes changes to the organization's set of pipelines (its default above all)."""
    Organization.objects.select_for_update().filter(pk=org.pk).values_list("pk").first()


def lock_pipeline(pipeline: Pipeline) -> Pipeline:
    try:
        return Pipeline.objects.for_org(pipeline.org_id).select_for_update().get(pk=pipeline.pk)
    except Pipeline.DoesNotExist:
        raise ValidationError("This pipeline was deleted meanwhile.", code="gone") from None


def lock_stage(stage: Stage) -> Stage:
    try:
        return Stage.objects.for_org(stage.org_id).select_for_update().get(pk=stage.pk)
    except Stage.DoesNotExist:
        raise ValidationError("This stage was deleted meanwhile.", code="gone") from None


def ordered_stages(pipeline: Pipeline) -> list[Stage]:
    return list(
        Stage.objects.for_org(pipeline.org_id).filter(pipeline=pipeline).order_by("position", "id")
    )


# Moving deals ------------------------------------------------------------------------------


def _seconds_since(moment, now) -> int | None:
    if moment is None:
        return None
    return max(0, int((now - moment).total_seconds()))


def move_deals(*, org, deals, target: Stage, actor: Actor, now) -> int:
    """Moves every deal of the queryset `deals` into `target` (whatever their status: a won
    deal keeps the stage it was closed in, so it needs one that exists). The caller holds
    the locks that keep new deals out of the rows `deals` selects."""
    user, label = user_of(actor), (actor.label or "")[:200]
    moved = 0
    batch: list[StageHistory] = []
    rows = deals.order_by().values_list("id", "stage_id", "status", "stage_entered_at")
    for deal_id, stage_id, status, entered_at in rows.iterator(chunk_size=HISTORY_BATCH):
        batch.append(
            StageHistory(
                org=org,
                deal_id=deal_id,
                pipeline_id=target.pipeline_id,
                from_stage_id=stage_id,
                to_stage=target,
                from_status=status,
                to_status=status,
                # Time in a stage means time spent open in it: a closed deal's was counted
                # when it closed.
                seconds_in_from_stage=(
                    _seconds_since(entered_at, now) if status == Deal.Status.OPEN else None
                ),
                actor=user,
                actor_label=label,
                occurred_at=now,
            )
        )
        if len(batch) >= HISTORY_BATCH:
            StageHistory.objects.for_org(org).bulk_create(batch)
            moved += len(batch)
            batch = []
    if batch:
        StageHistory.objects.for_org(org).bulk_create(batch)
        moved += len(batch)
    if not moved:
        return 0
    # Behind the target's cards, in the order they had: one shift of every position.
    top = Deal.objects.for_org(org).filter(stage=target).aggregate(top=Max("position"))["top"]
    low = deals.aggregate(low=Min("position"))["low"] or 0.0
    offset = 0.0 if top is None else top + 1.0 - low
    deals.update(
        pipeline_id=target.pipeline_id,
        stage_id=target.pk,
        stage_entered_at=now,
        position=F("position") + offset,
        updated_at=now,
    )
    return moved


def deals_using(*, org, pipeline: Pipeline | None = None, stage: Stage | None = None) -> int:
    """How many deals (open, closed or archived) keep `stage` or `pipeline` from deletion."""
    deals = Deal.objects.for_org(org)
    if stage is not None:
        deals = deals.filter(stage=stage)
    if pipeline is not None:
        deals = deals.filter(pipeline=pipeline)
    return deals.count()
