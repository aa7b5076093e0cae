"""Filters of deals: the deal field catalog for the smart-view filter engine (contacts.filters,
the same JSON language, parser and compiler as the contact list), the filter panel's simple
inputs, saved deal views (contacts.SmartView with entity "deal") and `filter_deals`, which the
deal table, its bulk actions and exports, and the board all call:

    queryset, state = filter_deals(visible_deals(org, policy, archived=None),
                                   org=org, policy=policy, params=request.GET)
    if state.error: ...  # an invalid or forbidden filter: say so, show (and act on) nothing

A field the member's role hides (pipeline field rules, `pipeline.fields`) is neither a filter
nor a panel input: a condition naming it is refused by name, as on the contact list.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import ClassVar
from urllib.parse import urlencode

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.core.exceptions import FieldDoesNotExist
from django.db.models import (
    Case,
    CharField,
    F,
    IntegerField,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from contacts.fields import CUSTOM_PREFIX, FieldSpec, catalog_by_key, custom_spec
from contacts.filters import (
    FilterError,
    builder_schema,
    compile_filters,
    parse_condition,
    parse_filters,
)
from contacts.models import CustomFieldDefinition, SmartView, Tag
from contacts.selectors import tsquery_text
from crm.models import Membership, Team
from crm.selectors import org_timezone

from .fields import DEAL_RULE_KEYS
from .models import Deal, ForecastCategory, Pipeline, Stage

# What a deal counts as now (won 100 %, lost 0 %, else its own probability or its stage's;
# likewise the forecast category), as annotations for exports. Filters compile the same rule
# to plain column conditions (`_probability_q`, `_category_q`), which the deal indexes serve.
PROBABILITY_NOW = "probability_now"
CATEGORY_NOW = "forecast_category_now"
MAX_SEARCH = 200
_NOTHING = Q(pk__in=[])


@dataclass(frozen=True)
class DealFieldSpec(FieldSpec):
    """A deal field for the filter engine: it filters deal rows (`model`), and its visibility
    is the pipeline module's field rule `rule` (a deal's currency goes with its value, every
    custom field with "custom"); no rule key means the field's own key."""

    model: ClassVar[type] = Deal
    module: ClassVar[str] = "pipeline"
    rule: str = ""
    # The field's own condition compiler (see contacts.filters.compiling), or None.
    compiler: Callable | None = field(default=None, compare=False)

    @property
    def rule_key(self) -> str:
        return self.rule or self.key


def _choices(enum) -> tuple:
    return tuple(enum.choices)


def _custom_deal_spec(definition: CustomFieldDefinition) -> DealFieldSpec:
    base = custom_spec(definition)
    return DealFieldSpec(
        key=base.key,
        label=base.label,
        group="Custom",
        type=base.type,
        path=base.path,
        choices=base.choices,
        sortable=False,
        editable=True,
        definition=definition,
        rule="custom",
    )


