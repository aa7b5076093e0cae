"""Custom field definitions (Settings → Custom fields)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.services import Actor, audit, diff, emit_event, snapshot

from ..custom_fields import clean_definition
from ..models import CustomFieldDefinition
from ._base import (
    _require,
)

# Custom field definitions -----------------------------------------------------------------

_DEFINITION_FIELDS = [
    "entity",
    "key",
    "label",
    "field_type",
    "choices",
    "currency",
    "regex",
    "regex_message",
    "help_text",
    "position",
    "is_active",
]


@transaction.atomic
def customfield_create(*, org, actor: Actor, data: dict, policy=None) -> CustomFieldDefinition:
    _require(policy, "settings", "edit")
    cleaned = clean_definition(org=org, **_definition_args(data))
    last = (
        CustomFieldDefinition.objects.for_org(org)
        .filter(entity=cleaned["entity"])
        .order_by("-position")
        .values_list("position", flat=True)
        .first()
    )
    definition = CustomFieldDefinition.objects.for_org(org).create(
        org=org, position=(last + 1) if last is not None else 0, **cleaned
    )
    audit(
        org=org,
        actor=actor,
        verb="customfield.created",
        obj=definition,
        changes=diff({}, snapshot(definition, _DEFINITION_FIELDS)),
    )
    emit_event(
        org=org,
        event_type="customfield.created",
        payload={"field": definition.public_id, "entity": definition.entity, "key": definition.key},
    )
    return definition


def _definition_args(data: dict, instance=None) -> dict:
    allowed = {
        "entity",
        "key",
        "label",
        "field_type",
        "choices",
        "regex",
        "regex_message",
        "currency",
        "help_text",
    }
    unknown = set(data) - allowed
    if unknown:
        raise ValidationError({key: ["Not a custom field setting."] for key in unknown})
    args = {
        "entity": data.get("entity", instance.entity if instance else "contact"),
        "key": data.get("key", instance.key if instance else ""),
        "label": data.get("label", instance.label if instance else ""),
        "field_type": data.get("field_type", instance.field_type if instance else ""),
        "choices": data.get("choices", instance.choices if instance else []),
        "regex": data.get("regex", instance.regex if instance else ""),
        "regex_message": data.get("regex_message", instance.regex_message if instance else ""),
        "currency": data.get("currency", instance.currency if instance else ""),
        "help_text": data.get("help_text", instance.help_text if instance else ""),
    }
    if instance is not None:
        args["instance"] = instance
    return args


@transaction.atomic
def customfield_update(
    *, definition: CustomFieldDefinition, actor: Actor, data: dict, policy=None
) -> CustomFieldDefinition:
    _require(policy, "settings", "edit")
    definition = (
        CustomFieldDefinition.objects.for_org(definition.org_id)
        .select_for_update()
        .get(pk=definition.pk)
    )
    cleaned = clean_definition(org=definition.org, **_definition_args(data, definition))
    before = snapshot(definition, _DEFINITION_FIELDS)
    for key, value in cleaned.items():
        setattr(definition, key, value)
    definition.save()
    changes = diff(before, snapshot(definition, _DEFINITION_FIELDS))
    if changes:
        audit(
            org=definition.org,
            actor=actor,
            verb="customfield.updated",
            obj=definition,
            changes=changes,
        )
        emit_event(
            org=definition.org,
            event_type="customfield.updated",
            payload={"field": definition.public_id, "fields": sorted(changes)},
        )
    return definition


def _set_definition_active(definition, actor, policy, active: bool):
    _require(policy, "settings", "edit")
    definition = (
        CustomFieldDefinition.objects.for_org(definition.org_id)
        .select_for_update()
        .get(pk=definition.pk)
    )
    if definition.is_active == active:
        return definition
    before = snapshot(definition, ["is_active"])
    definition.is_active = active
    definition.save(update_fields=["is_active"])
    verb = "customfield.reactivated" if active else "customfield.deactivated"
    audit(
        org=definition.org,
        actor=actor,
        verb=verb,
        obj=definition,
        changes=diff(before, snapshot(definition, ["is_active"])),
    )
    emit_event(org=definition.org, event_type=verb, payload={"field": definition.public_id})
    return definition


@transaction.atomic
def customfield_deactivate(
    *, definition: CustomFieldDefinition, actor: Actor, policy=None
) -> CustomFieldDefinition:
    """Hide a field from forms, pages, filters and exports. Stored values stay, so turning
    it back on loses nothing."""
    return _set_definition_active(definition, actor, policy, False)


@transaction.atomic
def customfield_reactivate(
    *, definition: CustomFieldDefinition, actor: Actor, policy=None
) -> CustomFieldDefinition:
    return _set_definition_active(definition, actor, policy, True)
