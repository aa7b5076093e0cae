"""The batch write behind the inbound order URL (and the API later): upsert_orders, and two
senders racing with the same new external id."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact
from crm import rls
from crm.services import Actor
from pipeline.models import Order, OrderStatusChange
from pipeline.services.order_upsert import MAX_ITEMS, upsert_orders
from tests.factories import ContactFactory, OrganizationFactory, member

from .inbound_helpers import enable_orders, make_inbound, order, post_orders


def _upsert(org, items, **kwargs):
    options = {
        "source": Order.Source.WEBHOOK,
        "via": OrderStatusChange.Via.WEBHOOK,
        "actor": Actor.system("test"),
        "create_contacts": False,
    }
    options.update(kwargs)
    with transaction.atomic(), rls.tenant(org.pk):
        return upsert_orders(org=org, items=items, **options)


@pytest.mark.django_db
def test_a_batch_costs_a_fixed_number_of_queries_whatever_its_size(org):
    for n in range(40):
        ContactFactory(org=org, email=f"c{n}@example.com")

    def batch(size, status):
        return [order(str(n), email=f"c{n % 40}@example.com", status=status) for n in range(size)]

    with CaptureQueriesContext(connection) as small:
        _upsert(org, batch(10, "pending"))
    with CaptureQueriesContext(connection) as large:
        _upsert(org, batch(400, "pending"))
    with CaptureQueriesContext(connection) as update:
        _upsert(org, batch(400, "paid"))

    assert len(large) == len(small)
    assert len(update) <= len(small) + 1
    assert Order.objects.for_org(org).count() == 400
    assert OrderStatusChange.objects.for_org(org).count() == 800


@pytest.mark.django_db
def test_the_members_user_is_recorded_as_creator_and_changer(org):
    admin = member(org, "admin")
    ContactFactory(org=org, email="ann@example.com")
    actor = Actor.for_user(admin.user)

    _upsert(org, [order("1", status="pending")], actor=actor, via="api", source="api")
    _upsert(org, [order("1", status="paid")], actor=actor, via="api", source="api")

    saved = Order.objects.for_org(org).get()
    assert saved.created_by == admin.user and saved.source == "api"
    changes = OrderStatusChange.objects.for_org(org).order_by("id")
    assert [(c.via, c.changed_by_id) for c in changes] == [("api", admin.user_id)] * 2


@pytest.mark.django_db
def test_without_an_external_id_an_api_order_is_always_new(org):
    ContactFactory(org=org, email="ann@example.com")
    item = {k: v for k, v in order("x").items() if k != "external_id"}

    _upsert(org, [item, item], source="api", via="api")

    assert Order.objects.for_org(org).count() == 2


@pytest.mark.django_db
def test_a_webhook_order_needs_an_external_id(org):
    ContactFactory(org=org, email="ann@example.com")
    item = {k: v for k, v in order("x").items() if k != "external_id"}

    result = _upsert(org, [item])

    assert result.items[0].status == "failed"
    assert set(result.items[0].errors) == {"external_id"}


@pytest.mark.django_db
def test_external_ids_are_per_source(org):
    ContactFactory(org=org, email="ann@example.com")

    _upsert(org, [order("1")])
    _upsert(org, [order("1")], source="api", via="api")

    assert sorted(Order.objects.for_org(org).values_list("source", flat=True)) == ["api", "webhook"]


@pytest.mark.django_db
def test_too_many_items_are_refused_before_any_work(org):
    with pytest.raises(ValueError):
        _upsert(org, [order(str(n)) for n in range(MAX_ITEMS + 1)])


@pytest.mark.django_db
def test_an_order_moves_to_the_contact_of_a_new_email(org):
    ContactFactory(org=org, email="ann@example.com")
    bob = ContactFactory(org=org, email="bob@example.com")
    _upsert(org, [order("1")])

    result = _upsert(org, [order("1", email="bob@example.com")])

    assert result.items[0].status == "updated"
    assert Order.objects.for_org(org).get().contact == bob


# Two senders at once ----------------------------------------------------------------------


def _in_threads(*targets, timeout=30):
    errors = []

    def run(target):
        try:
            target()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_a_batch_waiting_on_the_same_new_external_id_updates_instead_of_duplicating():
    org = OrganizationFactory()
    ContactFactory(org=org, email="ann@example.com")
    first_done, release = threading.Event(), threading.Event()
    results = {}

    def first():
        with transaction.atomic(), rls.tenant(org.pk):
            results["first"] = upsert_orders(
                org=org,
                items=[order("1", status="pending")],
                source="webhook",
                via="webhook",
                actor=Actor.system("test"),
                create_contacts=False,
            )
            first_done.set()
            release.wait(10)  # holds its uncommitted row until the second one waits on it

    def second():
        first_done.wait(10)
        results["second"] = _upsert(org, [order("1", status="paid"), order("2")])

    def referee():
        first_done.wait(10)
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
        results["second_waited"] = _waiting_on_a_lock()
        release.set()

    _in_threads(first, second, referee)

    assert results["second_waited"]
    assert [i.status for i in results["first"].items] == ["created"]
    assert [i.status for i in results["second"].items] == ["updated", "created"]
    assert results["second"].items[0].id == results["first"].items[0].id
    saved = Order.objects.all_orgs().get(external_id="1")
    assert saved.status == "paid"
    changes = OrderStatusChange.objects.all_orgs().filter(order=saved).order_by("id")
    assert [(c.from_status, c.to_status) for c in changes] == [("", "pending"), ("pending", "paid")]


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_requests_with_the_same_new_order_make_one_row():
    org = OrganizationFactory()
    enable_orders(org)
    inbound = make_inbound(org, create_contacts=True)
    rounds, statuses = 5, []
    for n in range(rounds):
        barrier = threading.Barrier(2)
        answers = []

        def send(n=n, barrier=barrier, answers=answers):
            client = Client()
            barrier.wait(timeout=10)
            answers.append(
                post_orders(inbound, order(f"race-{n}", email=f"new{n}@x.test"), client=client)
            )

        _in_threads(send, send)
        assert [a.status_code for a in answers] == [200, 200], [a.content for a in answers]
        statuses.append(sorted(a.json()["results"][0]["status"] for a in answers))

    assert Order.objects.all_orgs().count() == rounds
    assert Contact.objects.all_orgs().count() == rounds
    assert statuses == [["created", "unchanged"]] * rounds
    assert OrderStatusChange.objects.all_orgs().count() == rounds
