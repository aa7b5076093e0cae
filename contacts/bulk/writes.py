"""How a chunk of a bulk action is written: one locked, set-based UPDATE per action, with the
audit rows, outbox events and timeline entries of every changed contact, bulk-inserted."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import (
    Q,
)
from django.db.models.functions import Lower
from django.utils import timezone

from crm.models import AuditEvent, OutboxEvent, User
from crm.permissions import Policy
from crm.services import Actor, audit, emit_event

from ..fields import catalog_by_key, contact_field_catalog
from ..models import Activity, Contact, ContactList, Tag
from ..scoring import compile_rules, rescore_ids, score_expression
from ..services import tag_get_or_create
from ..services.timeline import field_change_data
from .actions import (
    RESCORING_ACTIONS,
    Prepared,
    Selection,
    _count,
    _flag,
    _tags_named,
    change_q,
    scope_q,
)

logger = logging.getLogger(__name__)


# Running: chunks ------------------------------------------------------------------------------


@dataclass
class Outcome:
    selected: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0  # outside what the member may touch
    blocked: int = 0  # restore refused: an active contact has the email now

    def add(self, other: dict) -> None:
        for key in OUTCOME_KEYS:
            setattr(self, key, getattr(self, key) + int(other.get(key) or 0))

    def as_dict(self) -> dict:
        return {key: getattr(self, key) for key in OUTCOME_KEYS}


OUTCOME_KEYS = ("selected", "changed", "unchanged", "skipped", "blocked")


def summary_text(prepared: Prepared, outcome: Outcome) -> str:
    """The outcome in one sentence, e.g. "Archived 12 contacts. 3 skipped (outside ...)."."""
    action = prepared.action
    if action.key in {"add_to_list", "remove_from_list"}:
        where = "to" if action.key == "add_to_list" else "from"
        text = f"{action.done_label} {_count(outcome.changed)} {where} {prepared.describe()}."
    elif action.key == "remove_tags":
        text = f"Removed {', '.join(prepared.tag_names)} from {_count(outcome.changed)}."
    else:
        detail = prepared.describe()
        text = f"{action.done_label} {_count(outcome.changed)}" + (f" {detail}" if detail else "")
        text += "."
    notes = []
    if outcome.unchanged:
        notes.append(f"{outcome.unchanged:,} needed no change")
    if outcome.blocked:
        notes.append(f"{outcome.blocked:,} not restored: an active contact uses the same email")
    if outcome.skipped:
        notes.append(f"{outcome.skipped:,} skipped (outside what you may change)")
    if notes:
        sentence = "; ".join(notes)
        text += " " + sentence[0].upper() + sentence[1:] + "."
    return text


@dataclass
class _Run:
    org: object
    actor: Actor
    policy: Policy
    prepared: Prepared
    allowed: Q
    changes: Q
    score: object = None  # the lead-score expression to refresh changed rows with
    tags: list[Tag] = field(default_factory=list)


@dataclass
class _History:
    """What one contact's change leaves behind."""

    verb: str
    changes: dict
    events: list[tuple[str, dict]]
    activity: tuple[str, str, dict] | None = None  # (type, subject, data)


def _display_name(row: dict) -> str:
    name = f"{row['first_name']} {row['last_name']}".strip()
    return (name or row["email"] or "(no name)")[:200]


def _users(user_ids) -> dict:
    ids = {uid for uid in user_ids if uid}
    return {user.pk: user for user in User.objects.filter(pk__in=ids)} if ids else {}


def _tags_history(run: _Run) -> Callable[[dict], _History]:
    """What a change of a contact's tags writes to its history: the audit row, the event
    and a "Fields changed" timeline entry (tags before → after), as a one-by-one edit does."""
    specs = {"tags": catalog_by_key(contact_field_catalog(run.org)).get("tags")}

    def history(row) -> _History:
        changes = {"tags": [row["tags_before"], row["tags_after"]]}
        data = field_change_data(changes, specs, actor=run.actor)
        return _History(
            verb="contact.updated",
            changes=changes,
            events=[("contact.updated", {"fields": ["tags"]})],
            activity=(Activity.Type.UPDATED, "", data) if data else None,
        )

    return history


