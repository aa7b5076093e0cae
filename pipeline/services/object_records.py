"""Custom object records: create, change, delete.

Rights are the Custom objects module's (create, edit, delete), with record scope by the
record's owner, as for contacts and deals; policy None is system work.

A record's `values` JSON is keyed by field key and holds the stored forms of
contacts.custom_fields (which checks each value: its kind, its choices, its RE2 pattern),
plus the rules of object fields:
- a key that is not a field of the type is refused;
- a required field must have a value: on create every required field, on update every
  required field that the input names (so an API call that changes one field is not refused
  for another one an admin made required later);
- a single value per field (no nested lists or objects), no NUL character (PostgreSQL refuses
  it), and the whole JSON at most MAX_VALUES_BYTES;
- `display_name` is kept equal to the primary field's display text.

The external id is optional and unique per type (the same id may exist in another type): a
second record with the same id is a field error, never a 500. The owner defaults to the
creating member; a member sets or changes an owner only within their own record scope
("own" scope: themselves), as for deals.

All errors of one input are reported together, keyed by field key ("external_id" and
"owner" for those two), so a form shows each next to its field.
"""

from __future__ import annotations

import json
from typing import cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from contacts.custom_fields import coerce_custom_value, display_custom_value
from contacts.models import CustomFieldDefinition
from crm.field_sizes import char_max_length
from crm.models import Membership
from crm.services import Actor, audit, diff, emit_event

from ..models import ObjectField, ObjectRecord, ObjectType
from .object_fields import fields_of
from .object_types import MODULE, require_module

MAX_VALUES_BYTES = 64 * 1024
EXTERNAL_ID_MAX = char_max_length(ObjectRecord, "external_id")
DISPLAY_NAME_MAX = char_max_length(ObjectRecord, "display_name")
EXTERNAL_ID_TAKEN = "Another record of this type already has this external id."
OWNER_OUT_OF_SCOPE = "Choose an owner within your scope."


# Permissions and reads -------------------------------------------------------------------


def require(policy, action: str, record: ObjectRecord | None = None) -> None:
    """The module's `action` right and, for an existing record, its record scope."""
    if policy is None:
        return
    policy.require(MODULE, action)
    if record is not None and not policy.owns_in_scope(MODULE, record.owner_id):
        raise PermissionDenied("This record is outside the records you may work on.")


def scoped_records(org, policy, object_type: ObjectType | None = None):
    """The records of `org` (of one type) that the member may see."""
    queryset = ObjectRecord.objects.for_org(org)
    if object_type is not None:
        queryset = queryset.filter(object_type=object_type)
    if policy is not None:
        queryset = queryset.filter(policy.scope_filter(MODULE))
    return queryset


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


# Values ----------------------------------------------------------------------------------


def as_definition(field: ObjectField) -> CustomFieldDefinition:
    """An object field for contacts.custom_fields, whose checks read only the attributes the
    two models share on purpose (field_type, label, choices, currency, regex...)."""
    return cast(CustomFieldDefinition, field)


def _required_message(field: ObjectField) -> str:
    return f"{field.label} is required."


