"""Parsing and validating a filter: untrusted JSON (text or decoded) checked against the org's
field catalog and returned normalized, every problem a `FilterError` that names the condition."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping

from ..fields import FieldSpec
from .related import RelatedInput, RelatedValueError, org_of, related_condition
from .schema import (
    FALSE_WORDS,
    MAX_ANY_OF,
    MAX_CONDITIONS,
    MAX_DAYS,
    MAX_FILTER_CHARS,
    MAX_GROUPS,
    MAX_TEXT,
    OPERATORS,
    OWNER_ME,
    OWNER_UNCLAIMED,
    TRUE_WORDS,
    VALUELESS_OPS,
    FilterError,
    allowed_ops,
    as_catalog,
    integer_field,
    is_uuid,
    spec_model,
    visibility_key,
)

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _load_json(text, what: str):
    """JSON from a URL or a form, bounded: a filter of the largest allowed shape fits in far
    less than MAX_FILTER_CHARS, and nesting deep enough to exhaust the parser's stack is an
    error for the user, not a crash."""
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(
            f"The {what} is too long ({len(text):,} characters; the limit is {MAX_FILTER_CHARS:,})."
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(
            f"The {what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise FilterError(f"The {what} is not valid JSON.") from exc


def parse_filters(raw, catalog, *, policy=None, org=None) -> dict:
    """Validate `raw` (JSON text, a dict, or None/"" for "no filter") and return the normalized
    spec. With `policy`, a condition on a field hidden for that member is refused: filtering on
    a value one may not see would reveal it. A contact filter may hold related conditions
    (filters.related: orders, associated records) when the organization is known (`org`, or
    the policy's member's)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {"groups": []}
    if isinstance(raw, str | bytes):
        raw = _load_json(raw, "filter")
    if not isinstance(raw, Mapping):
        raise FilterError('The filter must be a JSON object like {"groups": [...]}.')
    unknown = set(raw) - {"groups"}
    if unknown:
        raise FilterError(f"The filter has an unknown key: {sorted(unknown)[0]!r}.")
    groups = raw.get("groups", [])
    if not isinstance(groups, list):
        raise FilterError("The filter's groups must be a list.")
    if len(groups) > MAX_GROUPS:
        raise FilterError(f"A filter can have at most {MAX_GROUPS} groups.")
    fields = as_catalog(catalog)
    given = RelatedInput(org_of(org, policy), policy)
    out_groups = []
    number = 0
    for group_index, group in enumerate(groups, start=1):
        if not isinstance(group, Mapping) or not isinstance(group.get("conditions"), list):
            raise FilterError(f"Group {group_index} must be an object with a list of conditions.")
        conditions = []
        for raw_condition in group["conditions"]:
            number += 1
            if number > MAX_CONDITIONS:
                raise FilterError(f"A filter can have at most {MAX_CONDITIONS} conditions.")
            conditions.append(_parse_condition(raw_condition, fields, number, policy, given=given))
        if conditions:
            out_groups.append({"conditions": conditions})
    return {"groups": out_groups}


def parse_condition(raw, catalog, *, policy=None) -> dict:
    """Validate a single condition (lead scoring rules store one condition each)."""
    if isinstance(raw, str | bytes):
        raw = _load_json(raw, "condition")
    return _parse_condition(raw, as_catalog(catalog), 1, policy, numbered=False)


def _parse_condition(
    raw, fields, number: int, policy, numbered: bool = True, given: RelatedInput | None = None
) -> dict:
    prefix = f"Condition {number}: " if numbered else ""

    def fail(text: str):
        raise FilterError(prefix + text, condition=number if numbered else None)

    if not isinstance(raw, Mapping):
        fail("must be an object with field, op and value.")
    key = raw.get("field")
    op = raw.get("op")
    if not isinstance(key, str) or not key:
        fail("choose a field.")
    spec = fields.get(key)
    if spec is None:
        related = related_condition(key, _catalog_model(fields)) if given is not None else None
        if related is None:
            fail(f"unknown field {_shown(key)!r}.")
        return _parse_related(raw, related, given, fail)
    if policy is not None and not policy.can_see_field(*visibility_key(spec)):
        fail(f"'{spec.label}' is hidden for your role and cannot be used in a filter.")
    if not isinstance(op, str) or op not in OPERATORS:
        fail(f"unknown operator {op!r} for '{spec.label}'.")
    allowed = allowed_ops(spec)
    if op not in allowed:
        names = ", ".join(OPERATORS[o] for o in allowed)
        fail(f"'{spec.label}' cannot use '{OPERATORS[op]}' (allowed: {names}).")
    if op in VALUELESS_OPS:
        return {"field": spec.key, "op": op, "value": None}
    if "value" not in raw:
        fail(f"'{spec.label}' needs a value.")
    value = raw["value"]
    try:
        if op == "any_of":
            if not isinstance(value, list) or not value:
                fail(f"'{spec.label}' needs a non-empty list of values.")
            if len(value) > MAX_ANY_OF:
                fail(f"'{spec.label}' accepts at most {MAX_ANY_OF} values.")
            normalized = list(dict.fromkeys(_parse_value(spec, op, item) for item in value))
        else:
            normalized = _parse_value(spec, op, value)
    except _BadValue as exc:
        fail(f"'{spec.label}' {exc.args[0]}")
    return {"field": spec.key, "op": op, "value": normalized}