def _write_history(run: _Run, rows: list[dict], history_for: Callable[[dict], _History]) -> None:
    """One audit row, the outbox events and the timeline entry of every changed contact,
    each kind inserted with a single statement (the audit table only ever grows)."""
    now = timezone.now()
    actor = run.actor
    audits, events, activities = [], [], []
    for row in rows:
        history = history_for(row)
        public_id = str(row["public_id"])
        audits.append(
            AuditEvent(
                org=run.org,
                actor_type=actor.type,
                actor_user=actor.user,
                actor_label=actor.label[:200],
                verb=history.verb,
                object_type="contact",
                object_id=public_id,
                object_repr=_display_name(row),
                changes=history.changes,
                ip_address=actor.ip,
            )
        )
        for event_type, payload in history.events:
            events.append(
                OutboxEvent(
                    org=run.org,
                    event_type=event_type,
                    payload={"contact": public_id, **payload, "bulk": True},
                )
            )
        if history.activity is not None:
            type_, subject, data = history.activity
            activities.append(
                Activity(
                    org=run.org,
                    type=type_,
                    contact_id=row["pk"],
                    actor=actor.user,
                    subject=subject[:300],
                    data=data,
                    occurred_at=now,
                )
            )
    AuditEvent.objects.for_org(run.org).bulk_create(audits)
    OutboxEvent.objects.for_org(run.org).bulk_create(events)
    if activities:
        Activity.objects.for_org(run.org).bulk_create(activities)


def _locked_rows(run: _Run, ids: list[int], *fields: str) -> list[dict]:
    """The chunk's rows inside the member's scope, locked, with a `needs` flag saying
    whether the action changes them."""
    queryset = Contact.objects.for_org(run.org).filter(pk__in=ids)
    if run.allowed:
        queryset = queryset.filter(run.allowed)
    return list(
        queryset.select_for_update(of=("self",))
        .annotate(needs=_flag(run.changes))
        .order_by("pk")
        .values("pk", "public_id", "first_name", "last_name", "email", "needs", *fields)
    )


_OWNER_VERBS = {"claim": "contact.claimed", "release": "contact.released"}


def _set_owner(run: _Run, rows: list[dict], owner: User | None) -> None:
    Contact.objects.for_org(run.org).filter(pk__in=[r["pk"] for r in rows]).update(
        owner=owner, updated_at=timezone.now()
    )
    previous = _users(r["owner_id"] for r in rows)
    new_label = str(owner) if owner else None
    new_public_id = str(owner.public_id) if owner else None
    actor_public_id = str(run.actor.user.public_id) if run.actor.user else None
    verb = _OWNER_VERBS.get(run.prepared.action.key, "contact.reassigned")

    def history(row):
        old = previous.get(row["owner_id"])
        old_label = str(old) if old else None
        if new_label and old_label:
            subject = f"Owner changed from {old_label} to {new_label}"
        elif new_label:
            subject = f"Claimed by {new_label}"
        else:
            subject = f"Released by {old_label}" if old_label else "Owner removed"
        return _History(
            verb=verb,
            changes={"owner": [old_label, new_label]},
            events=[("contact.owner_changed", {"owner": new_public_id, "actor": actor_public_id})],
            activity=(
                Activity.Type.OWNER_CHANGED,
                subject,
                {"from": old_label, "to": new_label},
            ),
        )

    _write_history(run, rows, history)


def _set_stage(run: _Run, rows: list[dict], stage: str) -> None:
    Contact.objects.for_org(run.org).filter(pk__in=[r["pk"] for r in rows]).update(
        lifecycle_stage=stage, updated_at=timezone.now()
    )
    labels = dict(Contact.Stage.choices)

    def history(row):
        old = row["lifecycle_stage"]
        return _History(
            verb="contact.updated",
            changes={"lifecycle_stage": [old, stage]},
            events=[
                ("contact.updated", {"fields": ["lifecycle_stage"]}),
                ("contact.stage_changed", {"from": old, "to": stage}),
            ],
            activity=(
                Activity.Type.STAGE_CHANGE,
                f"Stage changed from {labels.get(old, old)} to {labels[stage]}",
                {"from": old, "to": stage},
            ),
        )

    _write_history(run, rows, history)


def _archive(run: _Run, rows: list[dict]) -> None:
    now = timezone.now()
    Contact.objects.for_org(run.org).filter(pk__in=[r["pk"] for r in rows]).update(
        is_archived=True, archived_at=now, updated_at=now
    )
    history = _History(
        verb="contact.archived",
        changes={"is_archived": [False, True]},
        events=[("contact.archived", {})],
        activity=(Activity.Type.ARCHIVED, "Archived", {}),
    )
    _write_history(run, rows, lambda row: history)


