"""The orders registry in the browser: the Orders list (filters, totals per currency, keyset
pages, sort, CSV export), an order's page (history, edit, change of status, delete), the new
order form (from the list, a contact or a deal), and the Orders sections of contact and deal
pages. The module off is a 404 everywhere; another organization's order, or one out of the
member's reach, is a 404."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from crm.models import AuditEvent
from pipeline.models import DealContact, Order, OrderStatusChange
from tests.factories import (
    ContactFactory,
    DealFactory,
    OrderFactory,
    OrganizationFactory,
    member,
)

pytestmark = pytest.mark.django_db

ON = ["orders", "custom_objects"]


def _on(org):
    org.enabled_modules = ON
    org.save()
    return org


@pytest.fixture
def org(db):
    return _on(OrganizationFactory(name="Acme Test", slug="acme-test", base_currency="EUR"))


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def rep(org):
    return member(org, "team")


def url(name, *args, **kwargs):
    return reverse(f"pipeline:{name}", args=args, kwargs=kwargs or None)


def detail(order):
    return url("order_detail", order_public_id=order.public_id)


def body(response) -> str:
    return response.content.decode()


# The module switch ------------------------------------------------------------------------------


def test_every_page_is_a_404_while_the_module_is_off(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user)
    deal = DealFactory(org=org, contact=contact, owner=admin.user)
    order = OrderFactory(org=org, contact=contact, deal=deal)
    org.enabled_modules = ["custom_objects"]
    org.save()
    client = client_as(admin)
    gets = [
        url("order_list"),
        url("order_export"),
        url("order_create"),
        url("order_deal_options"),
        detail(order),
        url("order_edit", order_public_id=order.public_id),
        url("contact_orders", contact_public_id=contact.public_id),
        url("deal_orders", deal_public_id=deal.public_id),
    ]
    for address in gets:
        response = client.get(address)
        assert response.status_code == 404, address
        assert "Orders registry is off" in body(response)
    for name in ("order_status", "order_delete"):
        response = client.post(url(name, order_public_id=order.public_id), {"status": "paid"})
        assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    # The sections are not offered either.
    contact_page = body(client.get(reverse("contacts:contact_detail", args=[contact.public_id])))
    assert "record-orders" not in contact_page
    deal_page = body(client.get(reverse("pipeline:deal_detail", args=[deal.public_id])))
    assert "record-orders" not in deal_page


def test_the_contact_and_deal_pages_load_the_orders_section_when_on(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user)
    deal = DealFactory(org=org, contact=contact, owner=admin.user)
    client = client_as(admin)
    contact_page = body(client.get(reverse("contacts:contact_detail", args=[contact.public_id])))
    assert url("contact_orders", contact_public_id=contact.public_id) in contact_page
    deal_page = body(client.get(reverse("pipeline:deal_detail", args=[deal.public_id])))
    assert url("deal_orders", deal_public_id=deal.public_id) in deal_page


def test_members_without_pipeline_view_get_no_section_and_a_403(org, client_as):
    support = member(org, "support")  # contacts yes, pipeline no
    contact = ContactFactory(org=org)
    client = client_as(support)
    page = body(client.get(reverse("contacts:contact_detail", args=[contact.public_id])))
    assert "record-orders" not in page
    assert client.get(url("order_list")).status_code == 403
    assert client.get(url("contact_orders", contact_public_id=contact.public_id)).status_code == 403


# The list --------------------------------------------------------------------------------------


@pytest.fixture
def shop(org, admin):
    ann = ContactFactory(org=org, owner=admin.user, first_name="Ann", last_name="Lee")
    bob = ContactFactory(org=org, owner=admin.user, first_name="Bob", last_name="Ray")
    day = dt.date(2025, 3, 1)
    orders = {
        "big": OrderFactory(
            org=org,
            contact=ann,
            title="Big EUR",
            value=Decimal("900.00"),
            currency="EUR",
            status="paid",
            order_date=day,
            external_id="INV-900",
        ),
        "small": OrderFactory(
            org=org,
            contact=ann,
            title="Small EUR",
            value=Decimal("100.00"),
            currency="EUR",
            status="pending",
            order_date=day + dt.timedelta(days=10),
        ),
        "usd": OrderFactory(
            org=org,
            contact=bob,
            title="Dollar order",
            value=Decimal("50.00"),
            currency="USD",
            status="paid",
            source="webhook",
            order_date=day + dt.timedelta(days=20),
            external_id="shop-77",
        ),
    }
    return {"ann": ann, "bob": bob, **orders}


def _titles(page: str, shop) -> set[str]:
    return {shop[k].title for k in ("big", "small", "usd") if shop[k].title in page}


def test_the_list_shows_totals_per_currency_and_the_registry_note(shop, admin, client_as):
    page = body(client_as(admin).get(url("order_list")))
    assert _titles(page, shop) == {"Big EUR", "Small EUR", "Dollar order"}
    assert "1,000.00" in page  # EUR total
    assert "Paid: 900.00 in 1 order" in page
    assert "50.00" in page and "USD" in page
    assert "not a payment system" in page
    assert "no money moves" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "paid"}, {"Big EUR", "Dollar order"}),
        ({"status": ["pending", "paid"]}, {"Big EUR", "Small EUR", "Dollar order"}),
        ({"source": "webhook"}, {"Dollar order"}),
        ({"date_from": "2025-03-05", "date_to": "2025-03-15"}, {"Small EUR"}),
        ({"value_min": "60", "value_max": "500"}, {"Small EUR"}),
        ({"currency": "usd"}, {"Dollar order"}),
        ({"q": "inv-9"}, {"Big EUR"}),
        ({"q": "dollar"}, {"Dollar order"}),
    ],
)
def test_filters(shop, admin, client_as, query, expected):
    response = client_as(admin).get(url("order_list"), query)
    assert response.status_code == 200
    assert _titles(body(response), shop) == expected


def test_totals_follow_the_filters(shop, admin, client_as):
    page = body(client_as(admin).get(url("order_list"), {"status": "pending"}))
    assert "100.00" in page and "1,000.00" not in page


def test_bad_filter_values_are_reported_not_a_500(shop, admin, client_as):
    response = client_as(admin).get(
        url("order_list"),
        {
            "date_from": "yesterday",
            "value_min": "lots",
            "status": "shipped",
            "currency": "XXX",
            "contact": "not-a-uuid",
        },
    )
    page = body(response)
    assert response.status_code == 200
    assert "use a date such as" in page and "must be a number" in page
    assert "Choose statuses from the list." in page
    assert _titles(page, shop) == {"Big EUR", "Small EUR", "Dollar order"}


def test_see_all_of_a_contact_and_of_a_deal(shop, admin, client_as, org):
    deal = DealFactory(org=org, contact=shop["bob"], owner=admin.user, title="Bob's deal")
    Order.objects.filter(pk=shop["usd"].pk).update(deal=deal)
    client = client_as(admin)
    page = body(client.get(url("order_list"), {"contact": shop["ann"].public_id}))
    assert _titles(page, shop) == {"Big EUR", "Small EUR"}
    assert "Orders of" in page and "Ann Lee" in page
    page = body(client.get(url("order_list"), {"deal": deal.public_id}))
    assert _titles(page, shop) == {"Dollar order"}
    assert "Bob&#x27;s deal" in page


def test_sort_by_value_and_by_date(shop, admin, client_as):
    client = client_as(admin)
    page = body(client.get(url("order_list"), {"sort": "-value"}))
    assert page.index("Big EUR") < page.index("Small EUR") < page.index("Dollar order")
    page = body(client.get(url("order_list"), {"sort": "order_date"}))
    assert page.index("Big EUR") < page.index("Small EUR") < page.index("Dollar order")
    page = body(client.get(url("order_list")))  # newest first
    assert page.index("Dollar order") < page.index("Small EUR") < page.index("Big EUR")


def test_keyset_pages_walk_every_order_once(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user)
    for n in range(55):
        OrderFactory(org=org, contact=contact, title=f"Order n{n:02d}x", value=n)
    client = client_as(admin)
    first = client.get(url("order_list"), {"sort": "value"})
    cursor = first.context["page"].next_cursor
    assert cursor and len(first.context["rows"]) == 50
    second = client.get(url("order_list"), {"sort": "value", "cursor": cursor})
    seen = [r["order"].title for r in first.context["rows"] + second.context["rows"]]
    assert seen == [f"Order n{n:02d}x" for n in range(55)]
    assert 'rel="next"' in body(first)


def test_htmx_returns_only_the_results(shop, admin, client_as):
    response = client_as(admin, htmx=True).get(url("order_list"), {"status": "paid"})
    page = body(response)
    assert 'id="order-results"' in page and "<html" not in page


def test_empty_state(org, admin, client_as):
    page = body(client_as(admin).get(url("order_list")))
    assert "No orders yet" in page
    assert url("order_create") in page


def test_the_list_shows_a_rep_only_orders_in_reach(org, admin, rep, client_as):
    OrderFactory(org=org, contact=ContactFactory(org=org, owner=rep.user), title="Rep order")
    OrderFactory(org=org, contact=ContactFactory(org=org, owner=admin.user), title="Admin order")
    page = body(client_as(rep).get(url("order_list")))
    assert "Rep order" in page and "Admin order" not in page


# Export ----------------------------------------------------------------------------------------


def _csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export_of_the_filtered_orders_neutralizes_formulas(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user, first_name="=cmd|' /C calc'!A0")
    OrderFactory(
        org=org,
        contact=contact,
        title='=HYPERLINK("http://evil.example","x")',
        value=Decimal("12.50"),
        currency="EUR",
        external_id="@SUM(1+1)",
        note="-2+3",
    )
    OrderFactory(org=org, contact=contact, title="Pending one", status="pending")
    rows = _csv(client_as(admin).get(url("order_export"), {"status": "paid"}))
    assert len(rows) == 1
    (row,) = rows
    assert row["Title"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["External id"] == "'@SUM(1+1)"
    assert row["Contact first name"] == "'=cmd|' /C calc'!A0"
    assert row["Note"] == "'-2+3"
    assert row["Value"] == "12.50" and row["Currency"] == "EUR" and row["Status"] == "Paid"
    assert AuditEvent.objects.for_org(org).filter(verb="orders.exported").count() == 1


def test_export_needs_the_export_right(org, rep, client_as):
    OrderFactory(org=org, contact=ContactFactory(org=org, owner=rep.user))
    client = client_as(rep)  # Team role: view, create, edit; no export
    assert client.get(url("order_export")).status_code == 403
    assert url("order_export") not in body(client.get(url("order_list")))


def test_export_keeps_to_the_members_reach_and_field_rules(org, admin, client_as):
    from crm.permissions import ACTIONS
    from tests.factories import MembershipFactory, custom_role

    perms = {
        m: {"access": True, **dict.fromkeys(ACTIONS, True), "scope": "own"}
        for m in ("contacts", "pipeline")
    }
    exporter = MembershipFactory(
        org=org, role=custom_role(org, permissions=perms, field_rules={"email": "hidden"})
    )
    OrderFactory(org=org, contact=ContactFactory(org=org, owner=exporter.user), title="Mine")
    OrderFactory(org=org, contact=ContactFactory(org=org, owner=admin.user), title="Theirs")
    rows = _csv(client_as(exporter).get(url("order_export")))
    assert [r["Title"] for r in rows] == ["Mine"]
    assert "Contact email" not in rows[0]


# The order page --------------------------------------------------------------------------------


def test_the_order_page_shows_fields_links_and_history(org, admin, client_as):
    from crm.permissions import Policy
    from crm.services import Actor
    from pipeline.services.orders import order_change_status, order_create

    contact = ContactFactory(org=org, owner=admin.user, first_name="Ann", last_name="Lee")
    deal = DealFactory(org=org, contact=contact, owner=admin.user, title="Ann's deal")
    who = {"actor": Actor.for_user(admin.user), "policy": Policy(admin)}
    order = order_create(
        org=org,
        contact=contact,
        deal=deal,
        data={"title": "Course seat", "value": "300", "external_id": "C-1"},
        **who,
    )
    order_change_status(org=org, order=order, status="refunded", note="Asked by phone", **who)
    page = body(client_as(admin).get(detail(order)))
    assert "Course seat" in page and "300.00 EUR" in page and "C-1" in page
    assert reverse("contacts:contact_detail", args=[contact.public_id]) in page
    assert reverse("pipeline:deal_detail", args=[deal.public_id]) in page
    assert "Added as pending" in page
    assert "Pending → Refunded" in page and "Asked by phone" in page
    assert admin.user.display_name in page
    assert "not a payment system" in page
    assert 'data-confirm="Delete the order' in page


def test_contact_and_deal_are_links_only_when_in_reach(org, admin, rep, client_as):
    their_contact = ContactFactory(org=org, owner=admin.user, first_name="Zed")
    my_deal = DealFactory(org=org, contact=their_contact, owner=rep.user)
    order = OrderFactory(org=org, contact=their_contact, deal=my_deal)
    page = body(client_as(rep).get(detail(order)))
    assert reverse("pipeline:deal_detail", args=[my_deal.public_id]) in page
    assert reverse("contacts:contact_detail", args=[their_contact.public_id]) not in page
    assert "Zed" in page


def test_another_members_order_is_a_404_for_a_rep(org, admin, rep, client_as):
    order = OrderFactory(org=org, contact=ContactFactory(org=org, owner=admin.user))
    client = client_as(rep)
    for address in (detail(order), url("order_edit", order_public_id=order.public_id)):
        assert client.get(address).status_code == 404
    assert client.post(url("order_status", order_public_id=order.public_id)).status_code == 404
    # The Team role has no delete right: refused before any look-up, for any id alike.
    assert client.post(url("order_delete", order_public_id=order.public_id)).status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_another_organizations_order_is_a_404(org, client_as):
    other = _on(OrganizationFactory())
    order = OrderFactory(org=other)
    client = client_as(member(org, "owner"))
    assert client.get(detail(order)).status_code == 404
    assert client.post(url("order_delete", order_public_id=order.public_id)).status_code == 404
    assert (
        client.get(url("contact_orders", contact_public_id=order.contact.public_id)).status_code
        == 404
    )
    assert Order.objects.filter(pk=order.pk).exists()


def test_change_status_from_the_page_keeps_the_note(org, admin, client_as):
    order = OrderFactory(org=org, contact=ContactFactory(org=org), status="pending")
    client = client_as(admin)
    response = client.post(
        url("order_status", order_public_id=order.public_id),
        {"status": "canceled", "note": "Customer changed their mind"},
    )
    assert response.status_code == 302
    change = OrderStatusChange.objects.for_org(org).get(order=order)
    assert (change.from_status, change.to_status) == ("pending", "canceled")
    assert change.note == "Customer changed their mind" and change.changed_by == admin.user
    again = client.post(
        url("order_status", order_public_id=order.public_id), {"status": "canceled"}
    )
    assert again.status_code == 400
    assert "already canceled" in body(again)


def test_edit_from_the_page(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user)
    order = OrderFactory(org=org, contact=contact, title="Old", value=10, currency="EUR")
    client = client_as(admin)
    edit = url("order_edit", order_public_id=order.public_id)
    assert "Old" in body(client.get(edit))
    data = {
        "contact": contact.public_id,
        "deal": "",
        "title": "New title",
        "value": "12,5x",
        "currency": "EUR",
        "order_date": "2025-01-02",
        "paid_date": "",
        "external_id": "",
        "note": "",
    }
    response = client.post(edit, data)
    assert response.status_code == 200 and "Value must be a number." in body(response)
    order.refresh_from_db()
    assert order.title == "Old"
    response = client.post(edit, {**data, "value": "12.5"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.title, order.value, order.order_date) == (
        "New title",
        Decimal("12.50"),
        dt.date(2025, 1, 2),
    )


def test_delete_from_the_page(org, admin, client_as):
    order = OrderFactory(org=org, contact=ContactFactory(org=org))
    response = client_as(admin).post(url("order_delete", order_public_id=order.public_id))
    assert response.status_code == 302 and response["Location"] == url("order_list")
    assert not Order.objects.filter(pk=order.pk).exists()


# New order -------------------------------------------------------------------------------------


def test_new_order_from_a_contact(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user, first_name="Ann", last_name="Lee")
    client = client_as(admin)
    form_page = body(client.get(url("order_create"), {"contact": contact.public_id}))
    assert f'<option value="{contact.public_id}" selected>' in form_page
    assert reverse("contacts:contact_picker") in form_page
    response = client.post(
        url("order_create") + f"?contact={contact.public_id}",
        {"contact": contact.public_id, "title": "Seat", "value": "40", "currency": ""},
    )
    order = Order.objects.for_org(org).get()
    assert response.status_code == 302 and response["Location"] == detail(order)
    assert (order.contact, order.currency, order.status) == (contact, "EUR", "pending")


def test_new_order_from_a_deal_brings_its_contact(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user)
    deal = DealFactory(org=org, contact=contact, owner=admin.user, title="Renewal")
    client = client_as(admin)
    page = body(client.get(url("order_create"), {"deal": deal.public_id}))
    assert f'<option value="{contact.public_id}" selected>' in page
    assert f'<option value="{deal.public_id}" selected>' in page
    client.post(
        url("order_create"),
        {"contact": contact.public_id, "deal": deal.public_id, "title": "Seat", "value": "1"},
    )
    assert Order.objects.for_org(org).get().deal == deal


def test_new_order_errors_stay_on_the_form(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user)
    OrderFactory(org=org, contact=contact, title="Earlier", external_id="E-1")
    client = client_as(admin)
    response = client.post(
        url("order_create"),
        {"contact": contact.public_id, "title": "", "value": "1", "external_id": "E-1"},
    )
    page = body(response)
    assert response.status_code == 200
    assert "Give the order a title." in page
    assert "Earlier" in page and "E-1" in page
    response = client.post(url("order_create"), {"title": "No contact", "value": "1"})
    assert "Choose the contact who placed the order." in body(response)
    assert Order.objects.for_org(org).count() == 1


def test_a_forged_contact_id_is_not_found(org, rep, client_as):
    theirs = ContactFactory(org=org)
    stranger = ContactFactory(org=_on(OrganizationFactory()))
    client = client_as(rep)
    for contact in (theirs, stranger):
        response = client.post(
            url("order_create"), {"contact": contact.public_id, "title": "x", "value": "1"}
        )
        assert "Choose a contact from the list." in body(response)
    assert not Order.objects.exists()


def test_deal_options_follow_the_contact(org, admin, rep, client_as):
    contact = ContactFactory(org=org, owner=rep.user)
    mine = DealFactory(org=org, contact=contact, owner=rep.user, title="My deal")
    role_deal = DealFactory(org=org, owner=rep.user, title="Role deal")
    DealContact.objects.create(org=org, deal=role_deal, contact=contact, role="")
    DealFactory(org=org, contact=contact, owner=admin.user, title="Their deal")
    DealFactory(org=org, contact=contact, owner=rep.user, title="Old deal", is_archived=True)
    page = body(client_as(rep).get(url("order_deal_options"), {"contact": contact.public_id}))
    assert str(mine.public_id) in page and str(role_deal.public_id) in page
    assert "Their deal" not in page and "Old deal" not in page
    nothing = body(client_as(rep).get(url("order_deal_options"), {"contact": "junk"}))
    assert '<option value="">—</option>' in nothing


# Sections ----------------------------------------------------------------------------------------


def test_contact_section_shows_latest_orders_and_totals(shop, admin, client_as):
    response = client_as(admin, htmx=True).get(
        url("contact_orders", contact_public_id=shop["ann"].public_id)
    )
    page = body(response)
    assert response.status_code == 200 and "<html" not in page
    assert "Big EUR" in page and "Small EUR" in page and "Dollar order" not in page
    assert "1,000.00" in page and "paid 900.00" in page
    assert f"{url('order_create')}?contact={shop['ann'].public_id}" in page
    assert f"{url('order_list')}?contact={shop['ann'].public_id}" in page
    # Without JavaScript, the section is a page of its own.
    full = body(
        client_as(admin).get(url("contact_orders", contact_public_id=shop["ann"].public_id))
    )
    assert "<html" in full and "Big EUR" in full


def test_deal_section_shows_the_deals_orders(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user, first_name="Ann")
    deal = DealFactory(org=org, contact=contact, owner=admin.user)
    OrderFactory(org=org, contact=contact, deal=deal, title="On the deal")
    OrderFactory(org=org, contact=contact, title="Not on it")
    page = body(client_as(admin, htmx=True).get(url("deal_orders", deal_public_id=deal.public_id)))
    assert "On the deal" in page and "Not on it" not in page
    assert f"{url('order_create')}?deal={deal.public_id}" in page


def test_sections_of_records_out_of_reach_are_404s(org, admin, rep, client_as):
    contact = ContactFactory(org=org, owner=admin.user)
    deal = DealFactory(org=org, contact=contact, owner=admin.user)
    OrderFactory(org=org, contact=contact, deal=deal, title="Hidden order")
    client = client_as(rep, htmx=True)
    for address in (
        url("contact_orders", contact_public_id=contact.public_id),
        url("deal_orders", deal_public_id=deal.public_id),
    ):
        response = client.get(address)
        assert response.status_code == 404 and "Hidden order" not in body(response)


def test_odd_input_in_the_list_is_no_500(shop, admin, client_as):
    client = client_as(admin)
    for query in (
        {"q": "a\x00b"},
        {"q": "x" * 5000},
        {"value_min": "1e999999"},
        {"value_max": "NaN"},
        {"date_to": "2025-13-45"},
        {"sort": "<script>"},
        {"cursor": "forged"},
    ):
        assert client.get(url("order_list"), query).status_code < 500, query
        assert client.get(url("order_export"), query).status_code < 500, query


def test_the_list_costs_the_same_queries_for_5_or_40_orders(org, admin, client_as):
    contact = ContactFactory(org=org, owner=admin.user)
    client = client_as(admin)

    def queries_for_list():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("order_list")).status_code == 200
        return len(captured)

    OrderFactory.create_batch(5, org=org, contact=contact, deal=DealFactory(org=org))
    few = queries_for_list()
    for _ in range(35):
        OrderFactory(org=org, contact=ContactFactory(org=org), deal=DealFactory(org=org))
    assert queries_for_list() == few


def test_editing_keeps_a_deal_the_member_cannot_open(org, admin, rep, client_as):
    contact = ContactFactory(org=org, owner=rep.user)
    their_deal = DealFactory(org=org, contact=contact, owner=admin.user, title="Their secret")
    order = OrderFactory(org=org, contact=contact, deal=their_deal, title="Old", currency="EUR")
    client = client_as(rep)
    edit = url("order_edit", order_public_id=order.public_id)
    page = body(client.get(edit))
    assert "Their secret" not in page and "stays on a deal you can't open" in page
    response = client.post(
        edit,
        {
            "contact": contact.public_id,
            "title": "Renamed",
            "value": "5",
            "currency": "EUR",
            "order_date": "2025-02-01",
        },
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.title == "Renamed" and order.deal == their_deal
