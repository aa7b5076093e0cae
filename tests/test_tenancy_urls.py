"""Tenancy, proven over every URL of the project.

The walk reads the live URL configuration, so a URL added by any app is covered the day it
lands, without editing this file. For organization A it builds one row of every concrete
OrgScopedModel (a model without a factory fails `test_every_tenant_model_has_a_factory`),
then fills each URL's parameters with org A's identifiers and checks that:

- an active Owner of organization B (every right there) gets 404 for each of them, trying
  POST when GET is not allowed;
- a logged-out visitor is sent to the login page (or gets 404);
- no page org B can open shows an identifier of org A.

Public areas (sign-in, health probe, admin, schema, invitation links) are listed in
PUBLIC_PREFIXES with the reason; invitation links get their own check below.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest
from django.apps import apps
from django.db import models
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, include, path, reverse
from django.urls.resolvers import RoutePattern

from crm.models import Invitation, Organization, Team
from crm.optional_modules import OPTIONAL_MODULE_KEYS
from crm.tenancy import OrgScopedModel
from tests.factories import OrganizationFactory, factory_for, make_instance, member

PUBLIC_PREFIXES = {
    "accounts/": "allauth sign-in, sign-up and password pages are public by design",
    "healthz": "health probe: reports service state, never tenant data",
    "admin/": "Django admin is for staff users only, outside tenant workspaces",
    "api/schema": "the OpenAPI document describes endpoints, not records",
    "static/": "static assets",
    "favicon.ico": "a redirect to the static icon",
    "invitations/": "opened by people who are not members yet; see "
    "test_invitation_link_shows_only_the_invite",
}

# A text token that matches no organization's record, for parameters that are not ids.
PROBE_TOKEN = "tenancy-probe-token"
# Above this many parameter combinations for one URL, only related pairs are tried.
MAX_COMBINATIONS = 60

PARAM_RE = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


# Walking the URL configuration --------------------------------------------------------------


@dataclass
class Route:
    template: str  # the full route, e.g. "settings/roles/<uuid:public_id>/"
    name: str  # "namespace:name" when named
    converters: dict = field(default_factory=dict)  # parameter -> converter instance
    is_regex: bool = False

    @property
    def params(self) -> list[str]:
        return [m["name"] for m in PARAM_RE.finditer(self.template)] if not self.is_regex else []

    @property
    def label(self) -> str:
        return f"/{self.template}" + (f" ({self.name})" if self.name else "")

    def public_reason(self) -> str | None:
        for prefix, reason in PUBLIC_PREFIXES.items():
            if self.template.startswith(prefix):
                return reason
        return None

    def url(self, values: dict) -> str:
        def fill(match):
            name = match["name"]
            return self.converters[name].to_url(values[name])

        return "/" + PARAM_RE.sub(fill, self.template)


def walk_urls(patterns=None, prefix: str = "", converters=None, namespace: str = "", regex=False):
    """Every URL pattern of the project, with includes and namespaces flattened."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    converters = converters or {}
    for entry in patterns:
        pattern = entry.pattern
        is_route = isinstance(pattern, RoutePattern)
        here = prefix + (pattern._route if is_route else str(pattern))
        merged = {**converters, **getattr(pattern, "converters", {})}
        uses_regex = regex or not is_route
        if isinstance(entry, URLResolver):
            child_ns = namespace
            if entry.namespace:
                child_ns = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from walk_urls(entry.url_patterns, here, merged, child_ns, uses_regex)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or ""
            yield Route(here, name, merged, uses_regex)


ROUTES = list(walk_urls())


def plain_regex_path(route: Route) -> str | None:
    """The path of a regex route without groups ("^about/$" -> "/about/"), else None."""
    text = route.template.replace("^", "").replace("$", "")
    if any(ch in text for ch in "()[]*+?{}|\\"):
        return None
    return "/" + text


# Organization A's data ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _quiet_and_fast(settings, caplog):
    """Hundreds of expected 404s would flood the log; the default password hasher would
    spend seconds on users whose passwords no test types."""
    caplog.set_level(logging.ERROR, logger="django.request")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def tenant_models() -> list[type[models.Model]]:
    return sorted(
        (
            model
            for model in apps.get_models()
            if issubclass(model, OrgScopedModel) and not model._meta.proxy
        ),
        key=lambda model: model._meta.label,
    )