def deal_field_catalog(org) -> list[DealFieldSpec]:
    """Every deal field of `org` (hidden ones included: only for validation, so a filter on a
    hidden field is refused by name). Pipelines, stages and teams are choices by public id."""
    pipelines = list(Pipeline.objects.for_org(org).order_by("position", "id"))
    names = {p.pk: p.name for p in pipelines}
    order = {p.pk: n for n, p in enumerate(pipelines)}
    stages = sorted(
        Stage.objects.for_org(org).only("public_id", "name", "pipeline_id", "position"),
        key=lambda s: (order.get(s.pipeline_id, 0), s.position, s.pk),
    )
    several = len(pipelines) > 1
    stage_choices = tuple(
        (str(s.public_id), f"{names.get(s.pipeline_id, '')} › {s.name}" if several else s.name)
        for s in stages
    )
    teams = Team.objects.for_org(org).order_by("name").values_list("public_id", "name")
    custom = CustomFieldDefinition.objects.for_org(org).filter(
        entity=CustomFieldDefinition.Entity.DEAL, is_active=True
    )
    return [
        DealFieldSpec("title", "Title", "Deal", "text", "title"),
        DealFieldSpec("value", "Value", "Deal", "number", "value", sortable=True),
        DealFieldSpec("currency", "Currency", "Deal", "text", "currency", rule="value"),
        DealFieldSpec(
            "pipeline",
            "Pipeline",
            "Deal",
            "choice",
            "pipeline",
            tuple((str(p.public_id), p.name) for p in pipelines),
        ),
        DealFieldSpec("stage", "Stage", "Deal", "choice", "stage", stage_choices),
        DealFieldSpec("status", "Status", "Deal", "choice", "status", _choices(Deal.Status)),
        DealFieldSpec(
            "probability", "Probability", "Deal", "number", "probability", compiler=_probability_q
        ),
        DealFieldSpec(
            "priority", "Priority", "Deal", "choice", "priority", _choices(Deal.Priority)
        ),
        DealFieldSpec(
            "forecast_category",
            "Forecast category",
            "Deal",
            "choice",
            "forecast_category",
            _choices(ForecastCategory),
            compiler=_category_q,
        ),
        DealFieldSpec("source", "Source", "Deal", "text", "source"),
        DealFieldSpec("tags", "Tags", "Deal", "tags", "tags"),
        DealFieldSpec("owner", "Owner", "People", "user", "owner"),
        DealFieldSpec(
            "team", "Team", "People", "choice", "team", tuple((str(k), n) for k, n in teams)
        ),
        DealFieldSpec("contact", "Primary contact", "People", "contact", "contact"),
        DealFieldSpec("company", "Company", "People", "company", "company"),
        DealFieldSpec(
            "expected_close_date",
            "Expected close",
            "Dates",
            "date",
            "expected_close_date",
            sortable=True,
        ),
        DealFieldSpec("closed_at", "Closed", "Dates", "datetime", "closed_at", sortable=True),
        DealFieldSpec(
            "created_at",
            "Created",
            "Dates",
            "datetime",
            "created_at",
            sortable=True,
            editable=False,
        ),
        DealFieldSpec(
            "updated_at",
            "Updated",
            "Dates",
            "datetime",
            "updated_at",
            sortable=True,
            editable=False,
        ),
        *(_custom_deal_spec(d) for d in custom),
    ]


def hidden_rule_keys(policy) -> set[str]:
    """The deal field rules that hide something from this member (None: system work)."""
    if policy is None:
        return set()
    return {key for key in DEAL_RULE_KEYS if not policy.can_see_field(key, "pipeline")}


def visible_deal_catalog(catalog, policy) -> list[DealFieldSpec]:
    """The fields of `catalog` this member may see: the only ones a page offers."""
    hidden = hidden_rule_keys(policy)
    return [spec for spec in catalog if spec.rule_key not in hidden]


# Effective values and search -------------------------------------------------------------------


def effective_probability_expression():
    return Case(
        When(status=Deal.Status.WON, then=Value(100)),
        When(status=Deal.Status.LOST, then=Value(0)),
        default=Coalesce(F("probability"), F("stage__probability")),
        output_field=IntegerField(),
    )


def effective_category_expression():
    return Case(
        When(status=Deal.Status.WON, then=Value(ForecastCategory.CLOSED.value)),
        When(status=Deal.Status.LOST, then=Value(ForecastCategory.OMITTED.value)),
        When(~Q(forecast_category=""), then=F("forecast_category")),
        default=F("stage__forecast_category"),
        output_field=CharField(),
    )


def _any(conditions) -> Q:
    out = _NOTHING
    for condition in conditions:
        out |= condition
    return out


def _stage_values(ctx, column: str) -> list[tuple[int, object]]:
    """(stage id, value of `column`) for the organization's stages: a few dozen rows."""
    return list(Stage.objects.for_org(ctx.org).values_list("id", column))


def _probability_q(spec, op, value, ctx) -> Q:
    """A condition on the probability a deal counts with: 100 when won, 0 when lost, else its
    own or (when it has none) its stage's. Compiled to plain columns and the ids of the
    stages whose probability matches, so no join to the stages is needed."""
    if op == "is_empty":
        return _NOTHING  # every deal has one
    if op == "is_not_empty":
        return Q()
    tests = {
        "eq": lambda p: p == value,
        "neq": lambda p: p != value,
        "gt": lambda p: p > value,
        "lt": lambda p: p < value,
    }
    matches = tests[op]
    lookups = {"eq": "exact", "gt": "gt", "lt": "lt"}
    own = ~Q(probability=value) if op == "neq" else Q(**{f"probability__{lookups[op]}": value})
    stage_ids = [
        sid for sid, probability in _stage_values(ctx, "probability") if matches(probability)
    ]
    parts = [
        Q(status=Deal.Status.OPEN, probability__isnull=False) & own,
        Q(status=Deal.Status.OPEN, probability__isnull=True, stage_id__in=stage_ids),
    ]
    if matches(100):
        parts.append(Q(status=Deal.Status.WON))
    if matches(0):
        parts.append(Q(status=Deal.Status.LOST))
    return _any(parts)


