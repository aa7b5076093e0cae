"""Settings → Pipelines: the organization's pipelines, each one's stages (name, colour, win
probability, rotting days, forecast category, order), deleting a stage or a pipeline with
the "move its deals to…" path, and the won and lost reasons.

Pages need the Settings module; every change needs Settings edit (the services check again).
Every page works with plain forms; with HTMX a stage saves in place, and the ↑/↓ buttons and
dragging (static/js/stage_order.js) re-render the stage list only.
"""

from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from crm.decorators import member_required
from crm.form_errors import add_errors
from crm.permissions import policy_for
from crm.services import Actor

from ..forms import (
    REASON_KINDS,
    PipelineCreateForm,
    PipelineDeleteForm,
    PipelineRenameForm,
    ReasonForm,
    StageDeleteForm,
    StageForm,
)
from ..models import Deal, DealReason, Pipeline, Stage
from ..services import pipelines as pipeline_services
from ..services import reasons as reason_services
from ..services import stages as stage_services
from ..services.settings_base import MAX_STAGES, deals_phrase, deals_using
from ..templates_catalog import TEMPLATES, TEMPLATES_BY_KEY

# Helpers -------------------------------------------------------------------------------------


def _actor(request) -> Actor:
    return Actor.from_request(request)


def _invalid(request) -> int:
    """The status of a page re-rendered with form errors: HTMX swaps only 2xx answers."""
    return 200 if request.htmx else 400


def _posted(request):
    """The form data of a POST (even an empty one, so the form reports what is missing)."""
    return request.POST if request.method == "POST" else None


def _get_pipeline(request, public_id) -> Pipeline:
    return get_object_or_404(Pipeline.objects.for_org(request.org), public_id=public_id)


def _get_stage(request, public_id) -> Stage:
    return get_object_or_404(
        Stage.objects.for_org(request.org).select_related("pipeline"), public_id=public_id
    )


def _get_reason(request, public_id) -> DealReason:
    return get_object_or_404(DealReason.objects.for_org(request.org), public_id=public_id)


def _detail_url(pipeline: Pipeline, anchor: str = "") -> str:
    url = reverse("pipeline:pipeline_detail", args=[pipeline.public_id])
    return f"{url}#{anchor}" if anchor else url


def _status_counts(rows) -> dict:
    """{key: {"open": n, "closed": n, "total": n}} from (key, status, n) rows."""
    counts: dict = defaultdict(lambda: {"open": 0, "won": 0, "lost": 0, "closed": 0, "total": 0})
    for key, status, n in rows:
        entry = counts[key]
        entry[status] = entry.get(status, 0) + n
        entry["total"] += n
        if status != Deal.Status.OPEN:
            entry["closed"] += n
    return counts


def _stage_prefix(stage: Stage) -> str:
    return f"stage-{stage.public_id}"


# The list ------------------------------------------------------------------------------------


@member_required("settings")
def pipeline_settings(request):
    org = request.org
    pipeline_services.ensure_default_pipeline(org)
    pipelines = list(
        Pipeline.objects.for_org(org)
        .order_by("position", "id")
        .prefetch_related(
            Prefetch("stages", queryset=Stage.objects.for_org(org).order_by("position", "id"))
        )
    )
    counts = _status_counts(
        Deal.objects.for_org(org)
        .order_by()
        .values_list("pipeline_id", "status")
        .annotate(n=Count("id"))
    )
    for pipeline in pipelines:
        pipeline.deal_counts = counts[pipeline.pk]
        template = TEMPLATES_BY_KEY.get(pipeline.template)
        pipeline.template_name = template.name if template else ""
    return render(
        request,
        "pipeline/settings/pipelines.html",
        {"pipelines": pipelines, "can_edit": policy_for(request).is_settings_admin()},
    )


@member_required("settings", "edit")
@require_http_methods(["GET", "POST"])
def pipeline_create(request):
    form = PipelineCreateForm(_posted(request))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                pipeline = pipeline_services.pipeline_create(
                    org=request.org,
                    actor=_actor(request),
                    policy=policy_for(request),
                    name=form.cleaned_data["name"],
                    template_key=form.cleaned_data["template"],
                )
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                messages.success(request, f"Pipeline “{pipeline.name}” created.")
                return redirect(_detail_url(pipeline))
        status = _invalid(request)
    chosen = form["template"].value() or form.fields["template"].initial
    return render(
        request,
        "pipeline/settings/pipeline_create.html",
        {"form": form, "templates": TEMPLATES, "chosen": chosen},
        status=status,
    )


