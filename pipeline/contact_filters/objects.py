"""Contact filter conditions over the custom-object records a contact is associated with:
"associated with a Course", optionally where a field of the record matches, and its
negation."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db.models import BigIntegerField, Case, F, FloatField, Q, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.db.models.lookups import GreaterThan, IContains, LessThan, Regex

from contacts.filters import RelatedCondition, RelatedValueError
from crm.optional_modules import is_enabled

from ..models import ObjectAssociation, ObjectField, ObjectRecord, ObjectType
from .common import (
    KEY_RE,
    MAX_ANY_OF,
    MAX_NUMBER,
    MAX_TEXT,
    NOTHING,
    NUMBER_TEXT_RE,
    IsAnyOf,
    as_object,
    day,
    known_keys,
    linked_contacts,
    shown,
)

OBJECTS_OFF = (
    "The Custom objects module is off for your organization, so contacts cannot be filtered "
    "by associated records."
)
OBJECTS_DENIED = "Your role cannot see custom object records, so it cannot filter by them."


# Associated records ------------------------------------------------------------------------

FieldType = ObjectField.FieldType
NUMBER_KINDS = (FieldType.NUMBER, FieldType.CURRENCY, FieldType.PERCENT)
# Up to this many records picked by a field or the member's scope, their ids go as an array.
RECORD_ID_CAP = 5000
WHERE_OPS: dict[str, tuple[tuple[str, str], ...]] = {
    FieldType.TEXT: (("eq", "is"), ("contains", "contains")),
    FieldType.LINK: (("eq", "is"), ("contains", "contains")),
    FieldType.NUMBER: (("gt", "is greater than"), ("lt", "is less than"), ("eq", "is")),
    FieldType.CURRENCY: (("gt", "is greater than"), ("lt", "is less than"), ("eq", "is")),
    FieldType.PERCENT: (("gt", "is greater than"), ("lt", "is less than"), ("eq", "is")),
    FieldType.DATE: (("before", "is before"), ("after", "is after")),
    FieldType.LIST: (("eq", "is"), ("any_of", "is any of")),
    FieldType.CHECKBOX: (("eq", "is"),),
}


def _objects_available(org, policy) -> str | None:
    if not is_enabled(org, "custom_objects"):
        return OBJECTS_OFF
    if policy is not None and not policy.can("custom_objects", "view"):
        return OBJECTS_DENIED
    return None


def _object_type(org, ref) -> ObjectType | None:
    """The org's type named by public id (or key); another org's is as unknown as none."""
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 100:
        return None
    ref = ref.strip()
    types = ObjectType.objects.for_org(org)
    try:
        return types.filter(public_id=uuid.UUID(ref)).first()
    except ValueError:
        return types.filter(key=ref).first() if KEY_RE.fullmatch(ref) else None


def _where_value(field: ObjectField, op: str, raw):
    kind = field.field_type
    label = field.label
    if op == "any_of":
        if not isinstance(raw, list) or not raw:
            raise RelatedValueError(f"needs a list of values for {label}.")
        if len(raw) > MAX_ANY_OF:
            raise RelatedValueError(f"accepts at most {MAX_ANY_OF} values for {label}.")
        return list(dict.fromkeys(_where_value(field, "eq", item) for item in raw))
    if kind == FieldType.CHECKBOX:
        if isinstance(raw, bool):
            return raw
        text = raw.strip().lower() if isinstance(raw, str) else None
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise RelatedValueError(f"needs yes or no for {label}.")
    if kind in NUMBER_KINDS:
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise RelatedValueError(f"needs a number for {label}.")
        try:
            number = Decimal(str(raw).strip().replace(",", ""))
        except ArithmeticError:
            number = Decimal("NaN")
        if not number.is_finite() or abs(number) >= MAX_NUMBER:
            raise RelatedValueError(f"needs a number for {label}.")
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == FieldType.DATE:
        return day(raw, f"a date for {label}")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise RelatedValueError(f"needs a text value for {label}.")
    text = str(raw).strip()
    if not text:
        raise RelatedValueError(f"needs a value for {label}.")
    if "\x00" in text:
        raise RelatedValueError("contains a NUL character, which is never valid.")
    if len(text) > MAX_TEXT:
        raise RelatedValueError(f"needs a value of at most {MAX_TEXT} characters for {label}.")
    if kind == FieldType.LIST:
        for choice in field.choices or ():
            if str(choice).casefold() == text.casefold():
                return str(choice)
        raise RelatedValueError(f"has no option {shown(text)!r} for {label}.")
    return text


def _parse_association(op, value, given) -> dict:
    value = as_object(value, '{"type": "<record type id>"}')
    known_keys(value, ("type", "where"))
    object_type = _object_type(given.org, value.get("type"))
    if object_type is None:
        raise RelatedValueError("names an unknown record type.")
    out: dict = {"type": str(object_type.public_id)}
    where = value.get("where")
    if where in (None, "", {}):
        return out
    where = as_object(where, '{"field": "level", "op": "eq", "value": "Advanced"}')
    known_keys(where, ("field", "op", "value"))
    key = where.get("field")
    field = (
        ObjectField.objects.for_org(given.org).filter(object_type=object_type, key=key).first()
        if isinstance(key, str) and KEY_RE.fullmatch(key)
        else None
    )
    if field is None:
        raise RelatedValueError(f"names a field that {object_type.name} does not have.")
    ops = dict(WHERE_OPS.get(field.field_type, ()))
    op_ = where.get("op")
    if not isinstance(op_, str) or op_ not in ops:
        allowed = ", ".join(ops.values())
        raise RelatedValueError(
            f"cannot use {shown(op_)!r} for {field.label} (allowed: {allowed})."
        )
    if "value" not in where:
        raise RelatedValueError(f"needs a value for {field.label}.")
    out["where"] = {
        "field": field.key,
        "op": op_,
        "value": _where_value(field, op_, where["value"]),
    }
    return out


def _record_number(key: str):
    text = KeyTextTransform(key, "values")
    return Case(
        When(Regex(text, NUMBER_TEXT_RE), then=Cast(text, FloatField())),
        default=None,
        output_field=FloatField(),
    )


def _where_q(where: dict, kind: str) -> Q:
    """The records whose field matches: equality through the GIN index (values @> {...})."""
    key, op, value = where["field"], where["op"], where["value"]
    if op == "any_of":
        out = NOTHING
        for item in value:
            out |= Q(values__contains={key: item})
        return out
    if kind == FieldType.CHECKBOX:
        is_true = Q(values__contains={key: True})
        return is_true if value else ~is_true
    if op == "eq":
        return Q(values__contains={key: value})
    if op == "contains":
        return Q(IContains(KeyTextTransform(key, "values"), value))
    if op in ("gt", "lt"):
        lookup = GreaterThan if op == "gt" else LessThan
        return Q(lookup(_record_number(key), float(value)))
    text = KeyTextTransform(key, "values")
    return Q(LessThan(text, value)) if op == "before" else Q(GreaterThan(text, value))


def _compile_association(op, value, ctx) -> Q:
    type_id, kind = None, ""
    where = value.get("where")
    object_type = (
        ObjectType.objects.for_org(ctx.org).filter(public_id=value["type"]).values("id").first()
    )
    if object_type is not None:
        type_id = object_type["id"]
    if type_id is None:  # deleted since the filter was checked: nobody is linked to it
        return NOTHING if op == "associated" else Q()
    if where:
        kind = (
            ObjectField.objects.for_org(ctx.org)
            .filter(object_type_id=type_id, key=where["field"])
            .values_list("field_type", flat=True)
            .first()
        ) or FieldType.TEXT
    links = ObjectAssociation.objects.for_org(ctx.org).filter(contact_id__isnull=False)
    policy = ctx.scope_policy
    scope = policy.scope_filter("custom_objects") if policy is not None else Q()
    if where or scope:
        records = ObjectRecord.objects.for_org(ctx.org).filter(object_type_id=type_id)
        if where:
            records = records.filter(_where_q(where, kind))
        if scope:
            records = records.filter(scope)
        # The records are of the type already: the links are read by record alone, from
        # the (org, record, contact) index without visiting the table. Up to a cap, the
        # records' ids are read first and go as one array: Postgres cannot tell how many
        # records a JSON value or an owner picks, and guessing few, it read every link of
        # a rep's "Advanced" courses (33,000) to list 51 contacts; with the ids in hand it
        # walks the rep's contacts and checks each one's links (4x faster at 1M contacts).
        ids = list(records.order_by().values_list("id", flat=True)[: RECORD_ID_CAP + 1])
        if len(ids) <= RECORD_ID_CAP:
            array = Value(ids, output_field=ArrayField(BigIntegerField()))
            links = links.filter(IsAnyOf(F("record_id"), array)) if ids else links.none()
        else:
            links = links.filter(record_id__in=records.values("id"))
    else:
        links = links.filter(object_type_id=type_id)
    return linked_contacts(links, op == "associated")


def _article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


def _describe_where(where, field: ObjectField | None) -> str:
    if not isinstance(where, Mapping):
        return ""
    label = field.label if field is not None else str(where.get("field", ""))
    kind = field.field_type if field is not None else ""
    op, value = where.get("op"), where.get("value")
    words = dict(WHERE_OPS.get(kind, ())).get(op) or str(op)
    if isinstance(value, bool):
        shown = "yes" if value else "no"
    elif isinstance(value, list):
        shown = ", ".join(str(v) for v in value)
    elif kind == FieldType.CURRENCY and field is not None and field.currency:
        shown = f"{value} {field.currency}"
    elif kind == FieldType.PERCENT:
        shown = f"{value}%"
    else:
        shown = str(value)
    return f" where {label} {words} {shown}"


def _describe_association(op, value, org) -> str:
    value = value if isinstance(value, Mapping) else {}
    object_type = _object_type(org, value.get("type")) if org is not None else None
    where = value.get("where")
    if object_type is None:
        what = "a record of a custom object type" if org is None else "a record of a deleted type"
        lead = "associated with " if op == "associated" else "not associated with "
        return lead + what + _describe_where(where, None)
    name = object_type.name
    lead = f"associated with {_article(name)} {name}"
    if op != "associated":
        lead = f"not associated with any {name}"
    field = None
    if isinstance(where, Mapping):
        key = where.get("field")
        if isinstance(key, str) and KEY_RE.fullmatch(key):
            field = (
                ObjectField.objects.for_org(org).filter(object_type=object_type, key=key).first()
            )
    return lead + _describe_where(where, field)


def _objects_builder(org, policy) -> dict:
    types = ObjectType.objects.for_org(org).order_by("position", "name")
    fields_by_type: dict[int, list] = {}
    for field in ObjectField.objects.for_org(org).order_by("position", "id"):
        fields_by_type.setdefault(field.object_type_id, []).append(field)
    return {
        "types": [
            {
                "id": str(t.public_id),
                "name": t.name,
                "fields": [
                    {
                        "key": f.key,
                        "label": f.label,
                        "kind": f.field_type,
                        "ops": [[o, w] for o, w in WHERE_OPS.get(f.field_type, ())],
                        "choices": [str(c) for c in f.choices or ()],
                    }
                    for f in fields_by_type.get(t.pk, [])
                ],
            }
            for t in types
        ]
    }


OBJECT_CONDITIONS = [
    RelatedCondition(
        key="objects",
        label="Associated records",
        group="Custom objects",
        ops=(("associated", "is associated with"), ("not_associated", "is not associated with")),
        parse=_parse_association,
        compile=_compile_association,
        describe=_describe_association,
        available=_objects_available,
        builder=_objects_builder,
    ),
]
