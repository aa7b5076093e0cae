"""Reads for the contact list, its smart views, search, bulk actions and exports.

The API other modules build on:

    state = list_state_from_request(request)        # what the page shows: q, filters, sort...
    if state.error: ...                              # invalid filter: show it, act on nothing
    qs = contacts_for_list(org=request.org, policy=policy_for(request),
                           search=state.q, filters=state.filters, archived=state.archived)

`contacts_for_state(request, state)` does both and returns an empty queryset for an invalid
filter, which is what a bulk action or export on "all matching" must do.

The list's reads live in this module itself; beside it, `list_page` (what one page of the list
reads: its columns and its rows' tags) and `record` (the contact page). Those import from here,
never the other way round.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib.postgres.search import SearchQuery
from django.db import connection, transaction
from django.db.models import Field, Q, QuerySet

from crm.pagination import OrderKey
from crm.permissions import policy_for
from crm.selectors import org_timezone

from ..fields import CUSTOM_PREFIX, FieldSpec, catalog_by_key, contact_field_catalog
from ..filters import (
    FilterError,
    compile_filters,
    custom_sort_expression,
    parse_condition,
    parse_filters,
)
from ..models import Company, Contact, ListPreference, SmartView

LIST_KEY = "contacts"
DEFAULT_SORT = "-created_at"
NAME_COLUMN = "name"
DEFAULT_COLUMNS = [
    "email",
    "company",
    "owner",
    "lifecycle_stage",
    "lead_score",
    "tags",
    "created_at",
]
MAX_COLUMNS = 20
MAX_SEARCH_TERMS = 8
SEARCH_ID_CAP = 5000  # up to this many matches, search hands the page query a list of ids
# A search whose words are all shorter is broad: no id look-up. Three-letter prefixes ("oli")
# often match tens of thousands of contacts, and reading them all out of the full-text index
# costs more than letting the planner walk the sorted index (or pick the full-text index itself
# when its statistics say the prefix is rare).
MIN_SELECTIVE_TERM = 4
COMPANY_ID_CAP = 1000  # companies matching a search, handed over as a list up to this many

# Sort keys with their own multi-column order (the rest sort on (field, id)).
_COMPOUND_SORTS = {
    NAME_COLUMN: ("last_name", "first_name"),
    "last_name": ("last_name", "first_name"),
    "first_name": ("first_name", "last_name"),
}


# Catalog and visibility ----------------------------------------------------------------------


def visible_catalog(org, policy, catalog=None) -> list[FieldSpec]:
    """The org's contact fields this member may see; hidden ones never reach a page."""
    catalog = catalog if catalog is not None else contact_field_catalog(org)
    return [spec for spec in catalog if policy.can_see_field(spec.key)]


def full_request_catalog(request) -> list[FieldSpec]:
    """Every contact field of the request's org (hidden ones included), built once per
    request. Only for validation: it lets a filter on a hidden field be refused by name."""
    cached = getattr(request, "_contact_catalog", None)
    if cached is None:
        cached = contact_field_catalog(request.org)
        request._contact_catalog = cached
    return cached


def request_catalog(request) -> list[FieldSpec]:
    """The fields the member may see, built once per request."""
    cached = getattr(request, "_visible_contact_catalog", None)
    if cached is None:
        cached = visible_catalog(request.org, policy_for(request), full_request_catalog(request))
        request._visible_contact_catalog = cached
    return cached


# Search --------------------------------------------------------------------------------------


def tsquery_text(text: str, *, names_only: bool = False) -> str | None:
    """The raw to_tsquery text for `text`: every word must match the start of a word
    ("jo smi" finds John Smith). Only word characters survive, so tsquery syntax typed by a
    user (& | ! : ( ) <->) can never reach Postgres. `names_only` restricts matching to
    weight A (the name), leaving out the email (weight B)."""
    terms = re.findall(r"\w+", (text or "").lower())[:MAX_SEARCH_TERMS]
    if not terms:
        return None
    suffix = ":*A" if names_only else ":*"
    return " & ".join(f"'{term}'{suffix}" for term in terms)


