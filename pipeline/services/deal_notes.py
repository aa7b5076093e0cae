"""Notes and tasks on a deal.

A deal's note is a contacts Note with `deal` set (and no contact or company of its own): the
deal page's Notes tab lists it, and its timeline entry goes through deals.timeline(), so it
also shows on the timelines of the deal's contacts and company, like every deal event.

Writing a note needs the pipeline edit right on the deal (record scope included); changing
or deleting one is for its author, or for a member who edits every deal (scope "all"), as
contact notes are for their author or a contact admin.

A deal's task is a contacts Task with `deal` set, written by contacts.services.task_create
(the tasks module's rights apply); this module only checks that the member may see the deal.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from contacts.models import Activity, Note, Task
from contacts.services.todos import task_create
from crm.services import Actor, audit, diff, emit_event, snapshot

from ..models import Deal
from .deals import require, timeline

BODY_MAX = 20000


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def _body(raw) -> str:
    body = str(raw or "").strip()
    if not body:
        raise ValidationError({"body": ["A note needs some text."]})
    if len(body) > BODY_MAX:
        raise ValidationError({"body": [f"Keep a note to {BODY_MAX:,} characters."]})
    return body


def _subject(body: str) -> str:
    return body.splitlines()[0][:120] if body else ""


def _entries(note: Note):
    return Activity.objects.for_org(note.org_id).filter(
        deal_id=note.deal_id, type=Activity.Type.NOTE, data__note=str(note.public_id)
    )


def is_deal_admin(policy) -> bool:
    return policy is None or (policy.can("pipeline", "edit") and policy.scope("pipeline") == "all")


def may_change_note(policy, note: Note, user) -> bool:
    if policy is None:
        return True
    return note.author_id == getattr(user, "pk", None) or is_deal_admin(policy)


@transaction.atomic
def deal_note_create(*, deal: Deal, actor: Actor, body: str, policy=None) -> Note:
    require(policy, "edit", deal)
    body = _body(body)
    org = deal.org
    note = Note.objects.for_org(org).create(org=org, deal=deal, author=_user_of(actor), body=body)
    audit(org=org, actor=actor, verb="note.created", obj=note, changes={"body": [None, body]})
    emit_event(
        org=org,
        event_type="note.created",
        payload={"note": note.public_id, "deal": deal.public_id, "contact": None, "company": None},
    )
    timeline(
        org, actor, deal, Activity.Type.NOTE, _subject(body), data={"note": str(note.public_id)}
    )
    _entries(note).update(body=body)
    return note


def _locked(note: Note) -> Note:
    return (
        Note.objects.for_org(note.org_id)
        .select_for_update(of=("self",))
        .select_related("deal")
        .get(pk=note.pk, deal__isnull=False)
    )


def _deal_of(note: Note) -> Deal:
    if note.deal is None:  # _locked() only finds notes of a deal
        raise ValidationError("This note is not on a deal.")
    return note.deal


def _may_change(policy, actor, note: Note) -> None:
    require(policy, "edit", _deal_of(note))
    if not may_change_note(policy, note, _user_of(actor)):
        raise PermissionDenied(
            "Only the note's author, or a member who edits every deal, can change it."
        )


@transaction.atomic
def deal_note_update(*, note: Note, actor: Actor, body: str, policy=None) -> Note:
    note = _locked(note)
    _may_change(policy, actor, note)
    body = _body(body)
    before = snapshot(note, ["body"])
    note.body = body
    note.save(update_fields=["body", "updated_at"])
    changes = diff(before, snapshot(note, ["body"]))
    if changes:
        _entries(note).update(subject=_subject(body), body=body)
        audit(org=note.org, actor=actor, verb="note.updated", obj=note, changes=changes)
        emit_event(
            org=note.org,
            event_type="note.updated",
            payload={"note": note.public_id, "deal": _deal_of(note).public_id},
        )
    return note


@transaction.atomic
def deal_note_delete(*, note: Note, actor: Actor, policy=None) -> None:
    note = _locked(note)
    _may_change(policy, actor, note)
    audit(
        org=note.org,
        actor=actor,
        verb="note.deleted",
        obj=note,
        changes={"body": [note.body, None]},
    )
    emit_event(
        org=note.org,
        event_type="note.deleted",
        payload={"note": note.public_id, "deal": _deal_of(note).public_id},
    )
    _entries(note).delete()
    note.delete()


def deal_task_create(*, deal: Deal, actor: Actor, data: dict, policy=None) -> Task:
    """A task on the deal (title, due_at, priority, assignee, description)."""
    require(policy, "view", deal)
    allowed = {"title", "due_at", "priority", "assignee", "description"}
    values = {key: value for key, value in data.items() if key in allowed}
    return task_create(org=deal.org, actor=actor, data={**values, "deal": deal}, policy=policy)
