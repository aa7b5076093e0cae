"""Describing a filter in words (for pills and titles), and the schema of fields and operators
that the filter builder (static/js/filter_builder.js) works from."""

from __future__ import annotations

from .related import related_condition
from .schema import (
    OPERATORS,
    OPS_BY_TYPE,
    OWNER_ME,
    OWNER_UNCLAIMED,
    VALUELESS_OPS,
    as_catalog,
    integer_field,
)


def describe_condition(condition: dict, catalog, *, org=None) -> str:
    """`org`: the organization whose rows a related condition names (an object type), so
    their names can be shown; without it they are described in general words."""
    fields = as_catalog(catalog)
    spec = fields.get(condition["field"])
    related = related_condition(condition["field"]) if spec is None else None
    if related is not None:
        return related.describe(condition["op"], condition.get("value"), org)
    label = spec.label if spec else condition["field"]
    op = condition["op"]
    value = condition.get("value")
    if op in VALUELESS_OPS:
        return f"{label} {OPERATORS[op]}"
    if op == "in_last_days":
        return f"{label} in the last {value} days"
    choices = dict(spec.choices) if spec else {}
    if spec is not None and spec.type == "user":
        # The glossary's words for the owner filter's own values (docs/glossary.md).
        choices = {OWNER_ME: "Me", OWNER_UNCLAIMED: "No one", **choices}
    if isinstance(value, list):
        shown = ", ".join(str(choices.get(v, v)) for v in value)
    elif isinstance(value, bool):
        shown = "yes" if value else "no"
    else:
        shown = str(choices.get(value, value))
    return f"{label} {OPERATORS[op]} {shown}"


def describe_filters(spec: dict, catalog, *, org=None) -> str:
    groups = [
        " and ".join(describe_condition(c, catalog, org=org) for c in group["conditions"])
        for group in (spec or {}).get("groups", [])
    ]
    return " — or — ".join(groups)


def builder_schema(catalog) -> dict:
    """What the filter builder (static/js/filter_builder.js) needs: fields and operators."""
    fields = as_catalog(catalog)
    return {
        "fields": [
            {
                "key": spec.key,
                "label": spec.label,
                "group": spec.group,
                "type": spec.type,
                "choices": [[str(k), str(label)] for k, label in spec.choices],
                "whole": spec.type == "number" and integer_field(spec),
            }
            for spec in fields.values()
            if spec.type in OPS_BY_TYPE
        ],
        "ops": {kind: [[op, OPERATORS[op]] for op in ops] for kind, ops in OPS_BY_TYPE.items()},
    }
