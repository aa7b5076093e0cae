"""Related conditions: filter contacts by rows of another app that point at them (their
orders, the custom-object records they are associated with).

contacts never imports those apps (they import contacts), so each registers its conditions
here from its AppConfig.ready(), as apps register their field catalogs with
crm.fields_registry:

    register_related_condition(RelatedCondition(key="orders", label="Orders", ...))

A related condition has the filter's usual shape, {"field": key, "op": op, "value": value},
with a `value` of its own (usually an object: {"status": ["paid"], "days": 90}). It belongs
to the contact catalog only (`model`): a deal filter or a lead-scoring rule (one condition,
`parse_condition`) never accepts it. Parsing needs the organization (from `org=` or the
policy's membership): whether its module is on, and the org's own rows (an object type)
that the value names.

The callables, given a `RelatedInput` (org, policy) or the compiler's context (org, tz, now,
today, user, `scope_policy`):

- `parse(op, value, given)` returns the normalized value or raises `RelatedValueError` with
  text that completes "<Label> ..." (the engine adds the condition's number);
- `compile(op, value, ctx)` returns a `Q` over contacts;
- `describe(op, value, org)` the condition in words; `org` may be None;
- `available(org, policy)` None when the organization and member may use the condition,
  else why not (a module that is off, a role without the right);
- `builder(org, policy)` the data the filter builder's inputs need (choices, types).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..fields import CONTACT_FIELD_KEYS, CUSTOM_PREFIX
from ..models import Contact


class RelatedValueError(ValueError):
    """A related condition's value is wrong; `args[0]` completes "<label> ..."."""


@dataclass(frozen=True)
class RelatedInput:
    org: Any
    policy: Any = None


@dataclass(frozen=True)
class RelatedCondition:
    key: str  # the condition's "field": "orders", "orders.total_paid"
    label: str  # the builder's field list and messages: "Orders"
    group: str  # the builder's group of fields: "Orders"
    ops: tuple[tuple[str, str], ...]  # (op, words) in the builder's order
    parse: Callable[[str, Any, RelatedInput], Any]
    compile: Callable[..., Any]
    describe: Callable[[str, Any, Any], str]
    available: Callable[[Any, Any], str | None] = field(default=lambda org, policy: None)
    builder: Callable[[Any, Any], dict] | None = None
    value_optional: bool = False  # a missing or null value means {} ("has an order")
    model: type = Contact  # the rows the condition filters (its catalog's model)

    @property
    def op_words(self) -> dict[str, str]:
        return dict(self.ops)


_CONDITIONS: dict[str, RelatedCondition] = {}


def register_related_condition(condition: RelatedCondition) -> None:
    """Add (or, when ready() runs again, replace) a related condition."""
    # Its key must never shadow a field of the catalog, now or later (custom fields).
    if condition.key in CONTACT_FIELD_KEYS or condition.key.startswith(CUSTOM_PREFIX):
        raise ValueError(f"A related condition cannot take the key {condition.key!r}.")
    _CONDITIONS[condition.key] = condition


def unregister_related_condition(key: str) -> None:
    _CONDITIONS.pop(key, None)


def related_condition(key, model=Contact) -> RelatedCondition | None:
    """The registered condition named `key` that filters `model`'s rows, if any."""
    found = _CONDITIONS.get(key) if isinstance(key, str) else None
    return found if found is not None and found.model is model else None


def related_conditions(model=Contact) -> list[RelatedCondition]:
    return [c for c in _CONDITIONS.values() if c.model is model]


def org_of(org, policy):
    """The organization a parse runs for: given, or the policy's member's."""
    if org is not None:
        return org
    membership = getattr(policy, "membership", None)
    return getattr(membership, "org", None) if membership is not None else None


def related_builder_schema(org, policy) -> dict:
    """The builder's entries for the related conditions this member may use in `org`:
    fields (with a type of their own, "related:<key>"), their operators, and each one's
    input data under "related"."""
    fields, ops, data = [], {}, {}
    for condition in related_conditions():
        if condition.available(org, policy) is not None:
            continue
        kind = f"related:{condition.key}"
        fields.append(
            {
                "key": condition.key,
                "label": condition.label,
                "group": condition.group,
                "type": kind,
                "choices": [],
                "whole": False,
                "related": True,
            }
        )
        ops[kind] = [[op, words] for op, words in condition.ops]
        data[condition.key] = condition.builder(org, policy) if condition.builder else {}
    return {"fields": fields, "ops": ops, "related": data}


def with_related(schema: dict, org, policy) -> dict:
    """`schema` (builder_schema) with the related conditions added."""
    extra = related_builder_schema(org, policy)
    schema["fields"] = [*schema["fields"], *extra["fields"]]
    schema["ops"] = {**schema["ops"], **extra["ops"]}
    schema["related"] = extra["related"]
    return schema
