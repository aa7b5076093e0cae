"""Bulk actions on many contacts at once: claim, release, reassign, change owner, add or
remove tags, add to / remove from a static list, change stage, archive, restore.

A selection is either the public ids the member ticked or "all matching" the list state
(search, filters, archived), re-evaluated here on the server: a client's count is never
trusted. Every action checks the module right, the field's editability and the record
scope; rows outside the member's scope are left alone and counted as skipped.

Writes are set-based: one UPDATE per chunk of ~1000 rows, each chunk in its own transaction
with one AuditEvent, one outbox event and (for owner, stage and archive changes) one
timeline Activity per changed contact, all bulk-inserted. Small selections run in the
request; larger ones become a BackgroundJob run by a Celery task that stores its position
(the last contact id done) on the job in the same transaction as the chunk, so a job resumed
after a worker died continues where it stopped and never applies a chunk twice.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    JSONField,
    OuterRef,
    Q,
    Value,
)
from django.db.models.functions import Lower
from django.utils import timezone

from crm.models import AuditEvent, BackgroundJob, Membership, OutboxEvent, User
from crm.permissions import Policy
from crm.services import Actor, audit, emit_event

from .fields import catalog_by_key, contact_field_catalog
from .models import Activity, Contact, ContactList, Tag
from .services.timeline import field_change_data

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
# Selections up to this size run in the request; larger ones run as a background job.
INLINE_LIMIT = 500
# Removing this many contacts (or more) from a list asks for confirmation first.
BIG_LIST_REMOVAL = 50
# A running job whose worker has not reported for this long may be taken over.
LEASE_SECONDS = 300
MAX_TAGS = 20
JOB_KIND = "contacts.bulk"
# Actions that write fields a scoring rule may read: changed rows are rescored in the chunk.
RESCORING_ACTIONS = {
    "claim",
    "release",
    "reassign",
    "change_stage",
    "add_tags",
    "remove_tags",
    "archive",
    "restore",
}


class BulkError(Exception):
    """Bad input for a bulk action, with a message fit to show the member."""


# The actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkAction:
    key: str
    label: str  # the button
    done_label: str  # the outcome: "Archived 12 contacts"
    right: str  # the contacts action right it needs
    field: str | None = None  # the catalog field it writes, which must be editable
    destructive: bool = False  # always confirmed in two steps
    admin_only: bool = False  # needs scope "all" over contacts
    argument: str | None = None  # "owner" | "tags" | "list" | "stage"


ACTIONS: dict[str, BulkAction] = {
    action.key: action
    for action in [
        BulkAction("claim", "Claim", "Claimed", "edit", field="owner"),
        BulkAction("release", "Release", "Released", "edit", field="owner", destructive=True),
        # Giving contacts to someone else (changing their owner) is for admins, as it is on
        # the contact page; it is confirmed because it takes records away from their owners.
        BulkAction(
            "reassign",
            "Change owner",
            "Reassigned",
            "edit",
            field="owner",
            destructive=True,
            admin_only=True,
            argument="owner",
        ),
        BulkAction("add_tags", "Add tags", "Tagged", "edit", field="tags", argument="tags"),
        BulkAction("remove_tags", "Remove tags", "Untagged", "edit", field="tags", argument="tags"),
        BulkAction("add_to_list", "Add to list", "Added", "edit", argument="list"),
        BulkAction("remove_from_list", "Remove from list", "Removed", "edit", argument="list"),
        BulkAction(
            "change_stage",
            "Change stage",
            "Changed the stage of",
            "edit",
            field="lifecycle_stage",
            argument="stage",
        ),
        BulkAction("archive", "Archive", "Archived", "edit", destructive=True),
        BulkAction("restore", "Restore", "Restored", "edit"),
    ]
}


def is_admin(policy: Policy) -> bool:
    """Admins for bulk purposes: may edit contacts and reach all of them."""
    return policy.can("contacts", "edit") and policy.scope("contacts") == "all"


def action_allowed(policy: Policy, action: BulkAction) -> bool:
    if not policy.can("contacts", action.right):
        return False
    if action.admin_only and not is_admin(policy):
        return False
    return not (action.field and not policy.can_edit_field(action.field))


def available_actions(policy: Policy, *, archived: bool = False) -> list[BulkAction]:
    """The actions this member may run, in the bar's order. An archived list offers
    Restore instead of Archive."""
    hidden = "archive" if archived else "restore"
    return [
        action
        for action in ACTIONS.values()
        if action.key != hidden and action_allowed(policy, action)
    ]


def get_action(key: str) -> BulkAction:
    action = ACTIONS.get(key or "")
    if action is None:
        raise BulkError("Choose an action.")
    return action


def require_action(policy: Policy, action: BulkAction) -> None:
    if not action_allowed(policy, action):
        raise PermissionDenied(f"Your role may not use “{action.label}” on contacts.")


# The selection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What the member selected: ticked public ids, or everything the list state matches."""

    ids: tuple[str, ...] = ()
    all_matching: bool = False
    search: str = ""
    filters: dict | None = None
    archived: bool = False

    def to_params(self) -> dict:
        return {
            "ids": list(self.ids),
            "all_matching": self.all_matching,
            "search": self.search,
            "filters": self.filters,
            "archived": self.archived,
        }

    @classmethod
    def from_params(cls, data: dict) -> Selection:
        return cls(
            ids=tuple(data.get("ids") or ()),
            all_matching=bool(data.get("all_matching")),
            search=data.get("search") or "",
            filters=data.get("filters") or None,
            archived=bool(data.get("archived")),
        )

    @property
    def is_empty(self) -> bool:
        return not self.all_matching and not self.ids


