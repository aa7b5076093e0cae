"""Record scope, proven over every URL of the project.

The second walk of tests/test_tenancy_urls.py (whose helpers it reuses): inside one
organization, one row of every tenant model is built and given to member X, an Admin
(its owner, creator, author or assignee, and that of the rows it hangs off). Then members of
the same organization whose scope is "own" walk every parameterised URL with X's objects:

- the built-in Team role (own scope on the business modules, no settings), and
- a custom role with every module and action open, all at "own" scope, so the settings-like
  pages are reachable and only record scope stands between the member and X's rows.

For every URL that names one of X's records they must get 404, as for an id that does not
exist. A 403 passes only where a made-up id gets the same 403 (the member lacks the module
right, so the answer says nothing about the record). Rows that belong to the organization
rather than to a person are listed in ORG_WIDE with the reason; their pages are governed by
module rights, not record scope, and the org-B walk covers their tenancy. No answer (404,
403 or a page) and no page without parameters may show X's identifiers, names or emails.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

import pytest
from django.db import models
from django.http import HttpResponse, HttpResponseNotFound
from django.shortcuts import get_object_or_404
from django.urls import include, path
from django.utils import timezone

from contacts.importing.models import ImportJob, ImportPart, ImportRowError
from contacts.models import Contact
from crm.models import (
    AuditEvent,
    BackgroundJob,
    Invitation,
    Membership,
    Organization,
    OutboxEvent,
    Role,
    Team,
)
from crm.optional_modules import OPTIONAL_MODULE_KEYS
from crm.permissions import ACTIONS, MODULE_KEYS, policy_for
from tests.factories import (
    ImportJobFactory,
    MembershipFactory,
    OrganizationFactory,
    custom_role,
    factory_for,
    give_to,
    make_instance,
    member,
)
from tests.test_tenancy_urls import (
    PROBE_TOKEN,
    Route,
    TenantA,
    body_of,
    fetch,
    logged_in,
    param_values,
    tenant_models,
    tenant_routes,
    value_combinations,
    walk_urls,
)

# Rows that belong to the organization, not to a member: record scope does not apply to
# them, their existence is no secret from the organization's members, and module rights
# (tested with each module) decide who opens their pages. Each says why.
ORG_WIDE = {
    Organization: "the member's own workspace (switching to it is theirs to do)",
    Role: "the organization's roles, read and edited under the settings right",
    Team: "the team directory, managed under the settings right",
    Membership: "the member directory: who works here is known to every member",
    Invitation: "pending invitations, managed with the members under the settings right",
    AuditEvent: "the organization's audit log, read as a whole under the settings right",
    OutboxEvent: "internal event queue: no page shows it",
}
ORG_WIDE_LABELS = {
    "contacts.CustomFieldDefinition": "the organization's contact fields, the same for all",
    "contacts.ScoringRule": "the organization's lead-scoring rules, the same for all",
    "contacts.Tag": "the organization's tag vocabulary, shared by every member",
    "contacts.ContactList": "static lists are shared segments (names unique in the org) that "
    "every member adds contacts to; which contacts a member sees in them follows contact scope",
    "contacts.SavedMapping": "saved column mappings are shared: any member's next file with "
    "the same columns is mapped with them",
    "pipeline.Pipeline": "the organization's pipelines: every member's deals move through them",
    "pipeline.Stage": "the stages of those pipelines, the columns of everyone's board",
    "pipeline.DealReason": "the organization's list of won and lost reasons",
    "pipeline.Product": "the product catalog that every member's line items are picked from",
    "pipeline.ExchangeRate": "the organization's exchange rates, used by every forecast",
    "pipeline.ForecastSnapshot": "the weekly snapshot of the whole forecast; each member "
    "reads it through their own record scope",
    "pipeline.ObjectType": "the organization's custom object types, defined under the settings "
    "right; which of a type's records a member sees follows custom-object record scope",
    "pipeline.ObjectField": "the fields of those types, the same on every record",
    "compliance.PrivacySettings": "the organization's privacy mode, under the compliance right",
    "compliance.Suppression": "a suppression holds for an address, whoever's contact carries "
    "it: every sender must honour it, so the list is the organization's, under the compliance "
    "right",
    "compliance.DataRequest": "the organization's queue of data subject requests, worked as a "
    "whole under the compliance right",
    "compliance.ErasureTombstone": "hashes of erased addresses: no page shows them",
    "compliance.RetentionPolicy": "the organization's retention rules, under the compliance right",
    "compliance.RetentionRun": "the reports of those rules' runs, under the compliance right",
}

# Text fields that name a record on a page: set to a marker on each of X's rows, so a page
# that shows one of them is caught even when it leaves out the id.
MARKED_FIELDS = ("name", "title", "body", "subject", "file_name", "email", "last_name")


def is_org_wide(obj) -> bool:
    return type(obj) in ORG_WIDE or obj._meta.label in ORG_WIDE_LABELS


@dataclass
class ScopeWorld:
    """Organization A: X's rows, the org-wide ones, and the strings no scoped member sees."""

    tenant: TenantA  # every row, for filling URL parameters
    owned: list[models.Model]
    secrets: set[str]


