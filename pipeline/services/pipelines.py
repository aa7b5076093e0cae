"""Settings → Pipelines: an organization's pipelines. Creating one from a template of
pipeline.templates_catalog, renaming, choosing the default, deleting (refused while deals use
it unless they are moved), and the default pipeline every organization gets.

Only settings admins (`policy.is_settings_admin()`) change these; `policy=None` is system work.
A pipeline's name is unique in its organization whatever its case: a taken name is a
ValidationError on "name", never an IntegrityError, even when two admins race for it.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from crm.services import Actor, audit, emit_event

from ..models import Deal, DealReason, Pipeline, Stage
from ..templates_catalog import (
    DEFAULT_LOST_REASONS,
    DEFAULT_PIPELINE_NAME,
    DEFAULT_TEMPLATE_KEY,
    DEFAULT_WON_REASONS,
    PipelineTemplate,
    get_template,
)
from .settings_base import (
    MAX_PIPELINES,
    PIPELINE_NAME_MAX,
    PIPELINE_NAME_TAKEN,
    clean_name,
    deals_phrase,
    lock_org,
    lock_pipeline,
    move_deals,
    require_settings_admin,
    unique_name,
)


def _create_from_template(
    org, *, name: str, template: PipelineTemplate, is_default: bool, position: int
) -> Pipeline:
    pipeline = Pipeline.objects.for_org(org).create(
        org=org, name=name, template=template.key, is_default=is_default, position=position
    )
    Stage.objects.for_org(org).bulk_create(
        [
            Stage(
                org=org,
                pipeline=pipeline,
                name=stage.name,
                color=stage.color,
                position=index,
                probability=stage.probability,
                rotting_days=stage.rotting_days,
                forecast_category=stage.forecast_category,
            )
            for index, stage in enumerate(template.stages)
        ]
    )
    return pipeline


def _pipeline_payload(pipeline: Pipeline) -> dict:
    return {"pipeline": pipeline.public_id, "name": pipeline.name}


def ensure_default_pipeline(org, *, actor: Actor | None = None) -> Pipeline:
    """The organization's default pipeline. An organization without any pipeline gets one,
    "Sales pipeline" from the B2B template, with the starting lists of won and lost reasons
    when it has no reasons yet. Idempotent, and safe when two requests race (the second
    waits for the first's lock and then finds its pipeline)."""
    found = Pipeline.objects.for_org(org).filter(is_default=True).first()
    if found is not None:
        return found
    actor = actor or Actor.system("pipeline setup")
    with transaction.atomic():
        lock_org(org)
        pipelines = list(Pipeline.objects.for_org(org).order_by("position", "id"))
        for pipeline in pipelines:
            if pipeline.is_default:
                return pipeline
        if pipelines:  # pipelines without a default (written by hand): the first one is it
            first = pipelines[0]
            first.is_default = True
            first.save(update_fields=["is_default", "updated_at"])
            return first
        template = get_template(DEFAULT_TEMPLATE_KEY)
        assert template is not None
        pipeline = _create_from_template(
            org, name=DEFAULT_PIPELINE_NAME, template=template, is_default=True, position=0
        )
        reasons = []
        if not DealReason.objects.for_org(org).exists():
            for kind, names in (
                (DealReason.Kind.WON, DEFAULT_WON_REASONS),
                (DealReason.Kind.LOST, DEFAULT_LOST_REASONS),
            ):
                reasons += [
                    DealReason(org=org, kind=kind, name=name, position=index)
                    for index, name in enumerate(names)
                ]
            DealReason.objects.for_org(org).bulk_create(reasons)
        audit(
            org=org,
            actor=actor,
            verb="pipeline.created",
            obj=pipeline,
            changes={
                "name": [None, pipeline.name],
                "template": [None, template.key],
                "default_reasons": [None, len(reasons)],
            },
        )
        emit_event(
            org=org,
            event_type="pipeline.created",
            payload={**_pipeline_payload(pipeline), "template": template.key, "default": True},
        )
    return pipeline


def pipeline_create(
    *, org, actor: Actor, policy=None, name: str, template_key: str = DEFAULT_TEMPLATE_KEY
) -> Pipeline:
    """A new pipeline with the stages of a template from pipeline.templates_catalog. The
    organization's first pipeline becomes its default."""
    require_settings_admin(policy)
    name = clean_name(name, max_length=PIPELINE_NAME_MAX, what="pipeline")
    template = get_template(str(template_key or ""))
    if template is None:
        raise ValidationError({"template": "Choose one of the templates."})
    with transaction.atomic():
        lock_org(org)
        existing = Pipeline.objects.for_org(org)
        count = existing.count()
        if count >= MAX_PIPELINES:
            raise ValidationError(
                f"An organization can have up to {MAX_PIPELINES} pipelines. Delete one you no "
                "longer use first.",
                code="limit",
            )
        if existing.filter(name__iexact=name).exists():
            raise ValidationError({"name": PIPELINE_NAME_TAKEN})
        position = (existing.aggregate(top=Max("position"))["top"] or 0) + 1 if count else 0
        with unique_name():
            pipeline = _create_from_template(
                org, name=name, template=template, is_default=count == 0, position=position
            )
        audit(
            org=org,
            actor=actor,
            verb="pipeline.created",
            obj=pipeline,
            changes={"name": [None, name], "template": [None, template.key]},
        )
        emit_event(
            org=org,
            event_type="pipeline.created",
            payload={
                **_pipeline_payload(pipeline),
                "template": template.key,
                "default": pipeline.is_default,
            },
        )
    return pipeline


def pipeline_rename(*, pipeline: Pipeline, actor: Actor, policy=None, name: str) -> Pipeline:
    require_settings_admin(policy)
    name = clean_name(name, max_length=PIPELINE_NAME_MAX, what="pipeline")
    org = pipeline.org
    with transaction.atomic():
        pipeline = lock_pipeline(pipeline)
        if pipeline.name == name:
            return pipeline
        taken = (
            Pipeline.objects.for_org(org).filter(name__iexact=name).exclude(pk=pipeline.pk).exists()
        )
        if taken:
            raise ValidationError({"name": PIPELINE_NAME_TAKEN})
        before = pipeline.name
        pipeline.name = name
        with unique_name():
            pipeline.save(update_fields=["name", "updated_at"])
        audit(
            org=org,
            actor=actor,
            verb="pipeline.renamed",
            obj=pipeline,
            changes={"name": [before, name]},
        )
        emit_event(
            org=org,
            event_type="pipeline.renamed",
            payload={**_pipeline_payload(pipeline), "previous_name": before},
        )
    return pipeline


def pipeline_set_default(*, pipeline: Pipeline, actor: Actor, policy=None) -> Pipeline:
    """Makes `pipeline` the one new deals and the board open on."""
    require_settings_admin(policy)
    org = pipeline.org
    with transaction.atomic():
        lock_org(org)
        pipeline = lock_pipeline(pipeline)
        if pipeline.is_default:
            return pipeline
        previous = Pipeline.objects.for_org(org).filter(is_default=True).first()
        Pipeline.objects.for_org(org).filter(is_default=True).update(is_default=False)
        pipeline.is_default = True
        pipeline.save(update_fields=["is_default", "updated_at"])
        audit(
            org=org,
            actor=actor,
            verb="pipeline.default_changed",
            obj=pipeline,
            changes={"default": [previous.name if previous else None, pipeline.name]},
        )
        emit_event(
            org=org,
            event_type="pipeline.default_changed",
            payload={
                **_pipeline_payload(pipeline),
                "previous": previous.public_id if previous else None,
            },
        )
    return pipeline


def _pipeline_target(org, pipeline: Pipeline, move_to, move_to_stage) -> Stage | None:
    """Where the deals of a deleted pipeline go: the chosen stage, or the first stage of the
    chosen pipeline. Never the pipeline being deleted, never another organization's."""
    if move_to_stage is not None:
        stage = Stage.objects.for_org(org).filter(pk=move_to_stage.pk).first()
        if stage is None or stage.pipeline_id == pipeline.pk:
            raise ValidationError({"move_to": "Choose a stage of another pipeline."})
        if move_to is not None and stage.pipeline_id != move_to.pk:
            raise ValidationError({"move_to": "That stage belongs to another pipeline."})
        return stage
    if move_to is not None:
        if move_to.pk == pipeline.pk or move_to.org_id != org.pk:
            raise ValidationError({"move_to": "Choose another pipeline."})
        first = (
            Stage.objects.for_org(org).filter(pipeline_id=move_to.pk).order_by("position", "id")
        ).first()
        if first is None:
            raise ValidationError({"move_to": "That pipeline has no stage to receive deals."})
        return first
    return None


def pipeline_delete(
    *,
    pipeline: Pipeline,
    actor: Actor,
    policy=None,
    move_to: Pipeline | None = None,
    move_to_stage: Stage | None = None,
) -> int:
    """Deletes a pipeline and its stages. While deals (open, won, lost or archived) use it,
    this is refused unless `move_to` (a pipeline: its first stage) or `move_to_stage` says
    where they go. The last pipeline of an organization is never deleted; when the default
    goes, the pipeline that received its deals (or the first one left) becomes the default.
    Returns how many deals were moved."""
    require_settings_admin(policy)
    org = pipeline.org
    with transaction.atomic():
        lock_org(org)
        pipeline = lock_pipeline(pipeline)
        others = list(
            Pipeline.objects.for_org(org).exclude(pk=pipeline.pk).order_by("position", "id")
        )
        if not others:
            raise ValidationError(
                "This is the only pipeline. Create another before deleting this one.",
                code="last_pipeline",
            )
        # Lock the stages: no deal can be moved into them while they are emptied and deleted.
        list(Stage.objects.for_org(org).filter(pipeline=pipeline).select_for_update())
        deals = Deal.objects.for_org(org).filter(pipeline=pipeline)
        in_use = deals.count()
        target = _pipeline_target(org, pipeline, move_to, move_to_stage) if in_use else None
        if in_use and target is None:
            raise ValidationError(
                f"{deals_phrase(in_use)} still {'uses' if in_use == 1 else 'use'} "
                f"“{pipeline.name}” (open, won or lost). "
                "Choose a pipeline to move them to, then delete it.",
                code="in_use",
            )
        moved = 0
        if target is not None:
            moved = move_deals(org=org, deals=deals, target=target, actor=actor, now=timezone.now())
        new_default = None
        if pipeline.is_default:
            new_default = target.pipeline if target is not None else others[0]
        name, public_id = pipeline.name, pipeline.public_id
        pipeline.delete()
        if new_default is not None:
            Pipeline.objects.for_org(org).filter(pk=new_default.pk).update(is_default=True)
        changes: dict = {"name": [name, None], "moved_deals": [None, moved]}
        if target is not None:
            changes["moved_to"] = [None, f"{target.pipeline.name} → {target.name}"]
        if new_default is not None:
            changes["default"] = [name, new_default.name]
        audit(
            org=org,
            actor=actor,
            verb="pipeline.deleted",
            object_type="pipeline",
            object_id=str(public_id),
            object_repr=name,
            changes=changes,
        )
        emit_event(
            org=org,
            event_type="pipeline.deleted",
            payload={
                "pipeline": public_id,
                "name": name,
                "moved_deals": moved,
                "moved_to_pipeline": target.pipeline.public_id if target else None,
                "moved_to_stage": target.public_id if target else None,
            },
        )
    return moved