def _category_q(spec, op, value, ctx) -> Q:
    """A condition on the forecast category a deal counts in: closed when won, omitted when
    lost, else its own or (when it has none) its stage's; compiled like `_probability_q`."""
    if op == "is_empty":
        return _NOTHING
    if op == "is_not_empty":
        return Q()
    wanted = set(value) if op == "any_of" else {value}

    def matches(category) -> bool:
        return (category not in wanted) if op == "neq" else (category in wanted)

    categories = [c for c in ForecastCategory.values if matches(c)]
    stage_ids = [
        sid for sid, category in _stage_values(ctx, "forecast_category") if matches(category)
    ]
    parts = [
        Q(status=Deal.Status.OPEN, forecast_category__in=categories),
        Q(status=Deal.Status.OPEN, forecast_category="", stage_id__in=stage_ids),
    ]
    if matches(ForecastCategory.CLOSED):
        parts.append(Q(status=Deal.Status.WON))
    if matches(ForecastCategory.OMITTED):
        parts.append(Q(status=Deal.Status.LOST))
    return _any(parts)


def title_search_query(text: str) -> SearchQuery | None:
    """Every word typed must start a word of the title ("acme ren" finds "Renewal: Acme")."""
    raw = tsquery_text((text or "")[:MAX_SEARCH])
    return SearchQuery(raw, search_type="raw", config="simple") if raw else None


def _stored_search_vector() -> bool:
    """Whether deals have a stored `search_vector` (to_tsvector('simple', title), GIN
    indexed). Under row-level security only a stored column's index serves the search:
    to_tsvector is not LEAKPROOF, so an index on the expression is not used there."""
    try:
        Deal._meta.get_field("search_vector")
    except FieldDoesNotExist:
        return False
    return True


def search_titles(queryset: QuerySet, text: str) -> QuerySet:
    """Deals of `queryset` whose title matches `text` (each word starts a word of it)."""
    query = title_search_query(text)
    if query is None:
        return queryset
    if _stored_search_vector():
        return queryset.filter(search_vector=query)
    return queryset.alias(title_search=SearchVector("title", config="simple")).filter(
        title_search=query
    )


def deals_for_search(*, org, policy, search: str, limit: int) -> list[Deal]:
    """The global search's deals: titles matching `search` in the member's pipeline scope,
    most recently changed first (no deals without the pipeline view right)."""
    if policy is None or not policy.can("pipeline", "view") or title_search_query(search) is None:
        return []
    queryset = Deal.objects.for_org(org).filter(is_archived=False)
    queryset = queryset.filter(policy.scope_filter("pipeline"))
    return list(
        search_titles(queryset, search)
        .select_related("stage")
        .order_by("-updated_at", "-id")[:limit]
    )


# Saved deal views -------------------------------------------------------------------------------


def deal_views_for(org, user) -> QuerySet:
    """The saved deal views a member may use: their own and the shared ones."""
    return (
        SmartView.objects.for_org(org)
        .filter(entity=SmartView.Entity.DEAL)
        .filter(Q(owner=user) | Q(is_shared=True))
        .select_related("owner")
        .order_by("position", "name", "id")
    )


def deal_view_for(org, user, public_id) -> SmartView | None:
    try:
        public_id = uuid.UUID(str(public_id))
    except ValueError:
        return None
    if user is None:
        return None
    return deal_views_for(org, user).filter(public_id=public_id).first()


# The filter panel's simple inputs ----------------------------------------------------------------


@dataclass(frozen=True)
class PanelInput:
    """One input of the deal filter panel and the condition it stands for."""

    name: str
    field: str
    op: str
    label: str = ""
    many: bool = False
    kind: str = ""  # "day_from" / "day_to" / "amount_from" / "amount_to": inclusive bounds


PANEL_INPUTS = [
    PanelInput("pipeline", "pipeline", "eq"),
    PanelInput("stage", "stage", "any_of", many=True),
    PanelInput("status", "status", "any_of", many=True),
    PanelInput("owner", "owner", "eq"),
    PanelInput("tag", "tags", "any_of", many=True),
    PanelInput("priority", "priority", "any_of", many=True),
    PanelInput("value_min", "value", "gt", "Value from", kind="amount_from"),
    PanelInput("value_max", "value", "lt", "Value to", kind="amount_to"),
    PanelInput(
        "close_from", "expected_close_date", "after", "Expected close from", kind="day_from"
    ),
    PanelInput("close_to", "expected_close_date", "before", "Expected close to", kind="day_to"),
]
PANEL_NAMES = {panel_input.name for panel_input in PANEL_INPUTS}
_CENT = Decimal("0.01")