_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


def clean_ids(raw_ids) -> tuple[str, ...]:
    """The well-formed UUIDs among `raw_ids`, de-duplicated, order kept (junk is dropped:
    it could never match a contact anyway)."""
    out = []
    for raw in raw_ids or ():
        text = str(raw).strip()
        if _UUID.match(text) and text.lower() not in out:
            out.append(text.lower())
    return tuple(out)


def selection_queryset(org, policy: Policy, selection: Selection):
    """The contacts the member selected (not yet narrowed to what they may touch)."""
    if selection.all_matching:
        from .selectors import contacts_for_list

        queryset = contacts_for_list(
            org=org,
            policy=policy,
            search=selection.search,
            filters=selection.filters,
            archived=selection.archived,
        )
        # Used as it is (plain filters on the contact row, no joins), not wrapped in
        # `pk__in`: each chunk's `id > cursor ORDER BY id LIMIT n` then walks the primary
        # key once over the whole job instead of re-running the search for every chunk.
        return queryset.order_by()
    return Contact.objects.for_org(org).filter(public_id__in=list(selection.ids))


# Preparing an action: arguments checked, rights checked --------------------------------------


@dataclass
class Prepared:
    action: BulkAction
    args: dict  # JSON-safe, as the member sent them (stored on a job)
    owner: User | None = None
    tag_names: list[str] = field(default_factory=list)
    contact_list: ContactList | None = None
    new_list_name: str = ""  # "add to a new list": created when the action runs
    stage: str = ""

    def describe(self) -> str:
        if self.action.argument == "owner" and self.owner is not None:
            return f"to {self.owner}"
        if self.action.argument == "tags":
            word = "from" if self.action.key == "remove_tags" else "with"
            return f"{word} " + ", ".join(self.tag_names)
        if self.action.argument == "list":
            name = self.contact_list.name if self.contact_list else self.new_list_name
            return f"“{name}”"
        if self.action.argument == "stage":
            return f"to {Contact.Stage(self.stage).label}"
        return ""


def parse_tag_names(raw) -> list[str]:
    """Tag names from a list or from text separated by commas; de-duplicated ignoring case."""
    if isinstance(raw, str):
        raw = raw.split(",")
    names: list[str] = []
    seen = set()
    for item in raw or ():
        name = " ".join(str(item).split())
        if not name:
            continue
        if len(name) > Tag._meta.get_field("name").max_length:
            raise BulkError(f"“{name[:30]}…” is too long for a tag (60 characters at most).")
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    if not names:
        raise BulkError("Type at least one tag.")
    if len(names) > MAX_TAGS:
        raise BulkError(f"Add at most {MAX_TAGS} tags at a time.")
    return names


