"""Retention rules: "delete leads with no activity for 24 months", "anonymize contacts
archived more than 12 months ago".

A rule is saved disabled. Enabling it needs a preview, made just before, of how many
contacts it would affect; the count is kept on the rule and in the audit trail. Enabled
rules run nightly (compliance.tasks), each run leaving a RetentionRun report and an audit
entry. Contacts on legal hold are never touched and are counted apart.

The preview and the run select with the same function, `affected()`, so what the preview
says is what the run does (tests/compliance/test_retention.py holds them to it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from contacts.models import Contact
from crm.services import Actor, audit

from ..models import RetentionPolicy, RetentionRun
from .anonymize import anonymize_contact
from .erasure import erase_contact

MAX_MONTHS = 600
# Contacts handled per transaction by a run: a crash loses at most one chunk's work, and
# the next run picks up what is left (the selection is by state, not by a list).
RUN_CHUNK = 500
PREVIEW_SAMPLE = 5

Condition = RetentionPolicy.Condition
Action = RetentionPolicy.Action


def cutoff(months: int, now: dt.datetime | None = None) -> dt.datetime:
    """`months` calendar months before `now` (the 31st of a month with fewer days clamps)."""
    now = now or timezone.now()
    year, month = divmod(now.month - 1 - months, 12)
    year, month = now.year + year, month + 1
    day = now.day
    while True:
        try:
            return now.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def _matching(policy: RetentionPolicy, now: dt.datetime | None = None) -> QuerySet:
    """Contacts the rule's condition selects, legal hold or not."""
    limit = cutoff(policy.months, now)
    contacts = Contact.objects.for_org(policy.org_id)
    if policy.condition == Condition.NO_ACTIVITY:
        contacts = contacts.alias(last_seen=Coalesce("last_activity_at", "created_at")).filter(
            last_seen__lt=limit
        )
    elif policy.condition == Condition.ARCHIVED:
        contacts = contacts.filter(is_archived=True, archived_at__lt=limit)
    elif policy.condition == Condition.CREATED:
        contacts = contacts.filter(created_at__lt=limit)
    else:  # pragma: no cover - the model's choices hold
        raise ValueError(f"Unknown condition {policy.condition!r}.")
    if policy.lifecycle_stage:
        contacts = contacts.filter(lifecycle_stage=policy.lifecycle_stage)
    if policy.action == Action.ANONYMIZE:
        # Done once: an anonymized contact is not anonymized again every night.
        contacts = contacts.exclude(anonymized_at__isnull=False)
    return contacts


def affected(policy: RetentionPolicy, now: dt.datetime | None = None) -> QuerySet:
    """The contacts a run of `policy` would act on now: legal holds left out."""
    return _matching(policy, now).filter(legal_hold=False)


@dataclass(frozen=True)
class Preview:
    count: int
    on_hold: int
    sample: list[str]


def preview(policy: RetentionPolicy, now: dt.datetime | None = None) -> Preview:
    """How many contacts the rule would affect now, how many legal holds spare, and a few
    of their names for the admin to recognise."""
    matching = _matching(policy, now)
    on_hold = Q(legal_hold=True)
    counts = matching.aggregate(total=Count("id"), held=Count("id", filter=on_hold))
    names = [
        str(contact)
        for contact in affected(policy, now)
        .order_by("id")
        .only("first_name", "last_name", "email")[:PREVIEW_SAMPLE]
    ]
    return Preview(counts["total"] - counts["held"], counts["held"], names)


def _clean(org, data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    name = (data.get("name") or "").strip()
    if not name:
        errors["name"] = ["Give the rule a name."]
    elif len(name) > 120:
        errors["name"] = ["Keep the name under 120 characters."]
    action = data.get("action")
    if action not in Action.values:
        errors["action"] = ["Choose delete or anonymize."]
    condition = data.get("condition")
    if condition not in Condition.values:
        errors["condition"] = ["Choose a condition."]
    try:
        months = int(str(data.get("months", "")))
    except (TypeError, ValueError):
        months = 0
        errors["months"] = ["Enter a whole number of months."]
    if "months" not in errors and not 1 <= months <= MAX_MONTHS:
        errors["months"] = [f"Enter between 1 and {MAX_MONTHS} months."]
    stage = data.get("lifecycle_stage") or ""
    if stage and stage not in Contact.Stage.values:
        errors["lifecycle_stage"] = ["Choose a lifecycle stage, or every stage."]
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "action": action,
        "condition": condition,
        "months": months,
        "lifecycle_stage": stage,
    }


def _describe(policy: RetentionPolicy) -> dict:
    return {
        "name": policy.name,
        "action": policy.action,
        "condition": policy.condition,
        "months": policy.months,
        "lifecycle_stage": policy.lifecycle_stage,
        "enabled": policy.enabled,
    }