def search_query(text: str, *, names_only: bool = False) -> SearchQuery | None:
    raw = tsquery_text(text, names_only=names_only)
    if raw is None:
        return None
    return SearchQuery(raw, search_type="raw", config="simple")


def _ids_by_index(queryset, cap: int) -> list[int]:
    """Up to `cap` + 1 ids of `queryset`, read through its bitmap (full-text) index.

    Postgres guesses a prefix search (`garc:*`) to match about 2% of rows whatever the word,
    so on its own it may pick a plain scan for a word that matches one row in a million.
    Turning the other scans off for this one statement makes it read the full-text index,
    which costs little exactly when the matches are few."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        ids = list(queryset.values_list("id", flat=True)[: cap + 1])
        # Inside a longer transaction (every member's request has one, crm/rls.py) SET LOCAL
        # would hold for every query after this one, until that transaction ends.
        cursor.execute("SET LOCAL enable_seqscan = DEFAULT; SET LOCAL enable_indexscan = DEFAULT")
        return ids


def search_q(org, text: str, policy=None) -> Q:
    """Contacts whose name or email matches, or whose company's name or domain matches.
    With `policy`, a hidden email or company never decides a match: finding a contact by a
    value one may not see would reveal it.

    A specific search ("person123@mail", "garcia") matches few rows: their ids are looked up
    first through the full-text indexes and handed to the page query as a list, so it
    fetches them by key. A broad one (short words, or more than SEARCH_ID_CAP matches) stays
    a plain condition, which a walk along the sorted index satisfies within a few hundred
    rows. Either way the page costs a fixed number of queries."""
    hide_email = policy is not None and not policy.can_see_field("email")
    hide_company = policy is not None and not policy.can_see_field("company")
    query = search_query(text, names_only=hide_email)
    if query is None:
        return Q()
    contacts = Contact.objects.for_org(org)
    broad = max(len(term) for term in re.findall(r"\w+", text)) < MIN_SELECTIVE_TERM
    companies = None
    company_ids = None  # a list when few enough companies match
    if not hide_company:
        companies = Company.objects.for_org(org).filter(search_vector=search_query(text))
        if not broad:
            found = _ids_by_index(companies, COMPANY_ID_CAP)
            if len(found) <= COMPANY_ID_CAP:
                company_ids = found
    if not broad and (companies is None or company_ids is not None):
        ids = _ids_by_index(contacts.filter(search_vector=query), SEARCH_ID_CAP)
        if company_ids and len(ids) <= SEARCH_ID_CAP:
            via = contacts.filter(company_id__in=company_ids).values_list("id", flat=True)
            ids += list(via[: SEARCH_ID_CAP + 1])
        if len(ids) <= SEARCH_ID_CAP:
            return Q(id__in=ids)
    match = Q(search_vector=query)
    if companies is not None:
        match |= Q(
            company_id__in=company_ids if company_ids is not None else companies.values("id")
        )
    return match


def companies_for_search(*, org, policy, search: str) -> QuerySet:
    """Companies matching `search` in the member's scope (the global search's second list)."""
    query = search_query(search)
    if query is None or not policy.can("companies", "view"):
        return Company.objects.for_org(org).none()
    companies = (
        Company.objects.for_org(org)
        .filter(is_archived=False, search_vector=query)
        .filter(policy.scope_filter("companies"))
    )
    if max(len(term) for term in re.findall(r"\w+", search)) >= MIN_SELECTIVE_TERM:
        ids = _ids_by_index(companies, COMPANY_ID_CAP)
        if len(ids) <= COMPANY_ID_CAP:
            return Company.objects.for_org(org).filter(id__in=ids)
    return companies


# The list queryset -----------------------------------------------------------------------------


def contacts_for_list(
    *, org, policy, search="", filters=None, archived=False, catalog=None
) -> QuerySet:
    """Contacts of `org` inside the member's record scope, archived or not (None: both),
    matching `search` and the smart-view `filters` spec. A filter on a field hidden for the
    member raises FilterError, as does an invalid spec."""
    qs = Contact.objects.for_org(org).filter(policy.scope_filter("contacts"))
    if archived is not None:
        qs = qs.filter(is_archived=bool(archived))
    if search:
        qs = qs.filter(search_q(org, search, policy))
    if filters and filters.get("groups"):
        catalog = catalog if catalog is not None else contact_field_catalog(org)
        spec = parse_filters(filters, catalog, policy=policy)
        membership = policy.membership
        qs = qs.filter(
            compile_filters(
                spec,
                catalog,
                tz=org_timezone(org),
                org=org,
                user=membership.user if membership is not None else None,
                policy=policy,
            )
        )
    return qs


def with_list_relations(qs: QuerySet) -> QuerySet:
    """What a rendered row needs, in a fixed number of queries whatever the page size."""
    return qs.select_related("owner", "company").prefetch_related("tags")


def contacts_for_state(request, state: ListState) -> QuerySet:
    """The contacts `state` describes for this request's member (none if its filter is
    invalid, so an action on "all matching" never widens to everything)."""
    if state.error:
        return Contact.objects.for_org(request.org).none()
    return contacts_for_list(
        org=request.org,
        policy=policy_for(request),
        search=state.q,
        filters=state.filters,
        archived=state.archived,
        catalog=request_catalog(request),
    )


# Sorting --------------------------------------------------------------------------------------


def sort_options(catalog) -> dict[str, str]:
    """{sort key: label} for the visible, sortable fields."""
    options = {NAME_COLUMN: "Name"}
    for spec in catalog:
        if spec.sortable and spec.key not in ("last_name",):
            options[spec.key] = spec.label
    return options


def normalize_sort(sort: str, catalog) -> str | None:
    key = (sort or "").strip()
    descending = key.startswith("-")
    name = key.lstrip("-")
    if name not in sort_options(catalog) and name != "last_name":
        return None
    return ("-" if descending else "") + name


def sort_order(sort: str, catalog) -> list[OrderKey]:
    """The keyset order for a (normalized) sort key, always ending with the id."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    fields = catalog_by_key(catalog)
    if name in _COMPOUND_SORTS:
        keys = [OrderKey(col, descending=descending) for col in _COMPOUND_SORTS[name]]
    elif name.startswith(CUSTOM_PREFIX) and name in fields:
        spec = fields[name]
        keys = [
            OrderKey(
                name,
                expression=custom_sort_expression(spec),
                descending=descending,
                nullable=True,
            )
        ]
    else:
        model_field = Contact._meta.get_field(fields[name].path if name in fields else name)
        if not isinstance(model_field, Field):  # sort options are the contact's own columns
            raise ValueError(f"Cannot sort contacts by {name!r}.")
        keys = [OrderKey(model_field.attname, descending=descending, nullable=model_field.null)]
    return [*keys, OrderKey("id", descending=descending)]


