"""The bulk actions, what a selection is, and what an action will do: its arguments and rights
checked (`prepare`), the rows it touches and the counts the confirmation shows (`bulk_preview`)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    OuterRef,
    Q,
    Value,
)
from django.db.models.functions import Lower

from crm.models import Membership, User
from crm.permissions import Policy

from ..models import Contact, ContactList, Tag
from ..selectors import contacts_for_list

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
# Selections up to this size run in the request; larger ones run as a background job.
INLINE_LIMIT = 500
# Removing this many contacts (or more) from a list asks for confirmation first.
BIG_LIST_REMOVAL = 50
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


def action_allowed(policy: Policy, action: BulkAction) -> bool:
    if not policy.can("contacts", action.right):
        return False
    if action.admin_only and not policy.is_contact_admin():
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
    if action.key == "release" and not policy.is_contact_admin():
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


def _count(number: int) -> str:
    return f"{number:,} contact" + ("" if number == 1 else "s")


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
