"""Custom object types (Settings → Custom objects); their fields are in
pipeline.services.object_fields.

Who manages them: members with Settings edit who also have access to the Custom objects
module (policy None is system work). Records follow the module's own rights instead
(pipeline.services.object_records).

Rules, each with a message where the admin is:
- at most MAX_TYPES types per organization and MAX_FIELDS fields per type;
- keys are lower-case slugs (letters, digits, single underscores, starting with a letter),
  not a reserved word, unique (types in the organization, fields in their type), and fixed
  once created: exports, filters, stored values and API clients refer to them;
- a field's kind is fixed once created (as for custom fields); its other settings are checked
  by contacts.custom_fields.clean_definition, the one checker of field definitions;
- every type has a primary field that names its records (`display_name`): a type is created
  with its first field ("Name", text, required), the primary field may be switched to another
  text, link, list or date field (whose stored value is its display text), and it cannot be
  deleted while it is the primary one;
- deleting a field strips its values from every record of the type, so no hidden data stays
  behind and a later field with the same key starts empty;
- deleting a type that has records is refused unless the admin confirms deleting them too
  (their links to contacts and deals go with them).
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max
from django.db.models.functions import Lower

from crm.field_sizes import char_max_length
from crm.models import Organization
from crm.optional_modules import is_enabled
from crm.services import Actor, audit, diff, emit_event, snapshot

from ..models import ObjectAssociation, ObjectField, ObjectRecord, ObjectType

FieldType = ObjectField.FieldType

MODULE = "custom_objects"
MAX_TYPES = 50
MAX_FIELDS = 100
DELETE_BATCH = 5000
TYPE_NAME_MAX = char_max_length(ObjectType, "name")
TYPE_PLURAL_MAX = char_max_length(ObjectType, "plural")
TYPE_DESCRIPTION_MAX = char_max_length(ObjectType, "description")
KEY_MAX = char_max_length(ObjectType, "key")
FIELD_LABEL_MAX = char_max_length(ObjectField, "label")
FIELD_HELP_MAX = char_max_length(ObjectField, "help_text")
FIELD_REGEX_MESSAGE_MAX = char_max_length(ObjectField, "regex_message")

# Icons from the sprite (templates/components/icons.html), with the words the select shows.
ICONS = [
    ("clipboard", "Clipboard"),
    ("briefcase", "Briefcase"),
    ("building", "Building"),
    ("home", "House"),
    ("calendar", "Calendar"),
    ("file", "Document"),
    ("key", "Key"),
    ("tag", "Tag"),
    ("star", "Star"),
    ("target", "Target"),
    ("globe", "Globe"),
    ("users", "People"),
    ("shield", "Shield"),
    ("bolt", "Bolt"),
    ("chart", "Chart"),
    ("list", "List"),
    ("columns", "Board"),
    ("sparkles", "Sparkles"),
    ("phone", "Phone"),
    ("mail", "Mail"),
]
ICON_KEYS = frozenset(key for key, _ in ICONS)
DEFAULT_ICON = "clipboard"

# Kinds whose stored value is also its display text, so display_name can be rebuilt in SQL.
PRIMARY_KINDS = (FieldType.TEXT, FieldType.LINK, FieldType.LIST, FieldType.DATE)
DEFAULT_PRIMARY_LABEL = "Name"

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
# Type keys name a kind of record next to the built-in ones (exports, filters, the API).
RESERVED_TYPE_KEYS = frozenset(
    {
        "contact", "contacts", "company", "companies", "deal", "deals", "pipeline",
        "pipelines", "stage", "stages", "order", "orders", "product", "products", "task",
        "tasks", "note", "notes", "user", "users", "member", "members", "team", "teams",
        "tag", "tags", "object", "objects", "record", "records", "type", "types", "field",
        "fields", "settings", "new", "all", "export", "search", "api", "admin",
    }
)  # fmt: skip
# Field keys sit next to a record's own attributes in forms, filters, exports and the API.
RESERVED_FIELD_KEYS = frozenset(
    {
        "id", "pk", "public_id", "org", "org_id", "object_type", "type", "values",
        "display_name", "external_id", "owner", "owner_id", "created_by", "created_at",
        "updated_at", "associations", "contacts", "deals", "q", "sort", "cursor", "page",
        "format", "csrfmiddlewaretoken", "next",
    }
)  # fmt: skip
TYPE_EVENT_FIELDS = ["key", "name", "plural", "icon", "description", "primary_field_key"]


# Permissions ---------------------------------------------------------------------------


def can_manage_types(policy) -> bool:
    """Settings edit and access to the Custom objects module (policy None: system work)."""
    if policy is None:
        return True
    return policy.can("settings", "edit") and policy.can_access(MODULE)


def require_manager(policy) -> None:
    if not can_manage_types(policy):
        raise PermissionDenied(
            "Managing object types needs the Settings edit right and access to Custom objects."
        )


def require_module(org) -> None:
    if not is_enabled(org, MODULE):
        raise ValidationError(
            "Custom objects are turned off for this organization (Settings → Organization)."
        )


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


def icon_for(object_type) -> str:
    """The type's icon, or the default for a value that is not in the sprite."""
    icon = getattr(object_type, "icon", "")
    return icon if icon in ICON_KEYS else DEFAULT_ICON


