"""The timeline (Activity), quick-log and notes."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from crm.services import Actor, audit, diff, emit_event, snapshot

from ..custom_fields import display_custom_value
from ..models import Activity, Company, Contact, Note
from ..timeline import BOOKKEEPING_TYPES
from ._base import (
    CONTACTED_TYPES,
    QUICK_LOG_TYPES,
    _is_contact_admin,
    _require,
    _user_of,
)


def _log(
    org,
    actor,
    type_,
    *,
    contact=None,
    company=None,
    subject="",
    body="",
    data=None,
    occurred_at=None,
):
    return activity_log(
        org=org,
        actor=actor,
        type=type_,
        contact=contact,
        company=company,
        subject=subject,
        body=body,
        data=data,
        occurred_at=occurred_at,
        record=False,
    )


# Timeline --------------------------------------------------------------------------------


def _latest(field: str, moment):
    return Greatest(Coalesce(F(field), moment), moment)


def activity_log(
    *,
    org,
    actor: Actor,
    type: str,
    contact: Contact | None = None,
    company: Company | None = None,
    subject: str = "",
    body: str = "",
    occurred_at: dt.datetime | None = None,
    data: dict | None = None,
    record: bool = True,
) -> Activity:
    """Add an entry to a contact's (and/or company's) timeline and keep the contact's
    last activity / last contacted dates current.

    Other services call this with record=False because they audit the change itself;
    a logged call, meeting or note (record=True) gets its own audit entry and event."""
    if contact is None and company is None:
        raise ValidationError("An activity belongs to a contact or a company.")
    if type not in Activity.Type.values:
        raise ValidationError(f"“{type}” is not a timeline entry type.")
    for obj in (contact, company):
        if obj is not None and obj.org_id != org.id:
            raise ValidationError("The activity and its record must be in one organization.")
    occurred_at = occurred_at or timezone.now()
    with transaction.atomic():
        activity = Activity.objects.for_org(org).create(
            org=org,
            type=type,
            contact=contact,
            company=company,
            actor=_user_of(actor),
            subject=(subject or "")[: Activity._meta.get_field("subject").max_length],
            body=body or "",
            data=data or {},
            occurred_at=occurred_at,
        )
        if contact is not None and type not in BOOKKEEPING_TYPES:
            # GREATEST in SQL: an older entry logged late never moves the dates back.
            updates = {"last_activity_at": _latest("last_activity_at", occurred_at)}
            if type in CONTACTED_TYPES:
                updates["last_contacted_at"] = _latest("last_contacted_at", occurred_at)
            Contact.objects.for_org(contact.org_id).filter(pk=contact.pk).update(**updates)
            contact.refresh_from_db(fields=list(updates))
        if record:
            target = contact or company
            audit(
                org=org,
                actor=actor,
                verb="activity.logged",
                obj=target,
                changes={"type": [None, type], "subject": [None, activity.subject]},
            )
            emit_event(
                org=org,
                event_type="activity.logged",
                payload={
                    "activity": activity.public_id,
                    "type": type,
                    "contact": contact.public_id if contact else None,
                    "company": company.public_id if company else None,
                },
            )
    return activity


# Field changes ---------------------------------------------------------------------------

# Consecutive changes by one person this close together are one entry ("a burst"); a burst
# never spans more than BURST_SPAN, so a long editing session still reads as steps.
BURST_GAP = dt.timedelta(minutes=5)
BURST_SPAN = dt.timedelta(minutes=30)
# Contact fields whose changes have an entry type of their own (stage, owner, archive).
FIELDS_WITH_OWN_ENTRY = frozenset({"owner", "lifecycle_stage", "is_archived"})
MAX_CHANGE_CHARS = 300


def _change_value(spec, value):
    """What the timeline shows for one side of a change: labels for choices, the custom
    field's own display, None for empty; datetimes and phones stay raw and are formatted
    for the viewer (their time zone, the number's country) when shown."""
    if value is None or value == "" or value == []:
        return None
    if spec is not None and spec.is_custom:
        value = display_custom_value(spec.definition, value)
    elif spec is not None and spec.type == "choice":
        value = str(dict(spec.choices).get(value, value))
    if isinstance(value, str) and len(value) > MAX_CHANGE_CHARS:
        value = value[: MAX_CHANGE_CHARS - 1] + "…"
    return value


def _change_item(key: str, before, after, spec) -> dict:
    return {
        "field": key,
        "label": spec.label if spec is not None else key,
        "kind": spec.type if spec is not None else "text",
        "before": _change_value(spec, before),
        "after": _change_value(spec, after),
    }


def _burst_to_join(org, record_filter: dict, actor: Actor, now):
    """The record's newest entry when it is a change entry by this same person, recent
    enough to be part of one burst; else None."""
    user = _user_of(actor)
    if user is None:
        return None
    latest = (
        Activity.objects.for_org(org.id)
        .filter(**record_filter)
        .order_by("-occurred_at", "-id")
        .first()
    )
    if (
        latest is None
        or latest.type != Activity.Type.UPDATED
        or latest.actor_id != user.pk
        or (latest.data or {}).get("via") != actor.type
        or now - latest.occurred_at > BURST_GAP
    ):
        return None
    try:
        first_at = dt.datetime.fromisoformat(latest.data["first_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return latest if now - first_at <= BURST_SPAN else None


def field_change_data(
    changes: dict,
    specs_by_key: dict,
    *,
    actor: Actor,
    now=None,
    skip=FIELDS_WITH_OWN_ENTRY,
):
    """The `data` of a change entry (type "updated") for `changes` ({key: [before, after]},
    as the audit records them), or None when nothing in it belongs on the timeline. For
    writers that add entries in bulk; one record's edits go through record_field_changes."""
    items = [
        _change_item(key, before, after, specs_by_key.get(key))
        for key, (before, after) in changes.items()
        if key not in skip
    ]
    if not items:
        return None
    return {
        "fields": [item["field"] for item in items],
        "changes": items,
        "first_at": (now or timezone.now()).isoformat(),
        "via": actor.type,
    }


def record_field_changes(
    *,
    org,
    actor: Actor,
    changes: dict,
    specs_by_key: dict,
    contact: Contact | None = None,
    company: Company | None = None,
) -> Activity | None:
    """Put a contact's (or company's) field changes on its timeline: who, when, and each
    field's before → after. Consecutive changes by one person within a few minutes extend
    one entry; a field changed twice keeps where it started and where it ended, and a
    change undone within the burst drops out.

    Runs in the caller's transaction, which holds the record's row lock, so two edits of
    one record never extend the same entry at once."""
    now = timezone.now()
    # A company's owner change has no entry of its own, so it is listed with the rest.
    skip = FIELDS_WITH_OWN_ENTRY if contact is not None else {"is_archived"}
    data = field_change_data(changes, specs_by_key, actor=actor, now=now, skip=skip)
    if data is None:
        return None
    if contact is not None:
        record_filter = {"contact_id": contact.pk}
    elif company is not None:
        record_filter = {"company_id": company.pk, "contact__isnull": True}
    else:
        raise TypeError("record_field_changes needs a contact or a company")
    entry = _burst_to_join(org, record_filter, actor, now)
    if entry is None:
        return _log(
            org,
            actor,
            Activity.Type.UPDATED,
            contact=contact,
            company=company if contact is None else None,
            data=data,
            occurred_at=now,
        )
    merged = {item["field"]: item for item in entry.data.get("changes", [])}
    for item in data["changes"]:
        earlier = merged.get(item["field"])
        merged[item["field"]] = item if earlier is None else {**item, "before": earlier["before"]}
    kept = [item for item in merged.values() if item["before"] != item["after"]]
    if not kept:
        entry.delete()
        return None
    entry.data = {**entry.data, "fields": [item["field"] for item in kept], "changes": kept}
    entry.occurred_at = now
    entry.save(update_fields=["data", "occurred_at"])
    return entry


def _require_record_access(policy, contact, company, action="view") -> None:
    """The member must be able to see the contact/company a note, task or entry hangs on."""
    if policy is None:
        return
    if contact is not None:
        _require(policy, "contacts", action, contact.owner_id, check_scope=True)
    if company is not None:
        _require(policy, "companies", action, company.owner_id, check_scope=True)


@transaction.atomic
def quick_log(
    *,
    org,
    actor: Actor,
    type: str,
    contact: Contact,
    subject: str = "",
    body: str = "",
    occurred_at=None,
    policy=None,
):
    """A call, meeting or note logged by hand. A note also lands in the Notes tab."""
    if type not in QUICK_LOG_TYPES:
        raise ValidationError({"type": ["Log a note, a call or a meeting."]})
    _require_record_access(policy, contact, None)
    if type == Activity.Type.NOTE:
        text = "\n\n".join(part for part in (subject.strip(), body.strip()) if part)
        return note_create(org=org, actor=actor, contact=contact, body=text, policy=policy)
    if not (subject or body).strip():
        raise ValidationError({"body": ["Say what happened in a few words."]})
    if occurred_at and occurred_at > timezone.now() + dt.timedelta(minutes=5):
        raise ValidationError(
            {"occurred_at": ["A call or meeting you log cannot be in the future."]}
        )
    label = dict(Activity.Type.choices)[type]
    return activity_log(
        org=org,
        actor=actor,
        type=type,
        contact=contact,
        subject=(subject or label).strip(),
        body=body.strip(),
        occurred_at=occurred_at,
    )


# Notes -----------------------------------------------------------------------------------


def _note_activity(note: Note):
    return Activity.objects.for_org(note.org_id).filter(
        type=Activity.Type.NOTE, data__note=str(note.public_id)
    )


def _may_change_note(policy, actor, note: Note) -> None:
    if policy is None:
        return
    user = _user_of(actor)
    if user is not None and note.author_id == user.pk:
        return
    if _is_contact_admin(policy):
        return
    raise PermissionDenied("Only the note's author or an admin can change it.")


def _note_subject(body: str) -> str:
    first = body.strip().splitlines()[0] if body.strip() else ""
    return first[:120]


@transaction.atomic
def note_create(*, org, actor: Actor, body: str, contact=None, company=None, policy=None) -> Note:
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["A note needs some text."]})
    if contact is None and company is None:
        raise ValidationError("A note belongs to a contact or a company.")
    _require_record_access(policy, contact, company)
    note = Note.objects.for_org(org).create(
        org=org, contact=contact, company=company, author=_user_of(actor), body=body
    )
    audit(org=org, actor=actor, verb="note.created", obj=note, changes={"body": [None, body]})
    emit_event(
        org=org,
        event_type="note.created",
        payload={
            "note": note.public_id,
            "contact": contact.public_id if contact else None,
            "company": company.public_id if company else None,
        },
    )
    _log(
        org,
        actor,
        Activity.Type.NOTE,
        contact=contact,
        company=company,
        subject=_note_subject(body),
        body=body,
        data={"note": str(note.public_id)},
    )
    return note


@transaction.atomic
def note_update(*, note: Note, actor: Actor, body: str, policy=None) -> Note:
    note = Note.objects.for_org(note.org_id).select_for_update().get(pk=note.pk)
    _may_change_note(policy, actor, note)
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": ["A note needs some text."]})
    before = snapshot(note, ["body"])
    note.body = body
    note.save(update_fields=["body", "updated_at"])
    changes = diff(before, snapshot(note, ["body"]))
    if changes:
        _note_activity(note).update(subject=_note_subject(body), body=body)
        audit(org=note.org, actor=actor, verb="note.updated", obj=note, changes=changes)
        emit_event(org=note.org, event_type="note.updated", payload={"note": note.public_id})
    return note


@transaction.atomic
def note_delete(*, note: Note, actor: Actor, policy=None) -> None:
    note = Note.objects.for_org(note.org_id).select_for_update().get(pk=note.pk)
    _may_change_note(policy, actor, note)
    audit(
        org=note.org,
        actor=actor,
        verb="note.deleted",
        obj=note,
        changes={"body": [note.body, None]},
    )
    emit_event(org=note.org, event_type="note.deleted", payload={"note": note.public_id})
    _note_activity(note).delete()
    note.delete()