def _inclusive(panel_input: PanelInput, text: str, label: str):
    """A panel bound as the filter's exclusive operator reads it: "from D" is after D-1, and
    "value from 100" is more than 99.99 (amounts are whole cents)."""
    if panel_input.kind.startswith("day"):
        try:
            day = dt.date.fromisoformat(text.strip())
        except ValueError:
            raise FilterError(f"'{label}' needs a date like 2024-05-31.") from None
        shift = -1 if panel_input.kind == "day_from" else 1
        return (day + dt.timedelta(days=shift)).isoformat()
    if panel_input.kind.startswith("amount"):
        try:
            amount = Decimal(text.strip().replace(",", ""))
        except InvalidOperation:
            raise FilterError(f"'{label}' needs an amount such as 1000.") from None
        if not amount.is_finite():
            raise FilterError(f"'{label}' needs an amount such as 1000.")
        amount += -_CENT if panel_input.kind == "amount_from" else _CENT
        return float(amount)
    return text


def _getlist(params, name: str) -> list[str]:
    if hasattr(params, "getlist"):
        values = params.getlist(name)
    else:
        value = params.get(name)
        values = value if isinstance(value, list) else [] if value is None else [value]
    return [str(v) for v in values if str(v).strip()]


def panel_conditions(params, visible_catalog) -> tuple[list[dict], dict]:
    """Conditions from the panel's inputs (only fields the member sees) and the raw values to
    show back in the panel."""
    fields = catalog_by_key(visible_catalog)
    conditions: list[dict] = []
    shown: dict = {}
    for panel_input in PANEL_INPUTS:
        spec = fields.get(panel_input.field)
        if spec is None:
            continue
        values = _getlist(params, panel_input.name)
        if not values:
            continue
        label = panel_input.label or spec.label
        shown[panel_input.name] = values if panel_input.many else values[0]
        value = values if panel_input.many else _inclusive(panel_input, values[0], label)
        conditions.append(
            parse_condition({"field": spec.key, "op": panel_input.op, "value": value}, fields)
        )
    return conditions, shown


def combine(spec: dict | None, extra: list[dict]) -> dict:
    """AND `extra` conditions into every OR group of `spec`."""
    groups = (spec or {}).get("groups") or []
    if not extra:
        return {"groups": groups}
    if not groups:
        return {"groups": [{"conditions": list(extra)}]}
    return {"groups": [{"conditions": [*g["conditions"], *extra]} for g in groups]}


# The filter state ------------------------------------------------------------------------------


def _flag(value) -> bool:
    return str(value or "").lower() in ("1", "true", "yes", "on")


