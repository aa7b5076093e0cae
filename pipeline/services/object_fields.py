"""Fields of custom object types (Settings → Custom objects → a type): add, change,
reorder, delete, and the primary field that names the type's records.

The rules (pipeline.services.object_types says who manages types):
- at most MAX_FIELDS fields per type; keys are lower-case slugs, not a reserved word, unique
  in their type, fixed once created; a field's kind is fixed once created (as for custom
  fields). Label, choices, currency and pattern are checked by
  contacts.custom_fields.clean_definition, the one checker of field definitions;
- changing a field keeps the stored values: a value that no longer fits (a removed choice, a
  new pattern, a field made required) is reported when its record is next edited;
- deleting a field strips its values from every record of the type, so no hidden data stays
  behind and a later field with the same key starts empty; the primary field cannot be
  deleted while it is the primary one;
- the primary field is a text, link, list or date field (its stored value is its display
  text, so every record's display_name is rebuilt in one UPDATE when it changes).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Func, JSONField, Max, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Left

from contacts.custom_fields import clean_definition
from contacts.models import CustomFieldDefinition
from crm.field_sizes import char_max_length
from crm.services import Actor, audit, diff, emit_event, snapshot

from ..models import ObjectField, ObjectRecord, ObjectType
from .object_types import (
    FIELD_HELP_MAX,
    FIELD_LABEL_MAX,
    FIELD_REGEX_MESSAGE_MAX,
    MAX_FIELDS,
    PRIMARY_KINDS,
    RESERVED_FIELD_KEYS,
    FieldType,
    key_problem,
    locked_type,
    records_of,
    require_manager,
    suggest_key,
    type_event,
)

FIELD_STATE = [
    "key",
    "label",
    "field_type",
    "choices",
    "currency",
    "regex",
    "regex_message",
    "help_text",
    "required",
]


# Fields --------------------------------------------------------------------------------


def fields_of(object_type: ObjectType):
    return (
        ObjectField.objects.for_org(object_type.org_id)
        .filter(object_type=object_type)
        .order_by("position", "id")
    )


def _clean_field(object_type: ObjectType, data: dict, instance: ObjectField | None) -> dict:
    """The checked attributes of a field: its key here (object field rules), everything
    else by contacts.custom_fields.clean_definition, handed a stand-in definition that holds
    the key and kind so that it checks neither against contact fields."""
    errors: dict = {}
    if instance is None:
        kind = str(data.get("field_type") or "")
        raw_key = str(data.get("key") or "").strip().lower()
        key = raw_key or suggest_key(data.get("label") or "", fallback="field")
        problem = key_problem(key, RESERVED_FIELD_KEYS)
        if problem:
            errors["key"] = [problem]
        elif fields_of(object_type).filter(key=key).exists():
            errors["key"] = [f"This type already has a field with the key “{key}”."]
    else:
        kind, key = instance.field_type, instance.key
        raw_key = str(data.get("key") or "").strip().lower()
        if raw_key and raw_key != instance.key:
            errors["key"] = ["A field's key cannot change once it exists."]
        given_kind = data.get("field_type")
        if given_kind and given_kind != instance.field_type:
            errors["field_type"] = ["A field's kind cannot change once it exists."]
    if kind not in FieldType.values:
        errors["field_type"] = ["Choose a kind of field."]
        kind = FieldType.TEXT
    current = instance or SimpleNamespace()

    def given(name, default=""):
        return data.get(name, getattr(current, name, default))

    try:
        cleaned = clean_definition(
            org=object_type.org,
            entity=CustomFieldDefinition.Entity.CONTACT,
            key=key,
            label=given("label"),
            field_type=kind,
            choices=given("choices", ()),
            regex=given("regex"),
            regex_message=given("regex_message"),
            currency=given("currency"),
            help_text=given("help_text"),
            instance=cast(
                CustomFieldDefinition,
                SimpleNamespace(
                    key=key, field_type=kind, entity=CustomFieldDefinition.Entity.CONTACT
                ),
            ),
        )
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, messages)
        cleaned = {}
    label = str(given("label") or "")
    if len(label.strip()) > FIELD_LABEL_MAX:
        errors.setdefault("label", [f"Keep the label to {FIELD_LABEL_MAX} characters."])
    if len(str(given("help_text") or "").strip()) > FIELD_HELP_MAX:
        errors.setdefault("help_text", [f"Keep the help text to {FIELD_HELP_MAX} characters."])
    if len(str(given("regex_message") or "").strip()) > FIELD_REGEX_MESSAGE_MAX:
        errors.setdefault(
            "regex_message", [f"Keep the message to {FIELD_REGEX_MESSAGE_MAX} characters."]
        )
    for name in ("label", "help_text", "regex_message", "regex"):
        if "\x00" in str(given(name) or ""):
            errors.setdefault(name, ["Remove the null character."])
    if errors:
        raise ValidationError(errors)
    cleaned.pop("entity", None)
    cleaned["required"] = bool(given("required", False))
    return cleaned


def _field_state(field: ObjectField) -> dict:
    return snapshot(field, FIELD_STATE)


def _field_event(org, event_type: str, field: ObjectField, object_type: ObjectType, **extra):
    emit_event(
        org=org,
        event_type=event_type,
        payload={
            "object_type": object_type.public_id,
            "field": field.public_id,
            "key": field.key,
            "field_type": field.field_type,
            **extra,
        },
    )


@transaction.atomic
def object_field_create(*, object_type: ObjectType, actor: Actor, data: dict, policy=None):
    require_manager(policy)
    org = object_type.org
    object_type = locked_type(object_type)
    if fields_of(object_type).count() >= MAX_FIELDS:
        raise ValidationError(
            f"A type can have at most {MAX_FIELDS} fields. Delete one you no longer use "
            "before adding another."
        )
    values = _clean_field(object_type, data, None)
    position = fields_of(object_type).aggregate(top=Max("position"))["top"]
    field = ObjectField(
        org=org,
        object_type=object_type,
        position=0 if position is None else position + 1,
        **values,
    )
    try:
        with transaction.atomic():
            field.save()
    except IntegrityError:
        raise ValidationError({"key": ["This type already has a field with this key."]}) from None
    audit(
        org=org,
        actor=actor,
        verb="object_field.created",
        obj=field,
        object_repr=f"{object_type.name}: {field.label}",
        changes=diff({}, _field_state(field)),
    )
    _field_event(org, "object_field.created", field, object_type)
    return field


def _locked_field(field: ObjectField) -> ObjectField:
    return (
        ObjectField.objects.for_org(field.org_id)
        .select_for_update()
        .select_related("object_type")
        .get(pk=field.pk)
    )


@transaction.atomic
def object_field_update(*, field: ObjectField, actor: Actor, data: dict, policy=None):
    """Change a field's label, help, required flag, choices, currency or pattern. Its key
    and kind are fixed. Stored values are kept as they are: a value that no longer fits
    (a removed choice, a new pattern) is reported when that record is next edited."""
    require_manager(policy)
    org = field.org
    field = _locked_field(field)
    values = _clean_field(field.object_type, data, field)
    before = _field_state(field)
    for key, value in values.items():
        setattr(field, key, value)
    field.save()
    changes = diff(before, _field_state(field))
    if changes:
        audit(
            org=org,
            actor=actor,
            verb="object_field.updated",
            obj=field,
            object_repr=f"{field.object_type.name}: {field.label}",
            changes=changes,
        )
        _field_event(org, "object_field.updated", field, field.object_type, changes=sorted(changes))
    return field


class _WithoutKey(Func):
    """`values - 'key'`: the JSON object without one key."""

    arg_joiner = " - "
    template = "(%(expressions)s)"
    output_field = JSONField()


@transaction.atomic
def object_field_delete(*, field: ObjectField, actor: Actor, policy=None) -> int:
    """Delete a field and strip its values from the type's records. The primary field
    cannot go: choose another one first. Returns how many records lost a value."""
    require_manager(policy)
    org = field.org
    field = _locked_field(field)
    object_type = locked_type(field.object_type)
    if object_type.primary_field_key == field.key:
        raise ValidationError(
            f"“{field.label}” names the records of this type. Make another field the primary "
            "one before deleting it."
        )
    stripped = (
        records_of(object_type)
        .filter(values__has_key=field.key)
        .update(values=_WithoutKey(F("values"), Cast(Value(field.key), TextField())))
    )
    audit(
        org=org,
        actor=actor,
        verb="object_field.deleted",
        obj=field,
        object_repr=f"{object_type.name}: {field.label}",
        changes={**diff(_field_state(field), {}), "values_removed": stripped},
    )
    _field_event(org, "object_field.deleted", field, object_type, values_removed=stripped)
    field.delete()
    return stripped


@transaction.atomic
def object_fields_reorder(*, object_type: ObjectType, actor: Actor, keys: list, policy=None):
    """Put the type's fields in the order of `keys` (every key once)."""
    require_manager(policy)
    org = object_type.org
    object_type = locked_type(object_type)
    fields = list(fields_of(object_type))
    by_key = {f.key: f for f in fields}
    keys = [str(k) for k in keys]
    if sorted(keys) != sorted(by_key):
        raise ValidationError("List every field of the type once.")
    before = [f.key for f in fields]
    if keys == before:
        return fields
    ordered = [by_key[k] for k in keys]
    for position, field in enumerate(ordered):
        field.position = position
    ObjectField.objects.for_org(org).bulk_update(ordered, ["position"])
    audit(
        org=org,
        actor=actor,
        verb="object_type.fields_reordered",
        obj=object_type,
        changes={"fields": [before, keys]},
    )
    type_event(org, "object_type.fields_reordered", object_type, fields=keys)
    return ordered


