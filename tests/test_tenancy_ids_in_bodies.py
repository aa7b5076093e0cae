"""Tenancy, proven for the ids that travel inside requests (issue 13).

The URL walk (test_tenancy_urls.py) proves that org B's Owner gets a 404 for org A's ids in
URL paths. Ids also travel in POST bodies and query strings: the contact list's ticked
`ids`, a picker's chosen contact, a form's owner, company or list. This module walks the
same live URL configuration, so a page added later is covered without editing it:

- org B (with its own row of every tenant model) opens every tenant page as its Owner;
- every <form> on the page, and every HTMX control that sends a request of its own, is read
  and filled from its own defaults;
- each field that carries a record reference (a select of ids, a hidden input, checkbox or
  text box named after a record, a value that is a UUID) is sent again holding org A's ids
  instead: as a POST body for POST forms, as a query string for GET forms;
- nothing of org A may change (every row of org A, links included, is fingerprinted after
  each request), no row may end up pointing at another organization's row
  (`cross_org_references`), and no answer may show org A's identifiers or names, or be a
  server error.

Both walls are proven on their own: with PostgreSQL's row-level security as deployed (where
a forgotten `for_org` shows up as a 500 rather than a leak) and with `for_org` alone.
The bulk action endpoint, the pickers and list filters, the other id lists and the
related-record fields of the contact, to-do and note forms are also probed by name, each
with a positive control, so they stay covered whatever their templates become.
"""

# ruff: noqa: S608 -- SQL here is assembled only from the models' own table and column names.
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import SimpleNamespace
from urllib.parse import urlencode, urljoin, urlparse

import pytest
from django.apps import apps
from django.db import connection, models
from django.http import HttpResponse, HttpResponseNotFound
from django.test import Client
from django.urls import Resolver404, include, path, resolve, reverse
from django.views.decorators.http import require_POST

from contacts.bulk import ACTIONS
from contacts.models import Company, Contact, ContactList, Note, SmartView, Tag, Task
from contacts.views.bulk import ARGUMENT_INPUTS
from crm.models import Membership, Notification, Organization, User
from crm.optional_modules import OPTIONAL_MODULE_KEYS
from tests.factories import (
    ContactFactory,
    NotificationFactory,
    OrganizationFactory,
    factory_for,
    make_instance,
    member,
)
from tests.test_tenancy_urls import (
    PUBLIC_PREFIXES,
    TenantA,
    _quiet_and_fast,  # noqa: F401  (an autouse fixture: quiet 404 logs, a fast hasher)
    body_of,
    leaked_identifiers,
    param_values,
    tenant_a,  # noqa: F401  (the fixture: one row of every tenant model in org A)
    tenant_models,
    tenant_routes,
    walk_urls,
)

# Limits that keep the walk to a few seconds (about 100 pages, 80 probes today).
MAX_PAGES_PER_ROUTE = 3  # a route with a text parameter (a field key) may open several pages
MAX_TRIES_PER_ROUTE = 6  # objects tried to fill a route's parameters before giving up
MAX_REFERENCES_PER_FORM = 8
MAX_PROBES = 400

UUID_RE = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
# Names that say a field holds a person (a user's public id) rather than a tenant row.
PERSON_WORDS = {"owner", "assignee", "user", "author", "member", "actor", "invitee"}
# Names that say "a list of record ids" whatever the model.
ID_WORDS = {"id", "ids", "pk", "pks", "uuid", "uuids"}
# A plausible value for a required input left empty, by its type.
FILLERS = {
    "email": "probe@example.test",
    "number": "1",
    "range": "1",
    "date": "2030-01-15",
    "datetime-local": "2030-01-15T09:00",
    "time": "09:00",
    "month": "2030-01",
    "week": "2030-W03",
    "url": "https://probe.example",
    "tel": "+14155550123",
    "color": "#336699",
}
NOT_SENT = {"submit", "button", "reset", "image", "file"}
CHOICES = {"select", "checkbox", "radio"}


# Reading forms out of a page --------------------------------------------------------------


@dataclass
class Control:
    kind: str  # an input's type, or "select" / "textarea" / "button"
    name: str
    value: str = ""
    options: list[str] = field(default_factory=list)  # a select's option values
    selected: list[str] = field(default_factory=list)
    multiple: bool = False
    required: bool = False
    disabled: bool = False
    checked: bool = False
    owner_form: int | None = None  # the index of the form it belongs to, if any

    @property
    def is_list(self) -> bool:
        return self.kind == "checkbox" or (self.kind == "select" and self.multiple)


@dataclass
class Form:
    method: str  # "GET" or "POST"
    action: str  # a path, with any query string the page put in it
    controls: list[Control]
    source: str  # the page it was found on
    htmx: bool = False  # sent by HTMX (the views answer those with partials)
    extra: list[tuple[str, str]] = field(default_factory=list)  # a submitter's name, hx-vals

    @property
    def path(self) -> str:
        return urlparse(self.action).path

    def key(self) -> tuple:
        """Forms that send the same fields to the same view are probed once: the search box
        of the top bar is on every page."""
        try:
            view = resolve(self.path).view_name
        except Resolver404:
            view = self.path
        fields = sorted({(c.name, c.kind) for c in self.controls})
        return (self.method, view, tuple(fields), tuple(self.extra))


