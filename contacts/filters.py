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
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping

from django.db.models import Case, Exists, FloatField, OuterRef, Q, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Lower
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IExact,
    In,
    IsNull,
    IStartsWith,
    LessThan,
    Regex,
    StartsWith,
)
from django.utils import timezone

from .fields import CUSTOM_PREFIX, FieldSpec, catalog_by_key
from .models import Company, Contact, Tag

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
}

OWNER_ME = "me"
OWNER_UNCLAIMED = "unclaimed"

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER_TEXT_RE = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"
_TRUE_WORDS = {"true", "1", "yes", "on"}
_FALSE_WORDS = {"false", "0", "no", "off"}


class FilterError(ValueError):
    """Invalid filter input. `message` is written for the person who built the filter;
    `condition` is the 1-based number of the offending condition (None: the whole filter)."""

    def __init__(self, message: str, condition: int | None = None):
        super().__init__(message)
        self.message = message
        self.condition = condition


def allowed_ops(spec: FieldSpec) -> tuple[str, ...]:
    return OPS_BY_TYPE.get(spec.type, ())


def _as_catalog(catalog) -> dict[str, FieldSpec]:
    if isinstance(catalog, Mapping):
        return dict(catalog)
    return catalog_by_key(catalog)


# Parsing and validation ----------------------------------------------------------------------


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


def parse_filters(raw, catalog, *, policy=None) -> dict:
    """Validate `raw` (JSON text, a dict, or None/"" for "no filter") and return the normalized
    spec. With `policy`, a condition on a field hidden for that member is refused: filtering on
    a value one may not see would reveal it."""
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
    fields = _as_catalog(catalog)
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
            conditions.append(_parse_condition(raw_condition, fields, number, policy))
        if conditions:
            out_groups.append({"conditions": conditions})
    return {"groups": out_groups}


def parse_condition(raw, catalog, *, policy=None) -> dict:
    """Validate a single condition (lead scoring rules store one condition each)."""
    if isinstance(raw, str | bytes):
        raw = _load_json(raw, "condition")
    return _parse_condition(raw, _as_catalog(catalog), 1, policy, numbered=False)


def _parse_condition(raw, fields, number: int, policy, numbered: bool = True) -> dict:
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
        fail(f"unknown field {key!r}.")
    if policy is not None and not policy.can_see_field(spec.key):
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


def _integer_field(spec: FieldSpec) -> bool:
    if spec.is_custom:
        return False
    internal = Contact._meta.get_field(spec.path).get_internal_type()
    return internal.endswith("IntegerField")


def _parse_value(spec: FieldSpec, op: str, value):
    kind = spec.type
    if op == "in_last_days":
        days = _number(value, whole=True, what="a number of days")
        if not 1 <= days <= MAX_DAYS:
            raise _BadValue(f"needs a number of days between 1 and {MAX_DAYS}.")
        return int(days)
    if kind == "number":
        return _number(value, whole=_integer_field(spec))
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
    if kind == "company":
        text = _text(value)
        return str(uuid.UUID(text)) if op != "contains" and _is_uuid(text) else text
    if kind == "tags":
        text = _text(value)
        return str(uuid.UUID(text)) if _is_uuid(text) else text
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
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise _BadValue("needs yes or no (true/false).")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


def _uuid(value, message: str) -> str:
    if not isinstance(value, str) or not _is_uuid(value):
        raise _BadValue(message)
    return str(uuid.UUID(value))


# Compilation --------------------------------------------------------------------------------


class _Context:
    def __init__(self, *, org, tz, now, user):
        self.org = org
        self.tz = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else (tz or dt.UTC)
        self.now = now or timezone.now()
        self.user = user

    def day_start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.tz)

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.tz).date()


def compile_filters(spec, catalog, *, tz, now=None, org, user=None) -> Q:
    """One `Q` for the whole spec (validated again here, so callers may pass raw input)."""
    fields = _as_catalog(catalog)
    spec = parse_filters(spec, fields)
    ctx = _Context(org=org, tz=tz, now=now, user=user)
    combined: Q | None = None
    for group in spec["groups"]:
        group_q = Q()
        for condition in group["conditions"]:
            group_q &= _compile_condition(condition, fields[condition["field"]], ctx)
        combined = group_q if combined is None else combined | group_q
    return combined if combined is not None else Q()