def _catalog_model(fields):
    """The model whose rows a catalog filters (contacts, deals), None for an empty one."""
    first = next(iter(fields.values()), None)
    return spec_model(first) if first is not None else None


def _shown(text, limit: int = 40) -> str:
    """User input quoted back in a message, cut short."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_RELATED_KEYS = {"field", "op", "value"}


def _parse_related(raw, related, given: RelatedInput, fail) -> dict:
    """A related condition (orders, associated records): its own operators and value,
    checked by the app that registered it, for an organization that has its module on."""
    label = related.label
    if given.org is None:
        fail(f"'{label}' cannot be used in this filter.")
    unavailable = related.available(given.org, given.policy)
    if unavailable:
        fail(unavailable)
    unknown = set(raw) - _RELATED_KEYS
    if unknown:
        fail(f"'{label}' has an unknown key {_shown(sorted(map(str, unknown))[0])!r}.")
    op = raw.get("op")
    words = related.op_words
    if not isinstance(op, str) or op not in words:
        names = ", ".join(words.values())
        fail(f"'{label}' cannot use {_shown(op)!r} (allowed: {names}).")
    value = raw.get("value")
    if value is None or value == "":
        if not related.value_optional:
            fail(f"'{label}' needs a value.")
        value = {}
    try:
        normalized = related.parse(op, value, given)
    except RelatedValueError as exc:
        fail(f"'{label}' {exc.args[0]}")
    return {"field": related.key, "op": op, "value": normalized}


class _BadValue(Exception):
    pass


def _text(value, *, lower: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _BadValue("needs a text value.")
    text = str(value).strip()
    if not text:
        raise _BadValue("needs a value.")
    if "\x00" in text:  # JSON's \u0000: PostgreSQL refuses it in text and in jsonb
        raise _BadValue("contains a NUL character, which is never valid.")
    if len(text) > MAX_TEXT:
        raise _BadValue(f"value is longer than {MAX_TEXT} characters.")
    return text.lower() if lower else text


def _parse_value(spec: FieldSpec, op: str, value):
    kind = spec.type
    if op == "in_last_days":
        days = _number(value, whole=True, what="a number of days")
        if not 1 <= days <= MAX_DAYS:
            raise _BadValue(f"needs a number of days between 1 and {MAX_DAYS}.")
        return int(days)
    if kind == "number":
        return _number(value, whole=integer_field(spec))
    if kind in ("date", "datetime"):
        return _date(value).isoformat()
    if kind == "bool":
        return _boolean(value)
    if kind == "choice":
        text = _text(value)
        keys = [str(k) for k, _ in spec.choices]
        if keys and text not in keys:
            # Accept the label too ("Qualified" for "qualified"), normalized to the key.
            by_label = {str(label).lower(): str(k) for k, label in spec.choices}
            by_key = {k.lower(): k for k in keys}
            found = by_key.get(text.lower()) or by_label.get(text.lower())
            if found is None:
                raise _BadValue(f"has no option {text!r}.")
            text = found
        return text
    if kind == "user":
        text = _text(value, lower=True)
        if text in (OWNER_ME, OWNER_UNCLAIMED):
            return text
        return _uuid(value, "needs 'me', 'unclaimed' or a user id.")
    if kind in ("company", "contact"):
        text = _text(value)
        return str(uuid.UUID(text)) if op != "contains" and is_uuid(text) else text
    if kind == "tags":
        text = _text(value)
        return str(uuid.UUID(text)) if is_uuid(text) else text
    if kind == "country":
        text = _text(value).upper()
        if not re.fullmatch(r"[A-Z]{2}", text):
            raise _BadValue("needs a two-letter country code such as DE.")
        return text
    if kind == "phone":
        text = _text(value)
        digits = re.sub(r"[^\d+]", "", text)
        if not digits:
            raise _BadValue("needs digits.")
        return digits
    if kind in ("email", "emails"):
        return _text(value, lower=True)
    return _text(value)


def _number(value, *, whole: bool = False, what: str = "a number"):
    if isinstance(value, bool):
        raise _BadValue(f"needs {what}.")
    if isinstance(value, str):
        try:
            value = float(value.strip()) if value.strip() else None
        except ValueError:
            value = None
    if (
        not isinstance(value, int | float)
        or value != value
        or value
        in (
            float("inf"),
            float("-inf"),
        )
    ):
        raise _BadValue(f"needs {what}.")
    if whole:
        if float(value) != int(value):
            raise _BadValue("needs a whole number.")
        return int(value)
    return int(value) if float(value) == int(value) else float(value)


def _date(value) -> dt.date:
    if not isinstance(value, str) or not _DATE_RE.match(value.strip()):
        raise _BadValue("needs a date like 2024-05-31.")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise _BadValue(f"has an impossible date {value.strip()!r}.") from exc


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise _BadValue("needs yes or no (true/false).")


def _uuid(value, message: str) -> str:
    if not isinstance(value, str) or not is_uuid(value):
        raise _BadValue(message)
    return str(uuid.UUID(value))