# One pipeline --------------------------------------------------------------------------------


def _stage_rows(request, pipeline: Pipeline, bound: dict | None = None) -> list[dict]:
    """One row per stage: the stage, its form (the bound one when it was just posted with
    errors) and how many deals it holds."""
    bound = bound or {}
    stages = list(
        Stage.objects.for_org(request.org).filter(pipeline=pipeline).order_by("position", "id")
    )
    counts = _status_counts(
        Deal.objects.for_org(request.org)
        .filter(pipeline=pipeline)
        .order_by()
        .values_list("stage_id", "status")
        .annotate(n=Count("id"))
    )
    rows = []
    for index, stage in enumerate(stages):
        form = bound.get(stage.pk) or StageForm(
            initial=StageForm.initial_for(stage), prefix=_stage_prefix(stage)
        )
        rows.append(
            {
                "stage": stage,
                "form": form,
                "deals": counts[stage.pk],
                "first": index == 0,
                "last": index == len(stages) - 1,
            }
        )
    return rows


def _detail_context(request, pipeline: Pipeline, **overrides) -> dict:
    can_edit = policy_for(request).is_settings_admin()
    template = TEMPLATES_BY_KEY.get(pipeline.template)
    context = {
        "pipeline": pipeline,
        "template_name": template.name if template else "",
        "rows": _stage_rows(request, pipeline, overrides.pop("bound", None)),
        "can_edit": can_edit,
        "rename_form": PipelineRenameForm(initial={"name": pipeline.name}),
        "add_form": StageForm(prefix="new"),
        "max_stages": MAX_STAGES,
        "pipeline_count": Pipeline.objects.for_org(request.org).count(),
    }
    context.update(overrides)
    return context


def _stages_response(request, pipeline: Pipeline, *, bound: dict | None = None):
    """The stage list alone (HTMX) or the whole page."""
    context = _detail_context(request, pipeline, bound=bound)
    if request.htmx:
        return render(request, "pipeline/settings/pipeline_detail.html#stages", context)
    return render(request, "pipeline/settings/pipeline_detail.html", context)


@member_required("settings")
def pipeline_detail(request, pipeline_public_id):
    pipeline = _get_pipeline(request, pipeline_public_id)
    return render(
        request, "pipeline/settings/pipeline_detail.html", _detail_context(request, pipeline)
    )


@member_required("settings", "edit")
@require_POST
def pipeline_rename(request, pipeline_public_id):
    pipeline = _get_pipeline(request, pipeline_public_id)
    form = PipelineRenameForm(request.POST)
    if form.is_valid():
        try:
            pipeline = pipeline_services.pipeline_rename(
                pipeline=pipeline,
                actor=_actor(request),
                policy=policy_for(request),
                name=form.cleaned_data["name"],
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"Pipeline renamed to “{pipeline.name}”.")
            return redirect(_detail_url(pipeline))
    return render(
        request,
        "pipeline/settings/pipeline_detail.html",
        _detail_context(request, pipeline, rename_form=form),
        status=_invalid(request),
    )