def compile_condition(condition, catalog, *, tz, now=None, org, user=None) -> Q:
    fields = _as_catalog(catalog)
    condition = parse_condition(condition, fields)
    ctx = _Context(org=org, tz=tz, now=now, user=user)
    return _compile_condition(condition, fields[condition["field"]], ctx)


_NOTHING = Q(pk__in=[])


def _compile_condition(condition: dict, spec: FieldSpec, ctx: _Context) -> Q:
    op, value = condition["op"], condition["value"]
    if spec.is_custom:
        return _compile_custom(spec, op, value, ctx)
    compiler = {
        "user": _compile_owner,
        "company": _compile_company,
        "tags": _compile_tags,
        "date": _compile_datetime,
        "datetime": _compile_datetime,
        "bool": _compile_bool,
        "number": _compile_number,
        "emails": _compile_emails,
    }.get(spec.type, _compile_text)
    return compiler(spec, op, value, ctx)


def _any(qs: Iterable[Q]) -> Q:
    out = Q(pk__in=[])
    for q in qs:
        out |= q
    return out


def _empty_q(spec: FieldSpec) -> Q:
    field = Contact._meta.get_field(spec.path)
    empty = Q(**{f"{spec.path}__isnull": True}) if field.null else _NOTHING
    if field.get_internal_type() in ("CharField", "TextField"):
        empty |= Q(**{spec.path: ""})
    return empty


def _compile_text(spec, op, value, ctx) -> Q:
    path = spec.path
    exact = "exact" if spec.type in ("choice", "country") else "iexact"
    if op == "eq":
        return Q(**{f"{path}__{exact}": value})
    if op == "neq":
        return ~Q(**{f"{path}__{exact}": value})
    if op == "contains":
        return Q(**{f"{path}__icontains": value})
    if op == "starts_with":
        return Q(**{f"{path}__istartswith": value})
    if op == "any_of":
        if exact == "exact":
            return Q(**{f"{path}__in": value})
        return _any(Q(**{f"{path}__iexact": v}) for v in value)
    if op == "is_empty":
        return _empty_q(spec)
    return ~_empty_q(spec)


def _compile_emails(spec, op, value, ctx) -> Q:
    path = spec.path
    if op == "eq":
        return Q(**{f"{path}__contains": [value]})
    if op == "contains":
        return Q(**{f"{path}__icontains": value})
    empty = Q(**{f"{path}__isnull": True}) | Q(**{path: []})
    return empty if op == "is_empty" else ~empty


def _compile_number(spec, op, value, ctx) -> Q:
    path = spec.path
    lookups = {"eq": "exact", "gt": "gt", "lt": "lt"}
    if op in lookups:
        return Q(**{f"{path}__{lookups[op]}": value})
    if op == "neq":
        return ~Q(**{path: value})
    return _empty_q(spec) if op == "is_empty" else ~_empty_q(spec)


def _compile_bool(spec, op, value, ctx) -> Q:
    if op == "eq":
        return Q(**{spec.path: value})
    return _empty_q(spec) if op == "is_empty" else ~_empty_q(spec)


def _day_bounds(ctx: _Context, iso: str) -> tuple[dt.datetime, dt.datetime]:
    day = dt.date.fromisoformat(iso)
    return ctx.day_start(day), ctx.day_start(day + dt.timedelta(days=1))


def _compile_datetime(spec, op, value, ctx) -> Q:
    path = spec.path
    is_date = spec.type == "date"
    if op == "in_last_days":
        if is_date:
            return Q(**{f"{path}__gte": ctx.today - dt.timedelta(days=value)}) & Q(
                **{f"{path}__lte": ctx.today}
            )
        return Q(**{f"{path}__gte": ctx.now - dt.timedelta(days=value)}) & Q(
            **{f"{path}__lte": ctx.now}
        )
    if op in ("eq", "before", "after"):
        if is_date:
            day = dt.date.fromisoformat(value)
            lookup = {"eq": "exact", "before": "lt", "after": "gt"}[op]
            return Q(**{f"{path}__{lookup}": day})
        start, end = _day_bounds(ctx, value)
        if op == "eq":
            return Q(**{f"{path}__gte": start, f"{path}__lt": end})
        if op == "before":
            return Q(**{f"{path}__lt": start})
        return Q(**{f"{path}__gte": end})
    return _empty_q(spec) if op == "is_empty" else ~_empty_q(spec)