# Keys ----------------------------------------------------------------------------------


def suggest_key(text: str, *, fallback: str) -> str:
    """A key from a name: "Course séance 2" → "course_seance_2"; `fallback` when nothing
    usable is left, prefixed to a name that starts with a digit."""
    folded = unicodedata.normalize("NFKD", str(text or "")).encode("ascii", "ignore").decode()
    key = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    if not key:
        return fallback
    if not key[0].isalpha():
        key = f"{fallback}_{key}"
    return key[:KEY_MAX].rstrip("_")


def key_problem(key: str, reserved: frozenset) -> str | None:
    if not key:
        return "Give it a key, for example course_code."
    if len(key) > KEY_MAX or not _KEY.match(key) or "__" in key:
        return (
            "Use lower-case letters, digits and single underscores, starting with a letter "
            f"(at most {KEY_MAX} characters)."
        )
    if key in reserved:
        return f"“{key}” is a reserved word. Choose another key."
    return None


def _one_line(raw, limit: int, *, label: str, required: bool) -> str:
    text = " ".join(str(raw or "").split())
    if "\x00" in text:
        raise ValidationError("Remove the null character.")
    if required and not text:
        raise ValidationError(f"Give it {label}.")
    if len(text) > limit:
        raise ValidationError(f"Keep it to {limit} characters.")
    return text


# Types ---------------------------------------------------------------------------------


def english_plural(name: str) -> str:
    """A plural for a type typed without one ("Property" → "Properties"); the admin can
    always write their own."""
    lower = name.lower()
    if lower.endswith(("ss", "x", "z", "ch", "sh")):
        return f"{name}es"
    if lower.endswith("s"):
        return name  # already reads as a plural ("Series", "News")
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return f"{name[:-1]}ies"
    return f"{name}s"


def _clean_type(org, data: dict, instance: ObjectType | None) -> dict:
    values: dict = {}
    errors: dict = {}
    partial = instance is not None

    def field(key, parse):
        if partial and key not in data:
            return
        try:
            values[key] = parse(data.get(key))
        except ValidationError as exc:
            errors[key] = exc.messages

    field("name", lambda raw: _one_line(raw, TYPE_NAME_MAX, label="a name", required=True))
    field("plural", lambda raw: _one_line(raw, TYPE_PLURAL_MAX, label="a plural", required=False))
    field(
        "description",
        lambda raw: _one_line(raw, TYPE_DESCRIPTION_MAX, label="a description", required=False),
    )

    def icon(raw):
        chosen = str(raw or "").strip() or DEFAULT_ICON
        if chosen not in ICON_KEYS:
            raise ValidationError("Choose one of the icons.")
        return chosen

    field("icon", icon)

    name = values.get("name") or (instance.name if instance else "")
    if "plural" in values and not values["plural"] and name:
        values["plural"] = english_plural(name)[:TYPE_PLURAL_MAX]

    raw_key = str(data.get("key") or "").strip().lower()
    if instance is not None:
        if raw_key and raw_key != instance.key:
            errors["key"] = ["A type's key cannot change once it exists."]
    else:
        key = raw_key or suggest_key(name, fallback="object")
        problem = key_problem(key, RESERVED_TYPE_KEYS)
        if problem:
            errors["key"] = [problem]
        elif ObjectType.objects.for_org(org).filter(key=key).exists():
            errors["key"] = [f"There is already a type with the key “{key}”."]
        values["key"] = key

    if "name" in values and "name" not in errors:
        taken = ObjectType.objects.for_org(org).annotate(lname=Lower("name"))
        taken = taken.filter(lname=values["name"].lower())
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            errors["name"] = [f"There is already a type named “{values['name']}”."]
    if errors:
        raise ValidationError(errors)
    return values


def _type_state(object_type: ObjectType) -> dict:
    return snapshot(object_type, TYPE_EVENT_FIELDS)


def type_event(org, event_type: str, object_type: ObjectType, **extra) -> None:
    emit_event(
        org=org,
        event_type=event_type,
        payload={
            "object_type": object_type.public_id,
            "key": object_type.key,
            "name": object_type.name,
            **extra,
        },
    )


def _primary_field_input(data: dict) -> tuple[str, str]:
    label = _one_line(
        data.get("primary_label") or DEFAULT_PRIMARY_LABEL,
        FIELD_LABEL_MAX,
        label="a label",
        required=True,
    )
    key = suggest_key(label, fallback="name")
    if key_problem(key, RESERVED_FIELD_KEYS):
        key = "name"
    return label, key