def _restorable(run: _Run, rows: list[dict]) -> list[dict]:
    """Rows that can come back without clashing with an active contact's email (email is
    unique among active contacts); within the chunk the oldest record of an email wins."""
    emails = {r["email"].lower() for r in rows if r["email"]}
    taken = set()
    if emails:
        taken = set(
            Contact.objects.for_org(run.org)
            .filter(is_archived=False)
            .annotate(email_lower=Lower("email"))
            .filter(email_lower__in=emails)
            .values_list("email_lower", flat=True)
        )
    out = []
    for row in rows:
        email = row["email"].lower()
        if email and email in taken:
            continue
        if email:
            taken.add(email)
        out.append(row)
    return out


def _restore(run: _Run, rows: list[dict]) -> list[dict]:
    rows = _restorable(run, rows)
    if not rows:
        return rows
    Contact.objects.for_org(run.org).filter(pk__in=[r["pk"] for r in rows]).update(
        is_archived=False, archived_at=None, updated_at=timezone.now()
    )
    history = _History(
        verb="contact.restored",
        changes={"is_archived": [True, False]},
        events=[("contact.restored", {})],
        activity=(Activity.Type.RESTORED, "Restored", {}),
    )
    _write_history(run, rows, lambda row: history)
    return rows


def _add_tags(run: _Run, rows: list[dict]) -> list[dict]:
    ids = [r["pk"] for r in rows]
    through = Contact.tags.through
    current: dict[int, list[str]] = {pk: [] for pk in ids}
    for contact_id, name in through.objects.filter(contact_id__in=ids).values_list(
        "contact_id", "tag__name"
    ):
        current[contact_id].append(name)
    links, changed = [], []
    for row in rows:
        have = {name.lower() for name in current[row["pk"]]}
        new = [tag for tag in run.tags if tag.name.lower() not in have]
        if new:
            links.extend(through(contact_id=row["pk"], tag_id=tag.pk) for tag in new)
            row["tags_before"] = sorted(current[row["pk"]], key=str.lower)
            row["tags_after"] = sorted(current[row["pk"]] + [t.name for t in new], key=str.lower)
            changed.append(row)
    if not changed:
        return changed
    through.objects.bulk_create(links, ignore_conflicts=True)
    Contact.objects.for_org(run.org).filter(pk__in=[r["pk"] for r in changed]).update(
        updated_at=timezone.now()
    )

    _write_history(run, changed, _tags_history(run))
    return changed


def _remove_tags(run: _Run, rows: list[dict]) -> list[dict]:
    """Take the run's tags off the rows that have any of them; the other tags stay."""
    ids = [r["pk"] for r in rows]
    through = Contact.tags.through
    removing = {tag.pk for tag in run.tags}
    current: dict[int, list[tuple[int, str]]] = {pk: [] for pk in ids}
    for contact_id, tag_id, name in through.objects.filter(contact_id__in=ids).values_list(
        "contact_id", "tag_id", "tag__name"
    ):
        current[contact_id].append((tag_id, name))
    changed = []
    for row in rows:
        have = current[row["pk"]]
        if not any(tag_id in removing for tag_id, _ in have):
            continue
        row["tags_before"] = sorted((name for _, name in have), key=str.lower)
        row["tags_after"] = sorted(
            (name for tag_id, name in have if tag_id not in removing), key=str.lower
        )
        changed.append(row)
    if not changed:
        return changed
    changed_ids = [r["pk"] for r in changed]
    through.objects.filter(contact_id__in=changed_ids, tag_id__in=removing).delete()
    Contact.objects.for_org(run.org).filter(pk__in=changed_ids).update(updated_at=timezone.now())

    _write_history(run, changed, _tags_history(run))
    return changed


def _change_list(run: _Run, rows: list[dict], add: bool) -> None:
    contact_list = run.prepared.contact_list
    through = ContactList.contacts.through
    ids = [r["pk"] for r in rows]
    if add:
        through.objects.bulk_create(
            [through(contactlist_id=contact_list.pk, contact_id=pk) for pk in ids],
            ignore_conflicts=True,
        )
    else:
        through.objects.filter(contactlist_id=contact_list.pk, contact_id__in=ids).delete()
    name = contact_list.name
    history = _History(
        verb="contact.updated",
        changes={"lists": [[], [name]] if add else [[name], []]},
        events=[
            (
                "contact.list_added" if add else "contact.list_removed",
                {"list": str(contact_list.public_id)},
            )
        ],
    )
    _write_history(run, rows, lambda row: history)