@dataclass
class TenantA:
    org: Organization
    objects: list[models.Model]  # one row per tenant model that has a factory, plus org

    def identifiers(self) -> set[str]:
        # A row without a public id (an outbox delivery) is never in a URL or on a page.
        return {str(obj.public_id) for obj in self.objects if getattr(obj, "public_id", None)}


@pytest.fixture
def tenant_a(db) -> TenantA:
    org = OrganizationFactory(
        name="Aardvark Tenancy Probe",
        slug="aardvark-tenancy-probe",
        enabled_modules=OPTIONAL_MODULE_KEYS,  # so the walk reaches every page
    )
    member(org, "owner")
    rows: list[models.Model] = [org]
    for model in tenant_models():
        if factory_for(model) is not None:
            rows.append(make_instance(model, org))
    return TenantA(org=org, objects=rows)


@pytest.fixture
def org_b_owner(db):
    org_b = OrganizationFactory(
        name="Org B", slug="org-b-probe", enabled_modules=OPTIONAL_MODULE_KEYS
    )
    return member(org_b, "owner")


def logged_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    session = client.session
    session["active_org_id"] = membership.org_id
    session.save()
    return client


# Filling parameters ------------------------------------------------------------------------


def _model_hint(param: str, candidates: list[models.Model]) -> list[models.Model]:
    """Objects whose model the parameter's name points at ("team_public_id" -> Team)."""
    stem = re.sub(r"(_public_id|_uuid|_id|_pk|_slug)$", "", param).replace("_", "")
    if stem in {"org", "organization"}:
        stem = "organization"
    return [obj for obj in candidates if obj._meta.model_name == stem]


def param_values(route: Route, param: str, tenant: TenantA) -> list[tuple]:
    """(value, object) pairs to try for one parameter, the hinted model's first. Every
    organization-A identifier whose shape the converter accepts is a candidate."""
    converter = route.converters[param]
    regex = re.compile(converter.regex)
    ordered = _model_hint(param, tenant.objects)
    ordered += [obj for obj in tenant.objects if obj not in ordered]
    pool: list[tuple[object, models.Model | None]] = []
    for obj in ordered:
        for raw in (obj.public_id, obj.pk):
            if regex.fullmatch(str(raw)):
                pool.append((converter.to_python(str(raw)), obj))
                break
    for text in (tenant.org.slug, PROBE_TOKEN):
        if regex.fullmatch(text):
            pool.append((converter.to_python(text), None))
    return pool


def _parents(obj: models.Model) -> list[models.Model]:
    """The tenant rows `obj` points at through a foreign key (the parent in a nested URL
    such as /pipelines/<pipeline>/stages/<stage>/)."""
    out = []
    for f in obj._meta.concrete_fields:
        if f.many_to_one:
            target = getattr(obj, f.name, None)
            if isinstance(target, Organization | OrgScopedModel):
                out.append(target)
    return out


def value_combinations(route: Route, tenant: TenantA) -> list[dict]:
    params = route.params
    per_param = {p: param_values(route, p, tenant) for p in params}
    sizes = [len(v) for v in per_param.values()]
    if any(size == 0 for size in sizes):
        return []
    total = 1
    for size in sizes:
        total *= size
    if total <= MAX_COMBINATIONS:
        return [
            {p: value for p, (value, _) in zip(params, combo, strict=True)}
            for combo in itertools.product(*per_param.values())
        ]
    # Too many: the first (hinted) value of each, each object in every slot, and
    # parent/child pairs such as /pipelines/<pipeline>/stages/<stage>/.
    combos = [{p: per_param[p][0][0] for p in params}]
    for obj in tenant.objects:
        for p in params:
            picked = {}
            for q in params:
                match = [v for v, o in per_param[q] if o is obj] if q == p else []
                picked[q] = match[0] if match else per_param[q][0][0]
            combos.append(picked)
        if len(params) == 2:
            for parent in _parents(obj):
                for first, second in ((parent, obj), (obj, parent)):
                    a = [v for v, o in per_param[params[0]] if o == first]
                    b = [v for v, o in per_param[params[1]] if o == second]
                    if a and b:
                        combos.append({params[0]: a[0], params[1]: b[0]})
    unique = {tuple(sorted((k, str(v)) for k, v in c.items())): c for c in combos}
    return list(unique.values())