# Columns --------------------------------------------------------------------------------------

# Fields that make no sense as a column (long, or shown elsewhere in the row).
_NOT_COLUMNS = {"first_name", "last_name", "other_emails", "is_archived"}


def column_options(catalog) -> list[FieldSpec]:
    return [spec for spec in catalog if spec.key not in _NOT_COLUMNS]


def normalize_columns(columns, catalog) -> list[str]:
    allowed = {spec.key for spec in column_options(catalog)}
    out = []
    for key in columns or []:
        if isinstance(key, str) and key in allowed and key not in out:
            out.append(key)
    return out[:MAX_COLUMNS]


def list_preference(org, user) -> ListPreference | None:
    return ListPreference.objects.for_org(org).filter(user=user, list_key=LIST_KEY).first()


# Smart views ------------------------------------------------------------------------------------


def smart_views_for(org, user) -> QuerySet:
    """The contact views a member may use: their own and the shared ones (saved deal views,
    entity "deal", belong to the deal table)."""
    return (
        SmartView.objects.for_org(org)
        .filter(entity=SmartView.Entity.CONTACT)
        .filter(Q(owner=user) | Q(is_shared=True))
        .select_related("owner")
        .order_by("position", "name", "id")
    )


def smart_view_for(org, user, public_id) -> SmartView | None:
    try:
        public_id = uuid.UUID(str(public_id))
    except ValueError:
        return None
    return smart_views_for(org, user).filter(public_id=public_id).first()


# The filter panel's simple parameters ------------------------------------------------------------


