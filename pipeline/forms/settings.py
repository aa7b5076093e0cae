"""Forms of Settings → Pipelines: a new pipeline (name and template), a pipeline's name, a
stage's settings, where the deals of a deleted stage or pipeline go, and a won/lost reason.

Forms only shape the input; the services in pipeline.services.pipelines check it again and
do the writing. The choices of a target stage are built from the organization's own rows, so
a forged value is a form error, never another organization's stage.
"""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from ..models import DealReason, Pipeline, Stage
from ..services.settings_base import PIPELINE_NAME_MAX, REASON_NAME_MAX, STAGE_NAME_MAX
from ..services.stages import DEFAULT_STAGE_COLOR, MAX_ROTTING_DAYS, STAGE_FORECAST_CATEGORIES
from ..templates_catalog import DEFAULT_TEMPLATE_KEY, template_choices

COLOR_VALIDATOR = RegexValidator(
    r"^#[0-9a-fA-F]{6}\Z", "Use a colour like #3b82f6 (# and six hexadecimal digits)."
)


class PipelineCreateForm(forms.Form):
    name = forms.CharField(max_length=PIPELINE_NAME_MAX, label="Pipeline name")
    template = forms.ChoiceField(
        choices=template_choices(),
        initial=DEFAULT_TEMPLATE_KEY,
        widget=forms.RadioSelect,
        label="Start from",
    )


class PipelineRenameForm(forms.Form):
    name = forms.CharField(max_length=PIPELINE_NAME_MAX, label="Pipeline name")


class StageForm(forms.Form):
    """One stage's settings. Several are on one page, each with its own prefix."""

    name = forms.CharField(max_length=STAGE_NAME_MAX, label="Name")
    color = forms.CharField(
        max_length=7,
        initial=DEFAULT_STAGE_COLOR,
        label="Colour",
        validators=[COLOR_VALIDATOR],
        widget=forms.TextInput(attrs={"type": "color"}),
    )
    probability = forms.IntegerField(
        min_value=0,
        max_value=100,
        initial=10,
        label="Win probability (%)",
        widget=forms.NumberInput(attrs={"step": 1}),
    )
    rotting_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_ROTTING_DAYS,
        required=False,
        label="Rotting after (days)",
        help_text="Empty: deals in this stage are never flagged.",
        widget=forms.NumberInput(attrs={"step": 1, "placeholder": "Never"}),
    )
    forecast_category = forms.ChoiceField(
        choices=STAGE_FORECAST_CATEGORIES, initial="pipeline", label="Forecast category"
    )

    @classmethod
    def initial_for(cls, stage: Stage) -> dict:
        return {
            "name": stage.name,
            "color": stage.color,
            "probability": stage.probability,
            "rotting_days": stage.rotting_days,
            "forecast_category": stage.forecast_category,
        }


class StageDeleteForm(forms.Form):
    """Where the deals of a stage being deleted go: another stage of its pipeline."""

    move_to_stage = forms.ModelChoiceField(
        queryset=Stage.objects.for_org(None),  # set per stage in __init__
        to_field_name="public_id",
        empty_label="Choose a stage…",
        label="Move its deals to",
    )

    def __init__(self, *args, stage: Stage, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["move_to_stage"].queryset = (
            Stage.objects.for_org(stage.org_id)
            .filter(pipeline_id=stage.pipeline_id)
            .exclude(pk=stage.pk)
            .order_by("position", "id")
        )


class PipelineDeleteForm(forms.Form):
    """Where the deals of a pipeline being deleted go: any stage of another pipeline, the
    stages grouped by pipeline."""

    move_to_stage = forms.ChoiceField(label="Move its deals to")

    def __init__(self, *args, pipeline: Pipeline, **kwargs):
        super().__init__(*args, **kwargs)
        stages = (
            Stage.objects.for_org(pipeline.org_id)
            .exclude(pipeline_id=pipeline.pk)
            .select_related("pipeline")
            .order_by("pipeline__position", "pipeline_id", "position", "id")
        )
        self.stages = {str(stage.public_id): stage for stage in stages}
        groups: dict[int, tuple[str, list]] = {}
        for key, stage in self.stages.items():
            groups.setdefault(stage.pipeline_id, (stage.pipeline.name, []))[1].append(
                (key, stage.name)
            )
        self.fields["move_to_stage"].choices = [("", "Choose a stage…"), *groups.values()]

    def clean_move_to_stage(self) -> Stage:
        stage = self.stages.get(self.cleaned_data["move_to_stage"])
        if stage is None:
            raise forms.ValidationError("Choose a stage of another pipeline.")
        return stage


class ReasonForm(forms.Form):
    name = forms.CharField(max_length=REASON_NAME_MAX, label="Reason")


REASON_KINDS = [
    (DealReason.Kind.WON, "Won reasons", "Offered when a deal is marked won."),
    (DealReason.Kind.LOST, "Lost reasons", "Offered when a deal is marked lost."),
]