# Checks --------------------------------------------------------------------------------


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def leaked_identifiers(response, tenant: TenantA) -> list[str]:
    text = body_of(response)
    found = [ident for ident in tenant.identifiers() if ident in text]
    if tenant.org.name in text:
        found.append(tenant.org.name)
    return found


def fetch(client: Client, url: str):
    """GET, or POST when the URL does not answer GET (an action endpoint)."""
    response = client.get(url)
    if response.status_code == 405:
        response = client.post(url)
    return response


def is_login_redirect(response) -> bool:
    if response.status_code not in (301, 302, 303, 307, 308):
        return False
    return urlparse(response["Location"]).path == reverse("account_login")


def tenant_routes():
    return [r for r in ROUTES if r.public_reason() is None]


def org_b_failures(routes, tenant: TenantA, client: Client) -> tuple[list[str], list[str]]:
    """Every way org B's Owner reaches org A's objects through parameterised `routes`."""
    failures, report = [], []
    for route in routes:
        if route.is_regex:
            if plain_regex_path(route) is None:
                failures.append(f"{route.label}: regex route with groups; use path() converters")
            continue
        if not route.params:
            continue
        combos = value_combinations(route, tenant)
        if not combos:
            failures.append(f"{route.label}: no org-A value fits its parameters")
            continue
        statuses = set()
        for values in combos:
            url = route.url(values)
            response = fetch(client, url)
            statuses.add(response.status_code)
            if response.status_code != 404:
                failures.append(
                    f"{route.label}: org B's Owner got {response.status_code} "
                    f"(not 404) for org A's {url}"
                )
                break
            leaked = leaked_identifiers(response, tenant)
            if leaked:
                failures.append(f"{route.label}: 404 page for {url} shows org A's {leaked}")
                break
        report.append(f"{route.label}: {len(combos)} URL(s), statuses {sorted(statuses)}")
    return failures, report


def logged_out_failures(routes, tenant: TenantA, client: Client) -> list[str]:
    """Every route that answers a logged-out visitor with anything but login or 404."""
    failures = []
    for route in routes:
        if route.is_regex:
            url = plain_regex_path(route)
            if url is None:
                continue  # reported by the org-B walk
        elif route.params:
            combos = value_combinations(route, tenant)
            if not combos:
                continue  # reported by the org-B walk
            url = route.url(combos[0])
        else:
            url = route.url({})
        response = fetch(client, url)
        if response.status_code != 404 and not is_login_redirect(response):
            failures.append(
                f"{route.label}: a logged-out visitor got {response.status_code} at {url}"
                + (f" -> {response['Location']}" if response.has_header("Location") else "")
            )
    return failures


def list_page_failures(routes, tenant: TenantA, client: Client) -> list[str]:
    """Pages without parameters (lists, dashboards, exports) that show org A to org B."""
    failures = []
    for route in routes:
        if route.params or route.is_regex:
            continue
        url = route.url({})
        response = client.get(url)
        if response.status_code >= 500:
            failures.append(f"{route.label}: {response.status_code} for org B's Owner")
            continue
        leaked = leaked_identifiers(response, tenant)
        if leaked:
            failures.append(f"{route.label}: org B's Owner sees org A's {leaked} at {url}")
    return failures


# The project's URLs -------------------------------------------------------------------------


def test_walk_finds_every_url_including_namespaced_ones():
    names = {route.name for route in ROUTES}
    assert {"crm:dashboard", "crm:audit_log", "crm:switch_org", "healthz"} <= names
    assert any(route.params for route in tenant_routes()), "no parameterised URL was found"


def test_every_tenant_model_has_a_factory(db):
    org = OrganizationFactory()
    missing, misplaced = [], []
    for model in tenant_models():
        if factory_for(model) is None:
            missing.append(model._meta.label)
            continue
        row = make_instance(model, org)
        if row.org_id != org.pk:
            misplaced.append(model._meta.label)
    assert not missing, (
        "These tenant models have no factory, so the URL walk cannot prove their pages "
        f"are tenant-safe: {', '.join(missing)}. Add a factory to tests/factories.py "
        "(or an entry in FACTORY_FOR_MODEL)."
    )
    assert not misplaced, f"Factories that ignore the org they are given: {misplaced}"


