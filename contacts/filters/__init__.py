"""The smart-view filter language: validated JSON compiled to one Django `Q`.

Shape (conditions inside a group combine with AND, groups combine with OR):

    {"groups": [{"conditions": [{"field": "lead_score", "op": "gt", "value": 50},
                                {"field": "tags", "op": "any_of", "value": ["vip", "<tag uuid>"]}]},
                {"conditions": [{"field": "owner", "op": "eq", "value": "me"}]}]}

`parse_filters()` validates untrusted input (a JSON string or an already decoded dict) against
the org's field catalog and returns a normalized copy; every problem raises `FilterError` with a
message that names the condition ("Condition 2: 'Lead score' needs a number").
`compile_filters()` turns a spec into one `Q`: no Python-side evaluation, no DISTINCT, so the
whole list stays a single SQL query.

Date semantics: a date value means a whole local day in the caller's time zone. "before D" is
every moment before that day starts; "after D" every moment after it ends; "eq D" the day itself.
"in_last_days N" is the rolling window of the last N days up to now (for date-only custom fields:
the last N local days including today).

The modules: schema (operators per field type, limits, `FilterError`), parsing (validation),
compiling (to a `Q`), describing (in words, and the builder's schema), related (conditions on
another app's rows, "has an order", "associated with a Course", which that app registers from
its AppConfig.ready()). Import from the package: these names are its interface.
"""

from .compiling import compile_condition, compile_filters, custom_sort_expression
from .describing import builder_schema, describe_condition, describe_filters
from .parsing import parse_condition, parse_filters
from .related import (
    RelatedCondition,
    RelatedInput,
    RelatedValueError,
    register_related_condition,
    related_builder_schema,
    related_condition,
    unregister_related_condition,
    with_related,
)
from .schema import (
    MAX_CONDITIONS,
    MAX_GROUPS,
    OPERATORS,
    OPS_BY_TYPE,
    VALUELESS_OPS,
    FilterError,
    allowed_ops,
)

__all__ = [
    "MAX_CONDITIONS",
    "MAX_GROUPS",
    "OPERATORS",
    "OPS_BY_TYPE",
    "VALUELESS_OPS",
    "FilterError",
    "RelatedCondition",
    "RelatedInput",
    "RelatedValueError",
    "allowed_ops",
    "builder_schema",
    "compile_condition",
    "compile_filters",
    "custom_sort_expression",
    "describe_condition",
    "describe_filters",
    "parse_condition",
    "parse_filters",
    "register_related_condition",
    "related_builder_schema",
    "related_condition",
    "unregister_related_condition",
    "with_related",
]