def _owner_q(value, ctx) -> Q:
    if value == OWNER_UNCLAIMED:
        return Q(owner__isnull=True)
    if value == OWNER_ME:
        user_id = getattr(ctx.user, "pk", None)
        return Q(owner_id=user_id) if user_id else _NOTHING
    from crm.models import User

    return Q(owner_id__in=User.objects.filter(public_id=value).values("id"))


def _compile_owner(spec, op, value, ctx) -> Q:
    if op == "eq":
        return _owner_q(value, ctx)
    if op == "neq":
        # "Not owned by X" keeps the unclaimed ones (Django's exclude adds the IS NULL side).
        if value == OWNER_UNCLAIMED:
            return Q(owner__isnull=False)
        return ~_owner_q(value, ctx)
    if op == "any_of":
        return _any(_owner_q(v, ctx) for v in value)
    return Q(owner__isnull=op == "is_empty")


def _companies(ctx, **lookups):
    return Company.objects.for_org(ctx.org).filter(**lookups).values("id")


def _company_match(values, ctx) -> Q:
    """Companies named by public id or by exact (case-insensitive) name."""
    ids = [v for v in values if _is_uuid(v)]
    names = [v.lower() for v in values if not _is_uuid(v)]
    match = Q(public_id__in=ids) if ids else _NOTHING
    if names:
        match |= Q(name_lower__in=names)
    companies = Company.objects.for_org(ctx.org).alias(name_lower=Lower("name")).filter(match)
    return Q(company_id__in=companies.values("id"))


def _compile_company(spec, op, value, ctx) -> Q:
    if op == "eq":
        return _company_match([value], ctx)
    if op == "neq":
        return ~_company_match([value], ctx)
    if op == "contains":
        return Q(company_id__in=_companies(ctx, name__icontains=value))
    if op == "any_of":
        return _company_match(value, ctx)
    return Q(company__isnull=op == "is_empty")


def _tag_ids(values, ctx) -> list[int]:
    """The ids of the named tags (by public id or case-insensitive name), looked up now.

    Literal ids let Postgres use its statistics on the tag links: a common tag makes it walk
    the sorted contacts and stop after one page, a rare one makes it start from the tag's
    few links. Behind a subquery it has to guess, and a wrong guess costs seconds at a
    million contacts."""
    ids = [v for v in values if _is_uuid(v)]
    names = [v.lower() for v in values if not _is_uuid(v)]
    match = Q(public_id__in=ids) if ids else _NOTHING
    if names:
        match |= Q(name_lower__in=names)
    tags = Tag.objects.for_org(ctx.org).alias(name_lower=Lower("name")).filter(match)
    return list(tags.values_list("id", flat=True))


def _has_tag(values, ctx) -> Exists:
    through = Contact.tags.through.objects.filter(contact_id=OuterRef("pk"))
    if values is not None:
        through = through.filter(tag_id__in=_tag_ids(values, ctx))
    return Exists(through)


def _compile_tags(spec, op, value, ctx) -> Q:
    if op in ("eq", "any_of"):
        return Q(_has_tag(value if op == "any_of" else [value], ctx))
    if op == "neq":
        return ~Q(_has_tag([value], ctx))
    if op == "is_empty":
        return ~Q(_has_tag(None, ctx))
    return Q(_has_tag(None, ctx))


# Custom fields live in the `custom` JSONB column. `->>` gives SQL NULL for a missing key and
# for JSON null alike; numbers may be stored as JSON numbers or numeric strings, so they are
# compared after a guarded cast (a stray non-numeric value counts as empty, never an error).


def _custom_key(spec: FieldSpec) -> str:
    return spec.key[len(CUSTOM_PREFIX) :]