@dataclass(frozen=True)
class PanelParam:
    """One input of the filter panel and the condition it means."""

    name: str
    field: str
    op: str
    many: bool = False
    shift_days: int = 0  # date ranges are inclusive: "from D" is after D-1, "to D" before D+1
    shift_number: int = 0  # score ranges are inclusive: "min N" is gt N-1


PANEL_PARAMS = [
    PanelParam("tag", "tags", "any_of", many=True),
    PanelParam("status", "status", "any_of", many=True),
    PanelParam("stage", "lifecycle_stage", "any_of", many=True),
    PanelParam("company", "company", "contains"),
    PanelParam("owner", "owner", "eq"),
    PanelParam("source", "source", "eq"),
    PanelParam("score_min", "lead_score", "gt", shift_number=-1),
    PanelParam("score_max", "lead_score", "lt", shift_number=1),
    PanelParam("consent", "consent_status", "any_of", many=True),
    PanelParam("created_from", "created_at", "after", shift_days=-1),
    PanelParam("created_to", "created_at", "before", shift_days=1),
    PanelParam("contacted_from", "last_contacted_at", "after", shift_days=-1),
    PanelParam("contacted_to", "last_contacted_at", "before", shift_days=1),
    PanelParam("activity_from", "last_activity_at", "after", shift_days=-1),
    PanelParam("activity_to", "last_activity_at", "before", shift_days=1),
]
PANEL_LABELS = {
    "score_min": "Lead score from",
    "score_max": "Lead score to",
    "created_from": "Created from",
    "created_to": "Created to",
    "contacted_from": "Last contacted from",
    "contacted_to": "Last contacted to",
    "activity_from": "Last activity from",
    "activity_to": "Last activity to",
}
CUSTOM_PANEL_PREFIX = "cf."
_CUSTOM_PANEL_OPS = {"text": "contains", "url": "contains", "choice": "eq", "bool": "eq"}
_CUSTOM_RANGE_OPS = {"number": ("gt", "lt"), "date": ("after", "before")}


def _shift_value(param: PanelParam, value: str, label: str):
    if param.shift_days:
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise FilterError(f"'{label}' needs a date like 2024-05-31.") from None
        return (day + dt.timedelta(days=param.shift_days)).isoformat()
    if param.shift_number:
        try:
            number = int(value.strip())
        except ValueError:
            raise FilterError(f"'{label}' needs a whole number.") from None
        return number + param.shift_number
    return value