_EXTRA_FIELDS = {
    "claim": ("owner_id",),
    "release": ("owner_id",),
    "reassign": ("owner_id",),
    "change_stage": ("lifecycle_stage",),
}


def _process_chunk(run: _Run, ids: list[int]) -> dict:
    """Apply the action to one chunk (the caller holds the transaction)."""
    key = run.prepared.action.key
    rows = _locked_rows(run, ids, *_EXTRA_FIELDS.get(key, ()))
    to_change = [row for row in rows if row["needs"]]
    changed = to_change
    if to_change:
        if key == "claim":
            _set_owner(run, to_change, run.actor.user)
        elif key == "release":
            _set_owner(run, to_change, None)
        elif key == "reassign":
            _set_owner(run, to_change, run.prepared.owner)
        elif key == "change_stage":
            _set_stage(run, to_change, run.prepared.stage)
        elif key == "archive":
            _archive(run, to_change)
        elif key == "restore":
            changed = _restore(run, to_change)
        elif key == "add_tags":
            changed = _add_tags(run, to_change)
        elif key == "remove_tags":
            changed = _remove_tags(run, to_change)
        elif key in {"add_to_list", "remove_from_list"}:
            _change_list(run, to_change, add=key == "add_to_list")
    if changed and run.score is not None:
        rescore_ids(run.org, [row["pk"] for row in changed], run.score)
    blocked = len(to_change) - len(changed) if key == "restore" else 0
    return {
        "selected": len(ids),
        "changed": len(changed),
        "unchanged": len(rows) - len(to_change),
        "skipped": len(ids) - len(rows),
        "blocked": blocked,
    }


def _ensure_tags(org, actor: Actor, names: list[str]) -> list[Tag]:
    """The org's tags with these names (ignoring case); missing ones are created through
    the contacts service, so they are audited like any other new tag."""

    existing = {t.name.lower(): t for t in _tags_named(org, names)}
    return [
        existing.get(name.lower()) or tag_get_or_create(org=org, actor=actor, name=name)
        for name in names
    ]


def _ensure_list(org, actor: Actor, name: str) -> ContactList:
    """The org's static list called `name` (ignoring case), created when missing."""
    found = ContactList.objects.for_org(org).filter(name__iexact=name).first()
    if found is not None:
        return found
    contact_list = ContactList.objects.for_org(org).create(
        org=org, name=name, created_by=actor.user
    )
    audit(org=org, actor=actor, verb="contact_list.created", obj=contact_list)
    emit_event(org=org, event_type="contact_list.created", payload={"list": contact_list.public_id})
    return contact_list


def _start_run(org, actor: Actor, policy: Policy, prepared: Prepared) -> _Run:

    run = _Run(
        org=org,
        actor=actor,
        policy=policy,
        prepared=prepared,
        allowed=scope_q(policy, prepared),
        changes=Q(),
    )
    if prepared.action.key in RESCORING_ACTIONS:
        # Compiled once per run, not per chunk; None when the org has no scoring rules.
        compiled = compile_rules(org)
        run.score = score_expression(compiled) if compiled else None
    if prepared.action.key == "add_tags":
        with transaction.atomic():
            run.tags = _ensure_tags(org, actor, prepared.tag_names)
    elif prepared.action.key == "remove_tags":
        run.tags = list(_tags_named(org, prepared.tag_names))  # never creates a tag
    if prepared.new_list_name:
        with transaction.atomic():
            prepared.contact_list = _ensure_list(org, actor, prepared.new_list_name)
    run.changes = change_q(org, policy, prepared)
    return run


def _audit_summary(run: _Run, outcome: Outcome, selection: Selection) -> None:
    audit(
        org=run.org,
        actor=run.actor,
        verb="contacts.bulk_action",
        object_type="contact",
        object_repr=summary_text(run.prepared, outcome)[:200],
        changes={
            "action": run.prepared.action.key,
            "arguments": run.prepared.args,
            "selection": "all matching" if selection.all_matching else "selected",
            **outcome.as_dict(),
        },
    )