def assignable_members(org):
    """Active members a contact may be given to."""
    return (
        Membership.objects.for_org(org)
        .active()
        .select_related("user")
        .order_by("user__first_name", "user__last_name", "user__email")
    )


def prepare(org, policy: Policy, action_key: str, args: dict | None) -> Prepared:
    """Check the member may run the action and that its argument is valid."""
    action = get_action(action_key)
    require_action(policy, action)
    args = dict(args or {})
    prepared = Prepared(action=action, args=args)
    if action.argument == "owner":
        target = (args.get("owner") or "").strip()
        membership = None
        if clean_ids([target]):
            membership = assignable_members(org).filter(user__public_id=target).first()
        if membership is None:
            raise BulkError("Choose a member to give the contacts to.")
        prepared.owner = membership.user
    elif action.argument == "tags":
        prepared.tag_names = parse_tag_names(args.get("tags"))
        prepared.args["tags"] = prepared.tag_names
    elif action.argument == "list":
        target = (args.get("list") or "").strip()
        new_name = " ".join((args.get("new_list") or "").split())
        found = None
        if new_name and action.key == "add_to_list":
            if len(new_name) > ContactList._meta.get_field("name").max_length:
                raise BulkError("A list name has 120 characters at most.")
            found = ContactList.objects.for_org(org).filter(name__iexact=new_name).first()
            prepared.new_list_name = "" if found else new_name
        elif clean_ids([target]):
            found = ContactList.objects.for_org(org).filter(public_id=target).first()
        if found is None and not prepared.new_list_name:
            raise BulkError("Choose a list.")
        prepared.contact_list = found
    elif action.argument == "stage":
        stage = (args.get("stage") or "").strip()
        if stage not in Contact.Stage.values:
            raise BulkError("Choose a lifecycle stage.")
        prepared.stage = stage
    return prepared


# What each action touches ----------------------------------------------------------------------


def scope_q(policy: Policy, prepared: Prepared) -> Q:
    """The selected rows this member may touch with this action."""
    action = prepared.action
    me = policy.membership.user_id
    in_scope = policy.scope_filter("contacts")
    if action.key == "claim":
        # Claiming is how a rep takes an unowned record from the common pool. (An empty Q
        # means "everything", and `Q() | x` would narrow it to x.)
        return in_scope | Q(owner__isnull=True) if in_scope else Q()
    if action.key == "release" and not is_admin(policy):
        # Anyone may let go of their own records; removing someone else's owner is for admins.
        return in_scope & Q(owner_id=me)
    return in_scope


def _tags_named(org, names: list[str]):
    """The org's tags with these names, ignoring case (tag names are unique that way)."""
    lowered = [name.lower() for name in names]
    return Tag.objects.for_org(org).alias(name_lower=Lower("name")).filter(name_lower__in=lowered)


def change_q(org, policy: Policy, prepared: Prepared) -> Q:
    """Rows the action would actually change (the others are left as they are)."""
    action = prepared.action
    key = action.key
    if key == "claim":
        return Q(owner__isnull=True)
    if key == "release":
        return Q(owner__isnull=False)
    if key == "reassign":
        return ~Q(owner_id=prepared.owner.pk) | Q(owner__isnull=True)
    if key == "change_stage":
        return ~Q(lifecycle_stage=prepared.stage)
    if key == "archive":
        return Q(is_archived=False)
    if key == "restore":
        return Q(is_archived=True)
    if key == "add_to_list" and prepared.contact_list is None:
        return Q()  # a list about to be created has no members yet
    if key in {"add_to_list", "remove_from_list"}:
        member = Exists(
            ContactList.contacts.through.objects.filter(
                contactlist_id=prepared.contact_list.pk, contact_id=OuterRef("pk")
            )
        )
        return ~Q(member) if key == "add_to_list" else Q(member)
    if key == "add_tags":
        tags = {t.name.lower(): t.pk for t in _tags_named(org, prepared.tag_names)}
        if len(tags) < len(prepared.tag_names):
            return Q()  # a tag that does not exist yet is missing from every contact
        missing = Q()
        for tag_id in tags.values():
            has = Exists(
                Contact.tags.through.objects.filter(tag_id=tag_id, contact_id=OuterRef("pk"))
            )
            missing |= ~Q(has)
        return missing
    if key == "remove_tags":
        tag_ids = list(_tags_named(org, prepared.tag_names).values_list("pk", flat=True))
        if not tag_ids:
            return Q(pk__in=[])  # no tag of that name: nobody has it
        return Q(
            Exists(
                Contact.tags.through.objects.filter(tag_id__in=tag_ids, contact_id=OuterRef("pk"))
            )
        )
    raise BulkError("Choose an action.")


