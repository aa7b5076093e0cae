"""Lead-scoring rules, the admin's writes: create, update, delete.

Each write audits, emits its event and queues a rescore of the org in the same transaction,
so a rule never changes without the scores following. The engine that turns rules into
scores (and the rescore job) is `contacts.scoring`.
"""

from __future__ import annotations

from django.db import transaction

from crm.models import BackgroundJob
from crm.services import Actor, audit, diff, emit_event

from ..models import ScoringRule
from ..scoring import start_rescore_job

RULE_FIELDS = ["name", "condition", "points", "is_active", "position"]


def _rule_state(rule: ScoringRule) -> dict:
    return {field: getattr(rule, field) for field in RULE_FIELDS}


def _require_settings_edit(policy) -> None:
    if policy is not None:
        policy.require("settings", "edit")


def scoring_rule_create(
    *, org, actor: Actor, data: dict, policy=None
) -> tuple[ScoringRule, BackgroundJob]:
    """A new rule (its condition already validated by the form) and a rescore of the org."""
    _require_settings_edit(policy)
    with transaction.atomic():
        position = ScoringRule.objects.for_org(org).count()
        rule = ScoringRule.objects.for_org(org).create(
            org=org,
            name=data["name"],
            condition=data["condition"],
            points=data["points"],
            is_active=data.get("is_active", True),
            position=position,
        )
        audit(
            org=org,
            actor=actor,
            verb="scoring_rule.created",
            obj=rule,
            changes=diff({}, _rule_state(rule)),
        )
        emit_event(org=org, event_type="scoring_rule.created", payload={"rule": rule.public_id})
        job = start_rescore_job(org, actor)
    return rule, job


def scoring_rule_update(
    *, rule: ScoringRule, actor: Actor, data: dict, policy=None
) -> tuple[ScoringRule, BackgroundJob | None]:
    _require_settings_edit(policy)
    with transaction.atomic():
        rule = ScoringRule.objects.for_org(rule.org_id).select_for_update().get(pk=rule.pk)
        before = _rule_state(rule)
        for field in ("name", "condition", "points", "is_active"):
            if field in data:
                setattr(rule, field, data[field])
        rule.save()
        changes = diff(before, _rule_state(rule))
        if not changes:
            return rule, None
        audit(org=rule.org, actor=actor, verb="scoring_rule.updated", obj=rule, changes=changes)
        emit_event(
            org=rule.org, event_type="scoring_rule.updated", payload={"rule": rule.public_id}
        )
        # A new name changes no score; anything else may.
        job = start_rescore_job(rule.org, actor) if set(changes) - {"name"} else None
    return rule, job


def scoring_rule_delete(*, rule: ScoringRule, actor: Actor, policy=None) -> BackgroundJob:
    _require_settings_edit(policy)
    org = rule.org
    with transaction.atomic():
        audit(
            org=org,
            actor=actor,
            verb="scoring_rule.deleted",
            obj=rule,
            changes=diff(_rule_state(rule), {}),
        )
        emit_event(org=org, event_type="scoring_rule.deleted", payload={"rule": rule.public_id})
        rule.delete()
        job = start_rescore_job(org, actor)
    return job
