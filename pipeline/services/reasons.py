"""Settings → Pipelines → Won and lost reasons: the organization's two lists of reasons
offered when a deal is closed. Reasons are turned off rather than deleted, so deals closed with
one keep it. A name is unique within its list whatever its case.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from crm.services import Actor, audit, emit_event

from ..models import DealReason
from .settings_base import (
    MAX_REASONS_PER_KIND,
    REASON_NAME_MAX,
    REASON_NAME_TAKEN,
    clean_name,
    lock_org,
    require_settings_admin,
    unique_name,
)


def _clean_kind(kind) -> str:
    if kind not in DealReason.Kind.values:
        raise ValidationError({"kind": "Choose won or lost."})
    return kind


def _reason_taken(org, kind: str, name: str, exclude_pk=None) -> DealReason | None:
    found = DealReason.objects.for_org(org).filter(kind=kind, name__iexact=name)
    if exclude_pk is not None:
        found = found.exclude(pk=exclude_pk)
    return found.first()


def _taken_message(reason: DealReason) -> str:
    if not reason.is_active:
        return "A turned-off reason already has this name: turn it back on instead."
    return REASON_NAME_TAKEN


def _lock_reason(reason: DealReason) -> DealReason:
    found = DealReason.objects.for_org(reason.org_id).select_for_update().filter(pk=reason.pk)
    locked = found.first()
    if locked is None:
        raise ValidationError("This reason was deleted meanwhile.", code="gone")
    return locked


def reason_create(*, org, actor: Actor, policy=None, kind: str, name: str) -> DealReason:
    """A new reason at the end of the won or the lost list."""
    require_settings_admin(policy)
    kind = _clean_kind(kind)
    name = clean_name(name, max_length=REASON_NAME_MAX, what="reason")
    with transaction.atomic():
        lock_org(org)
        reasons = DealReason.objects.for_org(org).filter(kind=kind)
        if reasons.count() >= MAX_REASONS_PER_KIND:
            raise ValidationError(
                f"A list can have up to {MAX_REASONS_PER_KIND} reasons. Turn one off or rename "
                "it instead.",
                code="limit",
            )
        existing = _reason_taken(org, kind, name)
        if existing is not None:
            raise ValidationError({"name": _taken_message(existing)})
        position = (reasons.aggregate(top=Max("position"))["top"] or 0) + 1
        with unique_name():
            reason = DealReason.objects.for_org(org).create(
                org=org, kind=kind, name=name, position=position
            )
        audit(
            org=org,
            actor=actor,
            verb="deal_reason.created",
            obj=reason,
            changes={"kind": [None, kind], "name": [None, name]},
        )
        emit_event(
            org=org,
            event_type="deal_reason.created",
            payload={"reason": reason.public_id, "kind": kind, "name": name},
        )
    return reason


def reason_update(*, reason: DealReason, actor: Actor, policy=None, name: str) -> DealReason:
    """Renames a reason. Deals closed with it show the new name: they point at the reason."""
    require_settings_admin(policy)
    name = clean_name(name, max_length=REASON_NAME_MAX, what="reason")
    org = reason.org
    with transaction.atomic():
        reason = _lock_reason(reason)
        if reason.name == name:
            return reason
        existing = _reason_taken(org, reason.kind, name, exclude_pk=reason.pk)
        if existing is not None:
            raise ValidationError({"name": _taken_message(existing)})
        before = reason.name
        reason.name = name
        with unique_name():
            reason.save(update_fields=["name"])
        audit(
            org=org,
            actor=actor,
            verb="deal_reason.updated",
            obj=reason,
            changes={"name": [before, name]},
        )
        emit_event(
            org=org,
            event_type="deal_reason.updated",
            payload={"reason": reason.public_id, "kind": reason.kind, "name": name},
        )
    return reason


def _reason_set_active(*, reason: DealReason, actor: Actor, policy, active: bool) -> DealReason:
    require_settings_admin(policy)
    org = reason.org
    verb = "deal_reason.reactivated" if active else "deal_reason.deactivated"
    with transaction.atomic():
        reason = _lock_reason(reason)
        if reason.is_active == active:
            return reason
        reason.is_active = active
        reason.save(update_fields=["is_active"])
        audit(org=org, actor=actor, verb=verb, obj=reason, changes={"active": [not active, active]})
        emit_event(
            org=org,
            event_type=verb,
            payload={"reason": reason.public_id, "kind": reason.kind, "name": reason.name},
        )
    return reason


def reason_deactivate(*, reason: DealReason, actor: Actor, policy=None) -> DealReason:
    """Takes a reason off the list offered when closing a deal. Deals closed with it keep it."""
    return _reason_set_active(reason=reason, actor=actor, policy=policy, active=False)


def reason_reactivate(*, reason: DealReason, actor: Actor, policy=None) -> DealReason:
    return _reason_set_active(reason=reason, actor=actor, policy=policy, active=True)