@transaction.atomic
def object_type_create(*, org, actor: Actor, data: dict, policy=None) -> ObjectType:
    """A new type with its first field (text, required), which is its primary field."""
    require_manager(policy)
    require_module(org)
    # One creation at a time per organization, so the limit holds under concurrent requests.
    Organization.objects.select_for_update().filter(pk=org.pk).first()
    if ObjectType.objects.for_org(org).count() >= MAX_TYPES:
        raise ValidationError(
            f"An organization can have at most {MAX_TYPES} object types. Delete one you no "
            "longer use before adding another."
        )
    errors: dict = {}
    try:
        values = _clean_type(org, data, None)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        values = {}
    try:
        primary_label, primary_key = _primary_field_input(data)
    except ValidationError as exc:
        errors["primary_label"] = exc.messages
    if errors:
        raise ValidationError(errors)
    position = ObjectType.objects.for_org(org).aggregate(top=Max("position"))["top"]
    object_type = ObjectType(
        org=org,
        created_by=_user_of(actor),
        position=0 if position is None else position + 1,
        primary_field_key=primary_key,
        **values,
    )
    try:
        with transaction.atomic():
            object_type.save()
    except IntegrityError:
        # Another request took the key or the name meanwhile.
        raise ValidationError(
            {"name": ["There is already a type with this name or key."]}
        ) from None
    ObjectField.objects.for_org(org).create(
        org=org,
        object_type=object_type,
        key=primary_key,
        label=primary_label,
        field_type=FieldType.TEXT,
        required=True,
        position=0,
    )
    audit(
        org=org,
        actor=actor,
        verb="object_type.created",
        obj=object_type,
        changes=diff({}, _type_state(object_type)),
    )
    type_event(org, "object_type.created", object_type)
    return object_type


def locked_type(object_type: ObjectType) -> ObjectType:
    return ObjectType.objects.for_org(object_type.org_id).select_for_update().get(pk=object_type.pk)


@transaction.atomic
def object_type_update(*, object_type: ObjectType, actor: Actor, data: dict, policy=None):
    """Change a type's name, plural, icon or description (its key is fixed)."""
    require_manager(policy)
    org = object_type.org
    object_type = locked_type(object_type)
    values = _clean_type(org, data, object_type)
    before = _type_state(object_type)
    for key, value in values.items():
        setattr(object_type, key, value)
    try:
        with transaction.atomic():
            object_type.save()
    except IntegrityError:
        raise ValidationError({"name": ["There is already a type with this name."]}) from None
    changes = diff(before, _type_state(object_type))
    if changes:
        audit(org=org, actor=actor, verb="object_type.updated", obj=object_type, changes=changes)
        type_event(org, "object_type.updated", object_type, changes=sorted(changes))
    return object_type


def records_of(object_type: ObjectType):
    return ObjectRecord.objects.for_org(object_type.org_id).filter(object_type=object_type)


@transaction.atomic
def object_type_delete(
    *, object_type: ObjectType, actor: Actor, policy=None, delete_records: bool = False
) -> int:
    """Delete a type and its fields; its records (and their links) only when
    `delete_records` says the admin confirmed it. Returns the number of records deleted."""
    require_manager(policy)
    org = object_type.org
    object_type = locked_type(object_type)
    count = records_of(object_type).count()
    if count and not delete_records:
        noun = "record" if count == 1 else "records"
        raise ValidationError(
            {
                "delete_records": [
                    f"“{object_type.name}” has {count:,} {noun}. Tick the box to delete them "
                    "with the type, or keep the type."
                ]
            }
        )
    ObjectAssociation.objects.for_org(org).filter(object_type=object_type).delete()
    # In batches: a queryset delete would load every record of the type at once.
    while True:
        batch = list(records_of(object_type).values_list("pk", flat=True)[:DELETE_BATCH])
        if not batch:
            break
        ObjectRecord.objects.for_org(org).filter(pk__in=batch).delete()
    fields = list(
        ObjectField.objects.for_org(org)
        .filter(object_type=object_type)
        .values_list("key", flat=True)
    )
    ObjectField.objects.for_org(org).filter(object_type=object_type).delete()
    audit(
        org=org,
        actor=actor,
        verb="object_type.deleted",
        obj=object_type,
        changes={**diff(_type_state(object_type), {}), "fields": fields, "records": count},
    )
    type_event(org, "object_type.deleted", object_type, records_deleted=count)
    object_type.delete()
    return count


def type_summaries(org) -> list[ObjectType]:
    """Every type of `org` with `field_count` and `record_count` (all records: this is the
    administrators' view), in two queries."""
    types = list(
        ObjectType.objects.for_org(org)
        .annotate(field_count=Count("fields"))
        .order_by("position", "name")
    )
    counts = dict(
        ObjectRecord.objects.for_org(org)
        .values_list("object_type")
        .annotate(n=Count("id"))
        .values_list("object_type", "n")
    )
    for object_type in types:
        object_type.record_count = counts.get(object_type.pk, 0)
    return types