@pytest.fixture(autouse=True)
def _quiet(caplog):
    """Hundreds of expected 404s and 403s would flood the log."""
    caplog.set_level(logging.ERROR, logger="django.request")
    caplog.set_level(logging.ERROR, logger="django.security")


def _mark(row, n: int) -> set[str]:
    """Give `row`'s naming fields a marker value and return the markers."""
    names = {f.name for f in row._meta.concrete_fields}
    changes = {}
    for name in MARKED_FIELDS:
        if name not in names:
            continue
        if name == "email":
            changes[name] = f"hidden-x{n}@owner-x.example"
        elif name == "file_name":
            changes[name] = f"hidden-x{n}.csv"
        else:
            changes[name] = f"Hiddenx{n}"
    if changes:
        type(row).objects.filter(pk=row.pk).update(**changes)
    return set(changes.values())


def _public_id(row) -> set[str]:
    """The row's public id as a secret; none for a table without one (an order rollup row
    is kept by triggers and never addressed), whose "None" would match any page's text."""
    public_id = getattr(row, "public_id", None)
    return {str(public_id)} if public_id is not None else set()


def build_world(org, owner_user) -> ScopeWorld:
    rows: list[models.Model] = [org]
    owned: list[models.Model] = []
    secrets: set[str] = set()
    for n, model in enumerate(tenant_models()):
        if factory_for(model) is None:
            continue  # test_every_tenant_model_has_a_factory reports it
        row = make_instance(model, org)
        rows.append(row)
        if is_org_wide(row):
            continue
        give_to(row, owner_user)
        owned.append(row)
        secrets |= _public_id(row)
        secrets |= _mark(row, n)
        for parent in (getattr(row, "contact", None), getattr(row, "company", None)):
            if isinstance(parent, models.Model):
                secrets |= _public_id(parent)
                secrets |= _mark(parent, 1000 + n)
    for extra in more_of_x(org, owner_user, next(r for r in owned if isinstance(r, Contact))):
        rows.append(extra)
        owned.append(extra)
        secrets |= _public_id(extra)
    secrets |= {ERROR_ROW_EMAIL, DONE_FILE_NAME}
    return ScopeWorld(tenant=TenantA(org=org, objects=rows), owned=owned, secrets=secrets)


ERROR_ROW_EMAIL = "hidden-error-row@owner-x.example"
DONE_FILE_NAME = "hidden-x-done.csv"


def more_of_x(org, user, contact) -> list[models.Model]:
    """Rows in the states that open more pages: a finished import that created `contact`
    and kept a row it could not take (its diff, error report, Undo, the dashboard's panel),
    and a rescoring job (shown on the scoring page)."""
    job = ImportJobFactory(
        org=org,
        created_by=user,
        file_name=DONE_FILE_NAME,
        status=ImportJob.Status.DONE,
        created_count=1,
        error_count=1,
    )
    ImportPart.objects.create(
        job=job,
        number=0,
        created_ids=[contact.pk],
        created_rows=[2],
        first_row=2,
        last_row=2,
        min_id=contact.pk,
        max_id=contact.pk,
        written_at=timezone.now(),
    )
    ImportRowError.objects.create(
        job=job, row_number=3, values=[ERROR_ROW_EMAIL], message="Email: not taken"
    )
    rescore = BackgroundJob.objects.create(
        org=org, kind="contacts.rescore", created_by=user, total=1
    )
    return [job, rescore]