def object_field_move(*, field: ObjectField, actor: Actor, direction: str, policy=None):
    """Move a field one place up or down (the ↑/↓ buttons)."""
    if direction not in ("up", "down"):
        raise ValidationError("Move a field up or down.")
    keys = list(fields_of(field.object_type).values_list("key", flat=True))
    index = keys.index(field.key)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(keys):
        keys[index], keys[other] = keys[other], keys[index]
    return object_fields_reorder(
        object_type=field.object_type, actor=actor, keys=keys, policy=policy
    )


@transaction.atomic
def primary_field_set(*, object_type: ObjectType, field: ObjectField, actor: Actor, policy=None):
    """Make `field` the one that names the type's records, and rename every record."""
    require_manager(policy)
    org = object_type.org
    object_type = locked_type(object_type)
    if field.object_type_id != object_type.pk or field.org_id != object_type.org_id:
        raise ValidationError("Choose a field of this type.")
    if field.field_type not in PRIMARY_KINDS:
        raise ValidationError(
            "The primary field must be a text, link, list or date field: its value names "
            "each record."
        )
    if object_type.primary_field_key == field.key:
        return object_type
    before = object_type.primary_field_key
    object_type.primary_field_key = field.key
    object_type.save(update_fields=["primary_field_key", "updated_at"])
    limit = char_max_length(ObjectRecord, "display_name")
    records_of(object_type).update(
        display_name=Left(Coalesce(KeyTextTransform(field.key, "values"), Value("")), limit)
    )
    audit(
        org=org,
        actor=actor,
        verb="object_type.updated",
        obj=object_type,
        changes={"primary_field_key": [before, field.key]},
    )
    type_event(org, "object_type.updated", object_type, changes=["primary_field_key"])
    return object_type
