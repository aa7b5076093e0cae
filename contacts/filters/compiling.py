"""Compiling a filter into one Django `Q` over contacts: a condition per field type (text,
numbers, dates in the caller's time zone, owner, company, tags, and custom fields in the `custom`
JSONB column), with no Python-side evaluation and no DISTINCT.

The same compilers serve another entity's catalog (deals: pipeline.filters) whose specs name
their model (`schema.spec_model`): paths are read from the spec, the tag links from the
model's own `tags` relation, and a choice over a foreign key (a deal's stage) by public id."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable

from django.db.models import Case, Exists, FloatField, OuterRef, Q, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Concat, Lower
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

from ..fields import CUSTOM_PREFIX, FieldSpec
from ..models import Company, Contact, Tag
from .parsing import parse_condition, parse_filters
from .related import related_condition
from .schema import (
    OWNER_ME,
    OWNER_UNCLAIMED,
    TRUE_WORDS,
    as_catalog,
    is_uuid,
    model_field,
    related_model,
    spec_model,
)

_NUMBER_TEXT_RE = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"


class _Context:
    def __init__(self, *, org, tz, now, user, policy=None):
        self.org = org
        self.tz = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else (tz or dt.UTC)
        self.now = now or timezone.now()
        self.user = user
        self.policy = policy

    @property
    def scope_policy(self):
        """The policy whose record scope a related condition applies to the rows it reads
        (a member's orders or records): the one given, else the user's membership in the
        org; None for a filter run with no member (a system job), which sees every row."""
        if self.policy is None and self.user is not None:
            from crm.models import Membership
            from crm.permissions import Policy

            membership = (
                Membership.objects.for_org(self.org)
                .filter(user_id=self.user.pk, is_active=True)
                .select_related("role", "org")
                .first()
            )
            self.policy = Policy(membership)
        return self.policy

    def day_start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.tz)

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.tz).date()


def compile_filters(spec, catalog, *, tz, now=None, org, user=None, policy=None) -> Q:
    """One `Q` for the whole spec (validated again here, so callers may pass raw input).
    `policy`: the member's, whose record scope related conditions apply to the rows they
    read (found from `user` when not given)."""
    fields = as_catalog(catalog)
    spec = parse_filters(spec, fields, org=org, policy=policy)
    ctx = _Context(org=org, tz=tz, now=now, user=user, policy=policy)
    combined: Q | None = None
    for group in spec["groups"]:
        group_q = Q()
        for condition in group["conditions"]:
            spec_ = fields.get(condition["field"])
            if spec_ is None:  # a related condition (parse_filters accepted it)
                related = related_condition(condition["field"])
                group_q &= related.compile(condition["op"], condition["value"], ctx)
                continue
            group_q &= _compile_condition(condition, spec_, ctx)
        combined = group_q if combined is None else combined | group_q
    return combined if combined is not None else Q()


def compile_condition(condition, catalog, *, tz, now=None, org, user=None) -> Q:
    fields = as_catalog(catalog)
    condition = parse_condition(condition, fields)
    ctx = _Context(org=org, tz=tz, now=now, user=user)
    return _compile_condition(condition, fields[condition["field"]], ctx)


_NOTHING = Q(pk__in=[])


def _compile_condition(condition: dict, spec: FieldSpec, ctx: _Context) -> Q:
    op, value = condition["op"], condition["value"]
    # A catalog may give a field its own compiler (a deal's probability is its stage's unless
    # set by hand): called with (spec, op, value, ctx), ctx.org / ctx.tz / ctx.now / ctx.user.
    own = getattr(spec, "compiler", None)
    if own is not None:
        return own(spec, op, value, ctx)
    if spec.is_custom:
        return _compile_custom(spec, op, value, ctx)
    compiler = {
        "user": _compile_owner,
        "company": _compile_company,
        "contact": _compile_contact,
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
    field = model_field(spec)
    if field is None:  # a value the caller's queryset annotates
        return Q(**{f"{spec.path}__isnull": True})
    empty = Q(**{f"{spec.path}__isnull": True}) if field.null else _NOTHING
    if field.get_internal_type() in ("CharField", "TextField"):
        empty |= Q(**{spec.path: ""})
    return empty


def _compile_text(spec, op, value, ctx) -> Q:
    if spec.type == "choice" and related_model(spec) is not None:
        return _compile_related_choice(spec, op, value, ctx)
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


def _compile_related_choice(spec, op, value, ctx) -> Q:
    """A choice among the organization's rows (choices keyed by public id), compiled to the
    foreign key's ids, looked up now (a handful of pipelines, stages or teams)."""
    if op in ("is_empty", "is_not_empty"):
        return _empty_q(spec) if op == "is_empty" else ~_empty_q(spec)
    wanted = value if isinstance(value, list) else [value]
    ids = list(
        related_model(spec)
        .objects.for_org(ctx.org)
        .filter(public_id__in=[v for v in wanted if is_uuid(v)])
        .values_list("id", flat=True)
    )
    match = Q(**{f"{spec.path}_id__in": ids})
    return ~match if op == "neq" else match


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


def _owner_q(value, ctx, path: str = "owner") -> Q:
    if value == OWNER_UNCLAIMED:
        return Q(**{f"{path}__isnull": True})
    if value == OWNER_ME:
        user_id = getattr(ctx.user, "pk", None)
        return Q(**{f"{path}_id": user_id}) if user_id else _NOTHING
    from crm.models import User

    return Q(**{f"{path}_id__in": User.objects.filter(public_id=value).values("id")})


def _compile_owner(spec, op, value, ctx) -> Q:
    path = spec.path
    if op == "eq":
        return _owner_q(value, ctx, path)
    if op == "neq":
        # "Not owned by X" keeps the unclaimed ones (Django's exclude adds the IS NULL side).
        if value == OWNER_UNCLAIMED:
            return Q(**{f"{path}__isnull": False})
        return ~_owner_q(value, ctx, path)
    if op == "any_of":
        return _any(_owner_q(v, ctx, path) for v in value)
    return Q(**{f"{path}__isnull": op == "is_empty"})


def _companies(ctx, **lookups):
    return Company.objects.for_org(ctx.org).filter(**lookups).values("id")


def _company_match(values, ctx, path: str = "company") -> Q:
    """Companies named by public id or by exact (case-insensitive) name."""
    ids = [v for v in values if is_uuid(v)]
    names = [v.lower() for v in values if not is_uuid(v)]
    match = Q(public_id__in=ids) if ids else _NOTHING
    if names:
        match |= Q(name_lower__in=names)
    companies = Company.objects.for_org(ctx.org).alias(name_lower=Lower("name")).filter(match)
    return Q(**{f"{path}_id__in": companies.values("id")})


def _compile_company(spec, op, value, ctx) -> Q:
    path = spec.path
    if op == "eq":
        return _company_match([value], ctx, path)
    if op == "neq":
        return ~_company_match([value], ctx, path)
    if op == "contains":
        return Q(**{f"{path}_id__in": _companies(ctx, name__icontains=value)})
    if op == "any_of":
        return _company_match(value, ctx, path)
    return Q(**{f"{path}__isnull": op == "is_empty"})


def _contacts_named(ctx):
    return Contact.objects.for_org(ctx.org).alias(
        full_name_lower=Lower(Concat("first_name", Value(" "), "last_name"))
    )


def _contact_match(values, ctx, path: str) -> Q:
    """Contacts named by public id or by full name (case-insensitive)."""
    ids = [v for v in values if is_uuid(v)]
    names = [" ".join(v.lower().split()) for v in values if not is_uuid(v)]
    match = Q(public_id__in=ids) if ids else _NOTHING
    if names:
        match |= Q(full_name_lower__in=names)
    return Q(**{f"{path}_id__in": _contacts_named(ctx).filter(match).values("id")})


def _compile_contact(spec, op, value, ctx) -> Q:
    path = spec.path
    if op == "eq":
        return _contact_match([value], ctx, path)
    if op == "neq":
        return ~_contact_match([value], ctx, path)
    if op == "contains":
        contacts = _contacts_named(ctx).filter(full_name_lower__contains=value.lower())
        return Q(**{f"{path}_id__in": contacts.values("id")})
    if op == "any_of":
        return _contact_match(value, ctx, path)
    return Q(**{f"{path}__isnull": op == "is_empty"})


def _tag_ids(values, ctx) -> list[int]:
    """The ids of the named tags (by public id or case-insensitive name), looked up now.

    Literal ids let Postgres use its statistics on the tag links: a common tag makes it walk
    the sorted contacts and stop after one page, a rare one makes it start from the tag's
    few links. Behind a subquery it has to guess, and a wrong guess costs seconds at a
    million contacts."""
    ids = [v for v in values if is_uuid(v)]
    names = [v.lower() for v in values if not is_uuid(v)]
    match = Q(public_id__in=ids) if ids else _NOTHING
    if names:
        match |= Q(name_lower__in=names)
    tags = Tag.objects.for_org(ctx.org).alias(name_lower=Lower("name")).filter(match)
    return list(tags.values_list("id", flat=True))


def _has_tag(values, ctx, spec: FieldSpec | None = None) -> Exists:
    """A tag link of the row: through the model's own tag table (contact or deal tags)."""
    relation = spec_model(spec)._meta.get_field(spec.path if spec is not None else "tags")
    links = relation.remote_field.through.objects.filter(
        **{f"{relation.m2m_field_name()}_id": OuterRef("pk")}
    )
    if values is not None:
        links = links.filter(tag_id__in=_tag_ids(values, ctx))
    return Exists(links)


def _compile_tags(spec, op, value, ctx) -> Q:
    if op in ("eq", "any_of"):
        return Q(_has_tag(value if op == "any_of" else [value], ctx, spec))
    if op == "neq":
        return ~Q(_has_tag([value], ctx, spec))
    if op == "is_empty":
        return ~Q(_has_tag(None, ctx, spec))
    return Q(_has_tag(None, ctx, spec))


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
        is_true = Q(In(Lower(text), sorted(TRUE_WORDS)))
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
