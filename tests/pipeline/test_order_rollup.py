"""The order rollup (pipeline.models.OrderRollup, migration 0005): database triggers keep, per
contact, the count and total of its orders by status and currency, whatever writes the
orders (the ORM one by one, bulk_create, a queryset update or delete, a cascade from the
contact, raw SQL), and it always equals what the orders add up to."""

import random
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import connection

from contacts.models import Contact
from pipeline.models import Order, OrderRollup
from tests.factories import ContactFactory, OrderFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

STATUSES = [s for s, _ in Order.Status.choices]


def expected(org) -> dict:
    """The rollup rows, computed from the orders here in Python."""
    rows: dict = defaultdict(lambda: [0, Decimal("0.00")])
    for contact_id, status, currency, value in Order.objects.for_org(org).values_list(
        "contact_id", "status", "currency", "value"
    ):
        for key, money in (
            ((contact_id, status, currency), value),
            ((contact_id, status, ""), 0),
            ((contact_id, "", ""), 0),
        ):
            rows[key][0] += 1
            rows[key][1] += money
    return {key: (count, total) for key, (count, total) in rows.items()}


def stored(org) -> dict:
    return {
        (r.contact_id, r.status, r.currency): (r.order_count, r.total)
        for r in OrderRollup.objects.for_org(org)
    }


def test_each_order_counts_at_three_levels_and_totals_only_within_a_currency():
    org = OrganizationFactory()
    ann = ContactFactory(org=org)
    OrderFactory(org=org, contact=ann, value=100, currency="EUR", status="paid")
    OrderFactory(org=org, contact=ann, value="20.50", currency="EUR", status="paid")
    OrderFactory(org=org, contact=ann, value=7, currency="USD", status="paid")
    OrderFactory(org=org, contact=ann, value=9, currency="EUR", status="refunded")

    assert stored(org) == {
        (ann.pk, "paid", "EUR"): (2, Decimal("120.50")),
        (ann.pk, "paid", "USD"): (1, Decimal("7.00")),
        (ann.pk, "refunded", "EUR"): (1, Decimal("9.00")),
        (ann.pk, "paid", ""): (3, Decimal("0.00")),
        (ann.pk, "refunded", ""): (1, Decimal("0.00")),
        (ann.pk, "", ""): (4, Decimal("0.00")),
    }


def test_changes_of_status_currency_value_and_contact_move_the_figures():
    org = OrganizationFactory()
    ann, bob = ContactFactory.create_batch(2, org=org)
    order = OrderFactory(org=org, contact=ann, value=50, currency="EUR", status="pending")

    order.status = "paid"
    order.save()
    assert stored(org)[(ann.pk, "paid", "EUR")] == (1, Decimal("50.00"))
    assert (ann.pk, "pending", "EUR") not in stored(org)

    Order.objects.for_org(org).filter(pk=order.pk).update(value=Decimal("75.25"), currency="USD")
    assert stored(org)[(ann.pk, "paid", "USD")] == (1, Decimal("75.25"))
    assert (ann.pk, "paid", "EUR") not in stored(org)

    Order.objects.for_org(org).filter(pk=order.pk).update(contact=bob)
    assert {key[0] for key in stored(org)} == {bob.pk}
    assert stored(org) == expected(org)

    # A change of nothing the rollup reads leaves its rows as they were.
    before = {r.pk: r.total for r in OrderRollup.objects.for_org(org)}
    Order.objects.for_org(org).filter(pk=order.pk).update(title="Renamed", note="n")
    assert {r.pk: r.total for r in OrderRollup.objects.for_org(org)} == before


def test_deleting_orders_or_their_contact_removes_the_rows_that_fall_to_zero():
    org = OrganizationFactory()
    ann, bob = ContactFactory.create_batch(2, org=org)
    first = OrderFactory(org=org, contact=ann, status="paid")
    OrderFactory(org=org, contact=ann, status="refunded")
    OrderFactory.create_batch(3, org=org, contact=bob)

    first.delete()
    assert (ann.pk, "paid", "USD") not in stored(org)
    assert stored(org)[(ann.pk, "", "")] == (1, Decimal("0.00"))

    Contact.objects.for_org(org).filter(pk=bob.pk).delete()
    assert {key[0] for key in stored(org)} == {ann.pk}
    Order.objects.for_org(org).delete()
    assert stored(org) == {}


def test_bulk_writes_and_raw_sql_are_rolled_up_in_one_statement():
    org = OrganizationFactory()
    contacts = ContactFactory.create_batch(5, org=org)
    Order.objects.bulk_create(
        [
            Order(
                org=org,
                contact=contacts[i % 5],
                title=f"o{i}",
                value=Decimal(i),
                currency="EUR" if i % 3 else "GBP",
                status=STATUSES[i % len(STATUSES)],
                order_date="2026-01-01",
            )
            for i in range(200)
        ]
    )
    assert stored(org) == expected(org)

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pipeline_order SET status = 'paid', value = value + 1 "
            "WHERE org_id = %s AND status IN ('pending', 'overdue')",
            [org.pk],
        )
        cursor.execute(
            "DELETE FROM pipeline_order WHERE org_id = %s AND currency = 'GBP'", [org.pk]
        )
    assert stored(org) == expected(org)


def test_random_writes_always_leave_the_rollup_equal_to_the_orders():
    rng = random.Random(15)
    org, other = OrganizationFactory(), OrganizationFactory()
    contacts = ContactFactory.create_batch(6, org=org)
    OrderFactory.create_batch(4, org=other)
    other_rows = stored(other)
    for step in range(120):
        orders = list(Order.objects.for_org(org))
        action = rng.random()
        if action < 0.45 or not orders:
            OrderFactory(
                org=org,
                contact=rng.choice(contacts),
                value=Decimal(rng.randint(0, 100_000)) / 100,
                currency=rng.choice(["EUR", "USD"]),
                status=rng.choice(STATUSES),
            )
        elif action < 0.85:
            order = rng.choice(orders)
            setattr(
                order,
                *rng.choice(
                    [
                        ("status", rng.choice(STATUSES)),
                        ("currency", rng.choice(["EUR", "USD"])),
                        ("value", Decimal(rng.randint(0, 5000))),
                        ("contact", rng.choice(contacts)),
                    ]
                ),
            )
            order.save()
        else:
            rng.choice(orders).delete()
        if step % 20 == 19:
            assert stored(org) == expected(org)
    assert stored(org) == expected(org)
    assert stored(other) == other_rows == expected(other)


def test_the_triggers_write_under_row_level_security_as_the_app_role():
    from django.db import transaction

    from crm import rls

    org, other = OrganizationFactory(), OrganizationFactory()
    ann = ContactFactory(org=org)
    OrderFactory(org=other)
    with transaction.atomic(), rls.tenant(org.pk):
        order = OrderFactory(org=org, contact=ann, value=10, currency="EUR")
        Order.objects.for_org(org).filter(pk=order.pk).update(status="refunded")
        OrderFactory(org=org, contact=ann, value=5, currency="EUR")
        # The app role sees its own organization's rows only, and all of them.
        assert OrderRollup.objects.all_orgs().count() == len(expected(org)) == 5
    assert stored(org) == expected(org)
    assert stored(other) == expected(other)