def panel_conditions(params, catalog) -> tuple[list[dict], dict]:
    """Conditions from the panel's GET parameters (`params` is a QueryDict) and the raw values
    to show back in the panel. Fields hidden for the member are not in `catalog`, so their
    parameters are ignored."""
    fields = catalog_by_key(catalog)
    conditions: list[dict] = []
    shown: dict = {}
    for param in PANEL_PARAMS:
        if param.field not in fields:
            continue
        values = [v for v in params.getlist(param.name) if v.strip()]
        if not values:
            continue
        label = PANEL_LABELS.get(param.name, fields[param.field].label)
        shown[param.name] = values if param.many else values[0]
        value = values if param.many else _shift_value(param, values[0], label)
        conditions.append(
            parse_condition({"field": param.field, "op": param.op, "value": value}, fields)
        )
    for spec in catalog:
        if not spec.is_custom:
            continue
        base = CUSTOM_PANEL_PREFIX + spec.key[len(CUSTOM_PREFIX) :]
        if spec.type in _CUSTOM_RANGE_OPS:
            for suffix, op in zip(("min", "max"), _CUSTOM_RANGE_OPS[spec.type], strict=True):
                value = params.get(f"{base}.{suffix}", "").strip()
                if value:
                    shown[f"{base}.{suffix}"] = value
                    conditions.append(
                        parse_condition({"field": spec.key, "op": op, "value": value}, fields)
                    )
        elif spec.type in _CUSTOM_PANEL_OPS:
            value = params.get(base, "").strip()
            if value:
                shown[base] = value
                conditions.append(
                    parse_condition(
                        {"field": spec.key, "op": _CUSTOM_PANEL_OPS[spec.type], "value": value},
                        fields,
                    )
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


# The list state ----------------------------------------------------------------------------------


@dataclass
class ListState:
    """Everything that decides which contacts the list shows and how."""

    q: str = ""
    filters: dict | None = None  # the combined, validated spec (view/builder AND panel)
    builder: dict = field(default_factory=lambda: {"groups": []})  # the builder's own spec
    builder_json: str = ""  # as received via ?filters=, re-shown on errors
    panel: dict = field(default_factory=dict)
    view: SmartView | None = None
    archived: bool = False
    sort: str = DEFAULT_SORT
    columns: list[str] = field(default_factory=lambda: list(DEFAULT_COLUMNS))
    cursor: str = ""
    error: str = ""
    error_condition: int | None = None
    explicit_filters: bool = False  # ?filters= given (the builder overrides the view)
    explicit_columns: bool = False  # ?columns= given (the column chooser overrides the view)

    @property
    def is_valid(self) -> bool:
        return not self.error

    def params(self, *, cursor: bool = False, **overrides) -> list[tuple[str, str]]:
        """The state as GET parameters (for links, the bulk form and exports)."""
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
        if self.explicit_columns:
            pairs.append(("columns", ",".join(self.columns)))
        pairs.append(("sort", self.sort))
        if cursor and self.cursor:
            pairs.append(("cursor", self.cursor))
        for name, value in overrides.items():
            pairs = [(k, v) for k, v in pairs if k != name]
            if value not in (None, ""):
                pairs.append((name, str(value)))
        return pairs

    def query_string(self, **overrides) -> str:
        return urlencode(self.params(**overrides))


def _bool_param(value) -> bool:
    return str(value or "").lower() in ("1", "true", "yes", "on")


def list_state_from_request(request) -> ListState:
    """Read the list state from GET (or POST, for the bulk form) parameters."""
    params = request.POST if request.method == "POST" else request.GET
    org, user = request.org, request.user
    catalog = request_catalog(request)
    every_field = full_request_catalog(request)
    policy = policy_for(request)
    state = ListState(
        q=(params.get("q") or "").strip()[:200],
        archived=_bool_param(params.get("archived")),
        cursor=params.get("cursor") or "",
    )

    view_id = params.get("view")
    if view_id:
        state.view = smart_view_for(org, user, view_id)

    # The filter: the builder's JSON wins over the view's saved filter (that is the view being
    # edited); the panel's simple parameters are ANDed into it.
    raw = params.get("filters")
    try:
        if raw is not None and raw.strip():
            state.explicit_filters = True
            state.builder_json = raw
            state.builder = parse_filters(raw, every_field, policy=policy)
            state.builder_json = json.dumps(state.builder)
            if state.view is not None and state.builder == parse_filters(
                state.view.filters, every_field, policy=policy
            ):
                state.explicit_filters = False  # the view's own filter, unchanged
        elif state.view is not None:
            state.builder = parse_filters(state.view.filters, every_field, policy=policy)
        conditions, state.panel = panel_conditions(params, catalog)
        combined = combine(state.builder, conditions)
        if sum(len(g["conditions"]) for g in combined["groups"]):
            state.filters = parse_filters(combined, every_field, policy=policy)
    except FilterError as exc:
        state.error, state.error_condition = exc.message, exc.condition
        state.filters = None
        if not state.panel:
            state.panel = {p.name: params.get(p.name) for p in PANEL_PARAMS if params.get(p.name)}

    pref = None
    sort = normalize_sort(params.get("sort", ""), catalog)
    if sort is None and state.view is not None:
        sort = normalize_sort(state.view.sort, catalog)
    if sort is None or params.get("columns") is None:
        pref = list_preference(org, user)
    if sort is None and pref is not None:
        sort = normalize_sort(pref.sort, catalog)
    state.sort = sort or DEFAULT_SORT

    if params.get("columns") is not None:
        state.explicit_columns = True
        columns = normalize_columns(params.get("columns", "").split(","), catalog)
    elif state.view is not None and state.view.columns:
        columns = normalize_columns(state.view.columns, catalog)
    elif pref is not None and pref.columns:
        columns = normalize_columns(pref.columns, catalog)
    else:
        columns = normalize_columns(DEFAULT_COLUMNS, catalog)
    state.columns = columns
    return state