def clean_values(fields: list[ObjectField], current: dict, raw, *, creating: bool) -> dict:
    """`current` with `raw` ({field key: value}) checked and merged in; an empty value
    removes the key. A ValidationError maps each bad key to its message."""
    if not isinstance(raw, dict):
        raise ValidationError({"values": ["Send the values as an object of field keys."]})
    by_key = {field.key: field for field in fields}
    merged = dict(current or {})
    errors: dict[str, list[str]] = {}
    for key, value in raw.items():
        field = by_key.get(key)
        if field is None:
            errors[str(key)[:60]] = [f"There is no field “{str(key)[:60]}” on this type."]
            continue
        if isinstance(value, dict | list | tuple | set):
            errors[key] = [f"{field.label} takes a single value."]
            continue
        if isinstance(value, str) and "\x00" in value:
            errors[key] = [f"{field.label} cannot hold a null character."]
            continue
        try:
            stored = coerce_custom_value(as_definition(field), value)
        except ValidationError as exc:
            errors[key] = exc.messages
            continue
        if stored is None:
            merged.pop(key, None)
            if field.required:
                errors[key] = [_required_message(field)]
        else:
            merged[key] = stored
    if creating:
        for field in fields:
            if field.required and field.key not in merged and field.key not in errors:
                errors[field.key] = [_required_message(field)]
    if not errors:
        size = len(json.dumps(merged, ensure_ascii=False).encode("utf-8"))
        if size > MAX_VALUES_BYTES:
            errors["values"] = [
                f"This record's values take {size // 1024} KB; a record can hold at most "
                f"{MAX_VALUES_BYTES // 1024} KB. Shorten the longest texts."
            ]
    if errors:
        raise ValidationError(errors)
    return merged


def display_name_for(object_type: ObjectType, fields: list[ObjectField], values: dict) -> str:
    """The primary field's display text: what names the record everywhere."""
    for field in fields:
        if field.key == object_type.primary_field_key:
            text = display_custom_value(as_definition(field), values.get(field.key))
            return " ".join(text.split())[:DISPLAY_NAME_MAX]
    return ""


def _external_id(raw) -> str:
    text = "" if raw is None else str(raw).strip()
    if "\x00" in text:
        raise ValidationError("The external id cannot hold a null character.")
    if len(text) > EXTERNAL_ID_MAX:
        raise ValidationError(f"Keep the external id to {EXTERNAL_ID_MAX} characters.")
    return text


def _member_user(org, value):
    """An active member's user, from the user or their public id; None for no one."""
    if value in (None, ""):
        return None
    members = Membership.objects.for_org(org).active().select_related("user")
    try:
        if hasattr(value, "pk"):
            membership = members.filter(user=value).first()
        else:
            membership = members.filter(user__public_id=str(value)).first()
    except ValidationError:  # not a uuid at all
        membership = None
    if membership is None:
        raise ValidationError("Choose an active member of this organization.")
    return membership.user


def _check_owner(policy, owner) -> None:
    """A member gives a record only to someone inside their own record scope; "no owner" is
    for members who see every record (anyone else would lose sight of it)."""
    if policy is None:
        return
    if owner is None:
        if policy.scope(MODULE) != "all":
            raise ValidationError(OWNER_OUT_OF_SCOPE)
    elif not policy.owns_in_scope(MODULE, owner.pk):
        raise ValidationError(OWNER_OUT_OF_SCOPE)


def _external_id_taken(record: ObjectRecord) -> bool:
    if not record.external_id:
        return False
    others = ObjectRecord.objects.for_org(record.org_id).filter(
        object_type_id=record.object_type_id, external_id=record.external_id
    )
    if record.pk:
        others = others.exclude(pk=record.pk)
    return others.exists()


def _save(record: ObjectRecord) -> None:
    """Save, turning a race on the external id into the same field error."""
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError:
        raise ValidationError({"external_id": [EXTERNAL_ID_TAKEN]}) from None


def _state(record: ObjectRecord) -> dict:
    state = {f"values.{key}": value for key, value in (record.values or {}).items()}
    state["external_id"] = record.external_id
    state["owner"] = str(record.owner) if record.owner_id else None
    return state


def _event(org, event_type: str, record: ObjectRecord, object_type: ObjectType, **extra):
    emit_event(
        org=org,
        event_type=event_type,
        payload={
            "record": record.public_id,
            "object_type": object_type.public_id,
            "object_type_key": object_type.key,
            "display_name": record.display_name,
            "external_id": record.external_id,
            **extra,
        },
    )


# Writes ----------------------------------------------------------------------------------