@dataclass
class DealFilterState:
    """What decides which deals a page shows: search, saved view, builder, panel, archived."""

    q: str = ""
    view: SmartView | None = None
    builder: dict = field(default_factory=lambda: {"groups": []})  # the builder's own spec
    builder_json: str = ""  # as received in ?filters=, shown back on an error
    explicit_filters: bool = False  # ?filters= given: the builder overrides the view
    panel: dict = field(default_factory=dict)
    filters: dict | None = None  # the combined, validated spec (view or builder AND panel)
    archived: bool = False
    error: str = ""
    error_condition: int | None = None

    @property
    def is_valid(self) -> bool:
        return not self.error

    @property
    def is_filtered(self) -> bool:
        return bool(self.q or self.filters or self.archived or self.error)

    def filter_params(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        if self.q:
            pairs.append(("q", self.q))
        if self.view is not None:
            pairs.append(("view", str(self.view.public_id)))
        if self.explicit_filters:
            pairs.append(("filters", self.builder_json))
        for name, value in self.panel.items():
            for item in value if isinstance(value, list) else [value]:
                pairs.append((name, item))
        if self.archived:
            pairs.append(("archived", "1"))
        return pairs

    def resolved_params(self) -> list[tuple[str, str]]:
        """The filter as it stands now, for work done later (a background job): a saved
        view's filter and the panel folded into one spec, so a view changed or deleted
        meanwhile can never widen what the work touches."""
        pairs: list[tuple[str, str]] = []
        if self.q:
            pairs.append(("q", self.q))
        if self.filters:
            pairs.append(("filters", json.dumps(self.filters)))
        if self.archived:
            pairs.append(("archived", "1"))
        return pairs

    def params(self, **overrides) -> list[tuple[str, str]]:
        pairs = self.filter_params()
        for name, value in overrides.items():
            pairs = [(k, v) for k, v in pairs if k != name]
            if value not in (None, ""):
                pairs.append((name, str(value)))
        return pairs

    def query_string(self, **overrides) -> str:
        return urlencode(self.params(**overrides))


def _user_of(policy):
    membership = getattr(policy, "membership", None)
    return membership.user if membership is not None else None


def read_filter_state(
    *, org, policy, params, catalog=None, state: DealFilterState | None = None
) -> DealFilterState:
    """The filter state `params` (a QueryDict or a dict) describe, validated for this member.
    An invalid filter, or one naming a field the member may not see, sets `state.error`."""
    catalog = catalog if catalog is not None else deal_field_catalog(org)
    visible = visible_deal_catalog(catalog, policy)
    state = state if state is not None else DealFilterState()
    state.q = (params.get("q") or "").strip()[:MAX_SEARCH]
    state.archived = _flag(params.get("archived"))
    view_id = params.get("view")
    if view_id:
        state.view = deal_view_for(org, _user_of(policy), view_id)
    raw = params.get("filters")
    try:
        if raw is not None and str(raw).strip():
            state.explicit_filters = True
            state.builder_json = str(raw)
            state.builder = parse_filters(raw, catalog, policy=policy)
            state.builder_json = json.dumps(state.builder)
            if state.view is not None and state.builder == parse_filters(
                state.view.filters, catalog, policy=policy
            ):
                state.explicit_filters = False  # the view's own filter, unchanged
        elif state.view is not None:
            state.builder = parse_filters(state.view.filters, catalog, policy=policy)
        conditions, state.panel = panel_conditions(params, visible)
        combined = combine(state.builder, conditions)
        if any(group["conditions"] for group in combined["groups"]):
            state.filters = parse_filters(combined, catalog, policy=policy)
    except FilterError as exc:
        state.error, state.error_condition = exc.message, exc.condition
        state.filters = None
        if not state.panel:
            state.panel = {
                p.name: _getlist(params, p.name) if p.many else _getlist(params, p.name)[0]
                for p in PANEL_INPUTS
                if _getlist(params, p.name)
            }
    return state


def apply_filter_state(queryset: QuerySet, state: DealFilterState, *, org, policy, catalog=None):
    """`queryset` narrowed to `state`: none at all when its filter is invalid, so an action
    on "all matching" never widens to everything."""
    if state.error:
        return queryset.none()
    queryset = queryset.filter(is_archived=state.archived)
    if state.q:
        queryset = search_titles(queryset, state.q)
    if state.filters and state.filters.get("groups"):
        catalog = catalog if catalog is not None else deal_field_catalog(org)
        queryset = queryset.filter(
            compile_filters(
                state.filters, catalog, tz=org_timezone(org), org=org, user=_user_of(policy)
            )
        )
    return queryset


def filter_deals(queryset: QuerySet, *, org, policy, params, catalog=None):
    """(deals, state): `queryset` (the member's deals, e.g. `visible_deals(org, policy,
    archived=None)`) narrowed to what `params` ask (search, view, builder filter, panel,
    archived), and the state that says so. An invalid filter gives no deals and
    `state.error`."""
    catalog = catalog if catalog is not None else deal_field_catalog(org)
    state = read_filter_state(org=org, policy=policy, params=params, catalog=catalog)
    return apply_filter_state(queryset, state, org=org, policy=policy, catalog=catalog), state


# The filter builder ----------------------------------------------------------------------------


def deal_pick_lists(org, fields, *, tag_limit: int = 300) -> tuple[list[str], list[Membership]]:
    """(tag names A to Z, active members by name) for the panel and the builder, each only when
    the member sees that field."""
    tag_names = (
        list(Tag.objects.for_org(org).order_by("name").values_list("name", flat=True)[:tag_limit])
        if "tags" in fields
        else []
    )
    members = (
        list(
            Membership.objects.for_org(org)
            .active()
            .select_related("user")
            .order_by("user__first_name", "user__email")
        )
        if "owner" in fields
        else []
    )
    return tag_names, members


def deal_builder_schema(visible_catalog, tag_names, members) -> dict:
    """What static/js/filter_builder.js needs for deals: the fields the member sees, their
    operators, and the pick-lists of tags and members."""
    schema = builder_schema(visible_catalog)
    schema["tags"] = list(tag_names)
    schema["users"] = [[str(m.user.public_id), m.user.display_name] for m in members]
    return schema


def custom_key(spec: FieldSpec) -> str:
    return spec.key[len(CUSTOM_PREFIX) :]
