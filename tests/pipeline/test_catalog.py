"""The product catalog: who manages it (settings admins and members who edit every deal),
checked input, unique SKUs, deactivation, and Settings → Products."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from crm.models import AuditEvent, OutboxEvent
from crm.navigation import navigation_for
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Product
from pipeline.services.catalog import (
    can_manage_catalog,
    product_create,
    product_deactivate,
    product_reactivate,
    product_update,
)
from tests.factories import OrganizationFactory, ProductFactory, member

pytestmark = pytest.mark.django_db


def _create(who, **data):
    return product_create(
        org=who.org,
        actor=Actor.for_user(who.user),
        data={"name": "Seat", "unit_price": "19.99", **data},
        policy=Policy(who),
    )


@pytest.mark.parametrize(
    ("role_key", "allowed"),
    [
        ("owner", True),
        ("admin", True),
        ("executive", True),  # edits every deal (pipeline edit, scope all)
        ("director", False),  # team scope
        ("team", False),
        ("viewer", False),
        ("board", False),
    ],
)
def test_who_manages_the_catalog(org, role_key, allowed):
    who = member(org, role_key)
    assert can_manage_catalog(Policy(who)) is allowed
    if allowed:
        assert _create(who).pk
    else:
        with pytest.raises(PermissionDenied):
            _create(who)


def test_create_defaults_to_the_base_currency_and_is_audited(org):
    admin = member(org, "admin")
    product = _create(admin, sku="SEAT-1", description="Per user and month")
    assert (product.unit_price, product.currency) == (Decimal("19.99"), org.base_currency)
    assert AuditEvent.objects.for_org(org).filter(verb="product.created").exists()
    assert OutboxEvent.objects.for_org(org).filter(event_type="product.created").exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": ""}, "name"),
        ({"unit_price": "-1"}, "unit_price"),
        ({"unit_price": "1.999"}, "unit_price"),
        ({"unit_price": "free"}, "unit_price"),
        ({"currency": "EURO"}, "currency"),
        ({"sku": "x" * 65}, "sku"),
    ],
)
def test_bad_products_are_refused_by_field(org, data, field):
    admin = member(org, "admin")
    with pytest.raises(ValidationError) as exc:
        _create(admin, **data)
    assert field in exc.value.message_dict
    assert not Product.objects.for_org(org).exists()


def test_skus_are_unique_per_org_ignoring_case(org):
    admin = member(org, "admin")
    _create(admin, sku="ABC-1")
    with pytest.raises(ValidationError) as exc:
        _create(admin, name="Other", sku="abc-1")
    assert "sku" in exc.value.message_dict
    other_org_admin = member(OrganizationFactory(), "admin")
    assert _create(other_org_admin, sku="ABC-1").pk


def test_update_deactivate_and_reactivate(org):
    admin = member(org, "admin")
    product = _create(admin)
    actor, policy = Actor.for_user(admin.user), Policy(admin)
    product = product_update(
        product=product, actor=actor, data={"unit_price": "25", "currency": "eur"}, policy=policy
    )
    assert (product.unit_price, product.currency) == (Decimal("25.00"), "EUR")
    product = product_deactivate(product=product, actor=actor, policy=policy)
    assert not product.is_active
    product = product_reactivate(product=product, actor=actor, policy=policy)
    assert product.is_active
    verbs = set(AuditEvent.objects.for_org(org).values_list("verb", flat=True))
    assert {"product.updated", "product.deactivated", "product.reactivated"} <= verbs


def test_products_page_lists_and_manages(org, client_as):
    admin = member(org, "admin")
    ProductFactory(org=org, name="Onboarding <pack>", unit_price=Decimal("1500"))
    ProductFactory(org=org, name="Retired thing", is_active=False)
    client = client_as(admin)
    page = client.get(reverse("pipeline:products")).content.decode()
    assert "Onboarding &lt;pack&gt;" in page and "Retired thing" not in page
    assert "1,500.00" in page
    assert (
        "Retired thing"
        in client.get(reverse("pipeline:products") + "?show=inactive").content.decode()
    )
    response = client.post(
        reverse("pipeline:product_create"),
        {"name": "Training day", "unit_price": "900", "currency": "GBP", "sku": ""},
    )
    assert response.status_code == 302
    product = Product.objects.for_org(org).get(name="Training day")
    assert product.currency == "GBP"
    bad = client.post(
        reverse("pipeline:product_create"), {"name": "X", "unit_price": "-3", "currency": "USD"}
    )
    assert bad.status_code == 200 and b"cannot be negative" in bad.content
    client.post(
        reverse("pipeline:product_edit", args=[product.public_id]),
        {"name": "Training day", "unit_price": "950", "currency": "GBP"},
    )
    product.refresh_from_db()
    assert product.unit_price == Decimal("950.00")
    client.post(reverse("pipeline:product_deactivate", args=[product.public_id]))
    product.refresh_from_db()
    assert not product.is_active


def test_a_rep_reads_the_catalog_but_cannot_change_it(org, client_as):
    rep = member(org, "team")
    product = ProductFactory(org=org, name="Starter")
    client = client_as(rep)
    page = client.get(reverse("pipeline:products"))
    assert page.status_code == 200 and b"Starter" in page.content
    assert reverse("pipeline:product_create").encode() not in page.content
    assert client.get(reverse("pipeline:product_create")).status_code == 403
    assert (
        client.post(reverse("pipeline:product_deactivate", args=[product.public_id])).status_code
        == 403
    )
    client_only = member(org, "client")
    assert client_as(client_only).get(reverse("pipeline:products")).status_code == 403


def test_another_orgs_product_is_404(org, client_as):
    admin = member(org, "admin")
    foreign = ProductFactory(org=OrganizationFactory())
    client = client_as(admin)
    assert client.get(reverse("pipeline:product_edit", args=[foreign.public_id])).status_code == 404
    assert (
        client.post(reverse("pipeline:product_deactivate", args=[foreign.public_id])).status_code
        == 404
    )


def test_products_are_in_the_settings_menu_for_settings_admins(org):
    admin = member(org, "admin")
    _sidebar, settings_entries = navigation_for(Policy(admin), "/")
    assert reverse("pipeline:products") in [entry["url"] for entry in settings_entries]
    rep = member(org, "team")
    _sidebar, rep_settings = navigation_for(Policy(rep), "/")
    assert reverse("pipeline:products") not in [entry["url"] for entry in rep_settings]