def test_other_org_owner_gets_404_for_every_org_a_object(tenant_a, org_b_owner):
    failures, report = org_b_failures(tenant_routes(), tenant_a, logged_in(org_b_owner))

    print("\n".join(report))
    assert not failures, "Tenancy leaks:\n" + "\n".join(failures)


def test_logged_out_visitor_is_sent_to_login_everywhere(tenant_a, client):
    failures = logged_out_failures(tenant_routes(), tenant_a, client)

    assert not failures, "Pages open to logged-out visitors:\n" + "\n".join(failures)


def test_pages_without_parameters_show_org_b_nothing_of_org_a(tenant_a, org_b_owner):
    failures = list_page_failures(tenant_routes(), tenant_a, logged_in(org_b_owner))

    assert not failures, "Org A's data shown in org B:\n" + "\n".join(failures)


def test_only_invitation_links_of_the_workspace_are_public():
    public_workspace_routes = [
        route.label
        for route in ROUTES
        if route.name.startswith("crm:")
        and route.public_reason()
        and route.name != "crm:accept_invitation"
    ]
    assert public_workspace_routes == [], "PUBLIC_PREFIXES would skip workspace pages"


def test_invitation_link_shows_only_the_invite(tenant_a, org_b_owner):
    """Whoever holds an invitation link may see that invitation (organization name, role,
    address), and nothing else of the organization."""
    invitation = next(obj for obj in tenant_a.objects if isinstance(obj, Invitation))
    url = reverse("crm:accept_invitation", kwargs={"token": invitation.raw_token})
    allowed = {str(invitation.public_id), str(tenant_a.org.public_id), tenant_a.org.name}

    for who, client in (("org B's Owner", logged_in(org_b_owner)), ("a visitor", Client())):
        response = client.get(url)
        assert response.status_code == 200, f"{who} got {response.status_code}"
        leaked = [x for x in leaked_identifiers(response, tenant_a) if x not in allowed]
        assert not leaked, f"{who} sees more of org A than the invite: {leaked}"

    unknown = logged_in(org_b_owner).get(
        reverse("crm:accept_invitation", kwargs={"token": uuid.uuid4().hex})
    )
    assert unknown.status_code == 404


# The walk itself catches leaks ----------------------------------------------------------------
# A URL configuration with views that forget `for_org()` and login: if the checks above
# ever stopped seeing leaks, these tests would say so.


def _leaky_team_page(request, team_public_id):
    team = get_object_or_404(Team, public_id=team_public_id)  # no for_org(): the bug
    return HttpResponse(f"{team.name} {team.public_id}")


def _leaky_team_list(request):
    return HttpResponse(" ".join(str(team.public_id) for team in Team.objects.all()))


class LeakyURLConf:
    urlpatterns = [
        path("accounts/", include("allauth.urls")),
        path("teams/", _leaky_team_list, name="leaky_team_list"),
        path("teams/<uuid:team_public_id>/", _leaky_team_page, name="leaky_team_page"),
    ]


@pytest.fixture
def leaky_routes(settings):
    settings.ROOT_URLCONF = LeakyURLConf
    # Row-level security (crm/rls.py) would hide these leaks; the walk must see them itself.
    settings.CRM_RLS_ENABLED = False
    return [r for r in walk_urls(LeakyURLConf.urlpatterns) if r.public_reason() is None]


def test_walk_reports_a_detail_view_without_for_org(leaky_routes, tenant_a, org_b_owner):
    failures, _ = org_b_failures(leaky_routes, tenant_a, logged_in(org_b_owner))

    assert len(failures) == 1
    assert "/teams/<uuid:team_public_id>/ (leaky_team_page): org B's Owner got 200" in failures[0]


def test_walk_reports_pages_open_to_logged_out_visitors(leaky_routes, tenant_a, client):
    failures = logged_out_failures(leaky_routes, tenant_a, client)

    assert len(failures) == 2
    assert failures[0].startswith("/teams/ (leaky_team_list): a logged-out visitor got 200")
    assert failures[1].startswith(
        "/teams/<uuid:team_public_id>/ (leaky_team_page): a logged-out visitor got 200"
    )


def test_walk_reports_a_list_showing_another_orgs_rows(leaky_routes, tenant_a, org_b_owner):
    failures = list_page_failures(leaky_routes, tenant_a, logged_in(org_b_owner))

    assert len(failures) == 1
    assert failures[0].startswith("/teams/ (leaky_team_list): org B's Owner sees org A's")
