"""The filter language's vocabulary: the operators each field type allows, the limits on a
filter's size, the owner filter's own values, and the error every invalid filter raises; with the
small helpers that parsing, compiling and describing share."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.core.exceptions import FieldDoesNotExist

from ..fields import FieldSpec, catalog_by_key
from ..models import Contact

MAX_GROUPS = 10
MAX_CONDITIONS = 25
MAX_ANY_OF = 100
MAX_TEXT = 200
MAX_DAYS = 3650
# Far more than the largest filter the limits above allow in practice; JSON text beyond it is
# refused before it is parsed.
MAX_FILTER_CHARS = 100_000

OPERATORS: dict[str, str] = {
    "eq": "is",
    "neq": "is not",
    "contains": "contains",
    "starts_with": "starts with",
    "gt": "greater than",
    "lt": "less than",
    "before": "before",
    "after": "after",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "in_last_days": "in the last N days",
    "any_of": "is any of",
}
VALUELESS_OPS = {"is_empty", "is_not_empty"}

_EMPTY = ("is_empty", "is_not_empty")
OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "text": ("eq", "neq", "contains", "starts_with", "any_of", *_EMPTY),
    "longtext": ("contains", *_EMPTY),
    "email": ("eq", "neq", "contains", "starts_with", "any_of", *_EMPTY),
    "emails": ("eq", "contains", *_EMPTY),
    "phone": ("eq", "neq", "contains", "starts_with", *_EMPTY),
    "url": ("eq", "neq", "contains", "starts_with", *_EMPTY),
    "country": ("eq", "neq", "any_of", *_EMPTY),
    "choice": ("eq", "neq", "any_of", *_EMPTY),
    "number": ("eq", "neq", "gt", "lt", *_EMPTY),
    "date": ("eq", "before", "after", "in_last_days", *_EMPTY),
    "datetime": ("eq", "before", "after", "in_last_days", *_EMPTY),
    "bool": ("eq", *_EMPTY),
    "user": ("eq", "neq", "any_of", *_EMPTY),
    "company": ("eq", "neq", "contains", "any_of", *_EMPTY),
    "tags": ("eq", "neq", "any_of", *_EMPTY),
    # A record's primary contact (deals): by id, by full name, or part of the name.
    "contact": ("eq", "neq", "contains", "any_of", *_EMPTY),
}

OWNER_ME = "me"
OWNER_UNCLAIMED = "unclaimed"

TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


class FilterError(ValueError):
    """Invalid filter input. `message` is written for the person who built the filter;
    `condition` is the 1-based number of the offending condition (None: the whole filter)."""

    def __init__(self, message: str, condition: int | None = None):
        super().__init__(message)
        self.message = message
        self.condition = condition


def allowed_ops(spec: FieldSpec) -> tuple[str, ...]:
    return OPS_BY_TYPE.get(spec.type, ())


def as_catalog(catalog) -> dict[str, FieldSpec]:
    if isinstance(catalog, Mapping):
        return dict(catalog)
    return catalog_by_key(catalog)


def spec_model(spec: FieldSpec):
    """The model whose rows a catalog filters: contacts, unless the spec names another (a
    catalog of another entity subclasses FieldSpec with a `model` class attribute)."""
    return getattr(spec, "model", None) or Contact


def model_field(spec: FieldSpec):
    """The model field behind `spec`, or None when its path is not a field of the model but
    a value the caller's queryset annotates (a deal's effective probability)."""
    try:
        return spec_model(spec)._meta.get_field(spec.path)
    except FieldDoesNotExist:
        return None


def related_model(spec: FieldSpec):
    """For a choice among the organization's rows (a deal's pipeline or stage: a foreign key
    whose choices are public ids), the model of those rows; else None."""
    field = model_field(spec)
    return field.related_model if field is not None and field.many_to_one else None


def visibility_key(spec: FieldSpec) -> tuple[str, str]:
    """(field rule key, module) that a policy's field rules know `spec` by: a contact field by
    its own key; another catalog's spec names its module and, where a rule covers several
    fields (a deal's currency goes with its value), that rule's key."""
    return getattr(spec, "rule", "") or spec.key, getattr(spec, "module", "contacts")


def integer_field(spec: FieldSpec) -> bool:
    if spec.is_custom:
        return False
    field = model_field(spec)
    if field is None:  # an annotated value: any number
        return False
    return field.get_internal_type().endswith("IntegerField")


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True
