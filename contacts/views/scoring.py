"""Settings → Lead scoring: the rules (one filter condition → points each), and a contact's
"Why 72?" reasons for the record page."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from crm.models import BackgroundJob
from crm.permissions import policy_for
from crm.views.jobs import may_follow

from .. import services
from ..fields import contact_field_catalog
from ..filters import (
    OPERATORS,
    VALUELESS_OPS,
    FilterError,
    allowed_ops,
    builder_schema,
    describe_condition,
    parse_condition,
)
from ..models import ScoringRule
from ..scoring import latest_rescore_job, score_reasons, start_rescore_job
from ..selectors import visible_catalog
from .common import actor, get_contact, workspace_view

PAGE = "contacts/scoring.html"


class ScoringRuleForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Shown as the reason, e.g. “Senior title”.")
    field = forms.ChoiceField(label="When")
    op = forms.ChoiceField(label="Condition", choices=list(OPERATORS.items()))
    value = forms.CharField(
        required=False,
        max_length=1000,
        help_text="For “is any of”, separate values with commas. Dates like 2026-05-31.",
    )
    points = forms.IntegerField(
        min_value=-100,
        max_value=100,
        help_text="From −100 to 100. The total is kept between 0 and 100.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args, catalog, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalog = {spec.key: spec for spec in catalog}
        schema = builder_schema(catalog)
        self.schema = schema
        self.fields["field"].choices = [(item["key"], item["label"]) for item in schema["fields"]]

    @classmethod
    def initial_for(cls, rule: ScoringRule) -> dict:
        condition = rule.condition or {}
        value = condition.get("value")
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        return {
            "name": rule.name,
            "field": condition.get("field"),
            "op": condition.get("op"),
            "value": "" if value is None else value,
            "points": rule.points,
            "is_active": rule.is_active,
        }

    def clean(self):
        cleaned = super().clean()
        field, op = cleaned.get("field"), cleaned.get("op")
        if not field or not op:
            return cleaned
        spec = self.catalog.get(field)
        if spec is not None and op not in allowed_ops(spec):
            names = ", ".join(OPERATORS[name] for name in allowed_ops(spec))
            self.add_error("op", f"“{spec.label}” can use: {names}.")
            return cleaned
        raw = (cleaned.get("value") or "").strip()
        if op in VALUELESS_OPS:
            value = None
        elif op == "any_of":
            value = [part.strip() for part in raw.split(",") if part.strip()]
        else:
            value = raw
        try:
            cleaned["condition"] = parse_condition(
                {"field": field, "op": op, "value": value}, self.catalog
            )
        except FilterError as exc:
            self.add_error("value", exc.message)
        return cleaned


def _catalog(request):
    return visible_catalog(request.org, policy_for(request), contact_field_catalog(request.org))


def _rules(request, catalog):
    rules = list(ScoringRule.objects.for_org(request.org).order_by("position", "id"))
    for rule in rules:
        try:
            rule.description = describe_condition(rule.condition, catalog)
        except (KeyError, TypeError):
            rule.description = "A condition on a field that no longer exists"
    return rules


def _page(request, form, *, status=200, editing=None):
    catalog = _catalog(request)
    context = {
        "rules": _rules(request, catalog),
        "form": form,
        "editing": editing,
        "schema": form.schema,
        "job": _followed(request, latest_rescore_job(request.org)),
        "can_edit": policy_for(request).can("settings", "edit"),
    }
    return render(request, PAGE, context, status=status)


def _followed(request, job: BackgroundJob | None) -> BackgroundJob | None:
    """The job if this member may follow its progress (its page would be a 404 otherwise)."""
    return job if job is not None and may_follow(request, job) else None


def _job_message(request, job: BackgroundJob | None) -> None:
    if job is not None:
        messages.info(request, "Lead scores are being recomputed in the background.")


@require_http_methods(["GET", "POST"])
@workspace_view("settings", "view")
def scoring(request):
    catalog = _catalog(request)
    if request.method == "POST":
        policy_for(request).require("settings", "edit")
        form = ScoringRuleForm(request.POST, catalog=catalog)
        if not form.is_valid():
            return _page(request, form, status=400 if not request.htmx else 200)
        rule, job = services.scoring_rule_create(
            org=request.org,
            actor=actor(request),
            data=form.cleaned_data,
            policy=policy_for(request),
        )
        messages.success(request, f"Rule “{rule.name}” added.")
        _job_message(request, job)
        return redirect("contacts:scoring")
    return _page(
        request, ScoringRuleForm(catalog=catalog, initial={"is_active": True, "points": 10})
    )


@require_http_methods(["GET", "POST"])
@workspace_view("settings", "view")
def scoring_rule_edit(request, public_id):
    rule = get_object_or_404(ScoringRule.objects.for_org(request.org), public_id=public_id)
    policy = policy_for(request)
    policy.require("settings", "edit")
    catalog = _catalog(request)
    if request.method == "POST":
        form = ScoringRuleForm(request.POST, catalog=catalog)
        if not form.is_valid():
            return _page(request, form, status=400 if not request.htmx else 200, editing=rule)
        rule, job = services.scoring_rule_update(
            rule=rule, actor=actor(request), data=form.cleaned_data, policy=policy
        )
        messages.success(request, f"Rule “{rule.name}” saved.")
        _job_message(request, job)
        return redirect("contacts:scoring")
    form = ScoringRuleForm(catalog=catalog, initial=ScoringRuleForm.initial_for(rule))
    return _page(request, form, editing=rule)


@require_POST
@workspace_view("settings", "edit")
def scoring_rule_delete(request, public_id):
    rule = get_object_or_404(ScoringRule.objects.for_org(request.org), public_id=public_id)
    name = rule.name
    job = services.scoring_rule_delete(rule=rule, actor=actor(request), policy=policy_for(request))
    messages.success(request, f"Rule “{name}” deleted.")
    _job_message(request, job)
    return redirect("contacts:scoring")


@require_POST
@workspace_view("settings", "edit")
def scoring_rescore(request):
    start_rescore_job(request.org, actor(request))
    messages.info(request, "Lead scores are being recomputed in the background.")
    return redirect("contacts:scoring")


@require_http_methods(["GET"])
@workspace_view("contacts", "view")
def contact_score_reasons(request, public_id):
    """The rules behind one contact's score (the record page loads this when opened)."""
    contact = get_contact(request, public_id)
    policy = policy_for(request)
    if not policy.can_see_field("lead_score"):
        raise PermissionDenied("Your role may not see lead scores.")
    reasons = score_reasons(contact, policy)
    context = {
        "contact": contact,
        "reasons": reasons,
        "total": sum(reason.points for reason in reasons),
    }
    if request.htmx:
        return render(request, "contacts/partials/score_reasons.html", context)
    return render(request, "contacts/scoring_reasons.html", context)
