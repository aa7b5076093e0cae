"""To-dos (the Task model): create, update, complete, reopen, delete.

Named `todos` so it is not mistaken for a Celery module (`contacts/tasks.py`).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from crm.field_sizes import char_max_length
from crm.services import Actor, audit, diff, emit_event, snapshot

from ..models import Activity, Task
from ._base import (
    _check_member,
    _datetime_or_none,
    _org_tz,
    _require,
    _text,
    _user_of,
)
from .timeline import _log, _require_record_access

# Tasks -----------------------------------------------------------------------------------

_TASK_FIELDS = ["title", "description", "due_at", "priority", "status", "assignee"]


def _clean_task_input(org, data: dict, *, task: Task | None) -> dict:
    errors: dict[str, list] = {}
    values: dict = {}
    for key, raw in data.items():
        try:
            if key == "title":
                text = _text(raw)
                if not text:
                    raise ValidationError("A task needs a title.")
                if len(text) > char_max_length(Task, "title"):
                    raise ValidationError("Keep the title under 300 characters.")
                values[key] = text
            elif key == "description":
                values[key] = _text(raw)
            elif key == "due_at":
                values[key] = _datetime_or_none(raw, _org_tz(org))
            elif key == "priority":
                if raw not in Task.Priority.values:
                    raise ValidationError("Choose a priority.")
                values[key] = raw
            elif key == "assignee":
                if raw is not None and raw.pk != (task.assignee_id if task else None):
                    _check_member(org, raw, "Assign the task to an active member.")
                values[key] = raw
            elif key in ("contact", "company", "deal"):  # deal: pipeline.services.deal_notes
                if raw is not None and raw.org_id != org.id:
                    raise ValidationError(f"Choose a {key} of this organization.")
                values[key] = raw
            else:
                raise ValidationError(f"“{key}” is not a task field you can set.")
        except ValidationError as exc:
            errors[key] = exc.messages
    if errors:
        raise ValidationError(errors)
    return values


def _require_task(policy, task: Task, action: str) -> None:
    if policy is None:
        return
    _require(policy, "tasks", action, task.assignee_id, check_scope=True)


@transaction.atomic
def task_create(*, org, actor: Actor, data: dict, policy=None) -> Task:
    """A task, assigned to its creator unless `data` names an assignee."""
    _require(policy, "tasks", "create")
    values = _clean_task_input(org, data, task=None)
    if not values.get("title"):
        raise ValidationError({"title": ["A task needs a title."]})
    if "assignee" not in values:
        values["assignee"] = _user_of(actor)
    _require_record_access(policy, values.get("contact"), values.get("company"))
    task = Task.objects.for_org(org).create(org=org, created_by=_user_of(actor), **values)
    audit(
        org=org,
        actor=actor,
        verb="task.created",
        obj=task,
        changes=diff({}, snapshot(task, _TASK_FIELDS)),
    )
    emit_event(
        org=org,
        event_type="task.created",
        payload={
            "task": task.public_id,
            "contact": task.contact.public_id if task.contact else None,
        },
    )
    return task


@transaction.atomic
def task_update(*, task: Task, actor: Actor, data: dict, policy=None) -> Task:
    task = Task.objects.for_org(task.org_id).select_for_update().get(pk=task.pk)
    _require_task(policy, task, "edit")
    values = _clean_task_input(task.org, data, task=task)
    if "title" in data and not values.get("title"):
        raise ValidationError({"title": ["A task needs a title."]})
    before = snapshot(task, _TASK_FIELDS)
    for key, value in values.items():
        setattr(task, key, value)
    task.save()
    changes = diff(before, snapshot(task, _TASK_FIELDS))
    if changes:
        audit(org=task.org, actor=actor, verb="task.updated", obj=task, changes=changes)
        emit_event(
            org=task.org,
            event_type="task.updated",
            payload={"task": task.public_id, "fields": sorted(changes)},
        )
    return task


@transaction.atomic
def task_complete(*, task: Task, actor: Actor, policy=None) -> Task:
    task = (
        Task.objects.for_org(task.org_id)
        .select_related("contact", "company")
        .select_for_update(of=("self",))
        .get(pk=task.pk)
    )
    _require_task(policy, task, "edit")
    if task.status == Task.Status.DONE:
        return task
    before = snapshot(task, ["status"])
    task.status = Task.Status.DONE
    task.completed_at = timezone.now()
    task.save(update_fields=["status", "completed_at", "updated_at"])
    audit(
        org=task.org,
        actor=actor,
        verb="task.completed",
        obj=task,
        changes=diff(before, snapshot(task, ["status"])),
    )
    emit_event(org=task.org, event_type="task.completed", payload={"task": task.public_id})
    if task.contact_id or task.company_id:
        _log(
            task.org,
            actor,
            Activity.Type.TASK_COMPLETED,
            contact=task.contact,
            company=task.company if not task.contact_id else None,
            subject=task.title,
            data={"task": str(task.public_id)},
        )
    return task


def _completed_entries(task: Task):
    entries = Activity.objects.for_org(task.org_id).filter(
        type=Activity.Type.TASK_COMPLETED, data__task=str(task.public_id)
    )
    # The record's own index narrows the search; the JSON look-up runs on a handful of rows.
    if task.contact_id:
        return entries.filter(contact_id=task.contact_id)
    if task.company_id:
        return entries.filter(company_id=task.company_id)
    return entries.none()


@transaction.atomic
def task_reopen(*, task: Task, actor: Actor, policy=None) -> Task:
    task = Task.objects.for_org(task.org_id).select_for_update().get(pk=task.pk)
    _require_task(policy, task, "edit")
    if task.status == Task.Status.OPEN:
        return task
    before = snapshot(task, ["status"])
    task.status = Task.Status.OPEN
    task.completed_at = None
    task.save(update_fields=["status", "completed_at", "updated_at"])
    audit(
        org=task.org,
        actor=actor,
        verb="task.reopened",
        obj=task,
        changes=diff(before, snapshot(task, ["status"])),
    )
    emit_event(org=task.org, event_type="task.reopened", payload={"task": task.public_id})
    # Open again: the timeline shows it as upcoming, not as done (the audit log keeps the
    # completion).
    _completed_entries(task).delete()
    return task


@transaction.atomic
def task_delete(*, task: Task, actor: Actor, policy=None) -> None:
    task = Task.objects.for_org(task.org_id).select_for_update().get(pk=task.pk)
    _require_task(policy, task, "delete")
    audit(
        org=task.org,
        actor=actor,
        verb="task.deleted",
        obj=task,
        changes=diff(snapshot(task, _TASK_FIELDS), {}),
    )
    emit_event(org=task.org, event_type="task.deleted", payload={"task": task.public_id})
    task.delete()