def own_everything_role(org) -> Role:
    """Every module, every action, all at "own" scope."""
    permissions = {
        module: {"access": True, **dict.fromkeys(ACTIONS, True), "scope": "own"}
        for module in MODULE_KEYS
    }
    return custom_role(org, name="Own records only", permissions=permissions)


@pytest.fixture
def world(db) -> ScopeWorld:
    org = OrganizationFactory(
        name="Scope Probe Org", slug="scope-probe-org", enabled_modules=OPTIONAL_MODULE_KEYS
    )
    member(org, "owner")
    x = member(org, "admin")
    return build_world(org, x.user)


@pytest.fixture(params=["team", "own-everything"])
def scoped_member(request, world):
    org = world.tenant.org
    if request.param == "team":
        return member(org, "team")
    return MembershipFactory(org=org, role=own_everything_role(org))


# The checks ------------------------------------------------------------------------------


def leaked_secrets(response, world: ScopeWorld) -> list[str]:
    text = body_of(response)
    return sorted(secret for secret in world.secrets if secret in text)


def made_up_url(route: Route) -> str:
    """The route with ids that match nothing: what "no such record" answers."""
    values = {}
    for param in route.params:
        converter = route.converters[param]
        for raw in (str(uuid.uuid4()), PROBE_TOKEN, "987654321"):
            if re.fullmatch(converter.regex, raw):
                values[param] = converter.to_python(raw)
                break
    return route.url(values)


def scope_failures(routes, world: ScopeWorld, client, who: str) -> tuple[list[str], list[str]]:
    """Every way a scoped member reaches X's rows through parameterised `routes`."""
    failures, report = [], []
    owned = {id(obj) for obj in world.owned}
    for route in routes:
        if route.is_regex or not route.params:
            continue  # regex routes are reported by the org-B walk
        by_value = {
            str(value): obj
            for param in route.params
            for value, obj in param_values(route, param, world.tenant)
        }
        baseline = None
        checked = exempt = 0
        for values in value_combinations(route, world.tenant):
            objects = [by_value.get(str(value)) for value in values.values()]
            if not any(obj is not None and id(obj) in owned for obj in objects):
                exempt += 1  # only org-wide rows or made-up values: no one's record
                continue
            checked += 1
            url = route.url(values)
            response = fetch(client, url)
            status = response.status_code
            if status == 403 and baseline is None:
                baseline = fetch(client, made_up_url(route)).status_code
            if status != 404 and not (status == 403 and baseline == 403):
                names = ", ".join(type(o).__name__ for o in objects if o is not None)
                failures.append(f"{route.label}: {who} got {status} (not 404) for X's {names}")
                break
            leaked = leaked_secrets(response, world)
            if leaked:
                failures.append(f"{route.label}: the {status} answer to {who} shows {leaked}")
                break
        report.append(f"{route.label}: {checked} checked, {exempt} org-wide or made up")
    return failures, report


def list_failures(routes, world: ScopeWorld, client, who: str) -> list[str]:
    """Pages without parameters (lists, dashboards, exports) that show X's rows."""
    failures = []
    for route in routes:
        if route.params or route.is_regex:
            continue
        # Plain, as an HTMX partial, and searching X's records by the start of their names.
        plain, htmx = route.url({}), {"HTTP_HX_REQUEST": "true"}
        for url, headers in ((plain, {}), (plain, htmx), (plain + "?q=hiddenx", {})):
            response = client.get(url, **headers)
            if response.status_code >= 500:
                failures.append(f"{route.label}: {response.status_code} for {who} at {url}")
                break
            leaked = leaked_secrets(response, world)
            if leaked:
                failures.append(f"{route.label}: {who} sees X's {leaked} at {url}")
                break
    return failures


