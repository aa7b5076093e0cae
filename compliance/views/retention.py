"""Compliance → Retention: rules that delete or anonymize contacts after a time, each
previewed before it is turned on, and the reports of their runs."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from contacts.models import Contact
from contacts.views.common import actor, workspace_view
from crm.permissions import policy_for

from ..jobs import start_retention_job
from ..models import RetentionPolicy, RetentionRun
from ..services import retention

LIST_TEMPLATE = "compliance/retention/list.html"
DETAIL_TEMPLATE = "compliance/retention/detail.html"


class RuleForm(forms.Form):
    name = forms.CharField(max_length=120, label="Name")
    action = forms.ChoiceField(choices=RetentionPolicy.Action.choices, label="Action")
    condition = forms.ChoiceField(choices=RetentionPolicy.Condition.choices, label="When")
    months = forms.IntegerField(
        min_value=1, max_value=retention.MAX_MONTHS, label="Months", initial=24
    )
    lifecycle_stage = forms.ChoiceField(
        choices=[("", "Every stage"), *Contact.Stage.choices],
        required=False,
        label="Only contacts at the stage",
    )

    def add_service_errors(self, exc: ValidationError) -> None:
        if hasattr(exc, "error_dict"):
            for name, messages in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, messages)
        else:
            self.add_error(None, exc.messages)


def _get_rule(request, public_id) -> RetentionPolicy:
    return get_object_or_404(RetentionPolicy.objects.for_org(request.org), public_id=public_id)


def _list_context(request, form=None) -> dict:
    rules = list(RetentionPolicy.objects.for_org(request.org).order_by("name", "id"))
    last_runs = {}
    for run in RetentionRun.objects.for_org(request.org).order_by("policy_id", "-started_at"):
        last_runs.setdefault(run.policy_id, run)
    return {
        "rules": [(rule, last_runs.get(rule.pk)) for rule in rules],
        "form": form or RuleForm(),
        "policy": policy_for(request),
    }


@workspace_view("compliance")
def retention_list(request):
    form = None
    if request.method == "POST":
        policy_for(request).require("compliance", "create")
        form = RuleForm(request.POST)
        if form.is_valid():
            try:
                rule = retention.save_policy(
                    org=request.org, actor=actor(request), data=form.cleaned_data
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                return redirect("compliance:retention_detail", public_id=rule.public_id)
    return render(request, LIST_TEMPLATE, _list_context(request, form), status=400 if form else 200)


def _detail_context(request, rule: RetentionPolicy, **extra) -> dict:
    initial = {
        "name": rule.name,
        "action": rule.action,
        "condition": rule.condition,
        "months": rule.months,
        "lifecycle_stage": rule.lifecycle_stage,
    }
    return {
        "rule": rule,
        "form": extra.pop("form", None) or RuleForm(initial=initial),
        "runs": retention.latest_runs(rule),
        "policy": policy_for(request),
        **extra,
    }


@workspace_view("compliance")
def retention_detail(request, public_id):
    rule = _get_rule(request, public_id)
    if request.method == "POST":
        policy_for(request).require("compliance", "edit")
        form = RuleForm(request.POST)
        if form.is_valid():
            try:
                retention.save_policy(
                    org=request.org, actor=actor(request), data=form.cleaned_data, policy=rule
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                return redirect("compliance:retention_detail", public_id=rule.public_id)
        return render(
            request, DETAIL_TEMPLATE, _detail_context(request, rule, form=form), status=400
        )
    return render(request, DETAIL_TEMPLATE, _detail_context(request, rule))


@workspace_view("compliance")
def retention_preview(request, public_id):
    rule = _get_rule(request, public_id)
    context = _detail_context(request, rule, preview=retention.preview(rule))
    if request.htmx:
        return render(request, f"{DETAIL_TEMPLATE}#preview", context)
    return render(request, DETAIL_TEMPLATE, context)


@require_POST
@workspace_view("compliance", "edit")
def retention_enable(request, public_id):
    rule = _get_rule(request, public_id)
    try:
        shown = int(request.POST.get("previewed_count", ""))
    except ValueError:
        shown = -1
    try:
        retention.enable_policy(policy=rule, actor=actor(request), previewed_count=shown)
    except ValidationError as exc:
        context = _detail_context(
            request, rule, preview=retention.preview(rule), enable_error=" ".join(exc.messages)
        )
        return render(request, DETAIL_TEMPLATE, context, status=409 if shown >= 0 else 400)
    return redirect("compliance:retention_detail", public_id=rule.public_id)


@require_POST
@workspace_view("compliance", "edit")
def retention_disable(request, public_id):
    rule = _get_rule(request, public_id)
    retention.disable_policy(policy=rule, actor=actor(request))
    return redirect("compliance:retention_detail", public_id=rule.public_id)


@require_POST
@workspace_view("compliance", "edit")
def retention_run(request, public_id):
    rule = _get_rule(request, public_id)
    if not rule.enabled:
        context = _detail_context(request, rule, enable_error="Turn the rule on before it runs.")
        return render(request, DETAIL_TEMPLATE, context, status=400)
    job = start_retention_job(request.org, actor(request), policy_ids=[rule.pk])
    return redirect("crm:job_progress", public_id=job.public_id)


@require_POST
@workspace_view("compliance", "delete")
def retention_delete(request, public_id):
    rule = _get_rule(request, public_id)
    retention.delete_policy(policy=rule, actor=actor(request))
    return redirect("compliance:retention")