def _custom_text(spec: FieldSpec) -> KeyTextTransform:
    return KeyTextTransform(_custom_key(spec), "custom")


def _custom_number(spec: FieldSpec):
    text = _custom_text(spec)
    return Case(
        When(Regex(text, _NUMBER_TEXT_RE), then=Cast(text, FloatField())),
        default=None,
        output_field=FloatField(),
    )


def _custom_empty(spec: FieldSpec) -> Q:
    text = _custom_text(spec)
    return Q(IsNull(text, True)) | Q(Exact(text, ""))


def custom_sort_expression(spec: FieldSpec):
    """What to ORDER BY for a custom field: numbers numerically, everything else as text."""
    return _custom_number(spec) if spec.type == "number" else _custom_text(spec)


def _compile_custom(spec, op, value, ctx) -> Q:
    text = _custom_text(spec)
    kind = spec.type
    if op == "is_empty":
        return _custom_empty(spec)
    if op == "is_not_empty":
        return ~_custom_empty(spec)
    if kind == "number":
        number = _custom_number(spec)
        if op == "eq":
            return Q(Exact(number, float(value)))
        if op == "neq":
            return ~Q(Exact(number, float(value))) | Q(IsNull(number, True))
        if op == "gt":
            return Q(GreaterThan(number, float(value)))
        return Q(LessThan(number, float(value)))
    if kind == "bool":
        is_true = Q(In(Lower(text), sorted(_TRUE_WORDS)))
        return is_true if value else ~is_true | Q(IsNull(text, True))
    if kind == "date":
        if op == "in_last_days":
            start = (ctx.today - dt.timedelta(days=value)).isoformat()
            end = (ctx.today + dt.timedelta(days=1)).isoformat()
            return Q(GreaterThanOrEqual(text, start)) & Q(LessThan(text, end))
        if op == "eq":
            return Q(StartsWith(text, value))
        if op == "before":
            return Q(LessThan(text, value))
        next_day = (dt.date.fromisoformat(value) + dt.timedelta(days=1)).isoformat()
        return Q(GreaterThanOrEqual(text, next_day))
    if kind == "choice":
        key = _custom_key(spec)
        if op == "eq":
            return Q(custom__contains={key: value})
        if op == "neq":
            return ~Q(custom__contains={key: value})
        return _any(Q(custom__contains={key: v}) for v in value)
    # text and url
    if op == "eq":
        return Q(IExact(text, value))
    if op == "neq":
        return ~Q(IExact(text, value)) | Q(IsNull(text, True))
    if op == "contains":
        return Q(IContains(text, value))
    if op == "starts_with":
        return Q(IStartsWith(text, value))
    return _any(Q(IExact(text, v)) for v in value)


# Describing (for pills, titles and the no-JS builder) ---------------------------------------


def describe_condition(condition: dict, catalog) -> str:
    fields = _as_catalog(catalog)
    spec = fields.get(condition["field"])
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


def describe_filters(spec: dict, catalog) -> str:
    groups = [
        " and ".join(describe_condition(c, catalog) for c in group["conditions"])
        for group in (spec or {}).get("groups", [])
    ]
    return " — or — ".join(groups)


def builder_schema(catalog) -> dict:
    """What the filter builder (static/js/filter_builder.js) needs: fields and operators."""
    fields = _as_catalog(catalog)
    return {
        "fields": [
            {
                "key": spec.key,
                "label": spec.label,
                "group": spec.group,
                "type": spec.type,
                "choices": [[str(k), str(label)] for k, label in spec.choices],
                "whole": spec.type == "number" and _integer_field(spec),
            }
            for spec in fields.values()
            if spec.type in OPS_BY_TYPE
        ],
        "ops": {kind: [[op, OPERATORS[op]] for op in ops] for kind, ops in OPS_BY_TYPE.items()},
    }


__all__ = [
    "MAX_CONDITIONS",
    "MAX_GROUPS",
    "OPERATORS",
    "OPS_BY_TYPE",
    "FilterError",
    "allowed_ops",
    "builder_schema",
    "compile_condition",
    "compile_filters",
    "custom_sort_expression",
    "describe_condition",
    "describe_filters",
    "parse_condition",
    "parse_filters",
]