@transaction.atomic
def record_create(
    *, org, object_type: ObjectType, actor: Actor, data: dict, policy=None
) -> ObjectRecord:
    """A new record of `object_type` from `data`: "values" ({field key: value}), and
    optionally "external_id" and "owner" (a user or a user's public id; the creating member
    by default)."""
    require(policy, "create")
    require_module(org)
    if object_type.org_id != org.id:
        raise ValidationError("Choose an object type of this organization.")
    fields = list(fields_of(object_type))
    errors: dict = {}
    values: dict = {}
    try:
        values = clean_values(fields, {}, data.get("values") or {}, creating=True)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        external_id = _external_id(data.get("external_id"))
    except ValidationError as exc:
        errors["external_id"] = exc.messages
        external_id = ""
    user = _user_of(actor)
    owner = None
    try:
        if "owner" in data:
            owner = _member_user(org, data["owner"])
        elif policy is not None:
            owner = user
        _check_owner(policy, owner)
    except ValidationError as exc:
        errors["owner"] = exc.messages
    record = ObjectRecord(
        org=org,
        object_type=object_type,
        values=values,
        display_name=display_name_for(object_type, fields, values),
        external_id=external_id,
        owner=owner,
        created_by=user,
    )
    if "external_id" not in errors and _external_id_taken(record):
        errors["external_id"] = [EXTERNAL_ID_TAKEN]
    if errors:
        raise ValidationError(errors)
    _save(record)
    audit(
        org=org,
        actor=actor,
        verb="object_record.created",
        obj=record,
        object_repr=f"{object_type.name}: {record.display_name}"[:200],
        changes=diff({}, _state(record)),
    )
    _event(org, "object_record.created", record, object_type)
    return record


def _locked(record: ObjectRecord) -> ObjectRecord:
    return (
        ObjectRecord.objects.for_org(record.org_id)
        .select_for_update(of=("self",))
        .select_related("object_type", "owner")
        .get(pk=record.pk)
    )


@transaction.atomic
def record_update(*, record: ObjectRecord, actor: Actor, data: dict, policy=None) -> ObjectRecord:
    """Change what `data` names: "values" (only the keys given; an empty value clears one),
    "external_id", "owner"."""
    org = record.org
    record = _locked(record)
    require(policy, "edit", record)
    object_type = record.object_type
    fields = list(fields_of(object_type))
    errors: dict = {}
    before = _state(record)
    if "values" in data:
        try:
            record.values = clean_values(fields, record.values, data["values"], creating=False)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if "external_id" in data:
        try:
            record.external_id = _external_id(data["external_id"])
        except ValidationError as exc:
            errors["external_id"] = exc.messages
    if "owner" in data:
        try:
            owner = _member_user(org, data["owner"])
            if (owner.pk if owner else None) != record.owner_id:
                _check_owner(policy, owner)
            record.owner = owner
        except ValidationError as exc:
            errors["owner"] = exc.messages
    if "external_id" not in errors and _external_id_taken(record):
        errors["external_id"] = [EXTERNAL_ID_TAKEN]
    if errors:
        raise ValidationError(errors)
    changes = diff(before, _state(record))
    if not changes:
        return record
    record.display_name = display_name_for(object_type, fields, record.values)
    _save(record)
    audit(
        org=org,
        actor=actor,
        verb="object_record.updated",
        obj=record,
        object_repr=f"{object_type.name}: {record.display_name}"[:200],
        changes=changes,
    )
    _event(org, "object_record.updated", record, object_type, changes=sorted(changes))
    return record


@transaction.atomic
def record_delete(*, record: ObjectRecord, actor: Actor, policy=None) -> None:
    """Delete a record with its links to contacts and deals."""
    org = record.org
    record = _locked(record)
    require(policy, "delete", record)
    object_type = record.object_type
    audit(
        org=org,
        actor=actor,
        verb="object_record.deleted",
        obj=record,
        object_repr=f"{object_type.name}: {record.display_name}"[:200],
        changes=diff(_state(record), {}),
    )
    _event(org, "object_record.deleted", record, object_type)
    record.delete()