# The project's URLs ------------------------------------------------------------------------


def test_world_gives_every_record_to_x_and_names_each_org_wide_model(world):
    x_user = next(obj for obj in world.owned if isinstance(obj, Contact)).owner
    assert x_user is not None
    unreasoned = [
        model._meta.label
        for model in tenant_models()
        if factory_for(model) is not None
        and not any(isinstance(obj, model) for obj in world.owned)
        and model not in ORG_WIDE
        and model._meta.label not in ORG_WIDE_LABELS
    ]
    assert not unreasoned, f"Neither owned by X nor listed as org-wide: {unreasoned}"


def test_own_scope_member_gets_404_for_every_record_of_another_member(world, scoped_member):
    who = f"a {scoped_member.role.name} member"
    failures, report = scope_failures(tenant_routes(), world, logged_in(scoped_member), who)

    print("\n".join(report))
    assert not failures, "Record-scope leaks:\n" + "\n".join(failures)


def test_pages_without_parameters_show_an_own_scope_member_nothing_of_another(world, scoped_member):
    who = f"a {scoped_member.role.name} member"
    failures = list_failures(tenant_routes(), world, logged_in(scoped_member), who)

    assert not failures, "Another member's records shown:\n" + "\n".join(failures)


# The walk itself catches scope leaks ----------------------------------------------------------
# Views that filter by organization but forget record scope: if the checks above ever stopped
# seeing such leaks, these tests would say so.


def _leaky_contact_page(request, contact_public_id):
    contact = get_object_or_404(  # for_org() but no scope_filter(): the bug
        Contact.objects.for_org(request.org), public_id=contact_public_id
    )
    return HttpResponse(f"{contact.last_name} {contact.email}", content_type="text/plain")


def _scoped_contact_page(request, contact_public_id):
    scoped = Contact.objects.for_org(request.org).filter(
        policy_for(request).scope_filter("contacts")
    )
    contact = get_object_or_404(scoped, public_id=contact_public_id)
    return HttpResponse(contact.email, content_type="text/plain")


def _leaky_contact_list(request):
    emails = Contact.objects.for_org(request.org).values_list("email", flat=True)
    return HttpResponse(" ".join(emails), content_type="text/plain")


def _bare_404(request, exception=None):
    # The app's 404 page links into the app's own URLs, which this URL configuration lacks.
    return HttpResponseNotFound("Not found", content_type="text/plain")


class LeakyScopeURLConf:
    handler404 = staticmethod(_bare_404)
    urlpatterns = [
        path("accounts/", include("allauth.urls")),
        path("people/", _leaky_contact_list, name="leaky_contact_list"),
        path("people/<uuid:contact_public_id>/", _leaky_contact_page, name="leaky_contact"),
        path("mine/<uuid:contact_public_id>/", _scoped_contact_page, name="scoped_contact"),
    ]


@pytest.fixture
def leaky_routes(settings):
    settings.ROOT_URLCONF = LeakyScopeURLConf
    return [r for r in walk_urls(LeakyScopeURLConf.urlpatterns) if r.public_reason() is None]


def test_walk_reports_a_detail_view_without_record_scope(leaky_routes, world):
    rep = member(world.tenant.org, "team")
    failures, _ = scope_failures(leaky_routes, world, logged_in(rep), "a rep")

    assert len(failures) == 1, failures
    assert failures[0].startswith(
        "/people/<uuid:contact_public_id>/ (leaky_contact): a rep got 200 (not 404) for X's"
    )


def test_walk_reports_a_list_showing_another_members_records(leaky_routes, world):
    rep = member(world.tenant.org, "team")
    failures = list_failures(leaky_routes, world, logged_in(rep), "a rep")

    assert len(failures) == 1, failures
    assert failures[0].startswith("/people/ (leaky_contact_list): a rep sees X's")
    assert "@owner-x.example" in failures[0]