@transaction.atomic
def save_policy(
    *, org, actor: Actor, data: dict, policy: RetentionPolicy | None = None
) -> RetentionPolicy:
    """Create a rule (disabled) or change one. A change disables it again: what it would do
    has changed, so it needs a new preview before it runs."""
    values = _clean(org, data)
    creating = policy is None
    if policy is None:
        policy = RetentionPolicy(org=org, created_by=actor.user)
    before = {} if creating else _describe(policy)
    for key, value in values.items():
        setattr(policy, key, value)
    if not creating and before != {**_describe(policy), "enabled": before["enabled"]}:
        policy.enabled = False
    policy.save()
    audit(
        org=org,
        actor=actor,
        verb="retention.created" if creating else "retention.changed",
        obj=policy,
        changes={"before": before, "after": _describe(policy)},
    )
    return policy


@transaction.atomic
def enable_policy(*, policy: RetentionPolicy, actor: Actor, previewed_count: int) -> Preview:
    """Turn a rule on. `previewed_count` is the count the admin was shown; if the contacts
    it selects have changed since, the rule stays off and the new preview is returned in
    the error, so nobody enables a rule on a figure they did not see."""
    policy = RetentionPolicy.objects.for_org(policy.org_id).select_for_update().get(pk=policy.pk)
    current = preview(policy)
    if current.count != previewed_count:
        raise ValidationError(
            f"The rule now affects {current.count:,} contacts, not {previewed_count:,}: "
            "check the new preview before you turn it on."
        )
    policy.enabled = True
    policy.previewed_count = current.count
    policy.previewed_at = timezone.now()
    policy.save(update_fields=["enabled", "previewed_count", "previewed_at", "updated_at"])
    audit(
        org=policy.org,
        actor=actor,
        verb="retention.enabled",
        obj=policy,
        changes={"previewed_count": current.count, "on_hold": current.on_hold},
    )
    return current


@transaction.atomic
def disable_policy(*, policy: RetentionPolicy, actor: Actor) -> None:
    RetentionPolicy.objects.for_org(policy.org_id).filter(pk=policy.pk).update(
        enabled=False, updated_at=timezone.now()
    )
    policy.enabled = False
    audit(org=policy.org, actor=actor, verb="retention.disabled", obj=policy)


@transaction.atomic
def delete_policy(*, policy: RetentionPolicy, actor: Actor) -> None:
    audit(
        org=policy.org, actor=actor, verb="retention.deleted", obj=policy, changes=_describe(policy)
    )
    policy.delete()


def _act(policy: RetentionPolicy, contact: Contact, actor: Actor) -> None:
    if policy.action == Action.DELETE:
        erase_contact(contact=contact, actor=actor, tombstone=False)
    else:
        anonymize_contact(contact=contact, actor=actor)


def run_policy(
    policy: RetentionPolicy,
    *,
    now: dt.datetime | None = None,
    chunk: Callable[[], AbstractContextManager] = transaction.atomic,
    heartbeat: Callable[[int], bool] | None = None,
) -> RetentionRun:
    """Apply `policy` to every contact `affected()` selects at `now`, RUN_CHUNK contacts per
    `chunk()` transaction, and leave a RetentionRun report and an audit entry. `heartbeat`
    gets the count done after each chunk; False (the job was taken over) stops the run."""
    now = now or timezone.now()
    actor = Actor.system(f"Retention rule “{policy.name}”")
    with chunk():
        run = RetentionRun.objects.for_org(policy.org_id).create(
            org_id=policy.org_id, policy=policy, started_at=now
        )
        held = _matching(policy, now).filter(legal_hold=True).count()
    done, last_id, stopped = 0, 0, False
    refused: list[str] = []
    while not stopped:
        with chunk():
            batch = list(
                affected(policy, now)
                .filter(pk__gt=last_id)
                .select_for_update(skip_locked=True)
                .order_by("pk")[:RUN_CHUNK]
            )
            for contact in batch:
                try:
                    with transaction.atomic():
                        _act(policy, contact, actor)
                except ValidationError:
                    # A contact merged into this one is on legal hold: the person is kept.
                    refused.append(str(contact.public_id))
                else:
                    done += 1
        if not batch:
            break
        last_id = batch[-1].pk
        stopped = heartbeat is not None and not heartbeat(done)
    with chunk():
        run.finished_at = None if stopped else timezone.now()
        run.affected, run.skipped_on_hold = done, held
        run.report = {
            "action": policy.action,
            "condition": policy.condition,
            "months": policy.months,
            "lifecycle_stage": policy.lifecycle_stage,
            "cutoff": cutoff(policy.months, now).isoformat(),
            "affected": done,
            "skipped_on_hold": held,
            "stopped": stopped,
            # Public ids only: the report names nobody.
            "refused": refused[:100],
        }
        run.save(update_fields=["finished_at", "affected", "skipped_on_hold", "report"])
        audit(
            org=policy.org,
            actor=actor,
            verb="retention.ran",
            obj=policy,
            changes={"affected": done, "skipped_on_hold": held, "run": str(run.public_id)},
        )
    return run


def latest_runs(policy: RetentionPolicy, limit: int = 10):
    return RetentionRun.objects.for_org(policy.org_id).filter(policy=policy)[:limit]