class _FormParser(HTMLParser):
    """Forms, their controls (also those placed outside with form="id"), and the elements
    that send an HTMX request of their own (hx-get / hx-post...)."""

    HX_VERBS = ("hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self.controls: list[tuple[Control, str | None]] = []  # with its form="..." if any
        self.hx: list[dict] = []
        self._form: int | None = None
        self._select: Control | None = None
        self._option: dict | None = None
        self._textarea: Control | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self.forms.append({"attrs": a, "index": len(self.forms)})
            self._form = len(self.forms) - 1
        verb = next((v for v in self.HX_VERBS if v in a), None)
        control = None
        if tag == "input":
            control = Control(
                kind=a.get("type", "text").lower(),
                name=a.get("name", ""),
                value=a.get("value", ""),
                checked="checked" in a,
            )
        elif tag == "select":
            control = Control(kind="select", name=a.get("name", ""), multiple="multiple" in a)
            self._select = control
        elif tag == "textarea":
            control = Control(kind="textarea", name=a.get("name", ""))
            self._textarea = control
        elif tag == "button":
            control = Control(
                kind=a.get("type", "submit").lower(),
                name=a.get("name", ""),
                value=a.get("value", ""),
            )
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
        if control is not None:
            control.required = "required" in a
            control.disabled = "disabled" in a
            control.owner_form = self._form
            self.controls.append((control, a.get("form")))
        if verb:
            self.hx.append(
                {
                    "verb": verb[3:].upper(),
                    "url": a[verb],
                    "vals": a.get("hx-vals", ""),
                    "form": self._form,
                    "control": control,
                    "is_form": tag == "form",
                }
            )

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "option":
            self.handle_endtag(tag)

    def handle_data(self, data):
        if self._option is not None:
            self._option["text"] += data
        elif self._textarea is not None:
            # A textarea's first newline is markup, not content (HTML parsing rules).
            if not self._textarea.value and data.startswith("\n"):
                data = data[1:]
            self._textarea.value += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "option" and self._option is not None:
            self._close_option()
        elif tag == "select":
            if self._option is not None:
                self._close_option()
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def _close_option(self):
        option, self._option = self._option, None
        value = option["value"] if option["value"] is not None else option["text"].strip()
        self._select.options.append(value)
        if option["selected"]:
            self._select.selected.append(value)


def parse_forms(html: str, page: str) -> list[Form]:
    """Every form of `html`, and every HTMX control that sends a request to another URL
    than its form's (a button posting to an action endpoint, a picker's search box)."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    ids = {f["attrs"].get("id"): f["index"] for f in parser.forms if f["attrs"].get("id")}
    members: dict[int | None, list[Control]] = defaultdict(list)
    for control, form_attr in parser.controls:
        if form_attr:
            control.owner_form = ids.get(form_attr)
        if control.name:
            members[control.owner_form].append(control)

    forms = []
    for info in parser.forms:
        attrs, index = info["attrs"], info["index"]
        method = (attrs.get("method") or "get").upper()
        action = urljoin(page, attrs.get("action") or page)
        sent_by = [c for c in members[index] if c.kind not in NOT_SENT]
        submitter = next(
            (c for c in members[index] if c.kind in ("submit", "image") and c.name), None
        )
        extra = [(submitter.name, submitter.value)] if submitter else []
        form = Form(method, action, sent_by, page, extra=extra)
        forms.append(form)
        for hx in parser.hx:
            if not (hx["is_form"] and hx["form"] == index):
                continue
            # hx-post on the form itself: the same request as the form when it names the
            # form's action, else a second one (HTMX's) next to the form's (without JS).
            form.htmx = True
            hx_url = urljoin(page, hx["url"])
            if urlparse(hx_url).path != urlparse(action).path:
                forms.append(Form(hx["verb"], hx_url, sent_by, page, htmx=True, extra=extra))

    for hx in parser.hx:
        if hx["is_form"]:
            continue
        url = urljoin(page, hx["url"])
        control = hx["control"]
        form_index = control.owner_form if control is not None else hx["form"]
        if form_index is not None:
            form_action = urljoin(page, parser.forms[form_index]["attrs"].get("action") or page)
            if urlparse(form_action).path == urlparse(url).path:
                continue  # the form's own request, probed as the form
        if hx["verb"] == "GET":
            # HTMX sends a GET with the element's own value only.
            sent = [control] if control is not None and control.name else []
        elif form_index is not None:
            sent = [c for c in members[form_index] if c.kind not in NOT_SENT]
        else:
            # A fragment loaded into a page's form (the bulk bar's menu): its loose
            # controls are what that form would send along.
            sent = [c for c in members[None] if c.kind not in NOT_SENT]
        extra = []
        if control is not None and control.kind in NOT_SENT and control.name:
            extra.append((control.name, control.value))
        if hx["vals"]:
            # ("js:" values are computed in the browser: nothing to send here.)
            with contextlib.suppress(ValueError, AttributeError):
                extra += [(k, str(v)) for k, v in json.loads(hx["vals"]).items()]
        if not sent and not extra:
            continue  # a plain link: the URL walk covers it
        forms.append(Form(hx["verb"], url, list(sent), page, htmx=True, extra=extra))
    return forms


# The two organizations ----------------------------------------------------------------------


@dataclass
class World:
    """One organization's rows, with the users of its members (an owner field holds a user's
    public id) and every identifier mapped back to its row."""

    tenant: TenantA
    users: list[User]
    owner: Membership | None = None

    @property
    def org(self) -> Organization:
        return self.tenant.org

    def rows(self) -> list[models.Model]:
        return [*self.tenant.objects, *self.users]

    def by_identifier(self) -> dict[str, models.Model]:
        out = {}
        for row in self.rows():
            if getattr(row, "public_id", None) is not None:
                out[str(row.public_id)] = row
            out.setdefault(str(row.pk), row)
        return out

    def identifiers(self) -> list[str]:
        return [str(row.public_id) for row in self.rows() if getattr(row, "public_id", None)]


def member_users(org) -> list[User]:
    memberships = Membership.objects.for_org(org).select_related("user").order_by("pk")
    return [m.user for m in memberships]


def world_of(tenant: TenantA, owner: Membership | None = None) -> World:
    return World(tenant=tenant, users=member_users(tenant.org), owner=owner)


@pytest.fixture
def world_a(tenant_a) -> World:  # noqa: F811  (the fixture imported above)
    return world_of(tenant_a)


@pytest.fixture
def world_b(db) -> World:
    """Org B, its Owner, and a row of every tenant model, so every page has B's own choices
    (an owner, a company, a list...) for the forms to start from."""
    org = OrganizationFactory(
        name="Org B", slug="org-b-probe", enabled_modules=OPTIONAL_MODULE_KEYS
    )
    owner = member(org, "owner")
    rows: list[models.Model] = [org]
    for model in tenant_models():
        if factory_for(model) is not None:
            rows.append(make_instance(model, org))
    return world_of(TenantA(org=org, objects=rows), owner)


def client_of(membership: Membership) -> Client:
    """Logged in and working in the membership's org. A server error comes back as a 500
    response (with `exc_info`) instead of being raised, so the walk can report it."""
    client = Client(raise_request_exception=False)
    client.force_login(membership.user)
    session = client.session
    session["active_org_id"] = membership.org_id
    session.save()
    return client


# What belongs to an organization, fingerprinted ---------------------------------------------------


def _org_expression(model, alias: str) -> str | None:
    """SQL for the organization a row of `model` belongs to, or None when it has none."""
    if model is Organization:
        return f"{alias}.id"
    if any(f.column == "org_id" for f in model._meta.concrete_fields):
        return f"{alias}.org_id"
    return None


def _data_models() -> list[type[models.Model]]:
    return [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy
    ]


def _links(model) -> list[models.ForeignKey]:
    return [f for f in model._meta.concrete_fields if f.many_to_one or f.one_to_one]


def _org_conditions() -> list[tuple[str, str]]:
    """(table, WHERE clause on alias t with %(org)s): the rows that belong to one
    organization. Tenant tables by their org_id; link tables without one (a contact's tags,
    a list's contacts, an import's rows) by the rows they link; the users of its members
    and what hangs off them (their email addresses, preferences)."""
    member_users_sql = "SELECT user_id FROM crm_membership WHERE org_id = %(org)s"
    out = []
    for model in _data_models():
        table = connection.ops.quote_name(model._meta.db_table)
        own = _org_expression(model, "t")
        if own is not None:
            out.append((table, f"{own} = %(org)s"))
            continue
        if model is User:
            out.append((table, f"t.id IN ({member_users_sql})"))
            continue
        parts = []
        for link in _links(model):
            target = link.related_model
            column = f"t.{connection.ops.quote_name(link.column)}"
            if target is User:
                parts.append(f"{column} IN ({member_users_sql})")
                continue
            target_org = _org_expression(target, "x")
            if target_org is None:
                continue
            parts.append(
                f"EXISTS (SELECT 1 FROM {connection.ops.quote_name(target._meta.db_table)} x "
                f"WHERE x.{connection.ops.quote_name(link.target_field.column)} = {column} "
                f"AND {target_org} = %(org)s)"
            )
        if parts:
            out.append((table, " OR ".join(parts)))
    return out


def org_fingerprint(org_id: int) -> dict[str, str]:
    """{table: digest of every row of the organization}, in one query: cheap enough to take
    around every probe, so a change is pinned on the request that made it."""
    conditions = _org_conditions()
    columns = ", ".join(
        f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
        f"FROM {table} t WHERE {where})"
        for table, where in conditions
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}", {"org": org_id})
        digests = cursor.fetchone()
    return {
        table.strip('"'): digest for (table, _), digest in zip(conditions, digests, strict=True)
    }


def org_snapshot(org_id: int, tables=None) -> dict[str, set[str]]:
    """{table: the organization's rows, each as JSON with every column}."""
    out = {}
    with connection.cursor() as cursor:
        for table, where in _org_conditions():
            if tables is not None and table.strip('"') not in tables:
                continue
            cursor.execute(
                f"SELECT row_to_json(t)::text FROM {table} t WHERE {where}", {"org": org_id}
            )
            out[table.strip('"')] = {row[0] for row in cursor.fetchall()}
    return out


def snapshot_changes(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    """What changed between two snapshots, row by row: the columns of a changed row, and
    the rows that came or went."""
    lines = []
    for table in sorted(set(before) | set(after)):
        old = {_row_key(r): json.loads(r) for r in before.get(table, set())}
        new = {_row_key(r): json.loads(r) for r in after.get(table, set())}
        for key in sorted(set(old) | set(new), key=str):
            was, now = old.get(key), new.get(key)
            if was == now:
                continue
            if was is None or now is None:
                verb, row = ("added", now) if was is None else ("removed", was)
                lines.append(f"{table} {verb} {json.dumps(row)[:300]}")
                continue
            columns = [f"{c}: {was[c]!r} -> {now.get(c)!r}" for c in was if was[c] != now.get(c)]
            lines.append(f"{table} id={key}: " + ", ".join(columns)[:300])
    return lines


def _row_key(row_json: str):
    row = json.loads(row_json)
    return row.get("id", row_json)


def cross_org_references() -> list[str]:
    """Every row that points at a row of another organization: a foreign key of a tenant row
    whose target has another org_id, a link row (many-to-many) joining two organizations,
    and a tenant row naming as its owner, author... a user who is a member elsewhere but
    not of the row's organization. Checks the whole database; reusable by any test."""
    quote = connection.ops.quote_name
    checks = []  # (label, SQL selecting the offending rows' primary keys)
    for model in _data_models():
        table = quote(model._meta.db_table)
        # A composite primary key (contacts.DedupKey) has no one column: rows go by ctid.
        pk = quote(model._meta.pk.column) if model._meta.pk.column else "ctid"
        own = _org_expression(model, "t") if model is not Organization else None
        targets = []  # (what, JOIN clause, the target's organization)
        for link in _links(model):
            column = f"t.{quote(link.column)}"
            if link.column == "org_id":
                continue
            if link.related_model is User and own is not None:
                checks.append(
                    (
                        f"{model._meta.label}.{link.name} is a member of another organization only",
                        f"SELECT t.{pk} FROM {table} t WHERE {column} IS NOT NULL "
                        f"AND EXISTS (SELECT 1 FROM crm_membership m WHERE m.user_id = {column}) "
                        "AND NOT EXISTS (SELECT 1 FROM crm_membership m "
                        f"WHERE m.user_id = {column} AND m.org_id = {own})",
                    )
                )
                continue
            alias = f"x{len(targets)}"
            target_org = _org_expression(link.related_model, alias)
            if target_org is not None:
                join = (
                    f"JOIN {quote(link.related_model._meta.db_table)} {alias} "
                    f"ON {alias}.{quote(link.target_field.column)} = {column}"
                )
                targets.append((link.name, join, target_org))
        if own is not None:
            for what, join, target_org in targets:
                checks.append(
                    (
                        f"{model._meta.label}.{what} is another organization's row",
                        f"SELECT t.{pk} FROM {table} t {join} WHERE {target_org} <> {own}",
                    )
                )
        else:
            for i, (first, first_join, first_org) in enumerate(targets):
                for second, second_join, second_org in targets[i + 1 :]:
                    checks.append(
                        (
                            f"{model._meta.label} links {first} and {second} of two organizations",
                            f"SELECT t.{pk} FROM {table} t {first_join} {second_join} "
                            f"WHERE {first_org} <> {second_org}",
                        )
                    )
    problems = []
    with connection.cursor() as cursor:
        for label, sql in checks:
            cursor.execute(sql + " LIMIT 5")
            keys = [str(row[0]) for row in cursor.fetchall()]
            if keys:
                problems.append(f"{label}: pk {', '.join(keys)}")
    return problems


# Which fields carry a record reference, and org A's ids for them -----------------------------


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def _name_words(name: str) -> list[str]:
    """ "bulk_owner.reassign" -> ["bulk", "owner"]: what is after a dot says which action
    the input belongs to, not what it holds."""
    return _words(name.split(".")[0])


@functools.cache
def model_aliases() -> dict[str, list[type[models.Model]]]:
    """The words that name a model in a field: its model name ("contactlist"), the last word
    of its verbose name ("list"), and "org"/"organization"."""
    out: dict[str, list] = defaultdict(list)
    for model in [*tenant_models(), Organization]:
        words = {model._meta.model_name, _words(str(model._meta.verbose_name))[-1]}
        for word in words:
            out[word].append(model)
    out["org"].append(Organization)
    return out


@dataclass
class Reference:
    """A field of a form that names records, and what it names."""

    name: str
    models: list  # the models it points at; User for a person; empty: not known
    is_list: bool
    numeric: bool  # it holds primary keys rather than public ids

    def probes(self, world: World) -> list[list[str]]:
        """The values to send in `world`'s name, one list per request: a list field gets the
        pointed-at model's ids followed by every other id of that organization; a single
        field gets the pointed-at model's id, or each id in turn when the model is unknown."""
        rows = [row for row in world.rows() if type(row) in self.models]
        others = [row for row in world.rows() if row not in rows]
        if self.is_list:
            return [self._ids(rows + others)]
        if rows:
            return [self._ids(rows[:1])]
        return [[value] for value in self._ids(others)]

    def _ids(self, rows) -> list[str]:
        if self.numeric:
            return [str(row.pk) for row in rows]
        return [str(row.public_id) for row in rows if getattr(row, "public_id", None)]


def reference_fields(form: Form, world_b: World) -> list[Reference]:
    """The fields of `form` that carry a record reference: a select whose options are ids, a
    field named after a record (ids, *_id, contact, owner, list, tag, role, team...), or
    one whose value is an id. The model each points at comes from the ids it holds (org
    B's own rows) or else from its name."""
    known = world_b.by_identifier()
    aliases = model_aliases()
    by_name: dict[str, list[Control]] = defaultdict(list)
    for control in form.controls:
        if control.name and not control.disabled:
            by_name[control.name].append(control)
    refs = []
    for name, controls in by_name.items():
        values = [v for c in controls for v in (c.value, *c.options) if v]
        # The last word of a name says what it holds ("bulk_owner" an owner, "team-name" a
        # name, "contacts-access" an access level); "contact_id" names its model before "id".
        words = _name_words(name) or [""]
        is_ids_name = words[-1] in ID_WORDS
        noun = _singular(words[-2] if is_ids_name and len(words) > 1 else words[-1])
        named = [User] if noun in PERSON_WORDS else list(aliases.get(noun, []))
        held = [known[v] for v in values if v in known and UUID_RE.match(v)]
        # A number is a record's key only where the name says so.
        numeric = bool(named or is_ids_name) and any(v.isdigit() for v in values)
        by_value = any(UUID_RE.match(v) for v in values)
        # A choice (select, checkbox, radio) names records when its values are ids; a box
        # the member types in (or a hidden input) does when its name says so: "company"
        # takes a company's name or id, "bulk_tags" tag names.
        typed = any(c.kind not in CHOICES and c.kind != "textarea" for c in controls)
        if not (held or numeric or by_value or (typed and (named or is_ids_name))):
            continue
        pointed = sorted({type(row) for row in held}, key=str) or named
        is_list = (
            any(c.is_list for c in controls)
            or len(controls) > 1
            or (is_ids_name and _singular(words[-1]) != words[-1])
        )
        refs.append(
            Reference(
                name=name,
                models=pointed,
                is_list=is_list,
                numeric=bool(numeric) and not held,
            )
        )
    return refs[:MAX_REFERENCES_PER_FORM]


def base_submission(form: Form) -> dict[str, list[str]]:
    """What submitting the form as the page shows it sends: the values it holds, the first
    real option of each select, checked boxes, and a plausible value in required fields."""
    data: dict[str, list[str]] = defaultdict(list)
    radios: dict[str, list[Control]] = defaultdict(list)
    for control in form.controls:
        if control.disabled or not control.name:
            continue
        if control.kind == "radio":
            radios[control.name].append(control)
        elif control.kind == "checkbox":
            if control.checked:
                data[control.name].append(control.value or "on")
        elif control.kind == "select":
            chosen = [v for v in control.selected if v]
            if not chosen:
                chosen = [v for v in control.options if v][:1]
            data[control.name].extend(chosen if control.multiple else chosen[:1])
        elif control.kind == "textarea":
            data[control.name].append(control.value or ("Probe" if control.required else ""))
        else:
            filler = FILLERS.get(control.kind, "Probe") if control.required else ""
            data[control.name].append(control.value or filler)
    for name, group in radios.items():
        chosen = next((c for c in group if c.checked), group[0])
        data[name].append(chosen.value or "on")
    # A form of optional boxes that are all empty (a new contact: "at least a name, an
    # email or a phone") would be refused before it reads any reference: give it a name.
    # (A filter form's empty boxes stay empty: they mean "any".)
    boxes = [c for c in form.controls if c.kind in ("text", "email", "tel", "textarea")]
    if (
        form.method != "GET"
        and boxes
        and not any(data.get(c.name, [""])[0].strip() for c in boxes if not c.disabled)
    ):
        for kind in ("text", "textarea"):
            first = next((c for c in boxes if c.kind == kind and not c.disabled), None)
            if first is not None:
                data[first.name] = ["Probe"]
    for name, value in form.extra:
        data[name] = [value]
    return dict(data)


# Opening org B's pages -----------------------------------------------------------------------


def _segment_before(route, param: str) -> str:
    match = re.search(r"<(?:[^>:]+:)?" + re.escape(param) + ">", route.template)
    before = route.template[: match.start()] if match else ""
    return _singular(before.rstrip("/").split("/")[-1].lower())


def _object_score(obj, route, param: str) -> int:
    """How well a row fits a route's parameter: "contacts/<uuid:public_id>/" is a contact's,
    "settings/fields/<uuid>/edit/" (custom_field_edit) a custom field definition's."""
    if obj is None:
        return 0
    model = obj._meta.model_name
    if model == _segment_before(route, param):
        return 3
    words = [_singular(w) for w in _words(route.name.split(":")[-1])]
    if model in words:
        return 2
    return int(any(len(w) >= 3 and (model.startswith(w) or model.endswith(w)) for w in words))


def _relation_names(model) -> list[str]:
    """A model's foreign-key and many-to-many fields: the keys a per-field page of a record
    (contacts/<id>/fields/<key>/edit/) is most worth opening with."""
    fields = [*model._meta.concrete_fields, *model._meta.many_to_many]
    return [f.name for f in fields if f.is_relation and f.name != "org"]


def candidate_urls(route, world: World) -> list[str]:
    """URLs of `route` filled with `world`'s own rows, the likeliest first."""
    pools = {}
    for param in route.params:
        pool = param_values(route, param, world.tenant)
        pool.sort(key=lambda pair, p=param: -_object_score(pair[1], route, p))
        pools[param] = pool
    for param in route.params:
        if route.converters[param].regex == "[^/]+":  # a text parameter: a key, a token
            others = [pools[p][0][1] for p in route.params if p != param and pools[p]]
            names = [n for obj in others if obj is not None for n in _relation_names(type(obj))]
            pools[param] = [(n, None) for n in names] + pools[param][:2]
    if any(not pool for pool in pools.values()):
        return []
    urls = []
    for combo in itertools.islice(itertools.product(*pools.values()), MAX_TRIES_PER_ROUTE):
        urls.append(route.url({p: value for p, (value, _) in zip(pools, combo, strict=True)}))
    return urls


def _is_html(response) -> bool:
    return not getattr(response, "streaming", False) and response.get(
        "Content-Type", ""
    ).startswith("text/html")


def is_public_path(url_path: str) -> bool:
    return any(url_path.lstrip("/").startswith(prefix) for prefix in PUBLIC_PREFIXES)


def collect_forms(client: Client, world: World, routes) -> tuple[list[Form], list[str], list[str]]:
    """Every distinct form on the pages `world`'s member can open, the pages that answered
    with a server error, and a report of what was opened."""
    forms: dict[tuple, Form] = {}
    failures, report = [], []
    for route in routes:
        if route.is_regex:
            continue
        urls = candidate_urls(route, world) if route.params else [route.url({})]
        has_text = any(route.converters[p].regex == "[^/]+" for p in route.params)
        opened = []
        for url in urls:
            response = client.get(url)
            if response.status_code >= 500:
                failures.append(
                    f"{route.label}: GET {url} as org B's Owner -> {response.status_code}"
                )
            if response.status_code != 200 or not _is_html(response):
                continue
            opened.append(url)
            for form in parse_forms(text_of(response), url):
                if not is_public_path(form.path):
                    forms.setdefault(form.key(), form)
            if not has_text or len(opened) >= MAX_PAGES_PER_ROUTE:
                break
        report.append(f"{route.label}: opened {opened or 'no page'}")
    return list(forms.values()), failures, report


# Sending org A's ids, and what must not follow ------------------------------------------------


SECRET_FIELD = re.compile(r"password|hash|token|secret|signature")


def _labels(row) -> set[str]:
    """Texts that name a row to a person: the factory-made names, emails and domains (they
    carry a sequence number or an @)."""
    out = set()
    for f in row._meta.concrete_fields:
        if isinstance(f, models.CharField | models.TextField) and not f.choices:
            value = getattr(row, f.attname, None)
            if (
                isinstance(value, str)
                and not SECRET_FIELD.search(f.name)
                and len(value) >= 5
                and re.search(r"[0-9@]", value)
            ):
                out.add(value)
    return out


@dataclass
class LeakCheck:
    """What of org A must never reach org B: its identifiers, its name, and the names, emails
    and domains of its rows (those no row of org B shares: two organizations may both have
    a "Custom role 11")."""

    world_a: World
    world_b: World
    # Org A's ids that org B typed into a text field of its own rows (a company named by a
    # pasted id): org B's data now, which its pages may show.
    stored: set[str] = field(default_factory=set)

    def __post_init__(self):
        theirs = set().union(*(_labels(row) for row in self.world_b.rows()))
        labels = set().union(*(_labels(row) for row in self.world_a.rows())) - theirs
        self.patterns = [
            (label, re.compile(r"(?<![\w.@+-])" + re.escape(label) + r"(?![\w@-])"))
            for label in sorted(labels)
        ]

    def __call__(self, response, sent=()) -> list[str]:
        """Org A's data in `response`. What the request carried (`sent`: an id, a name typed
        into a search) may come back as the form's own input (a text box keeps what was
        typed, a filtered list links to itself); for that only the rest of the row counts."""
        sent = {str(value) for value in sent}
        allowed = self.stored | sent
        text = text_of(response)
        read = SimpleNamespace(streaming=False, content=text.encode())
        found = [x for x in leaked_identifiers(read, self.world_a.tenant) if x not in allowed]
        found += [x for x in self.world_a.identifiers() if x in text and x not in allowed]
        found += [
            repr(label)
            for label, pattern in self.patterns
            if not any(label in value for value in sent) and pattern.search(text)
        ]
        return sorted(set(found))

    def note_typed_in(self, snapshot_b: dict[str, set[str]]) -> None:
        """Org A's ids and names that org B typed into its own rows (a company named after a
        pasted id or name) are org B's data from then on."""
        text = "\n".join(row for rows in snapshot_b.values() for row in rows)
        self.stored |= {x for x in self.world_a.identifiers() if x in text}
        self.patterns = [(label, p) for label, p in self.patterns if label not in text]


def text_of(response) -> str:
    """The body, read once: a streamed one (an export) cannot be read twice."""
    if not hasattr(response, "probe_text"):
        response.probe_text = body_of(response)
    return response.probe_text


def send(client: Client, form: Form, data: dict[str, list[str]]):
    headers = {"HTTP_HX_REQUEST": "true"} if form.htmx else {}
    if form.method == "GET":
        return client.get(form.path, data, **headers)
    if form.method == "POST":
        return client.post(form.action, data, **headers)
    return client.generic(
        form.method,
        form.action,
        urlencode(data, doseq=True),
        content_type="application/x-www-form-urlencoded",
        **headers,
    )


def _error_text(response) -> str:
    exc = getattr(response, "exc_info", None)
    return f": {exc[0].__name__}: {str(exc[1]).splitlines()[0][:200]}" if exc else ""


def _short(values: list[str]) -> str:
    return values[0] if len(values) == 1 else f"[{values[0]}, … {len(values)} ids]"


@dataclass
class Probe:
    """One request carrying org A's ids in one field of a form of org B."""

    form: Form
    name: str  # the field that carries org A's ids
    values: list[str]
    data: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        where = "query string" if self.form.method == "GET" else "body"
        return (
            f"{self.form.method} {self.form.path} with {self.name}={_short(self.values)} in the "
            f"{where} (form found on {self.form.source})"
        )


def probes_for(forms: list[Form], world_a: World, world_b: World) -> list[Probe]:
    out = []
    for form in forms:
        base = base_submission(form)
        for ref in reference_fields(form, world_b):
            for values in ref.probes(world_a):
                out.append(Probe(form, ref.name, values, {**base, ref.name: values}))
    return out


def run_probes(
    client: Client, probes: list[Probe], world_a: World, world_b: World
) -> tuple[list[str], list[str]]:
    """Sends each probe; a failure is a server error, org A's data in the answer, or any
    change to org A's rows (fingerprinted after every request, so the change is pinned on
    the request that made it)."""
    failures, report = [], []
    a, b = world_a.org.pk, world_b.org.pk
    fingerprint, fingerprint_b = org_fingerprint(a), org_fingerprint(b)
    snapshot = org_snapshot(a)
    leaks = LeakCheck(world_a, world_b)
    for probe in probes:
        response = send(client, probe.form, probe.data)
        report.append(f"{response.status_code} {probe.label}")
        if response.status_code >= 500:
            failures.append(f"{probe.label}: {response.status_code}{_error_text(response)}")
        shown = leaks(response, sent=probe.values)
        if shown:
            failures.append(f"{probe.label}: the answer shows org A's {shown}")
        now, now_b = org_fingerprint(a), org_fingerprint(b)
        if now != fingerprint:
            changed = [t for t in now if now[t] != fingerprint[t]]
            after = org_snapshot(a)
            rows = snapshot_changes(snapshot, after)
            failures.append(f"{probe.label}: changed org A's {changed}: " + "; ".join(rows[:4]))
            fingerprint, snapshot = now, after
        if now_b != fingerprint_b:
            changed_b = [t for t in now_b if now_b[t] != fingerprint_b[t]]
            leaks.note_typed_in(org_snapshot(b, tables=changed_b))
            fingerprint_b = now_b
    return failures, report


@dataclass
class Walk:
    failures: list[str]
    report: list[str]
    probes: list[Probe]

    def probed_views(self) -> set[str]:
        out = set()
        for probe in self.probes:
            try:
                out.add(resolve(probe.form.path).view_name)
            except Resolver404:
                out.add(probe.form.path)
        return out


def walk_ids_in_bodies(client: Client, world_a: World, world_b: World, routes) -> Walk:
    """The whole walk: org B's pages, their forms, org A's ids in each reference field."""
    a = world_a.org.pk
    before = org_snapshot(a)
    forms, failures, report = collect_forms(client, world_b, routes)
    failures += [
        f"opening org B's pages changed org A: {line}"
        for line in snapshot_changes(before, org_snapshot(a))
    ]
    probes = probes_for(forms, world_a, world_b)
    if len(probes) > MAX_PROBES:
        failures.append(
            f"{len(probes)} probes, more than MAX_PROBES={MAX_PROBES}: the walk would take too "
            "long. Probe fewer fields per form or raise the limit knowingly."
        )
        probes = probes[:MAX_PROBES]
    probe_failures, probe_report = run_probes(client, probes, world_a, world_b)
    failures += probe_failures
    failures += [f"cross-organization reference: {line}" for line in cross_org_references()]
    return Walk(failures, report + probe_report, probes)


# The walk over the project's pages ----------------------------------------------------------

# Pages whose reference fields the walk must keep reaching: if a template change hid them
# from the parser, the walk would pass while proving nothing about them.
MUST_PROBE = {
    "contacts:contact_create",
    "contacts:contact_edit",
    "contacts:contact_field_edit",
    "contacts:inbox_log",
    "contacts:task_edit",
    "contacts:bulk_action",
    "crm:member_update",
}


@pytest.fixture(params=["row-level security on", "for_org alone"])
def wall(request, settings):
    """Each wall is proven on its own: with row-level security (as deployed), a view that
    forgot `for_org` finds nothing or fails; without it, `for_org` alone must refuse."""
    settings.CRM_RLS_ENABLED = request.param == "row-level security on"
    return request.param


def test_org_a_ids_in_bodies_and_query_strings_are_refused(wall, world_a, world_b):
    assert cross_org_references() == [], "the fixtures themselves mix organizations"
    started = time.monotonic()

    walk = walk_ids_in_bodies(client_of(world_b.owner), world_a, world_b, tenant_routes())

    print(f"\n{len(walk.probes)} probes in {time.monotonic() - started:.1f}s ({wall})")
    print("\n".join(walk.report))
    assert not walk.failures, "Org A's ids were not refused:\n" + "\n".join(walk.failures)
    missing = MUST_PROBE - walk.probed_views()
    assert not missing, f"The walk no longer probes the reference fields of {sorted(missing)}"


# The walk itself catches what it looks for -----------------------------------------------------
# Views that take ids from the request without `for_org`: if the walk ever stopped seeing
# such a view change, show or link another organization's rows, these tests would say so.

LEAKY_PAGE = """<!doctype html><html><body>
<form method="post" action="/leaky/archive/">
  {boxes}
  <button type="submit">Archive</button>
</form>
<form method="get" action="/leaky/picker/">
  <select name="contact">{options}</select>
</form>
<form method="post" action="/leaky/company/">
  <input type="hidden" name="contact_id" value="{contact}">
  <input type="text" name="company" value="{company}">
</form>
</body></html>"""


def _leaky_page(request):
    contacts = list(Contact.objects.for_org(request.org))
    company = Company.objects.for_org(request.org).first()
    return HttpResponse(
        LEAKY_PAGE.format(
            boxes="".join(
                f'<input type="checkbox" name="ids" value="{c.public_id}">' for c in contacts
            ),
            options="".join(f'<option value="{c.public_id}">{c.pk}</option>' for c in contacts),
            contact=contacts[0].public_id,
            company=company.public_id,
        )
    )


@require_POST
def _leaky_archive(request):
    # The bug: ids from the body, looked up across organizations.
    ids = request.POST.getlist("ids")
    Contact.objects.all_orgs().filter(public_id__in=ids).update(is_archived=True)
    return HttpResponse("Archived.")


def _leaky_picker(request):
    if not request.GET.get("contact"):
        return HttpResponse("<p>Pick a contact.</p>")
    contact = Contact.objects.all_orgs().get(public_id=request.GET["contact"])  # the bug
    return HttpResponse(f"<p>{contact.email}</p>")


@require_POST
def _leaky_company(request):
    contact = (
        Contact.objects.for_org(request.org)
        .filter(public_id=request.POST.get("contact_id"))
        .first()
        if UUID_RE.match(request.POST.get("contact_id", ""))
        else None
    )
    if contact is None:
        return HttpResponseNotFound("No such contact.")
    contact.company = Company.objects.all_orgs().get(public_id=request.POST["company"])  # bug
    contact.save(update_fields=["company"])
    return HttpResponse("Saved.")


class LeakyURLConf:
    urlpatterns = [
        path("accounts/", include("allauth.urls")),
        path("leaky/", _leaky_page, name="leaky_page"),
        path("leaky/archive/", _leaky_archive, name="leaky_archive"),
        path("leaky/picker/", _leaky_picker, name="leaky_picker"),
        path("leaky/company/", _leaky_company, name="leaky_company"),
    ]


@pytest.fixture
def leaky_routes(settings):
    settings.ROOT_URLCONF = LeakyURLConf
    return [r for r in walk_urls(LeakyURLConf.urlpatterns) if r.public_reason() is None]


def test_walk_reports_views_that_take_another_orgs_ids_without_for_org(
    leaky_routes, settings, world_a, world_b
):
    # Row-level security would stop these bugs; the walk must see them without it.
    settings.CRM_RLS_ENABLED = False

    walk = walk_ids_in_bodies(client_of(world_b.owner), world_a, world_b, leaky_routes)

    text = "\n".join(walk.failures)
    print(text)
    assert (
        "POST /leaky/archive/ with ids=" in text and "changed org A's ['contacts_contact']" in text
    )
    assert "GET /leaky/picker/ with contact=" in text and "the answer shows org A's" in text
    assert "cross-organization reference: contacts.Contact.company is another organization" in text
    assert len(walk.failures) == 3, text


def test_with_row_level_security_a_missing_for_org_is_a_server_error_the_walk_reports(
    leaky_routes, world_a, world_b
):
    """Behind row-level security the same bugs change nothing of org A and show nothing,
    but a look-up that expects a row fails: a 500 is not a refusal either."""
    walk = walk_ids_in_bodies(client_of(world_b.owner), world_a, world_b, leaky_routes)

    text = "\n".join(walk.failures)
    print(text)
    assert "GET /leaky/picker/ with contact=" in text and ": 500: DoesNotExist" in text
    assert "POST /leaky/company/ with company=" in text
    assert "/leaky/archive/" not in text, "row-level security let the update through"


# The cases the issue names, probed by name --------------------------------------------------------
# Each request carries org A's ids where a real page would carry org B's; each is paired with
# a positive control (the same request with org B's ids works), so a refusal proves the id
# was refused and not that the request was malformed.


class Guard:
    """After each request: no server error, nothing of org A shown, changed or linked."""

    def __init__(self, world_a: World, world_b: World):
        self.org_a, self.org_b = world_a.org.pk, world_b.org.pk
        self.leaks = LeakCheck(world_a, world_b)
        self.before = org_snapshot(self.org_a)
        self.fingerprint_b = org_fingerprint(self.org_b)

    def problems(self, what: str, response, sent=()) -> list[str]:
        out = []
        if response.status_code >= 500:
            out.append(f"{what}: {response.status_code}{_error_text(response)}")
        shown = self.leaks(response, sent=sent)
        if shown:
            out.append(f"{what}: the answer shows org A's {shown}")
        after = org_snapshot(self.org_a)
        out += [f"{what} changed org A: {line}" for line in snapshot_changes(self.before, after)]
        self.before = after
        out += [f"{what}: {line}" for line in cross_org_references()]
        fingerprint_b = org_fingerprint(self.org_b)
        if fingerprint_b != self.fingerprint_b:
            self.leaks.note_typed_in(org_snapshot(self.org_b))
            self.fingerprint_b = fingerprint_b
        return out


def form_data(client: Client, page: str, action: str) -> dict[str, list[str]]:
    """What the form posting to `action` on `page` sends as the page shows it."""
    response = client.get(page)
    assert response.status_code == 200, f"{page}: {response.status_code}"
    for form in parse_forms(text_of(response), page):
        if form.path == action:
            return base_submission(form)
    raise AssertionError(f"{page} has no form posting to {action}")


def first_row(world: World, model) -> models.Model:
    return next(row for row in world.rows() if type(row) is model)


def other_member(world: World) -> User:
    """An active member of `world`'s org who is not its Owner (someone to give things to)."""
    owner_id = world.owner.user_id if world.owner else None
    return (
        Membership.objects.for_org(world.org)
        .active()
        .exclude(user_id=owner_id)
        .select_related("user")
        .order_by("pk")
        .first()
        .user
    )


def contact_state(contact: Contact) -> tuple:
    """A contact's row, tags and lists: what any bulk action changes."""
    row = Contact.objects.all_orgs().filter(pk=contact.pk).values().get()
    row.pop("search_vector", None)
    tags = sorted(
        Contact.tags.through.objects.filter(contact_id=contact.pk).values_list("tag_id", flat=True)
    )
    lists = sorted(
        ContactList.contacts.through.objects.filter(contact_id=contact.pk).values_list(
            "contactlist_id", flat=True
        )
    )
    return (row, tags, lists)


def _bulk_case(key: str, world_a: World, world_b: World) -> tuple[Contact, dict, dict | None]:
    """A fresh contact of org B that action `key` would change, the action's arguments in org
    B's terms, and the same arguments naming org A's rows (None: its argument names none)."""
    action = ACTIONS[key]
    contact = ContactFactory(org=world_b.org)
    b_list = first_row(world_b, ContactList)
    b_args, a_args = {}, None
    if key == "release":
        Contact.objects.for_org(world_b.org).filter(pk=contact.pk).update(owner=world_b.owner.user)
    if key == "restore":
        Contact.objects.for_org(world_b.org).filter(pk=contact.pk).update(is_archived=True)
    if action.argument == "owner":
        b_args = {"owner": str(other_member(world_b).public_id)}
        a_args = {"owner": str(world_a.users[0].public_id)}
    elif action.argument == "list":
        if key == "remove_from_list":
            b_list.contacts.add(contact)
        b_args = {"list": str(b_list.public_id)}
        a_args = {"list": str(first_row(world_a, ContactList).public_id)}
    elif action.argument == "tags":
        tag = Tag.objects.create(org=world_b.org, name=f"bulk-probe-{key}")
        if key == "remove_tags":
            contact.tags.add(tag)
        b_args = {"tags": tag.name}
    elif action.argument == "stage":
        b_args = {"stage": Contact.Stage.CUSTOMER}
    return contact, b_args, a_args


def _bulk_post(client: Client, key: str, ids: list[str], args: dict):
    data = {"ids": ids, "bulk_action": key, "bulk_confirmed": "1", "bulk_expected": "1"}
    for name, value in args.items():
        data[f"{ARGUMENT_INPUTS[name]}.{key}"] = value
    return client.post(reverse("contacts:bulk_action"), data)


def test_bulk_actions_refuse_org_a_contacts_and_arguments(wall, world_a, world_b):
    """contacts:bulk_action with org A's contact ids ticked, and with org A's member or list
    as the argument, for every action: org A's rows stay as they are; org B's contact
    ticked beside them gets the action (the request was well formed)."""
    client = client_of(world_b.owner)
    guard = Guard(world_a, world_b)
    a_contacts = [str(row.public_id) for row in world_a.rows() if isinstance(row, Contact)]
    every_a_id = a_contacts + [i for i in world_a.identifiers() if i not in a_contacts]
    failures = []
    for key in ACTIONS:
        contact, b_args, a_args = _bulk_case(key, world_a, world_b)

        before = contact_state(contact)
        response = _bulk_post(client, key, [*every_a_id, str(contact.public_id)], b_args)
        failures += guard.problems(f"{key} with org A's ids ticked", response, every_a_id)
        if contact_state(contact) == before:
            failures.append(
                f"{key}: org B's contact ticked beside org A's was not changed "
                f"({response.status_code}): the request is not what the bar sends"
            )

        response = _bulk_post(client, key, every_a_id, b_args)
        failures += guard.problems(f"{key} with only org A's ids", response, every_a_id)
        if response.status_code in (302, 303, 204):
            failures.append(f"{key} with only org A's ids: {response.status_code}, not refused")

        if a_args is not None:
            second, _, _ = _bulk_case(key, world_a, world_b)
            before = contact_state(second)
            response = _bulk_post(client, key, [str(second.public_id)], a_args)
            failures += guard.problems(f"{key} with org A's {a_args}", response, a_args.values())
            if contact_state(second) != before:
                failures.append(f"{key} with org A's {a_args} changed org B's contact")

    assert not failures, "\n".join(failures)


def test_other_id_lists_refuse_org_a_rows(wall, world_a, world_b):
    """The other lists of ids a request carries: the export of the ticked contacts (GET
    `ids`) and "mark read" of notifications (POST `id`). Org A's ids select nothing; org
    B's own select what they name."""
    client = client_of(world_b.owner)
    guard = Guard(world_a, world_b)
    every_a_id = world_a.identifiers()
    a_notification = first_row(world_a, Notification)
    failures = []

    b_contact = first_row(world_b, Contact)
    for name in ("contacts:export_csv", "contacts:export_json"):
        response = client.get(reverse(name), {"ids": every_a_id})
        failures += guard.problems(f"{name} with org A's ids", response, every_a_id)
        response = client.get(reverse(name), {"ids": [*every_a_id, str(b_contact.public_id)]})
        failures += guard.problems(f"{name} with org A's ids and B's", response, every_a_id)
        if b_contact.email not in text_of(response):
            failures.append(f"{name} does not export org B's ticked contact: the probe is off")

    mine = NotificationFactory(org=world_b.org, user=world_b.owner.user)
    url = reverse("crm:notifications_read")
    response = client.post(url, {"id": [str(a_notification.public_id), *every_a_id]})
    failures += guard.problems("notifications read with org A's ids", response, every_a_id)
    response = client.post(url, {"id": [str(a_notification.public_id), str(mine.public_id)]})
    failures += guard.problems("notifications read with A's and B's", response, every_a_id)
    mine.refresh_from_db()
    if mine.read_at is None:
        failures.append("marking org B's own notification read did nothing: the probe is off")
    assert not failures, "\n".join(failures)


PICKER_NAME = re.compile(r"picker|search|suggest|autocomplete|options|lookup")
PICKER_PARAMETERS = ("q", "company", "term", "search", "contact")


# The views that read the contact list's state (filters, saved view) from the query string.
LIST_STATE_VIEWS = (
    "contacts:contact_list",
    "contacts:contact_count",
    "contacts:bulk_count",
    "contacts:export_csv",
    "contacts:export_json",
)


def picker_routes():
    return [r for r in tenant_routes() if not r.params and PICKER_NAME.search(r.name)]


def test_pickers_searches_and_list_filters_show_nothing_of_org_a(wall, world_a, world_b):
    """Every search, picker and autocomplete endpoint, asked for org A's contact or company by
    name, email, domain or id, answers with nothing of org A (asked for org B's, it finds
    it); the contact list, its counts and exports, filtered by org A's saved view, owner,
    company, tag or list, show nothing of org A either."""
    routes = picker_routes()
    names = {r.name for r in routes}
    assert {
        "contacts:contact_picker",
        "contacts:search",
        "contacts:search_suggest",
        "contacts:company_options",
    } <= names, names
    client = client_of(world_b.owner)
    guard = Guard(world_a, world_b)
    a_contact, a_company = first_row(world_a, Contact), first_row(world_a, Company)
    b_contact, b_company = first_row(world_b, Contact), first_row(world_b, Company)
    asks = [
        a_contact.email,
        f"{a_contact.first_name} {a_contact.last_name}",
        str(a_contact.public_id),
        a_company.name,
        a_company.domain,
        str(a_company.public_id),
        world_a.users[0].email,
    ]
    failures = []
    for route in routes:
        url = route.url({})
        for text in asks:
            response = client.get(url, {name: text for name in PICKER_PARAMETERS})
            failures += guard.problems(f"GET {url} asking for {text!r}", response, [text])

    # The contact list's state (its page, counts and exports read it): a saved view, the
    # filter panel's owner, company and tag, given org A's ids.
    a_view = first_row(world_a, SmartView)
    filters = {
        "view": str(a_view.public_id),
        "owner": str(world_a.users[0].public_id),
        "company": str(a_company.public_id),
        "tag": str(first_row(world_a, Tag).public_id),
        "list": str(first_row(world_a, ContactList).public_id),
    }
    for name in LIST_STATE_VIEWS:
        for param, value in filters.items():
            response = client.get(reverse(name), {param: value})
            failures += guard.problems(f"GET {reverse(name)}?{param}={value}", response, [value])

    found = {
        "contacts:contact_picker": (b_contact.email, str(b_contact.public_id)),
        "contacts:search": (b_contact.email, str(b_contact.public_id)),
        "contacts:company_options": (b_company.name, b_company.name),
    }
    for name, (text, expected) in found.items():
        response = client.get(reverse(name), {p: text for p in PICKER_PARAMETERS})
        if expected not in text_of(response):
            failures.append(f"{name} does not find org B's own {text!r}: the probe is off")
    assert not failures, "\n".join(failures)


def test_related_record_fields_refuse_org_a_rows(wall, world_a, world_b):
    """The company and owner of the contact form (whole form and one field), the contact of
    the quick log, the contact, company and assignee a to-do or a note could be given in a
    forged body: org A's rows are never linked, changed or shown."""
    client = client_of(world_b.owner)
    guard = Guard(world_a, world_b)
    a_contact, a_company = first_row(world_a, Contact), first_row(world_a, Company)
    a_user = world_a.users[0]
    b_contact, b_company = first_row(world_b, Contact), first_row(world_b, Company)
    b_task, b_note = first_row(world_b, Task), first_row(world_b, Note)
    company_values = [str(a_company.public_id), a_company.name, a_company.domain]
    forged = {
        "contact": str(a_contact.public_id),
        "contact_id": str(a_contact.public_id),
        "company": str(a_company.public_id),
        "company_id": str(a_company.public_id),
        "org": str(world_a.org.public_id),
    }
    failures = []

    def post(what, url, data, sent):
        response = client.post(url, data)
        failures.extend(guard.problems(what, response, sent))
        return response

    # The contact form, whole and one field at a time: company (a name, domain or id typed
    # in) and owner (a member's id).
    owner = str(a_user.public_id)
    create = reverse("contacts:contact_create")
    edit = reverse("contacts:contact_edit", args=[b_contact.public_id])
    field_urls = [
        reverse("contacts:contact_field_edit", args=[b_contact.public_id, key])
        for key in ("company", "owner")
    ]
    for url in [create, edit, *field_urls]:
        data = form_data(client, url, url)
        if "company" in data:
            for value in company_values:
                post(f"POST {url} company={value}", url, {**data, "company": value}, [value])
        if "owner" in data:
            post(f"POST {url} owner={owner}", url, {**data, "owner": owner}, [owner])

    # Positive control: org B's company by name is linked.
    data = form_data(client, edit, edit)
    post("contact edit with org B's company", edit, {**data, "company": b_company.name}, [])
    if Contact.objects.for_org(world_b.org).get(pk=b_contact.pk).company_id != b_company.pk:
        failures.append("the contact form did not take org B's own company: the probe is off")

    # The quick log: the inbox picks the contact in the body; the contact page's log is
    # for the contact in its URL whatever the body says.
    log = {"type": "call", "subject": "Rel call", **forged}
    post("inbox quick log on org A's contact", reverse("contacts:inbox_log"), log, forged.values())
    logged_before = b_contact.activities.count()
    post(
        "inbox quick log on org B's contact",
        reverse("contacts:inbox_log"),
        {**log, "contact": str(b_contact.public_id)},
        forged.values(),
    )
    if b_contact.activities.count() == logged_before:
        failures.append("the inbox quick log did not log on org B's contact: the probe is off")
    contact_log = reverse("contacts:contact_log", args=[b_contact.public_id])
    post("contact page log with a forged contact", contact_log, log, forged.values())

    # To-dos: created in the inbox or on a contact, edited; the assignee is a member.
    task = {"title": "Rel task", "priority": "normal", **forged}
    post(
        "inbox to-do with forged links",
        reverse("contacts:inbox_task_create"),
        task,
        forged.values(),
    )
    post(
        "inbox to-do for org A's member",
        reverse("contacts:inbox_task_create"),
        {**task, "assignee": owner},
        [*forged.values(), owner],
    )
    post(
        "contact to-do with forged links",
        reverse("contacts:contact_task_create", args=[b_contact.public_id]),
        task,
        forged.values(),
    )
    post(
        "to-do edit with forged links",
        reverse("contacts:task_edit", args=[b_task.public_id]),
        {**task, "assignee": owner},
        [*forged.values(), owner],
    )
    if not Task.objects.for_org(world_b.org).filter(contact=b_contact, title="Rel task").exists():
        failures.append("no to-do was added to org B's contact: the probe is off")

    # Notes: the contact is the one in the URL.
    note = {"body": "Rel note", **forged}
    post(
        "note with a forged contact",
        reverse("contacts:contact_note_create", args=[b_contact.public_id]),
        note,
        forged.values(),
    )
    post(
        "note edit with a forged contact",
        reverse("contacts:note_edit", args=[b_note.public_id]),
        note,
        forged.values(),
    )
    if not Note.objects.for_org(world_b.org).filter(contact=b_contact, body="Rel note").exists():
        failures.append("no note was added to org B's contact: the probe is off")

    assert not failures, "\n".join(failures)
