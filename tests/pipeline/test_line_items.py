"""Line items: Decimal money (fixed and percent discounts, half-up rounding, lines that never
go negative), the deal's value following its lines (automatic) or typed (manual), one
currency per deal, catalog snapshots, order, rights, and the line item views."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from crm.models import AuditEvent, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.models import Deal, LineItem
from pipeline.services.catalog import product_update
from pipeline.services.deals import deal_update
from pipeline.services.line_items import (
    line_item_add,
    line_item_move,
    line_item_remove,
    line_item_update,
    line_items_reorder,
)
from tests.factories import (
    DealFactory,
    MembershipFactory,
    OrganizationFactory,
    ProductFactory,
    custom_role,
    member,
    role,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def deal(org, admin):
    return DealFactory(org=org, owner=admin.user, value=Decimal("5000.00"), currency="USD")


def _add(deal, admin, product=None, **data):
    return line_item_add(
        deal=deal,
        actor=Actor.for_user(admin.user),
        data=data,
        product=product,
        policy=Policy(admin),
    )


def _value(deal):
    fresh = Deal.objects.for_org(deal.org_id).get(pk=deal.pk)
    return fresh.value, fresh.value_is_manual, fresh.currency


@pytest.mark.parametrize(
    ("data", "total"),
    [
        ({"quantity": "3", "unit_price": "19.99"}, "59.97"),
        (
            {"quantity": "2", "unit_price": "100", "discount_kind": "percent", "discount": "15"},
            "170.00",
        ),
        (
            {"quantity": "1", "unit_price": "0.05", "discount_kind": "percent", "discount": "50"},
            "0.03",
        ),
        (
            {"quantity": "1", "unit_price": "10.01", "discount_kind": "percent", "discount": "50"},
            "5.01",
        ),
        (
            {"quantity": "4", "unit_price": "25", "discount_kind": "fixed", "discount": "30"},
            "70.00",
        ),
        ({"quantity": "1", "unit_price": "25", "discount_kind": "fixed", "discount": "99"}, "0.00"),
        (
            {"quantity": "0.333", "unit_price": "3", "discount_kind": "none", "discount": "9"},
            "1.00",
        ),
    ],
)
def test_line_totals_are_decimal_cents_rounded_half_up_and_never_negative(deal, admin, data, total):
    line = _add(deal, admin, name="Line", **data)
    line.refresh_from_db()
    assert isinstance(line.total, Decimal)
    assert line.total == Decimal(total)
    assert line.total >= 0


def test_the_value_is_the_sum_of_the_lines_then_manual_again(deal, admin):
    assert _value(deal) == (Decimal("5000.00"), True, "USD")
    first = _add(deal, admin, name="A", quantity="2", unit_price="10.10")
    second = _add(
        deal, admin, name="B", quantity="1", unit_price="5", discount_kind="percent", discount="10"
    )
    assert _value(deal) == (Decimal("24.70"), False, "USD")
    with pytest.raises(ValidationError) as exc:
        deal_update(
            deal=deal, actor=Actor.for_user(admin.user), data={"value": "99"}, policy=Policy(admin)
        )
    assert "line items" in str(exc.value)
    line_item_update(
        line=first, actor=Actor.for_user(admin.user), data={"quantity": "3"}, policy=Policy(admin)
    )
    assert _value(deal)[0] == Decimal("34.80")
    line_item_remove(line=first, actor=Actor.for_user(admin.user), policy=Policy(admin))
    assert _value(deal) == (Decimal("4.50"), False, "USD")
    line_item_remove(line=second, actor=Actor.for_user(admin.user), policy=Policy(admin))
    # The last line gone: the value keeps the last sum and is the member's to type again.
    assert _value(deal) == (Decimal("4.50"), True, "USD")
    deal_update(
        deal=deal, actor=Actor.for_user(admin.user), data={"value": "99"}, policy=Policy(admin)
    )
    assert _value(deal)[0] == Decimal("99.00")


def test_the_first_line_sets_the_currency_and_another_currency_is_refused(deal, admin, org):
    euro = ProductFactory(org=org, name="Support", unit_price=Decimal("300"), currency="EUR")
    _add(deal, admin, product=euro, quantity="1")
    assert _value(deal) == (Decimal("300.00"), False, "EUR")
    dollars = ProductFactory(org=org, name="Hardware", currency="USD")
    with pytest.raises(ValidationError) as exc:
        _add(deal, admin, product=dollars, quantity="1")
    message = " ".join(exc.value.messages)
    assert "EUR" in message and "USD" in message and "one currency" in message
    with pytest.raises(ValidationError):
        _add(deal, admin, name="One-off", unit_price="5", currency="GBP")
    assert LineItem.objects.for_org(org).filter(deal=deal).count() == 1
    _add(deal, admin, name="One-off", unit_price="5")  # no currency given: the deal's
    assert _value(deal) == (Decimal("305.00"), False, "EUR")


def test_a_product_line_is_a_snapshot_of_name_and_price(deal, admin, org):
    product = ProductFactory(org=org, name="Gold plan", unit_price=Decimal("49.90"), currency="USD")
    line = _add(deal, admin, product=product, quantity="2")
    assert (line.name, line.unit_price, line.total) == (
        "Gold plan",
        Decimal("49.90"),
        Decimal("99.80"),
    )
    product_update(
        product=product,
        actor=Actor.for_user(admin.user),
        data={"name": "Platinum plan", "unit_price": "79.90"},
        policy=Policy(admin),
    )
    line.refresh_from_db()
    assert (line.name, line.unit_price, line.total) == (
        "Gold plan",
        Decimal("49.90"),
        Decimal("99.80"),
    )
    assert _value(deal)[0] == Decimal("99.80")
    negotiated = _add(deal, admin, product=product, quantity="1", unit_price="70")
    assert negotiated.unit_price == Decimal("70.00") and negotiated.name == "Platinum plan"


def test_an_inactive_or_foreign_product_is_refused(deal, admin, org):
    off = ProductFactory(org=org, is_active=False)
    with pytest.raises(ValidationError):
        _add(deal, admin, product=off)
    foreign = ProductFactory(org=OrganizationFactory())
    with pytest.raises(ValidationError):
        _add(deal, admin, product=foreign)
    assert not LineItem.objects.for_org(org).exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "", "unit_price": "1"}, "name"),
        ({"name": "X", "unit_price": "-1"}, "unit_price"),
        ({"name": "X", "unit_price": "1.005"}, "unit_price"),
        ({"name": "X", "unit_price": "abc"}, "unit_price"),
        ({"name": "X", "unit_price": "1", "quantity": "0"}, "quantity"),
        ({"name": "X", "unit_price": "1", "quantity": "1.0001"}, "quantity"),
        (
            {"name": "X", "unit_price": "1", "discount_kind": "percent", "discount": "101"},
            "discount",
        ),
        (
            {"name": "X", "unit_price": "1", "discount_kind": "percent", "discount": "-5"},
            "discount",
        ),
        ({"name": "X", "unit_price": "1", "discount_kind": "bogus"}, "discount_kind"),
        ({"name": "X", "unit_price": "999999999999", "quantity": "1000"}, "quantity"),
    ],
)
def test_bad_lines_are_refused_by_field(deal, admin, org, data, field):
    with pytest.raises(ValidationError) as exc:
        _add(deal, admin, **data)
    assert field in exc.value.message_dict
    assert not LineItem.objects.for_org(org).exists()
    assert _value(deal) == (Decimal("5000.00"), True, "USD")


def test_lines_keep_their_order_and_move(deal, admin):
    a, b, c = (_add(deal, admin, name=n, unit_price="1") for n in "ABC")
    line_items_reorder(
        deal=deal,
        actor=Actor.for_user(admin.user),
        order=[c.public_id, a.public_id, b.public_id],
        policy=Policy(admin),
    )
    names = list(deal.line_items.order_by("position").values_list("name", flat=True))
    assert names == ["C", "A", "B"]
    line_item_move(line=b, actor=Actor.for_user(admin.user), direction="up", policy=Policy(admin))
    assert list(deal.line_items.order_by("position").values_list("name", flat=True)) == [
        "C",
        "B",
        "A",
    ]
    with pytest.raises(ValidationError):
        line_items_reorder(
            deal=deal, actor=Actor.for_user(admin.user), order=[a.public_id], policy=Policy(admin)
        )


def test_lines_are_audited_and_emit_deal_updated(deal, admin, org):
    _add(deal, admin, name="Audit me", unit_price="10")
    assert AuditEvent.objects.for_org(org).filter(verb="deal.line_item_added").exists()
    event = OutboxEvent.objects.for_org(org).filter(event_type="deal.updated").latest("id")
    assert event.payload["value"] == "10.00"
    assert "line_items" in event.payload["changes"]


def test_rights_scope_and_the_value_rule_apply(deal, admin, org):
    viewer = member(org, "viewer")
    with pytest.raises(PermissionDenied):
        _add(deal, viewer, name="X", unit_price="1")
    rep = member(org, "team")  # may edit deals, but only their own
    with pytest.raises(PermissionDenied):
        _add(deal, rep, name="X", unit_price="1")
    locked = MembershipFactory(
        org=org,
        role=custom_role(
            org, permissions=role(org, "admin").permissions, field_rules={"deal.value": "visible"}
        ),
    )
    with pytest.raises(PermissionDenied):
        _add(deal, locked, name="X", unit_price="1")
    assert not LineItem.objects.for_org(org).exists()


def test_archived_deal_refuses_lines(deal, admin):
    Deal.objects.for_org(deal.org_id).filter(pk=deal.pk).update(is_archived=True)
    deal.refresh_from_db()
    with pytest.raises(ValidationError):
        _add(deal, admin, name="X", unit_price="1")


# Views ------------------------------------------------------------------------------------------


def test_line_views_add_edit_move_and_remove(deal, admin, org, client_as):
    product = ProductFactory(org=org, name="Widget", unit_price=Decimal("12.50"), currency="USD")
    client = client_as(admin)
    url = reverse("pipeline:line_item_add", args=[deal.public_id])
    page = client.get(reverse("pipeline:deal_detail", args=[deal.public_id]) + "?tab=lines")
    assert b"Widget" in page.content
    client.post(url, {"product": str(product.public_id), "quantity": "2", "discount_kind": "none"})
    response = client.post(
        url,
        {
            "name": "Setup",
            "quantity": "1",
            "unit_price": "100",
            "discount_kind": "fixed",
            "discount": "20",
        },
    )
    assert response.status_code == 302
    assert _value(deal) == (Decimal("105.00"), False, "USD")
    bad = client.post(
        url, {"name": "Nope", "quantity": "1", "unit_price": "", "discount_kind": "none"}
    )
    assert bad.status_code == 200 and b"needs a unit price" in bad.content
    setup = LineItem.objects.for_org(org).get(name="Setup")
    edit = reverse("pipeline:line_item_edit", args=[setup.public_id])
    assert client.get(edit).status_code == 200
    client.post(
        edit,
        {
            "name": "Setup",
            "quantity": "1",
            "unit_price": "100",
            "discount_kind": "percent",
            "discount": "50",
        },
    )
    assert _value(deal)[0] == Decimal("75.00")
    client.post(reverse("pipeline:line_item_move", args=[setup.public_id]), {"direction": "up"})
    assert deal.line_items.order_by("position").first().name == "Setup"
    client.post(reverse("pipeline:line_item_delete", args=[setup.public_id]))
    assert _value(deal)[0] == Decimal("25.00")


def test_line_views_answer_404_outside_org_or_scope(deal, admin, org, client_as):
    line = _add(deal, admin, name="Private", unit_price="1")
    outsider = member(OrganizationFactory(), "owner")
    rep = member(org, "team")
    for who in (outsider, rep):
        client = client_as(who)
        assert (
            client.get(reverse("pipeline:line_item_edit", args=[line.public_id])).status_code == 404
        )
        assert (
            client.post(reverse("pipeline:line_item_delete", args=[line.public_id])).status_code
            == 404
        )
    assert LineItem.objects.for_org(org).filter(pk=line.pk).exists()
