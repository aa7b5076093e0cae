"""The orders registry's services and its record scope: create, edit, change status, delete
(validated by the one field checker, audited, emitting outbox events, with the status
history), the external id rule for manual orders, the contact and deal rules, and which
orders a member may see (contact in their contacts scope OR deal in their pipeline scope)."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from crm.models import AuditEvent, OutboxEvent
from crm.permissions import ACTIONS, Policy
from crm.services import Actor
from pipeline.models import DealContact, Order, OrderStatusChange
from pipeline.order_queries import visible_orders
from pipeline.services import orders as services
from tests.factories import (
    ContactFactory,
    DealFactory,
    MembershipFactory,
    OrderFactory,
    OrganizationFactory,
    TeamFactory,
    custom_role,
    member,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(db):
    org = OrganizationFactory(name="Acme Test", slug="acme-test", base_currency="EUR")
    org.enabled_modules = ["orders", "custom_objects"]
    org.save()
    return org


@pytest.fixture
def admin(org):
    return member(org, "admin")


@pytest.fixture
def rep(org):
    return member(org, "team")


def _as(membership):
    return {"actor": Actor.for_user(membership.user), "policy": Policy(membership)}


def _create(org, who, contact, deal=None, **data):
    return services.order_create(
        org=org,
        contact=contact,
        deal=deal,
        data={"title": "Annual plan", "value": "1200.50", **data},
        **_as(who),
    )


def _events(org, kind):
    return list(OutboxEvent.objects.for_org(org).filter(event_type=kind).order_by("id"))


def _audits(org, verb):
    return list(AuditEvent.objects.for_org(org).filter(verb=verb).order_by("id"))


# Create ----------------------------------------------------------------------------------------


def test_create_applies_the_defaults_records_history_audits_and_emits(org, admin):
    contact = ContactFactory(org=org, owner=admin.user)
    order = _create(org, admin, contact)

    assert order.value == Decimal("1200.50")
    assert order.currency == "EUR"  # the organization's base currency
    assert order.status == Order.Status.PENDING
    assert order.source == Order.Source.MANUAL
    assert order.order_date == timezone.localdate()
    assert order.created_by == admin.user
    (change,) = OrderStatusChange.objects.for_org(org).filter(order=order)
    assert (change.from_status, change.to_status) == ("", "pending")
    assert change.via == OrderStatusChange.Via.MEMBER and change.changed_by == admin.user
    (audit,) = _audits(org, "order.created")
    assert audit.object_id == str(order.public_id)
    assert audit.changes["value"] == [None, "1200.50"]
    (event,) = _events(org, "order.created")
    assert event.payload["order"] == str(order.public_id)
    assert event.payload["contact"] == str(contact.public_id)
    assert event.payload["value"] == "1200.50" and event.payload["currency"] == "EUR"


def test_bad_fields_are_field_errors_and_nothing_is_written(org, admin):
    contact = ContactFactory(org=org, owner=admin.user)
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, contact, title="", value="12,x", currency="EURO", order_date="31/01")
    errors = caught.value.message_dict
    assert set(errors) == {"title", "value", "currency", "order_date"}
    assert "YYYY-MM-DD" in errors["order_date"][0]
    assert not Order.objects.for_org(org).exists()
    assert not _audits(org, "order.created") and not _events(org, "order.created")


def test_a_negative_value_is_refused(org, admin):
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, ContactFactory(org=org), value="-5")
    assert "negative" in caught.value.message_dict["value"][0]


def test_an_unknown_status_word_is_refused_and_a_shop_spelling_accepted(org, admin):
    contact = ContactFactory(org=org)
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, contact, status="shipped")
    assert "status" in caught.value.message_dict
    assert _create(org, admin, contact, status="Cancelled").status == Order.Status.CANCELED


def test_a_manual_external_id_clash_names_the_existing_order(org, admin):
    contact = ContactFactory(org=org)
    first = _create(org, admin, contact, title="First order", external_id="INV-7")
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, contact, title="Second", external_id="INV-7")
    message = caught.value.message_dict["external_id"][0]
    assert "First order" in message and "INV-7" in message
    assert Order.objects.for_org(org).count() == 1
    # The same id from another source (a shop's webhook) is another order.
    OrderFactory(org=org, contact=contact, source=Order.Source.WEBHOOK, external_id="INV-7")
    assert first.external_id == "INV-7"


def test_a_clash_with_an_order_out_of_reach_does_not_show_its_title(org, admin, rep):
    theirs = ContactFactory(org=org, owner=admin.user)
    OrderFactory(org=org, contact=theirs, title="Secret order", external_id="X-1")
    mine = ContactFactory(org=org, owner=rep.user)
    with pytest.raises(ValidationError) as caught:
        _create(org, rep, mine, external_id="X-1")
    message = caught.value.message_dict["external_id"][0]
    assert "Secret order" not in message and "X-1" in message


def test_the_unique_constraint_race_is_a_field_error_not_a_500(org, admin, monkeypatch):
    contact = ContactFactory(org=org)
    _create(org, admin, contact, external_id="RACE-1")
    # As if the other request committed between our check and our insert.
    monkeypatch.setattr(services, "_check_external_id", lambda *args, **kwargs: None)
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, contact, external_id="RACE-1")
    assert "external id" in caught.value.message_dict["external_id"][0]
    assert Order.objects.for_org(org).count() == 1


def test_members_without_the_create_right_cannot_add_orders(org):
    contact = ContactFactory(org=org)
    for role_key in ("viewer", "support", "board"):
        with pytest.raises(PermissionDenied):
            _create(org, member(org, role_key), contact)
    assert not Order.objects.for_org(org).exists()


# Contact and deal ---------------------------------------------------------------------------


def test_the_deal_must_involve_the_contact(org, admin):
    ann, bob = ContactFactory(org=org), ContactFactory(org=org)
    deal = DealFactory(org=org, contact=bob, owner=admin.user)
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, ann, deal=deal)
    assert "does not involve" in caught.value.message_dict["deal"][0]
    DealContact.objects.create(org=org, deal=deal, contact=ann, role="")
    assert _create(org, admin, ann, deal=deal).deal == deal


def test_another_organizations_contact_or_deal_is_refused(org, admin):
    other = OrganizationFactory()
    stranger = ContactFactory(org=other)
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, stranger)
    assert "contact" in caught.value.message_dict
    contact = ContactFactory(org=org)
    foreign_deal = DealFactory(org=other, contact=ContactFactory(org=other))
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, contact, deal=foreign_deal)
    assert "deal" in caught.value.message_dict


def test_an_archived_deal_is_not_linked(org, admin):
    contact = ContactFactory(org=org)
    deal = DealFactory(org=org, contact=contact, is_archived=True)
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, contact, deal=deal)
    assert "archived" in caught.value.message_dict["deal"][0]


def test_a_rep_links_only_deals_and_contacts_they_may_see(org, admin, rep):
    mine = ContactFactory(org=org, owner=rep.user)
    theirs = ContactFactory(org=org, owner=admin.user)
    their_deal = DealFactory(org=org, contact=mine, owner=admin.user)
    with pytest.raises(ValidationError) as caught:
        _create(org, rep, mine, deal=their_deal)
    assert "deal" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        _create(org, rep, theirs)
    assert "contact" in caught.value.message_dict
    # Their contact on the rep's own deal: an order added from the deal's page.
    my_deal = DealFactory(org=org, contact=theirs, owner=rep.user)
    order = _create(org, rep, theirs, deal=my_deal)
    assert order.contact == theirs and order.deal == my_deal


# Edit, status, delete ------------------------------------------------------------------------


def test_update_audits_the_changes_and_a_status_in_the_data_is_a_status_change(org, admin):
    order = _create(org, admin, ContactFactory(org=org))
    services.order_update(
        org=org,
        order=order,
        data={"title": "Renamed", "value": "99", "status": "paid"},
        **_as(admin),
    )
    order.refresh_from_db()
    assert (order.title, order.value, order.status) == ("Renamed", Decimal("99.00"), "paid")
    (updated,) = _audits(org, "order.updated")
    assert updated.changes["title"] == ["Annual plan", "Renamed"]
    assert "status" not in updated.changes
    assert [e.payload["to_status"] for e in _events(org, "order.status_changed")] == ["paid"]
    statuses = OrderStatusChange.objects.for_org(org).filter(order=order).order_by("id")
    assert [(c.from_status, c.to_status) for c in statuses] == [
        ("", "pending"),
        ("pending", "paid"),
    ]


def test_an_update_with_a_bad_field_changes_nothing(org, admin):
    order = _create(org, admin, ContactFactory(org=org))
    with pytest.raises(ValidationError) as caught:
        services.order_update(
            org=org, order=order, data={"title": "Fine", "order_date": ""}, **_as(admin)
        )
    assert "order_date" in caught.value.message_dict
    order.refresh_from_db()
    assert order.title == "Annual plan"
    assert not _audits(org, "order.updated")


def test_an_integrations_external_id_cannot_be_changed_by_hand(org, admin):
    order = OrderFactory(org=org, source=Order.Source.WEBHOOK, external_id="shop-1")
    with pytest.raises(ValidationError) as caught:
        services.order_update(org=org, order=order, data={"external_id": "mine"}, **_as(admin))
    assert "sender" in caught.value.message_dict["external_id"][0]
    services.order_update(org=org, order=order, data={"note": "Gift wrap"}, **_as(admin))
    order.refresh_from_db()
    assert order.note == "Gift wrap" and order.external_id == "shop-1"


def test_status_change_keeps_the_note_sets_the_paid_date_audits_and_emits(org, admin):
    order = _create(org, admin, ContactFactory(org=org))
    services.order_change_status(
        org=org, order=order, status="paid", note="Bank transfer received", **_as(admin)
    )
    order.refresh_from_db()
    assert order.status == "paid" and order.paid_date == timezone.localdate()
    last = OrderStatusChange.objects.for_org(org).filter(order=order).latest("id")
    assert (last.from_status, last.to_status, last.note) == (
        "pending",
        "paid",
        "Bank transfer received",
    )
    assert last.changed_by == admin.user
    (audit,) = _audits(org, "order.status_changed")
    assert audit.changes["status"] == ["pending", "paid"]
    (event,) = _events(org, "order.status_changed")
    assert event.payload["from_status"] == "pending" and event.payload["note"]
    # Refunded is a note in the history; the paid date stays what it was.
    services.order_change_status(org=org, order=order, status="refunded", **_as(admin))
    order.refresh_from_db()
    assert order.status == "refunded" and order.paid_date == timezone.localdate()


def test_the_same_status_again_or_a_long_note_is_a_field_error(org, admin):
    order = _create(org, admin, ContactFactory(org=org))
    with pytest.raises(ValidationError) as caught:
        services.order_change_status(org=org, order=order, status="pending", **_as(admin))
    assert "already" in caught.value.message_dict["status"][0]
    with pytest.raises(ValidationError) as caught:
        services.order_change_status(
            org=org, order=order, status="paid", note="x" * 501, **_as(admin)
        )
    assert "note" in caught.value.message_dict
    assert OrderStatusChange.objects.for_org(org).filter(order=order).count() == 1


def test_delete_removes_the_order_and_its_history_audits_and_emits(org, admin):
    order = _create(org, admin, ContactFactory(org=org), title="Going away")
    services.order_delete(org=org, order=order, **_as(admin))
    assert not Order.objects.for_org(org).exists()
    assert not OrderStatusChange.objects.for_org(org).exists()
    (audit,) = _audits(org, "order.deleted")
    assert audit.object_repr == "Going away" and audit.object_id == str(order.public_id)
    (event,) = _events(org, "order.deleted")
    assert event.payload["order"] == str(order.public_id)


def test_rights_are_checked_for_edit_status_and_delete(org, admin):
    order = _create(org, admin, ContactFactory(org=org))
    viewer = member(org, "viewer")  # sees every order, changes none
    with pytest.raises(PermissionDenied):
        services.order_update(org=org, order=order, data={"title": "x"}, **_as(viewer))
    with pytest.raises(PermissionDenied):
        services.order_change_status(org=org, order=order, status="paid", **_as(viewer))
    rep = member(org, "team")  # may edit, not delete
    mine = _create(org, rep, ContactFactory(org=org, owner=rep.user))
    with pytest.raises(PermissionDenied):
        services.order_delete(org=org, order=mine, **_as(rep))
    assert Order.objects.for_org(org).count() == 2


def test_a_rep_cannot_touch_an_order_out_of_reach(org, admin, rep):
    order = _create(org, admin, ContactFactory(org=org, owner=admin.user))
    for call in (
        lambda: services.order_update(org=org, order=order, data={"title": "x"}, **_as(rep)),
        lambda: services.order_change_status(org=org, order=order, status="paid", **_as(rep)),
    ):
        with pytest.raises(PermissionDenied):
            call()
    order.refresh_from_db()
    assert order.title == "Annual plan" and order.status == "pending"


# Who sees which orders ------------------------------------------------------------------------


def test_own_scope_sees_orders_of_own_contacts_and_own_deals_only(org, admin, rep):
    mine = OrderFactory(org=org, contact=ContactFactory(org=org, owner=rep.user))
    their_contact = ContactFactory(org=org, owner=admin.user)
    on_my_deal = OrderFactory(
        org=org, contact=their_contact, deal=DealFactory(org=org, owner=rep.user)
    )
    theirs = OrderFactory(org=org, contact=their_contact)
    on_their_deal = OrderFactory(
        org=org, contact=their_contact, deal=DealFactory(org=org, owner=admin.user)
    )
    unclaimed = OrderFactory(org=org, contact=ContactFactory(org=org, owner=None))

    seen = set(visible_orders(org, Policy(rep)))
    assert seen == {mine, on_my_deal}
    assert set(visible_orders(org, Policy(admin))) == {
        mine,
        on_my_deal,
        theirs,
        on_their_deal,
        unclaimed,
    }


def test_team_scope_sees_the_teams_orders(org):
    team = TeamFactory(org=org)
    director = member(org, "director", team=team)
    mate = member(org, "team", team=team)
    outsider = member(org, "team")
    ours = OrderFactory(org=org, contact=ContactFactory(org=org, owner=mate.user))
    OrderFactory(org=org, contact=ContactFactory(org=org, owner=outsider.user))
    assert list(visible_orders(org, Policy(director))) == [ours]


def test_without_the_pipeline_view_right_no_order_is_visible(org):
    OrderFactory(org=org)
    assert not visible_orders(org, Policy(member(org, "support"))).exists()


def test_pipeline_scope_all_reaches_orders_with_a_deal_not_the_others(org, admin):
    perms = {
        "contacts": {"access": True, **dict.fromkeys(ACTIONS, True), "scope": "own"},
        "pipeline": {"access": True, **dict.fromkeys(ACTIONS, True), "scope": "all"},
    }
    deals_everywhere = MembershipFactory(org=org, role=custom_role(org, permissions=perms))
    their_contact = ContactFactory(org=org, owner=admin.user)
    on_a_deal = OrderFactory(
        org=org, contact=their_contact, deal=DealFactory(org=org, owner=admin.user)
    )
    OrderFactory(org=org, contact=their_contact)
    assert list(visible_orders(org, Policy(deals_everywhere))) == [on_a_deal]


def test_orders_of_an_archived_deal_stay_visible_to_its_owner(org, admin, rep):
    deal = DealFactory(org=org, owner=rep.user, is_archived=True)
    order = OrderFactory(org=org, contact=ContactFactory(org=org, owner=admin.user), deal=deal)
    assert list(visible_orders(org, Policy(rep))) == [order]


def test_order_dates_default_to_the_organizations_today(org, admin):
    org.timezone = "Pacific/Kiritimati"  # UTC+14: often a day ahead of UTC
    org.save()
    order = _create(org, admin, ContactFactory(org=org))
    kiritimati = dt.datetime.now(dt.UTC).astimezone(ZoneInfo("Pacific/Kiritimati"))
    assert order.order_date == kiritimati.date()


# Demo data -------------------------------------------------------------------------------------


def test_demo_orders_turn_the_module_on_follow_the_won_deals_and_are_added_once(db):
    import random

    from pipeline.demo_orders import seed_orders

    org = OrganizationFactory(base_currency="USD")
    org.enabled_modules = ["custom_objects"]
    org.save()
    owner = member(org, "admin")
    closed = timezone.now() - dt.timedelta(days=30)
    won = [
        DealFactory(
            org=org,
            contact=ContactFactory(org=org),
            owner=owner.user,
            status="won",
            closed_at=closed,
            value=Decimal("500.00"),
        )
        for _ in range(3)
    ]
    ContactFactory.create_batch(5, org=org)

    added = seed_orders(org, rng=random.Random(1))
    org.refresh_from_db()
    assert sorted(org.enabled_modules) == ["custom_objects", "orders"]
    orders = list(Order.objects.for_org(org))
    assert added == len(orders) == 3 + 30
    invoices = [o for o in orders if o.deal_id]
    assert {o.deal_id for o in invoices} == {d.pk for d in won}
    assert all(o.status == "paid" and o.contact_id == o.deal.contact_id for o in invoices)
    for order in orders:
        steps = list(OrderStatusChange.objects.for_org(org).filter(order=order).order_by("id"))
        assert steps[0].from_status == "" and steps[-1].to_status == order.status
    assert seed_orders(org, rng=random.Random(1)) == 0
    assert Order.objects.for_org(org).count() == 33
