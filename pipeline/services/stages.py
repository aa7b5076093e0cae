"""Settings → Pipelines: a pipeline's stages. Adding, changing (name, colour, win
probability, rotting days, forecast category), ordering, and deleting (refused while deals are
in the stage unless they are moved to another stage of the pipeline; a pipeline keeps at least
one stage).

Only settings admins change these; `policy=None` is system work. A stage's name is unique in
its pipeline whatever its case. Deals that follow their stage's probability or forecast
category follow a change at once: they read it from the stage.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from crm.services import Actor, audit, diff, emit_event

from ..models import Deal, ForecastCategory, Pipeline, Stage
from .settings_base import (
    MAX_STAGES,
    STAGE_NAME_MAX,
    STAGE_NAME_TAKEN,
    clean_name,
    deals_phrase,
    lock_pipeline,
    lock_stage,
    move_deals,
    ordered_stages,
    require_settings_admin,
    unique_name,
)

MAX_ROTTING_DAYS = 3650
DEFAULT_STAGE_COLOR = "#64748b"
COLOR_RE = re.compile(r"#[0-9a-fA-F]{6}")
# A stage holds open deals, so "closed" (won deals only) is not a category a stage can have.
STAGE_FORECAST_CATEGORIES = [
    (value, label) for value, label in ForecastCategory.choices if value != ForecastCategory.CLOSED
]
STAGE_FIELDS = ["name", "color", "probability", "rotting_days", "forecast_category"]


def _clean_color(value) -> str:
    text = str(value if value is not None else "").strip()
    if not COLOR_RE.fullmatch(text):
        raise ValidationError("Use a colour like #3b82f6 (# and six hexadecimal digits).")
    return text.lower()


def _clean_int(value, *, low: int, high: int, message: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(message)
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValidationError(message) from None
    if not low <= number <= high:
        raise ValidationError(message)
    return number


def _clean_probability(value) -> int:
    return _clean_int(
        value, low=0, high=100, message="Use a whole number from 0 to 100 for the probability."
    )


def _clean_rotting_days(value) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    return _clean_int(
        value,
        low=1,
        high=MAX_ROTTING_DAYS,
        message=f"Use a number of days from 1 to {MAX_ROTTING_DAYS}, or leave it empty so "
        "deals in this stage are never flagged as rotting.",
    )


def _clean_forecast_category(value) -> str:
    text = str(value if value is not None else "").strip()
    allowed = dict(STAGE_FORECAST_CATEGORIES)
    if text not in allowed:
        names = ", ".join(str(label) for label in allowed.values())
        raise ValidationError(f"Choose a forecast category: {names}.")
    return text


_STAGE_CLEANERS = {
    "color": _clean_color,
    "probability": _clean_probability,
    "rotting_days": _clean_rotting_days,
    "forecast_category": _clean_forecast_category,
}


def clean_stage_data(data: dict, *, partial: bool) -> dict:
    """The stage fields of `data`, checked; every bad field is reported at once. Without
    `partial`, a missing name is an error and the other fields take their defaults."""
    cleaned: dict = {}
    errors: dict[str, list[str]] = {}
    if "name" in data or not partial:
        try:
            cleaned["name"] = clean_name(data.get("name"), max_length=STAGE_NAME_MAX, what="stage")
        except ValidationError as exc:
            errors.update(exc.message_dict)
    for field, cleaner in _STAGE_CLEANERS.items():
        if field not in data:
            continue
        try:
            cleaned[field] = cleaner(data[field])
        except ValidationError as exc:
            errors[field] = exc.messages
    if errors:
        raise ValidationError(errors)
    if not partial:
        cleaned.setdefault("color", DEFAULT_STAGE_COLOR)
        cleaned.setdefault("probability", 10)
        cleaned.setdefault("rotting_days", None)
        cleaned.setdefault("forecast_category", ForecastCategory.PIPELINE)
    return cleaned


def _stage_state(stage: Stage) -> dict:
    return {field: getattr(stage, field) for field in STAGE_FIELDS}


def stage_add(*, pipeline: Pipeline, actor: Actor, policy=None, data: dict) -> Stage:
    """A new stage at the end of the pipeline. `data`: name (required), color, probability,
    rotting_days, forecast_category."""
    require_settings_admin(policy)
    cleaned = clean_stage_data(data, partial=False)
    org = pipeline.org
    with transaction.atomic():
        pipeline = lock_pipeline(pipeline)
        stages = Stage.objects.for_org(org).filter(pipeline=pipeline)
        count = stages.count()
        if count >= MAX_STAGES:
            raise ValidationError(f"A pipeline can have up to {MAX_STAGES} stages.", code="limit")
        if stages.filter(name__iexact=cleaned["name"]).exists():
            raise ValidationError({"name": STAGE_NAME_TAKEN})
        position = (stages.aggregate(top=Max("position"))["top"] or 0) + 1 if count else 0
        with unique_name():
            stage = Stage.objects.for_org(org).create(
                org=org, pipeline=pipeline, position=position, **cleaned
            )
        audit(
            org=org,
            actor=actor,
            verb="pipeline.stage_added",
            obj=stage,
            changes={**diff({}, _stage_state(stage)), "pipeline": [None, pipeline.name]},
        )
        emit_event(
            org=org,
            event_type="pipeline.stage_added",
            payload={
                "pipeline": pipeline.public_id,
                "stage": stage.public_id,
                **_stage_state(stage),
            },
        )
    return stage


def stage_update(*, stage: Stage, actor: Actor, policy=None, data: dict) -> Stage:
    """Changes any of name, color, probability, rotting_days and forecast_category (the
    keys present in `data`). Deals that follow the stage's probability or category follow
    the new one at once: they read it from the stage."""
    require_settings_admin(policy)
    cleaned = clean_stage_data(data, partial=True)
    org = stage.org
    with transaction.atomic():
        stage = lock_stage(stage)
        if "name" in cleaned:
            taken = (
                Stage.objects.for_org(org)
                .filter(pipeline_id=stage.pipeline_id, name__iexact=cleaned["name"])
                .exclude(pk=stage.pk)
                .exists()
            )
            if taken:
                raise ValidationError({"name": STAGE_NAME_TAKEN})
        before = _stage_state(stage)
        for field, value in cleaned.items():
            setattr(stage, field, value)
        changes = diff(before, _stage_state(stage))
        if not changes:
            return stage
        with unique_name():
            stage.save(update_fields=[*changes, "updated_at"])
        audit(org=org, actor=actor, verb="pipeline.stage_updated", obj=stage, changes=changes)
        emit_event(
            org=org,
            event_type="pipeline.stage_updated",
            payload={
                "pipeline": stage.pipeline.public_id,
                "stage": stage.public_id,
                "changes": changes,
            },
        )
    return stage


def _apply_order(*, org, pipeline: Pipeline, before: list[Stage], after: list[Stage], actor):
    if [s.pk for s in before] == [s.pk for s in after]:
        return after
    now = timezone.now()
    changed = []
    for index, stage in enumerate(after):
        if stage.position != index:
            stage.position = index
            stage.updated_at = now
            changed.append(stage)
    Stage.objects.for_org(org).bulk_update(changed, ["position", "updated_at"])
    audit(
        org=org,
        actor=actor,
        verb="pipeline.stages_reordered",
        obj=pipeline,
        changes={"stages": [[s.name for s in before], [s.name for s in after]]},
    )
    emit_event(
        org=org,
        event_type="pipeline.stages_reordered",
        payload={"pipeline": pipeline.public_id, "stages": [s.public_id for s in after]},
    )
    return after


def stage_reorder(
    *, pipeline: Pipeline, actor: Actor, policy=None, ordered_public_ids: Iterable
) -> list[Stage]:
    """Puts the pipeline's stages in the order of `ordered_public_ids`, which must name each
    of its stages once (a list made before someone else added or deleted one is refused)."""
    require_settings_admin(policy)
    stale = ValidationError(
        "The stages changed while you were ordering them. Reload the page and try again.",
        code="stale",
    )
    wanted = []
    for raw in ordered_public_ids:
        try:
            wanted.append(uuid.UUID(str(raw)))
        except (TypeError, ValueError):
            raise stale from None
    org = pipeline.org
    with transaction.atomic():
        pipeline = lock_pipeline(pipeline)
        stages = ordered_stages(pipeline)
        by_id = {stage.public_id: stage for stage in stages}
        if len(wanted) != len(stages) or set(wanted) != set(by_id):
            raise stale
        return _apply_order(
            org=org,
            pipeline=pipeline,
            before=stages,
            after=[by_id[public_id] for public_id in wanted],
            actor=actor,
        )


def stage_move(*, stage: Stage, actor: Actor, policy=None, direction: str) -> list[Stage]:
    """One place up or down (the buttons beside each stage; dragging uses stage_reorder).
    At either end it changes nothing."""
    require_settings_admin(policy)
    if direction not in ("up", "down"):
        raise ValidationError("Move a stage up or down.")
    org = stage.org
    with transaction.atomic():
        pipeline = lock_pipeline(stage.pipeline)
        stages = ordered_stages(pipeline)
        index = next((i for i, s in enumerate(stages) if s.pk == stage.pk), None)
        if index is None:
            raise ValidationError("This stage was deleted meanwhile.", code="gone")
        other = index - 1 if direction == "up" else index + 1
        if not 0 <= other < len(stages):
            return stages
        after = list(stages)
        after[index], after[other] = after[other], after[index]
        return _apply_order(org=org, pipeline=pipeline, before=stages, after=after, actor=actor)


def stage_delete(*, stage: Stage, actor: Actor, policy=None, move_to_stage=None) -> int:
    """Deletes a stage. While deals (open, won, lost or archived) are in it, this is refused
    unless `move_to_stage`, another stage of the same pipeline, receives them. A pipeline's
    last stage is never deleted. Returns how many deals were moved."""
    require_settings_admin(policy)
    org = stage.org
    with transaction.atomic():
        pipeline = lock_pipeline(stage.pipeline)
        stage = lock_stage(stage)
        stages = ordered_stages(pipeline)
        if len(stages) <= 1:
            raise ValidationError(
                "A pipeline needs at least one stage. Add another stage before deleting this one.",
                code="last_stage",
            )
        target = None
        if move_to_stage is not None:
            target = next(
                (s for s in stages if s.pk == move_to_stage.pk and s.pk != stage.pk), None
            )
            if target is None:
                raise ValidationError({"move_to_stage": "Choose another stage of this pipeline."})
        deals = Deal.objects.for_org(org).filter(stage=stage)
        in_use = deals.count()
        if in_use and target is None:
            raise ValidationError(
                f"{deals_phrase(in_use)} {'is' if in_use == 1 else 'are'} in “{stage.name}” "
                "(open, won or lost). Choose a stage to move them to, then delete it.",
                code="in_use",
            )
        moved = 0
        if in_use and target is not None:
            moved = move_deals(org=org, deals=deals, target=target, actor=actor, now=timezone.now())
        before = _stage_state(stage)
        public_id = stage.public_id
        remaining = [s for s in stages if s.pk != stage.pk]
        stage.delete()
        now = timezone.now()
        renumbered = []
        for index, kept in enumerate(remaining):
            if kept.position != index:
                kept.position, kept.updated_at = index, now
                renumbered.append(kept)
        Stage.objects.for_org(org).bulk_update(renumbered, ["position", "updated_at"])
        changes = {**diff(before, {}), "moved_deals": [None, moved]}
        if target is not None and moved:
            changes["moved_to"] = [None, target.name]
        audit(
            org=org,
            actor=actor,
            verb="pipeline.stage_deleted",
            object_type="stage",
            object_id=str(public_id),
            object_repr=before["name"],
            changes=changes,
        )
        emit_event(
            org=org,
            event_type="pipeline.stage_deleted",
            payload={
                "pipeline": pipeline.public_id,
                "stage": public_id,
                "name": before["name"],
                "moved_deals": moved,
                "moved_to_stage": target.public_id if target is not None and moved else None,
            },
        )
    return moved
