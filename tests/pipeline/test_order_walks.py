"""The project-wide tenancy and record-scope walks (tests/test_tenancy_urls.py,
tests/test_scope_urls.py), run over the orders registry's URLs with the orders module ON.

The project walks build organizations with every optional module off, so there each orders
page answers "module off" (404) before it looks anything up, and proves nothing about the
look-ups themselves. Here the same walkers, on organizations that have the module on, must
still find a 404 for another organization's rows and for another member's rows."""

import pytest
from django.test import Client

from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    factory_for,
    make_instance,
    member,
)
from tests.test_scope_urls import build_world, list_failures, own_everything_role, scope_failures
from tests.test_tenancy_urls import (
    TenantA,
    list_page_failures,
    logged_in,
    logged_out_failures,
    org_b_failures,
    tenant_models,
    tenant_routes,
)

pytestmark = pytest.mark.django_db

ORDER_URL_NAMES = {
    "pipeline:order_list",
    "pipeline:order_export",
    "pipeline:order_create",
    "pipeline:order_deal_options",
    "pipeline:order_detail",
    "pipeline:order_edit",
    "pipeline:order_status",
    "pipeline:order_delete",
    "pipeline:contact_orders",
    "pipeline:deal_orders",
}


def _on(org):
    org.enabled_modules = ["orders", "custom_objects"]
    org.save()
    return org


def order_routes():
    routes = [route for route in tenant_routes() if route.name in ORDER_URL_NAMES]
    assert {route.name for route in routes} == ORDER_URL_NAMES
    return routes


@pytest.fixture(autouse=True)
def _quiet(caplog, settings):
    caplog.set_level("ERROR", logger="django.request")
    caplog.set_level("ERROR", logger="django.security")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_other_org_owner_gets_404_for_every_order_url_with_the_module_on(db):
    org = _on(OrganizationFactory(name="Aardvark Tenancy Probe", slug="aardvark-tenancy-probe"))
    member(org, "owner")
    rows = [org] + [make_instance(m, org) for m in tenant_models() if factory_for(m) is not None]
    tenant = TenantA(org=org, objects=rows)
    org_b_owner = member(_on(OrganizationFactory(name="Org B", slug="org-b-probe")), "owner")
    routes = order_routes()

    failures, report = org_b_failures(routes, tenant, logged_in(org_b_owner))
    failures += list_page_failures(routes, tenant, logged_in(org_b_owner))
    failures += logged_out_failures(routes, tenant, Client())

    print("\n".join(report))
    assert not failures, "Tenancy leaks:\n" + "\n".join(failures)
    assert len(report) == 6  # every URL with a parameter was walked


@pytest.fixture(params=["team", "own-everything"])
def scoped(request, db):
    org = _on(OrganizationFactory(name="Scope Probe Org", slug="scope-probe-org"))
    member(org, "owner")
    x = member(org, "admin")
    world = build_world(org, x.user)
    if request.param == "team":
        who = member(org, "team")
    else:
        who = MembershipFactory(org=org, role=own_everything_role(org))
    return world, who


def test_own_scope_member_gets_404_for_every_order_of_another_member(scoped):
    world, who = scoped
    label = f"a {who.role.name} member"
    routes = order_routes()

    failures, report = scope_failures(routes, world, logged_in(who), label)
    failures += list_failures(routes, world, logged_in(who), label)

    print("\n".join(report))
    assert not failures, "Record-scope leaks:\n" + "\n".join(failures)
    # The walk reached X's order, contact and deal through each parameterised URL.
    assert all(" 0 checked" not in line for line in report), report