@member_required("settings", "edit")
@require_POST
def pipeline_set_default(request, pipeline_public_id):
    pipeline = _get_pipeline(request, pipeline_public_id)
    try:
        pipeline = pipeline_services.pipeline_set_default(
            pipeline=pipeline, actor=_actor(request), policy=policy_for(request)
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("pipeline:settings")
    messages.success(request, f"“{pipeline.name}” is now the default pipeline.")
    if request.POST.get("back") == "list":
        return redirect("pipeline:settings")
    return redirect(_detail_url(pipeline))


@member_required("settings", "edit")
@require_http_methods(["GET", "POST"])
def pipeline_delete(request, pipeline_public_id):
    pipeline = _get_pipeline(request, pipeline_public_id)
    in_use = deals_using(org=request.org, pipeline=pipeline)
    form = PipelineDeleteForm(_posted(request), pipeline=pipeline)
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        target = None
        if in_use and form.is_valid():
            target = form.cleaned_data["move_to_stage"]
        if not in_use or target is not None:
            name = pipeline.name
            try:
                moved = pipeline_services.pipeline_delete(
                    pipeline=pipeline,
                    actor=_actor(request),
                    policy=policy_for(request),
                    move_to_stage=target,
                )
            except ValidationError as exc:
                problems = exc.messages
                in_use = deals_using(org=request.org, pipeline=pipeline)
            else:
                moved_text = (
                    f" Its {deals_phrase(moved)} moved to “{target.pipeline.name}” → "
                    f"“{target.name}”."
                    if moved and target is not None
                    else ""
                )
                messages.success(request, f"Pipeline “{name}” deleted.{moved_text}")
                return redirect("pipeline:settings")
        status = _invalid(request)
    counts = _status_counts(
        Deal.objects.for_org(request.org)
        .filter(pipeline=pipeline)
        .order_by()
        .values_list("pipeline_id", "status")
        .annotate(n=Count("id"))
    )[pipeline.pk]
    context = {
        "pipeline": pipeline,
        "form": form,
        "problems": problems,
        "in_use": in_use,
        "counts": counts,
        "is_last": not Pipeline.objects.for_org(request.org).exclude(pk=pipeline.pk).exists(),
    }
    return render(request, "pipeline/settings/pipeline_delete.html", context, status=status)


# Stages --------------------------------------------------------------------------------------


@member_required("settings", "edit")
@require_POST
def stage_add(request, pipeline_public_id):
    pipeline = _get_pipeline(request, pipeline_public_id)
    form = StageForm(request.POST, prefix="new")
    if form.is_valid():
        try:
            stage = stage_services.stage_add(
                pipeline=pipeline,
                actor=_actor(request),
                policy=policy_for(request),
                data=form.cleaned_data,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"Stage “{stage.name}” added.")
            return redirect(_detail_url(pipeline, f"stage-{stage.public_id}"))
    return render(
        request,
        "pipeline/settings/pipeline_detail.html",
        _detail_context(request, pipeline, add_form=form),
        status=_invalid(request),
    )


@member_required("settings", "edit")
@require_POST
def stage_update(request, stage_public_id):
    stage = _get_stage(request, stage_public_id)
    pipeline = stage.pipeline
    form = StageForm(request.POST, prefix=_stage_prefix(stage))
    saved = False
    if form.is_valid():
        try:
            stage = stage_services.stage_update(
                stage=stage,
                actor=_actor(request),
                policy=policy_for(request),
                data=form.cleaned_data,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            saved = True
            messages.success(request, f"Stage “{stage.name}” saved.")
    if saved and not request.htmx:
        return redirect(_detail_url(pipeline, f"stage-{stage.public_id}"))
    bound = None if saved else {stage.pk: form}
    if request.htmx:
        rows = _stage_rows(request, pipeline, bound)
        row = next((row for row in rows if row["stage"].pk == stage.pk), None)
        if row is None:  # deleted meanwhile
            return _stages_response(request, pipeline)
        context = {"row": row, "pipeline": pipeline, "can_edit": True}
        return render(request, "pipeline/settings/pipeline_detail.html#stage_row", context)
    return render(
        request,
        "pipeline/settings/pipeline_detail.html",
        _detail_context(request, pipeline, bound=bound),
        status=400,
    )


@member_required("settings", "edit")
@require_POST
def stage_move(request, stage_public_id):
    stage = _get_stage(request, stage_public_id)
    try:
        stage_services.stage_move(
            stage=stage,
            actor=_actor(request),
            policy=policy_for(request),
            direction=request.POST.get("direction", ""),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    if request.htmx:
        return _stages_response(request, stage.pipeline)
    return redirect(_detail_url(stage.pipeline, f"stage-{stage.public_id}"))


@member_required("settings", "edit")
@require_POST
def stage_reorder(request, pipeline_public_id):
    pipeline = _get_pipeline(request, pipeline_public_id)
    try:
        stage_services.stage_reorder(
            pipeline=pipeline,
            actor=_actor(request),
            policy=policy_for(request),
            ordered_public_ids=request.POST.getlist("order"),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Stage order saved.")
    if request.htmx:
        return _stages_response(request, pipeline)
    return redirect(_detail_url(pipeline, "stages"))


@member_required("settings", "edit")
@require_http_methods(["GET", "POST"])
def stage_delete(request, stage_public_id):
    stage = _get_stage(request, stage_public_id)
    pipeline = stage.pipeline
    in_use = deals_using(org=request.org, stage=stage)
    form = StageDeleteForm(_posted(request), stage=stage)
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        target = None
        if in_use and form.is_valid():
            target = form.cleaned_data["move_to_stage"]
        if not in_use or target is not None:
            name = stage.name
            try:
                moved = stage_services.stage_delete(
                    stage=stage,
                    actor=_actor(request),
                    policy=policy_for(request),
                    move_to_stage=target,
                )
            except ValidationError as exc:
                problems = exc.messages
                in_use = deals_using(org=request.org, stage=stage)
            else:
                moved_text = (
                    f" Its {deals_phrase(moved)} moved to “{target.name}”."
                    if moved and target is not None
                    else ""
                )
                messages.success(request, f"Stage “{name}” deleted.{moved_text}")
                return redirect(_detail_url(pipeline, "stages"))
        status = _invalid(request)
    counts = _status_counts(
        Deal.objects.for_org(request.org)
        .filter(stage=stage)
        .order_by()
        .values_list("stage_id", "status")
        .annotate(n=Count("id"))
    )[stage.pk]
    context = {
        "stage": stage,
        "pipeline": pipeline,
        "form": form,
        "problems": problems,
        "in_use": in_use,
        "counts": counts,
        "is_last": not Stage.objects.for_org(request.org)
        .filter(pipeline=pipeline)
        .exclude(pk=stage.pk)
        .exists(),
    }
    return render(request, "pipeline/settings/stage_delete.html", context, status=status)


# Won and lost reasons ------------------------------------------------------------------------


def _reason_sections(request, bound: dict | None = None) -> list[dict]:
    bound = bound or {}
    reasons = list(DealReason.objects.for_org(request.org).order_by("kind", "position", "id"))
    return [
        {
            "kind": kind,
            "title": title,
            "help": help_text,
            "reasons": [reason for reason in reasons if reason.kind == kind],
            "form": bound.get(kind) or ReasonForm(prefix=kind),
        }
        for kind, title, help_text in REASON_KINDS
    ]


@member_required("settings")
@require_http_methods(["GET", "POST"])
def reasons(request):
    if request.method == "POST":
        policy = policy_for(request)
        policy.require("settings", "edit")
        kind = request.POST.get("kind", "")
        if kind not in DealReason.Kind.values:
            messages.error(request, "Choose the won or the lost list.")
            return redirect("pipeline:reasons")
        form = ReasonForm(request.POST, prefix=kind)
        if form.is_valid():
            try:
                reason = reason_services.reason_create(
                    org=request.org,
                    actor=_actor(request),
                    policy=policy,
                    kind=kind,
                    name=form.cleaned_data["name"],
                )
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                messages.success(request, f"Reason “{reason.name}” added.")
                return redirect(f"{reverse('pipeline:reasons')}#{kind}-reasons")
        context = {
            "sections": _reason_sections(request, {kind: form}),
            "can_edit": True,
        }
        return render(request, "pipeline/settings/reasons.html", context, status=_invalid(request))
    context = {
        "sections": _reason_sections(request),
        "can_edit": policy_for(request).is_settings_admin(),
    }
    return render(request, "pipeline/settings/reasons.html", context)


@member_required("settings", "edit")
@require_http_methods(["GET", "POST"])
def reason_update(request, deal_reason_public_id):
    reason = _get_reason(request, deal_reason_public_id)
    form = ReasonForm(_posted(request), initial={"name": reason.name})
    if request.method == "POST":
        if form.is_valid():
            try:
                reason = reason_services.reason_update(
                    reason=reason,
                    actor=_actor(request),
                    policy=policy_for(request),
                    name=form.cleaned_data["name"],
                )
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                messages.success(request, f"Reason “{reason.name}” saved.")
                return redirect(f"{reverse('pipeline:reasons')}#{reason.kind}-reasons")
        return render(
            request,
            "pipeline/settings/reason_form.html",
            {"reason": reason, "form": form},
            status=_invalid(request),
        )
    return render(request, "pipeline/settings/reason_form.html", {"reason": reason, "form": form})


def _set_reason_active(request, public_id, *, active: bool) -> HttpResponse:
    reason = _get_reason(request, public_id)
    change = reason_services.reason_reactivate if active else reason_services.reason_deactivate
    try:
        reason = change(reason=reason, actor=_actor(request), policy=policy_for(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("pipeline:reasons")
    if active:
        messages.success(request, f"“{reason.name}” is offered again when deals close.")
    else:
        messages.success(
            request,
            f"“{reason.name}” is turned off: it is no longer offered, and deals closed with it "
            "keep it.",
        )
    return redirect(f"{reverse('pipeline:reasons')}#{reason.kind}-reasons")


@member_required("settings", "edit")
@require_POST
def reason_deactivate(request, deal_reason_public_id):
    return _set_reason_active(request, deal_reason_public_id, active=False)


@member_required("settings", "edit")
@require_POST
def reason_reactivate(request, deal_reason_public_id):
    return _set_reason_active(request, deal_reason_public_id, active=True)