def _flag(q: Q):
    """A boolean column for `q` (an empty Q means "always")."""
    if not q:
        return Value(True, output_field=BooleanField())
    return ExpressionWrapper(q, output_field=BooleanField())


# Preview: the counts the confirmation step shows -------------------------------------------------


@dataclass
class Preview:
    selected: int
    affected: int  # in scope and would change
    in_scope: int

    @property
    def skipped(self) -> int:
        """Selected but outside what the member may touch."""
        return self.selected - self.in_scope

    @property
    def unchanged(self) -> int:
        return self.in_scope - self.affected


def bulk_preview(org, policy: Policy, prepared: Prepared, selection: Selection) -> Preview:
    """How many selected contacts the action would change, in one query."""
    from django.db.models import Count

    queryset = selection_queryset(org, policy, selection)
    allowed = scope_q(policy, prepared)
    changes = change_q(org, policy, prepared)
    counts = queryset.aggregate(
        selected=Count("pk"),
        in_scope=Count("pk", filter=allowed) if allowed else Count("pk"),
        affected=Count("pk", filter=allowed & changes) if (allowed or changes) else Count("pk"),
    )
    return Preview(counts["selected"], counts["affected"], counts["in_scope"])


def confirm_texts(prepared: Prepared, count: int) -> tuple[str, str]:
    """The confirmation's question and its button, both naming the exact number."""
    n = _count(count)
    key = prepared.action.key
    if key == "reassign":
        return f"Change the owner of {n} to {prepared.owner}?", f"Change owner of {n}"
    if key == "release":
        return f"Release {n}? They will have no owner.", f"Release {n}"
    if key == "remove_from_list":
        return f"Remove {n} from {prepared.describe()}?", f"Remove {n}"
    if key == "remove_tags":
        names = ", ".join(prepared.tag_names)
        return f"Remove {names} from {n}?", f"Remove tags from {n}"
    detail = prepared.describe()
    question = f"{prepared.action.label} {n}" + (f" {detail}" if detail else "") + "?"
    return question, f"{prepared.action.label} {n}"


def needs_confirmation(prepared: Prepared, preview: Preview) -> bool:
    if prepared.action.destructive:
        return True
    removal = prepared.action.key in {"remove_from_list", "remove_tags"}
    return removal and preview.affected >= BIG_LIST_REMOVAL


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


def _count(number: int) -> str:
    return f"{number:,} contact" + ("" if number == 1 else "s")


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
    AuditEvent.objects.bulk_create(audits)
    OutboxEvent.objects.bulk_create(events)
    if activities:
        Activity.objects.bulk_create(activities)


def _locked_rows(run: _Run, ids: list[int], *fields: str) -> list[dict]:
    """The chunk's rows inside the member's scope, locked, with a `needs` flag saying
    whether the action changes them."""
    queryset = Contact.objects.filter(org=run.org, pk__in=ids)
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
    Contact.objects.filter(pk__in=[r["pk"] for r in rows]).update(
        owner=owner, updated_at=timezone.now()
    )
    previous = _users(r["owner_id"] for r in rows)
    new_label = str(owner) if owner else None
    new_public_id = str(owner.public_id) if owner else None
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
            events=[("contact.owner_changed", {"owner": new_public_id})],
            activity=(
                Activity.Type.OWNER_CHANGED,
                subject,
                {"from": old_label, "to": new_label},
            ),
        )

    _write_history(run, rows, history)


