"""Merging two contacts into one, and undoing a merge.

A merge keeps the *primary* and folds the *secondary* into it:

- each field of MERGE_FIELDS (and each custom field, per key) survives by a rule: the
  non-empty value wins; when both are filled, the value of the contact edited last; the
  member may override any field. Withdrawn consent is the one exception: an opt-out on
  either side wins by default, so a merge never turns a "no" into a "yes" unasked. The
  email the primary does not keep is added to its other emails, so no address is lost;
- every row that points at the secondary moves to the primary. The relations are found by
  introspection (`relations_to_move()`), so a foreign key added later moves too, unless it
  is listed in MERGE_EXCLUDED with its reason;
- where a relation is unique per contact (a tag, a list, a deal, an object record linked
  once) and both contacts already have the link, the primary's is kept and the
  secondary's row is deleted, its values kept in the MergeRecord so undo can put it back;
- the secondary is archived, not deleted, and points to its primary (`merged_into`).

The MergeRecord holds what undo needs: both contacts' values before, the primary's values
after, and the ids of the moved rows per relation. Undo is refused, with the list of
reasons, when the primary was edited since, when the secondary changed, or when moved rows
were deleted or moved on; it never half-restores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from compliance.services.consent import ConsentVia, consent_context
from crm.services import Actor, audit, diff, emit_event

from ..dedup.models import MergeRecord
from ..fields import CONTACT_FIELDS, CUSTOM_PREFIX, custom_definitions
from ..models import Activity, Contact
from ..scoring import rescore_contact
from ._base import _require, _user_of
from .contacts import _check_email_free, _contact_state
from .merge_relations import (
    MERGE_EXCLUDED,
    dropped_problems,
    dump_value,
    load_value,
    move_back,
    move_relations,
    relation_key,
    relations_to_move,
    restore_dropped,
)
from .timeline import _log

__all__ = [
    "MERGE_EXCLUDED",
    "MERGE_FIELDS",
    "FieldChoice",
    "MergeField",
    "merge_blockers",
    "merge_contacts",
    "merge_preview",
    "relation_key",
    "relations_to_move",
    "undo_merge",
]

PRIMARY = "primary"
SECONDARY = "secondary"
SIDES = (PRIMARY, SECONDARY)


@dataclass(frozen=True)
class MergeField:
    key: str  # the Contact field name ("email", "owner"), as in contacts.fields
    label: str


@dataclass(frozen=True)
class FieldChoice:
    key: str
    label: str
    primary_value: str  # display text
    secondary_value: str  # display text
    default: str  # "primary" | "secondary"
    differs: bool
    # False when the acting member may not change this field: the primary's value stays.
    editable: bool = True


# The fields a merge decides, in the order the compare view shows them. Custom fields follow,
# one per key ("custom.<key>"). Not here, on purpose: other_emails (see below), lead_score
# (recomputed from the scoring rules after the merge), tags (a relation: the primary gets
# the union), the timeline dates (last_activity_at / last_contacted_at: the later of the
# two), and bookkeeping. Other emails are not a choice: the primary gets both lists and the
# email it does not keep, so no address is lost.
_MERGE_KEYS = [
    spec.key
    for spec in CONTACT_FIELDS
    if spec.editable and spec.type != "tags" and spec.key not in ("is_archived", "other_emails")
]
MERGE_FIELDS: list[MergeField] = [
    MergeField(spec.key, spec.label) for spec in CONTACT_FIELDS if spec.key in _MERGE_KEYS
]
_SPECS = {spec.key: spec for spec in CONTACT_FIELDS}

# A phone keeps its "kept as typed, unverified" flag: the flag travels with the number.
_COMPANION_FIELDS = {"phone": "phone_unverified", "mobile": "mobile_unverified"}
# An opt-out wins by default (see the module docstring).
_CONSENT_BOOLS = {
    "consent_email",
    "consent_sms",
    "consent_phone",
    "consent_whatsapp",
    "consent_data_processing",
}
# Values that mean "nobody filled this in".
_EMPTY_VALUES = {"consent_status": {Contact.ConsentStatus.UNKNOWN}}

# What a contact's snapshot holds: every stored value a merge or its undo may change.
# Not: the keys, the creation and update times, the generated search vector, the import
# that created the contact (history, never merged).
_NOT_SNAPSHOTTED = {"id", "org", "public_id", "created_at", "updated_at", "import_job"}


def _snapshot_fields() -> list[models.Field]:
    return [
        f
        for f in Contact._meta.concrete_fields
        if f.name not in _NOT_SNAPSHOTTED and not getattr(f, "generated", False)
    ]


# Values ------------------------------------------------------------------------------------


def _values(contact: Contact) -> dict:
    """Everything a merge may change on a contact, as JSON (field attname → value)."""
    return {f.attname: dump_value(getattr(contact, f.attname)) for f in _snapshot_fields()}


def _apply_values(contact: Contact, values: dict) -> list[str]:
    changed = []
    for f in _snapshot_fields():
        if f.attname in values:
            setattr(contact, f.attname, load_value(f, values[f.attname]))
            changed.append(f.attname)
    return changed


def _contact_field(name: str) -> models.Field:
    return cast(models.Field, Contact._meta.get_field(name))


def _field_value(contact: Contact, key: str):
    """A MERGE_FIELDS or "custom.<key>" value as stored (ids for foreign keys)."""
    if key.startswith(CUSTOM_PREFIX):
        return (contact.custom or {}).get(key.removeprefix(CUSTOM_PREFIX))
    field = _contact_field(key)
    return dump_value(getattr(contact, field.attname))


def _is_empty(key: str, value) -> bool:
    if value is None or value == "" or value == [] or value == {}:
        return True
    return value in _EMPTY_VALUES.get(key, ())


def _display(contact: Contact, key: str) -> str:
    value = _field_value(contact, key)
    if _is_empty(key, value) and key not in _EMPTY_VALUES:
        return ""
    if key.startswith(CUSTOM_PREFIX):
        if isinstance(value, bool):
            return "Yes" if value else "No"
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)
    spec = _SPECS[key]
    raw = getattr(contact, key)
    if spec.type in ("user", "company"):
        return str(raw) if raw is not None else ""
    if spec.type == "choice":
        return str(dict(spec.choices).get(raw, raw or ""))
    if spec.type == "bool":
        return "" if raw is None else ("Yes" if raw else "No")
    if spec.type == "datetime":
        return timezone.localtime(raw).strftime("%Y-%m-%d %H:%M") if raw else ""
    if spec.type == "emails":
        return ", ".join(raw or [])
    return str(raw)


def _field_label(key: str, custom_labels: dict[str, str]) -> str:
    if key.startswith(CUSTOM_PREFIX):
        return custom_labels.get(key, key.removeprefix(CUSTOM_PREFIX))
    return _SPECS[key].label


def _custom_keys(org, primary: Contact, secondary: Contact) -> dict[str, str]:
    """Custom keys to decide, "custom.<key>" → label: the org's active definitions first,
    then any other key either contact holds (a deactivated field's value is kept too)."""
    keys: dict[str, str] = {}
    for definition in custom_definitions(org):
        keys[CUSTOM_PREFIX + definition.key] = definition.label
    for contact in (primary, secondary):
        for key in contact.custom or {}:
            keys.setdefault(CUSTOM_PREFIX + key, key)
    return keys


def _default_side(key: str, primary: Contact, secondary: Contact) -> str:
    p, s = _field_value(primary, key), _field_value(secondary, key)
    p_empty, s_empty = _is_empty(key, p), _is_empty(key, s)
    if p_empty and s_empty:
        return PRIMARY
    if p_empty != s_empty:
        return SECONDARY if p_empty else PRIMARY
    if p == s:
        return PRIMARY
    if key in _CONSENT_BOOLS and False in (p, s):
        return PRIMARY if p is False else SECONDARY
    if key == "consent_status" and Contact.ConsentStatus.OPTED_OUT in (p, s):
        return PRIMARY if p == Contact.ConsentStatus.OPTED_OUT else SECONDARY
    newer_secondary = (secondary.updated_at or secondary.created_at) > (
        primary.updated_at or primary.created_at
    )
    return SECONDARY if newer_secondary else PRIMARY


def _field_editable(policy, key: str) -> bool:
    return policy is None or policy.field_level(key) == "editable"


def _owner_change_ok(policy, old_id, new_id) -> bool:
    """The rule of contact_update: claiming an unowned contact and releasing your own are
    anyone's; giving a contact to someone else, or taking it from them, is for admins."""
    if policy is None or policy.is_contact_admin() or old_id == new_id:
        return True
    me = policy.membership.user_id if policy.membership is not None else None
    return (new_id == me and old_id is None) or (new_id is None and old_id == me)


def _side_allowed(policy, key: str, primary: Contact, secondary: Contact) -> bool:
    """Whether the member may take the secondary's value of `key` onto the primary."""
    if _field_value(primary, key) == _field_value(secondary, key):
        return True
    if not _field_editable(policy, key):
        return False
    if key == "owner":
        return _owner_change_ok(policy, primary.owner_id, secondary.owner_id)
    return True


def merge_preview(*, primary: Contact, secondary: Contact, policy=None) -> list[FieldChoice]:
    """Every field a merge decides, with both values as text and the side the default rule
    picks. With `policy`, fields the member may not see show no value, and fields the member
    may not change keep the primary's value (`editable=False`)."""
    custom = _custom_keys(primary.org, primary, secondary)
    out = []
    for key, label in [*((f.key, f.label) for f in MERGE_FIELDS), *custom.items()]:
        visible = policy is None or policy.can_see_field(key)
        editable = visible and _side_allowed(policy, key, primary, secondary)
        differs = _field_value(primary, key) != _field_value(secondary, key)
        default = _default_side(key, primary, secondary) if editable else PRIMARY
        out.append(
            FieldChoice(
                key=key,
                label=label,
                primary_value=_display(primary, key) if visible else "",
                secondary_value=_display(secondary, key) if visible else "",
                default=default,
                differs=differs if visible else False,
                editable=editable,
            )
        )
    return out


# Checks ------------------------------------------------------------------------------------


def merge_blockers(*, primary: Contact, secondary: Contact, policy=None) -> list[str]:
    """Why these two cannot be merged by this member, in words ([] when they can)."""
    if primary.org_id != secondary.org_id:
        return ["Only contacts of one organization can be merged."]
    if primary.pk == secondary.pk:
        return ["Choose two different contacts to merge."]
    problems = []
    if policy is not None:
        for contact, action in ((primary, "edit"), (secondary, "edit"), (secondary, "delete")):
            if not policy.can_touch("contacts", action, contact.owner_id):
                verb = "edit" if action == "edit" else "delete"
                problems.append(f"You may not {verb} {contact.full_name}.")
        if problems:
            # Merging needs edit rights on both records and delete rights on the secondary.
            return list(dict.fromkeys(problems))
    for contact in (primary, secondary):
        if contact.merged_into_id:
            problems.append(f"{contact.full_name} was already merged into another contact.")
        elif contact.is_archived:
            problems.append(f"{contact.full_name} is archived; restore it before merging.")
    return problems


def _check_mergeable(primary: Contact, secondary: Contact, policy) -> None:
    if primary.org_id != secondary.org_id:
        raise ValidationError("Only contacts of one organization can be merged.")
    if primary.pk == secondary.pk:
        raise ValidationError("Choose two different contacts to merge.")
    try:
        _require(policy, "contacts", "edit", primary.owner_id, check_scope=True)
        _require(policy, "contacts", "edit", secondary.owner_id, check_scope=True)
        _require(policy, "contacts", "delete", secondary.owner_id, check_scope=True)
    except PermissionDenied:
        raise PermissionDenied(
            "Merging needs the right to edit both contacts and to delete "
            f"{secondary.full_name}, the one merged away."
        ) from None
    problems = merge_blockers(primary=primary, secondary=secondary)
    if problems:
        raise ValidationError(problems)


def _lock_pair(org, first_pk: int, second_pk: int) -> dict[int, Contact]:
    """Both contacts, locked in id order (two merges of overlapping pairs never deadlock).
    The lock also keeps rows from being linked to either contact while the merge runs."""
    locked = (
        Contact.objects.for_org(org)
        .select_for_update(of=("self",))
        .select_related("owner", "company")
        .filter(pk__in=[first_pk, second_pk])
        .order_by("pk")
    )
    return {c.pk: c for c in locked}


def _resolve_choices(
    primary: Contact, secondary: Contact, choices: dict | None, policy
) -> dict[str, str]:
    custom = _custom_keys(primary.org, primary, secondary)
    keys = [f.key for f in MERGE_FIELDS] + list(custom)
    choices = dict(choices or {})
    errors = {}
    for key, side in choices.items():
        if key not in keys:
            errors[key] = [f"“{key}” is not a field a merge decides."]
        elif side not in SIDES:
            errors[key] = ["Choose primary or secondary."]
    if errors:
        raise ValidationError(errors)
    locked = [
        key
        for key, side in choices.items()
        if side == SECONDARY and not _side_allowed(policy, key, primary, secondary)
    ]
    if locked:
        names = ", ".join(_field_label(k, custom) for k in locked)
        raise PermissionDenied(f"Your role may not change these fields: {names}.")
    out = {}
    for key in keys:
        if key in choices:
            out[key] = choices[key]
        elif not _side_allowed(policy, key, primary, secondary):
            out[key] = PRIMARY
        else:
            out[key] = _default_side(key, primary, secondary)
    return out


# Merge -------------------------------------------------------------------------------------


def _merged_values(primary: Contact, secondary: Contact, sides: dict[str, str]) -> dict:
    """The primary's new values (attname → JSON) from the chosen sides."""
    values: dict = {}
    custom = dict(primary.custom or {})
    for key, side in sides.items():
        if side != SECONDARY:
            continue
        if key.startswith(CUSTOM_PREFIX):
            name = key.removeprefix(CUSTOM_PREFIX)
            if name in (secondary.custom or {}):
                custom[name] = secondary.custom[name]
            else:
                custom.pop(name, None)
            continue
        field = _contact_field(key)
        values[field.attname] = dump_value(getattr(secondary, field.attname))
        companion = _COMPANION_FIELDS.get(key)
        if companion:
            values[companion] = getattr(secondary, companion)
    values["custom"] = custom
    # No address is lost: the email not kept joins the other emails.
    email = values.get("email", primary.email)
    pool = [
        *(primary.other_emails or []),
        primary.email,
        secondary.email,
        *(secondary.other_emails or []),
    ]
    values["other_emails"] = list(dict.fromkeys(e for e in pool if e and e != email))
    # The timeline dates follow the moved activities: the later of the two.
    for name in ("last_activity_at", "last_contacted_at"):
        moments = [m for m in (getattr(primary, name), getattr(secondary, name)) if m]
        values[name] = dump_value(max(moments)) if moments else None
    return values


def _count_moved(moved: dict) -> int:
    return sum(len(ids) for key, ids in moved.items() if key != "dropped")


def _announce(record: MergeRecord, actor: Actor, verb: str, *, changes: dict, timeline) -> None:
    """Audit `verb` on the primary, emit it as an outbox event with both contacts and the
    merge, and write one timeline entry on each contact: `timeline` holds (type, subject,
    data beyond the merge's id) for the primary, then the secondary."""
    org, primary, secondary = record.org, record.primary, record.secondary
    audit(org=org, actor=actor, verb=verb, obj=primary, changes=changes)
    emit_event(
        org=org,
        event_type=verb,
        payload={
            "primary": primary.public_id,
            "secondary": secondary.public_id,
            "merge": record.public_id,
        },
    )
    for contact, (kind, subject, extra) in zip((primary, secondary), timeline, strict=True):
        data = {"merge": str(record.public_id), **extra}
        _log(org, actor, kind, contact=contact, subject=subject, data=data)


@transaction.atomic
def _merge_via(actor: Actor, source: str) -> ConsentVia:
    """Consents a merge (or its undo) changes are ledgered as the merge's, by its member."""
    return replace(ConsentVia.from_actor(actor, source=source), kind="merge")


def merge_contacts(
    *,
    primary: Contact,
    secondary: Contact,
    actor: Actor,
    policy=None,
    choices: dict[str, str] | None = None,
) -> MergeRecord:
    """Merge `secondary` into `primary` (see the module docstring). `choices` maps a field
    key ("email", "custom.tier") to "primary" or "secondary", overriding the default rule."""
    _check_mergeable(primary, secondary, policy)  # on the caller's copies: a fast refusal
    org = primary.org
    locked = _lock_pair(org, primary.pk, secondary.pk)
    if len(locked) != 2:
        raise ValidationError("One of the contacts no longer exists.")
    primary, secondary = locked[primary.pk], locked[secondary.pk]
    _check_mergeable(primary, secondary, policy)  # again on the locked, current rows
    sides = _resolve_choices(primary, secondary, choices, policy)

    primary_before, secondary_before = _values(primary), _values(secondary)
    audit_before = _contact_state(primary)
    now = timezone.now()

    # The secondary goes first: it frees its email for the primary (one active per email).
    secondary.is_archived = True
    secondary.archived_at = now
    secondary.merged_into = primary
    secondary.save(update_fields=["is_archived", "archived_at", "merged_into", "updated_at"])

    new_values = _merged_values(primary, secondary, sides)
    _apply_values(primary, new_values)
    if primary.email and primary.email != primary_before["email"]:
        _check_email_free(org, primary.email, exclude_pk=primary.pk)
    with consent_context(_merge_via(actor, f"Merge of {secondary} into this contact")):
        primary.save()

    moved = move_relations(org, primary, secondary)
    rescore_contact(primary)
    primary.refresh_from_db()

    record = MergeRecord.objects.for_org(org).create(
        org=org,
        primary=primary,
        secondary=secondary,
        merged_by=_user_of(actor),
        primary_before=primary_before,
        secondary_before=secondary_before,
        primary_after=_values(primary),
        moved=moved,
    )
    _announce(
        record,
        actor,
        "contact.merged",
        changes={
            **diff(audit_before, _contact_state(primary)),
            "merged": [None, secondary.full_name],
            "secondary": [None, str(secondary.public_id)],
            "moved": [None, _count_moved(moved)],
        },
        timeline=(
            (
                Activity.Type.MERGED,
                f"Merged with {secondary.full_name}",
                {"secondary": str(secondary.public_id)},
            ),
            (
                Activity.Type.MERGED,
                f"Merged into {primary.full_name}",
                {"primary": str(primary.public_id)},
            ),
        ),
    )
    return record


# Undo --------------------------------------------------------------------------------------

_DATE_FIELDS = ("last_activity_at", "last_contacted_at")


def _label_of_attname(attname: str) -> str:
    for f in MERGE_FIELDS:
        if _contact_field(f.key).attname == attname:
            return f.label
    return attname.replace("_", " ")


def _edited_fields(contact: Contact, expected: dict, ignore: Iterable[str] = ()) -> list[str]:
    """Labels of the decided fields whose value is no longer `expected`."""
    current = _values(contact)
    labels = []
    decided = {_contact_field(f.key).attname for f in MERGE_FIELDS}
    for attname in decided:
        if attname in ignore:
            continue
        if current.get(attname) != expected.get(attname):
            labels.append(_label_of_attname(attname))
    now_custom, then_custom = current.get("custom") or {}, expected.get("custom") or {}
    for key in sorted(set(now_custom) | set(then_custom)):
        if now_custom.get(key) != then_custom.get(key):
            labels.append(_custom_label(contact.org, key))
    order = {f.label: i for i, f in enumerate(MERGE_FIELDS)}
    return sorted(labels, key=lambda label: (order.get(label, len(order)), label))


def _custom_label(org, key: str) -> str:
    for definition in custom_definitions(org):
        if definition.key == key:
            return definition.label
    return key


def _state_problems(record: MergeRecord, primary: Contact, secondary: Contact) -> list[str]:
    """What changed on the two contacts since the merge."""
    problems: list[str] = []
    for label in _edited_fields(primary, record.primary_after):
        problems.append(f"{label} of {primary.full_name} was edited after the merge.")
    if primary.is_archived:
        problems.append(f"{primary.full_name} was archived or merged after this merge.")
    if secondary.merged_into_id != primary.pk or not secondary.is_archived:
        problems.append(f"{secondary.full_name} was restored or changed after the merge.")
    else:
        for label in _edited_fields(secondary, record.secondary_before):
            problems.append(f"{label} of {secondary.full_name} was edited after the merge.")
    return problems


@transaction.atomic
def undo_merge(*, record: MergeRecord, actor: Actor, policy=None) -> None:
    """Put both contacts back as they were before `record`'s merge, or refuse with the list
    of what changed since (ValidationError). Needs the rights the merge needed."""
    record = MergeRecord.objects.for_org(record.org_id).select_for_update().get(pk=record.pk)
    if record.state == MergeRecord.State.UNDONE:
        raise ValidationError("This merge was already undone.")
    org = record.org
    locked = _lock_pair(org, record.primary_id, record.secondary_id)
    primary, secondary = locked[record.primary_id], locked[record.secondary_id]
    try:
        _require(policy, "contacts", "edit", primary.owner_id, check_scope=True)
        _require(policy, "contacts", "edit", secondary.owner_id, check_scope=True)
        _require(policy, "contacts", "delete", secondary.owner_id, check_scope=True)
    except PermissionDenied:
        raise PermissionDenied(
            "Undoing a merge needs the right to edit both contacts and to delete "
            f"{secondary.full_name}."
        ) from None
    audit_before = _contact_state(primary)
    problems = _state_problems(record, primary, secondary)
    # Rows go back first, then the fields. A row that cannot go back makes the whole undo
    # refuse, and the ValidationError rolls back the rows already moved.
    problems.extend(move_back(record, primary, secondary))
    problems.extend(dropped_problems(record, primary, secondary))
    if problems:
        raise ValidationError(["This merge can no longer be undone:", *problems])
    restore_dropped(record)

    restored = dict(record.primary_before)
    # A timeline date that moved on since the merge came from a newer entry of the primary.
    for name in _DATE_FIELDS:
        current = _values(primary).get(name)
        if current != record.primary_after.get(name):
            restored[name] = current
    _apply_values(primary, restored)
    _apply_values(secondary, record.secondary_before)
    secondary.merged_into = None
    # The two emails come back only if no other active contact took them meanwhile.
    # (The two never shared one: it was unique among active contacts before the merge.)
    for contact in (primary, secondary):
        if contact.email and not contact.is_archived:
            taken = (
                Contact.objects.for_org(org)
                .filter(is_archived=False)
                .exclude(pk__in=[primary.pk, secondary.pk])
                .annotate(email_lower=Lower("email"))
                .filter(email_lower=contact.email.lower())
            )
            if taken.exists():
                raise ValidationError(
                    [
                        "This merge can no longer be undone:",
                        f"Another active contact now uses {contact.email}.",
                    ]
                )
    with consent_context(_merge_via(actor, "Undo of a merge")):
        primary.save()
        secondary.save()
    rescore_contact(primary)
    rescore_contact(secondary)

    record.state = MergeRecord.State.UNDONE
    record.undone_at = timezone.now()
    record.undone_by = _user_of(actor)
    record.save(update_fields=["state", "undone_at", "undone_by"])

    _announce(
        record,
        actor,
        "contact.merge_undone",
        changes={
            **diff(audit_before, _contact_state(primary)),
            "restored": [None, secondary.full_name],
            "secondary": [None, str(secondary.public_id)],
        },
        timeline=(
            (Activity.Type.MERGED, f"Merge with {secondary.full_name} undone", {"undone": True}),
            (
                Activity.Type.RESTORED,
                f"Restored: merge into {primary.full_name} undone",
                {},
            ),
        ),
    )
