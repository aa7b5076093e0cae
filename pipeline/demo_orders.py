"""Demo orders for `manage.py seed_demo` (registered through pipeline/demo.py, after the demo
deals, which it builds on).

Acme gets the orders module turned on and about ninety orders: an invoice for each won deal
(paid, on the deal, for its contact, entered by the deal's owner) and a shop's orders from the
inbound webhook for other contacts, in every status, with their status histories. Added once:
an organization that has orders keeps them.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from contacts.models import Contact
from crm import demo
from crm.models import Organization
from crm.selectors import org_timezone

from .models import Deal, Order, OrderStatusChange

SEED = 15
INVOICES = 60
SHOP_ORDERS = 30
# A shop's orders end in these statuses, this often.
SHOP_ENDINGS = [
    (Order.Status.PAID, 12),
    (Order.Status.PENDING, 4),
    (Order.Status.REFUNDED, 3),
    (Order.Status.CANCELED, 3),
    (Order.Status.FAILED, 2),
    (Order.Status.OVERDUE, 2),
    (Order.Status.PARTIALLY_PAID, 2),
]
SHOP_ITEMS = ["Starter kit", "Onboarding workshop", "Extra seats", "Training day", "Add-on pack"]
NOTES = {
    Order.Status.REFUNDED: "Refunded in the shop at the customer's request.",
    Order.Status.CANCELED: "Canceled before shipping.",
    Order.Status.FAILED: "Card declined.",
}


def turn_on(org) -> None:
    """The orders module on, whatever else the organization has on."""
    if "orders" not in (org.enabled_modules or []):
        org.enabled_modules = [*(org.enabled_modules or []), "orders"]
        Organization.objects.filter(pk=org.pk).update(enabled_modules=org.enabled_modules)


def _moment(day: dt.date, tz, rng: random.Random) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(9 + rng.randrange(8), rng.randrange(60)), tz)


def seed_orders(org, *, rng: random.Random, now=None) -> int:
    """The org's demo orders (see the module docstring); how many were added."""
    turn_on(org)
    if Order.objects.for_org(org).exists():
        return 0
    now = now or timezone.now()
    tz = org_timezone(org)
    today = now.astimezone(tz).date()
    plans: list[tuple[Order, list[tuple[str, str, dt.date, object, str]]]] = []
    won = (
        Deal.objects.for_org(org)
        .filter(status=Deal.Status.WON, contact__isnull=False, closed_at__isnull=False)
        .order_by("closed_at", "id")[:INVOICES]
    )
    for n, deal in enumerate(won, 1):
        ordered = deal.closed_at.astimezone(tz).date()
        paid = min(ordered + dt.timedelta(days=rng.randrange(1, 25)), today)
        order = Order(
            org=org,
            contact_id=deal.contact_id,
            deal=deal,
            title=f"Invoice {n:04d}: {deal.title}"[:200],
            value=deal.value,
            currency=deal.currency,
            status=Order.Status.PAID,
            order_date=ordered,
            paid_date=paid,
            external_id=f"INV-{n:04d}",
            created_by_id=deal.owner_id,
        )
        steps = [
            ("", Order.Status.PENDING, ordered, deal.owner_id, ""),
            (Order.Status.PENDING, Order.Status.PAID, paid, deal.owner_id, ""),
        ]
        plans.append((order, steps))
    buyers = list(
        Contact.objects.for_org(org)
        .filter(is_archived=False)
        .order_by("id")
        .values_list("pk", flat=True)[:400]
    )
    endings = [status for status, weight in SHOP_ENDINGS for _ in range(weight)]
    for n in range(SHOP_ORDERS if buyers else 0):
        ordered = today - dt.timedelta(days=rng.randrange(1, 150))
        ending = rng.choice(endings)
        order = Order(
            org=org,
            contact_id=rng.choice(buyers),
            title=rng.choice(SHOP_ITEMS),
            value=Decimal(rng.randrange(2900, 99900)) / 100,
            currency=org.base_currency if rng.random() < 0.8 else "EUR",
            status=ending,
            order_date=ordered,
            source=Order.Source.WEBHOOK,
            external_id=f"shop-{10001 + n}",
        )
        steps = [("", Order.Status.PENDING, ordered, None, "")]
        later = min(ordered + dt.timedelta(days=rng.randrange(0, 10)), today)
        if ending in (Order.Status.PAID, Order.Status.REFUNDED):
            steps.append((Order.Status.PENDING, Order.Status.PAID, later, None, ""))
            order.paid_date = later
            if ending == Order.Status.REFUNDED:
                back = min(later + dt.timedelta(days=rng.randrange(2, 20)), today)
                steps.append((Order.Status.PAID, ending, back, None, NOTES[ending]))
        elif ending != Order.Status.PENDING:
            steps.append((Order.Status.PENDING, ending, later, None, NOTES.get(ending, "")))
        plans.append((order, steps))
    Order.objects.for_org(org).bulk_create([order for order, _steps in plans])
    history = []
    for order, steps in plans:
        via = (
            OrderStatusChange.Via.WEBHOOK
            if order.source == Order.Source.WEBHOOK
            else OrderStatusChange.Via.MEMBER
        )
        history += [
            OrderStatusChange(
                org=org,
                order=order,
                from_status=before,
                to_status=after,
                via=via,
                changed_by_id=user_id,
                changed_at=_moment(day, tz, rng),
                note=note,
            )
            for before, after, day, user_id, note in steps
        ]
    OrderStatusChange.objects.for_org(org).bulk_create(history)
    return len(plans)


@demo.register
def seed_order_demo(command, orgs, options) -> None:
    """Acme's orders: invoices for its won deals and a shop's orders, module on."""
    acme = orgs[0]
    with transaction.atomic():
        added = seed_orders(acme, rng=random.Random(SEED))
    if added:
        command.stdout.write(f"Acme: {added} orders, with their status histories (orders on)")