def _set_stage(run: _Run, rows: list[dict], stage: str) -> None:
    Contact.objects.filter(pk__in=[r["pk"] for r in rows]).update(
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
    Contact.objects.filter(pk__in=[r["pk"] for r in rows]).update(
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
            Contact.objects.filter(org=run.org, is_archived=False)
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
    Contact.objects.filter(pk__in=[r["pk"] for r in rows]).update(
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
    Contact.objects.filter(pk__in=[r["pk"] for r in changed]).update(updated_at=timezone.now())

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
    Contact.objects.filter(pk__in=changed_ids).update(updated_at=timezone.now())

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
        from .scoring import rescore_ids

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
    from .services import tag_get_or_create

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
    contact_list = ContactList.objects.create(org=org, name=name, created_by=actor.user)
    audit(org=org, actor=actor, verb="contact_list.created", obj=contact_list)
    emit_event(org=org, event_type="contact_list.created", payload={"list": contact_list.public_id})
    return contact_list


def _start_run(org, actor: Actor, policy: Policy, prepared: Prepared) -> _Run:
    from .scoring import compile_rules, score_expression

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


def _ordered_ids(queryset, after: int, limit: int) -> list[int]:
    return list(queryset.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:limit])


def bulk_apply_inline(
    *, org, actor: Actor, policy: Policy, prepared: Prepared, selection: Selection
) -> Outcome:
    """Run the action now, chunk by chunk (for small selections)."""
    run = _start_run(org, actor, policy, prepared)
    queryset = selection_queryset(org, policy, selection)
    outcome = Outcome()
    cursor = 0
    while True:
        with transaction.atomic():
            ids = _ordered_ids(queryset, cursor, CHUNK_SIZE)
            if not ids:
                break
            outcome.add(_process_chunk(run, ids))
            cursor = ids[-1]
    with transaction.atomic():
        _audit_summary(run, outcome, selection)
    return outcome


@dataclass
class Started:
    """What `bulk_start` did: ran it (outcome) or queued a job."""

    outcome: Outcome | None = None
    job: BackgroundJob | None = None
    summary: str = ""


def bulk_start(
    *,
    org,
    actor: Actor,
    policy: Policy,
    prepared: Prepared,
    selection: Selection,
    return_url: str = "",
    selected_count: int | None = None,
) -> Started:
    """Run small selections in the request, queue large ones as a background job."""
    if selection.is_empty:
        raise BulkError("Select at least one contact.")
    if selected_count is None:
        selected_count = selection_queryset(org, policy, selection).count()
    if selected_count <= INLINE_LIMIT:
        outcome = bulk_apply_inline(
            org=org, actor=actor, policy=policy, prepared=prepared, selection=selection
        )
        return Started(outcome=outcome, summary=summary_text(prepared, outcome))
    with transaction.atomic():
        job = BackgroundJob.objects.create(
            org=org,
            kind=JOB_KIND,
            created_by=actor.user,
            total=selected_count,
            params={
                "action": prepared.action.key,
                "args": prepared.args,
                "selection": selection.to_params(),
                "title": f"{prepared.action.label} {selected_count:,} contacts",
                "return_url": return_url,
                "ip": actor.ip,
            },
        )
        audit(
            org=org,
            actor=actor,
            verb="job.queued",
            obj=job,
            object_repr=job.params["title"],
            changes={"action": prepared.action.key, "total": selected_count},
        )
        from .tasks import run_bulk_action

        job_pk = job.pk
        transaction.on_commit(lambda: run_bulk_action.delay(org.id, job_pk))
    return Started(job=job, summary=f"{job.params['title']}: running in the background.")


# Background jobs: claim, chunks with stored progress, finish ------------------------------------


class JsonbMerge(Func):
    """`a || b` on jsonb: the job's result with some keys replaced, in one UPDATE."""

    arg_joiner = " || "
    template = "(%(expressions)s)"
    output_field = JSONField()


def _lease() -> float:
    return time.time() + LEASE_SECONDS


# A job whose worker died is taken over at most this many times in a row (without a chunk
# committed in between); the next time, it fails instead of taking yet another worker down.
MAX_TAKEOVERS = 2


def job_claim(
    org_id: int, job_id: int, holder: str = "", *, redelivered: bool = False
) -> BackgroundJob | None:
    """Take the job: queued → running with a conditional UPDATE, so two workers handed the
    same message do not both run it. A running job may be taken over when its worker
    stopped reporting (the lease ran out: the worker died), or by the same task again
    (`holder` is the Celery task id, which a retry keeps); either way it resumes from its
    stored cursor. A message the broker `redelivered` comes back because the worker that
    had it died; such takeovers are counted, and a job that keeps killing its worker fails
    after MAX_TAKEOVERS of them in a row."""
    now = timezone.now()
    lease = Value({"lease_expires": _lease(), "holder": holder}, output_field=JSONField())
    claimed = BackgroundJob.objects.filter(
        pk=job_id, org_id=org_id, status=BackgroundJob.Status.QUEUED
    ).update(
        status=BackgroundJob.Status.RUNNING,
        started_at=now,
        result=JsonbMerge(F("result"), lease),
    )
    if claimed:
        return BackgroundJob.objects.select_related("org", "created_by").get(
            pk=job_id, org_id=org_id
        )
    takeover = Q(result__lease_expires__lt=time.time())
    if holder:
        takeover |= Q(result__holder=holder)
    with transaction.atomic():
        job = (
            BackgroundJob.objects.select_for_update(of=("self",))
            .select_related("org", "created_by")
            .filter(pk=job_id, org_id=org_id, status=BackgroundJob.Status.RUNNING)
            .filter(takeover)
            .first()
        )
        if job is None:
            return None
        takeovers = int((job.result or {}).get("takeovers") or 0) + redelivered
        if takeovers <= MAX_TAKEOVERS:
            job.result = {**(job.result or {}), **lease.value, "takeovers": takeovers}
            job.started_at = job.started_at or now
            job.save(update_fields=["result", "started_at"])
            return job
    logger.error("background job %s killed its worker %s times; it fails", job_id, takeovers)
    job_fail(
        job,
        f"Its worker stopped {takeovers} times in a row while running it, so the job was "
        "stopped. What it finished before stays done.",
    )
    return None


# A queued job no worker has taken for this long gets its task sent again.
RESEND_WAITING_AFTER_SECONDS = 600


def job_resend_stalled(tasks: dict[str, Callable]) -> int:
    """Send the task again for every stalled job of the kinds in `tasks` (kind -> Celery
    task), and say how many. A job stalls when its message is lost (a broker restart,
    retries used up) or its worker died: the job then sits queued for good (a rescore
    waiting so would also hold off every later rescore of its organization) or running
    until Redis hands the unacknowledged message back, an hour later. Each stalled job gets
    one extra message per wait (RESEND_WAITING_AFTER_SECONDS while queued, LEASE_SECONDS
    once its lease ran out); `job_claim` decides who runs it, so an extra one is harmless."""
    now, wait = time.time(), RESEND_WAITING_AFTER_SECONDS

    def not_sent_since(seconds: float) -> Q:
        return Q(result__sent_at__isnull=True) | Q(result__sent_at__lt=now - seconds)

    queued_long_ago = timezone.now() - timezone.timedelta(seconds=wait)
    never_taken = Q(status=BackgroundJob.Status.QUEUED, created_at__lt=queued_long_ago)
    lease_ran_out = Q(status=BackgroundJob.Status.RUNNING, result__lease_expires__lt=now)
    due = (never_taken & not_sent_since(wait)) | (lease_ran_out & not_sent_since(LEASE_SECONDS))
    with transaction.atomic():
        # A job whose worker is writing a chunk holds its row's lock: it is not stalled.
        stalled = list(
            BackgroundJob.objects.filter(due, kind__in=list(tasks))
            .select_for_update(skip_locked=True)
            .values_list("pk", "org_id", "kind")
        )
        BackgroundJob.objects.filter(pk__in=[pk for pk, _, _ in stalled]).update(
            result=JsonbMerge(F("result"), Value({"sent_at": now}, output_field=JSONField()))
        )
        for pk, org_id, kind in stalled:
            transaction.on_commit(functools.partial(tasks[kind].delay, org_id, pk))
            logger.warning("background job %s (%s) stalled; its task is sent again", pk, kind)
    return len(stalled)


def job_run_chunks(
    job: BackgroundJob, next_ids: Callable[[int], list[int]], process: Callable[[list[int]], dict]
) -> bool:
    """Process the job chunk by chunk. Each chunk runs in one transaction that locks the
    job row, reads the cursor, applies the chunk and stores the new cursor, counters and
    `done`: a chunk is applied entirely, with its progress, or not at all.
    Returns False when the job stopped being ours (cancelled or taken over)."""
    while True:
        with transaction.atomic():
            locked = BackgroundJob.objects.select_for_update().get(pk=job.pk)
            if locked.status != BackgroundJob.Status.RUNNING:
                return False
            result = dict(locked.result or {})
            ids = next_ids(int(result.get("cursor") or 0))
            if not ids:
                return True
            counts = process(ids)
            for key, value in counts.items():
                result[key] = int(result.get(key) or 0) + int(value)
            result["cursor"] = ids[-1]
            result["lease_expires"] = _lease()
            result["takeovers"] = 0  # a committed chunk: the job does not kill its worker
            locked.result = result
            done = locked.done + len(ids)
            # Rows added to "all matching" after the count must not push past 100 %.
            locked.done = min(done, locked.total) if locked.total else done
            locked.save(update_fields=["result", "done"])
            job.result, job.done = locked.result, locked.done


def _tell_starter(job: BackgroundJob, title: str, body: str, level: str) -> None:
    """An in-app notification for whoever started the job (they may have left the page)."""
    if not job.created_by_id:
        return
    from django.urls import reverse

    from crm.services.notifications import notify

    notify(
        org=job.org,
        user=job.created_by,
        title=title,
        body=body,
        url=reverse("crm:job_progress", args=[job.public_id]),
        level=level,
    )


def job_finish(job: BackgroundJob, summary: str, *, tell: bool = True) -> None:
    with transaction.atomic():
        finished = BackgroundJob.objects.filter(
            pk=job.pk, status=BackgroundJob.Status.RUNNING
        ).update(
            status=BackgroundJob.Status.DONE,
            finished_at=timezone.now(),
            done=F("total"),
            result=JsonbMerge(F("result"), Value({"summary": summary}, output_field=JSONField())),
        )
        if finished and tell:
            title = (job.params or {}).get("title") or "Background job"
            _tell_starter(job, f"Done: {title}", summary, "success")


def job_fail(job: BackgroundJob, message: str) -> None:
    with transaction.atomic():
        failed = (
            BackgroundJob.objects.filter(pk=job.pk)
            .exclude(status__in=[BackgroundJob.Status.DONE, BackgroundJob.Status.CANCELLED])
            .update(status=BackgroundJob.Status.FAILED, finished_at=timezone.now(), error=message)
        )
        if failed:
            title = (job.params or {}).get("title") or "Background job"
            _tell_starter(job, f"Failed: {title}", message, "error")


def job_member_policy(job: BackgroundJob) -> Policy | None:
    """The policy of the member who started the job, as it is now: a member whose rights
    were taken away meanwhile does not keep them through a queued job."""
    membership = (
        Membership.objects.for_org(job.org)
        .active()
        .select_related("role", "team")
        .filter(user_id=job.created_by_id)
        .first()
    )
    return Policy(membership) if membership is not None else None


def run_bulk_job(job: BackgroundJob) -> None:
    """Run a claimed bulk job to the end (resuming from its cursor)."""
    policy = job_member_policy(job)
    if policy is None:
        job_fail(job, "The member who started this job is no longer active.")
        return
    params = job.params
    try:
        prepared = prepare(job.org, policy, params.get("action"), params.get("args"))
    except (BulkError, PermissionDenied) as exc:
        job_fail(job, str(exc))
        return
    actor = Actor.for_user(job.created_by, ip=params.get("ip"))
    selection = Selection.from_params(params.get("selection") or {})
    run = _start_run(job.org, actor, policy, prepared)
    queryset = selection_queryset(job.org, policy, selection)
    finished = job_run_chunks(
        job,
        next_ids=lambda cursor: _ordered_ids(queryset, cursor, CHUNK_SIZE),
        process=lambda ids: _process_chunk(run, ids),
    )
    if not finished:
        return
    outcome = Outcome()
    outcome.add(BackgroundJob.objects.get(pk=job.pk).result)
    summary = summary_text(prepared, outcome)
    with transaction.atomic():
        _audit_summary(run, outcome, selection)
        job_finish(job, summary)
