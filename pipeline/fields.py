"""The deal fields a role's field rules can hide or lock (rule keys "deal.<key>").

Title, pipeline and stage are what a deal is; they are always visible to whoever sees the
deal, so they have no rule."""

from __future__ import annotations

DEAL_RULE_FIELDS = [
    ("value", "Value"),
    ("probability", "Probability"),
    ("expected_close_date", "Expected close date"),
    ("owner", "Owner"),
    ("team", "Team"),
    ("priority", "Priority"),
    ("source", "Source"),
    ("forecast_category", "Forecast category"),
    ("contact", "Primary contact"),
    ("company", "Company"),
    ("tags", "Tags"),
    ("custom", "Custom fields"),
]
DEAL_RULE_KEYS = [key for key, _ in DEAL_RULE_FIELDS]
DEAL_FIELD_LABELS = {
    "title": "Title",
    "currency": "Currency",
    "pipeline": "Pipeline",
    "stage": "Stage",
    **dict(DEAL_RULE_FIELDS),
}
# Fields that go with another one's rule: a hidden value hides its currency too.
FIELD_RULE_OF = {"currency": "value"}


def rule_key(field: str) -> str:
    return FIELD_RULE_OF.get(field, field)


def hidden_deal_fields(policy) -> set[str]:
    """Deal fields this member may not see (empty for system work)."""
    if policy is None:
        return set()
    hidden = {key for key in DEAL_RULE_KEYS if not policy.can_see_field(key, "pipeline")}
    if "value" in hidden:
        hidden.add("currency")
    return hidden


def locked_deal_fields(policy, keys) -> list[str]:
    """Of `keys`, those this member may not change."""
    if policy is None:
        return []
    return [
        key
        for key in keys
        if rule_key(key) in DEAL_RULE_KEYS and not policy.can_edit_field(rule_key(key), "pipeline")
    ]
