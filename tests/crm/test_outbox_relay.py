"""The outbox relay (crm.outbox): events reach the consumers registered for them in order per
organization, at least once and once per consumer, with backoff, without two relays
delivering the same event; the first consumer tells members about contacts given to them;
/healthz shows staff how far behind the relay is."""

import datetime as dt
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from contacts import services
from crm import outbox
from crm.models import Notification, OutboxDelivery, OutboxEvent
from crm.permissions import Policy
from crm.services import Actor
from crm.tasks import relay_outbox_task
from tests.factories import (
    ContactFactory,
    OrganizationFactory,
    OutboxEventFactory,
    UserFactory,
    member,
)

pytestmark = pytest.mark.django_db

SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def consumers(monkeypatch):
    """A registry of the test's own consumers only: the apps' consumers are left out."""
    registry = outbox.Registry()
    monkeypatch.setattr(outbox, "registry", registry)
    return registry


class Recorder:
    """A consumer that notes each call as (org id, [event ids]). It raises on a call for
    which `fails(events)` is true, `failures` times in all."""

    def __init__(self, fails=lambda events: True, failures=0):
        self.calls = []
        self.fails, self.failures = fails, failures

    def __call__(self, org, events):
        self.calls.append((org.id, [event.id for event in events]))
        if self.failures and self.fails(events):
            self.failures -= 1
            raise RuntimeError("boom")


def register(name, handler, events=("contact.created",), batch_size=1):
    outbox.consumer(name, events=set(events), batch_size=batch_size)(handler)
    return handler


def event(org, event_type="contact.created", **payload):
    return OutboxEventFactory(org=org, event_type=event_type, payload=payload)


def delivery(event_, name):
    return OutboxDelivery.objects.get(event=event_, consumer=name)


def settle_existing_events():
    """Events written while the fixtures were built are not this test's business."""
    OutboxEvent.objects.all_orgs().update(processed_at=timezone.now())


# Registering -------------------------------------------------------------------------------


def test_two_consumers_under_one_name_are_refused(consumers):
    register("test.same", Recorder())

    with pytest.raises(ImproperlyConfigured, match=r"test\.same"):
        register("test.same", Recorder())


@pytest.mark.parametrize(
    "events", ["contact.created", set(), {"contact*"}, {"*.created"}], ids=repr
)
def test_a_consumer_needs_event_types_or_dotted_prefixes(consumers, events):
    with pytest.raises((TypeError, ValueError)):
        outbox.consumer("test.bad", events=events)(Recorder())
    assert consumers.names() == []


# Order, batches, processed ------------------------------------------------------------------


def test_a_consumer_gets_its_event_types_in_order_per_organization(consumers, org, other_org):
    settle_existing_events()
    seen = register("test.seen", Recorder(), ["contact.owner_changed", "deal.*"], batch_size=10)
    a1 = event(org, "contact.owner_changed")
    b1 = event(other_org, "deal.won")
    event(org, "contact.created")
    event(org, "deals.imported")
    a2 = event(org, "deal.stage_changed")
    b2 = event(other_org, "contact.owner_changed")

    assert outbox.relay_once() == 6

    assert seen.calls == [(org.id, [a1.id, a2.id]), (other_org.id, [b1.id, b2.id])]


def test_an_event_is_processed_once_every_consumer_is_done_with_it(consumers, org):
    settle_existing_events()
    first = register("test.first", Recorder())
    second = register("test.second", Recorder())
    wanted = event(org, "contact.created")
    unwanted = event(org, "tag.created")

    outbox.relay_once()

    wanted.refresh_from_db()
    unwanted.refresh_from_db()
    assert wanted.processed_at is not None and unwanted.processed_at is not None
    assert {(d.consumer, d.attempts) for d in OutboxDelivery.objects.filter(event=wanted)} == {
        ("test.first", 1),
        ("test.second", 1),
    }
    assert all(d.processed_at for d in OutboxDelivery.objects.filter(event=wanted))
    assert not OutboxDelivery.objects.filter(event=unwanted).exists()
    assert outbox.relay_once() == 0
    assert len(first.calls) == len(second.calls) == 1


def test_a_pass_claims_at_most_its_limit(consumers, org, other_org):
    settle_existing_events()
    seen = register("test.seen", Recorder(), batch_size=100)
    events = [event(org if n % 2 else other_org) for n in range(5)]

    assert outbox.relay_once(limit=3) == 3
    assert OutboxEvent.objects.all_orgs().filter(processed_at__isnull=True).count() == 2
    assert outbox.relay_once(limit=3) == 2
    assert sorted(i for _, ids in seen.calls for i in ids) == [e.id for e in events]


# Failures: retries, backoff, order ------------------------------------------------------------


def test_a_failing_consumer_is_retried_without_running_the_others_again(consumers, org):
    settle_existing_events()
    steady = register("test.steady", Recorder())
    flaky = register("test.flaky", Recorder(failures=1))
    created = event(org)
    now = timezone.now()

    outbox.relay_once(now=now)

    created.refresh_from_db()
    assert created.processed_at is None
    assert created.next_attempt_at == now + 5 * SECOND
    failed = delivery(created, "test.flaky")
    assert (failed.attempts, failed.processed_at) == (1, None)
    assert failed.next_attempt_at == now + 5 * SECOND
    assert failed.last_error == "RuntimeError: boom"
    assert delivery(created, "test.steady").processed_at is not None

    assert outbox.relay_once(now=now + SECOND) == 0
    assert len(flaky.calls) == 1

    outbox.relay_once(now=now + 6 * SECOND)

    assert len(flaky.calls) == 2 and len(steady.calls) == 1
    created.refresh_from_db()
    assert created.processed_at is not None
    retried = delivery(created, "test.flaky")
    assert (retried.attempts, retried.next_attempt_at) == (2, None)
    assert retried.processed_at is not None


def test_retries_back_off_and_give_up_after_max_attempts(consumers, org, caplog):
    settle_existing_events()
    broken = register("test.broken", Recorder(failures=100))
    created = event(org)
    now, waits = timezone.now(), []

    for _ in range(outbox.MAX_ATTEMPTS):
        outbox.relay_once(now=now)
        state = delivery(created, "test.broken")
        if state.next_attempt_at:
            waits.append((state.next_attempt_at - now).total_seconds())
            now = state.next_attempt_at

    assert waits == [5, 10, 20, 40, 80, 160, 320, 600, 600]
    assert len(broken.calls) == outbox.MAX_ATTEMPTS
    state = delivery(created, "test.broken")
    assert state.gave_up_at is not None and state.attempts == outbox.MAX_ATTEMPTS
    created.refresh_from_db()
    assert created.processed_at is not None
    assert "test.broken gave up on event" in caplog.text
    assert outbox.relay_once(now=now + dt.timedelta(hours=1)) == 0


def test_a_failure_holds_back_that_consumers_later_events_of_its_organization_only(
    consumers, org, other_org
):
    settle_existing_events()
    poisoned = event(org, poison=True)
    later = event(org)
    elsewhere = event(other_org)
    picky = register("test.picky", Recorder(lambda es: es[0].payload.get("poison"), failures=1))
    steady = register("test.steady", Recorder())
    now = timezone.now()

    outbox.relay_once(now=now)

    assert picky.calls == [(org.id, [poisoned.id]), (other_org.id, [elsewhere.id])]
    assert [ids for _, ids in steady.calls] == [[poisoned.id], [later.id], [elsewhere.id]]
    later.refresh_from_db()
    elsewhere.refresh_from_db()
    assert later.processed_at is None and later.next_attempt_at == now + 5 * SECOND
    assert elsewhere.processed_at is not None

    # A new event of the organization waits behind the failed one as well.
    newer = event(org)
    outbox.relay_once(now=now + SECOND)

    assert len(picky.calls) == 2
    assert steady.calls[-1] == (org.id, [newer.id])
    newer.refresh_from_db()
    assert newer.processed_at is None and newer.next_attempt_at == now + 5 * SECOND

    outbox.relay_once(now=now + 6 * SECOND)

    assert picky.calls[2:] == [(org.id, [poisoned.id]), (org.id, [later.id]), (org.id, [newer.id])]
    assert len(steady.calls) == 4
    assert not OutboxEvent.objects.all_orgs().filter(processed_at__isnull=True).exists()


def test_a_batch_that_failed_is_retried_one_event_at_a_time(consumers, org):
    settle_existing_events()
    e1, e2, e3 = event(org), event(org), event(org)
    batched = register(
        "test.batched",
        Recorder(lambda es: e2.id in [e.id for e in es], failures=2),
        batch_size=10,
    )
    now = timezone.now()

    outbox.relay_once(now=now)
    outbox.relay_once(now=now + 5 * SECOND)
    outbox.relay_once(now=now + 15 * SECOND)

    assert [ids for _, ids in batched.calls] == [
        [e1.id, e2.id, e3.id],  # fails: all three are retried
        [e1.id],
        [e2.id],  # fails again: e3 waits for it
        [e2.id],
        [e3.id],
    ]
    assert [delivery(e, "test.batched").attempts for e in (e1, e2, e3)] == [2, 3, 2]


def test_the_celery_task_runs_the_relay(consumers, org):
    settle_existing_events()
    seen = register("test.seen", Recorder())
    created = event(org)

    assert relay_outbox_task.apply().get() == 1

    assert seen.calls == [(org.id, [created.id])]


# Two relays at once --------------------------------------------------------------------------


def _in_thread(target):
    def run():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_two_relays_at_once_deliver_each_event_once_and_in_order(consumers):
    orgs = [OrganizationFactory() for _ in range(3)]
    settle_existing_events()
    events = [event(orgs[n % 3]) for n in range(60)]
    delivered, lock = [], threading.Lock()

    def slow(org, batch):
        time.sleep(0.02)  # long enough for the other relay to try the same organization
        with lock:
            delivered.append((threading.current_thread().name, org.id, [e.id for e in batch]))

    register("test.slow", slow, batch_size=4)
    start = threading.Barrier(2)

    def relay():
        start.wait()
        deadline = time.monotonic() + 20
        # A pass that finds every due organization held by the other relay claims nothing:
        # go on until the outbox is empty.
        while time.monotonic() < deadline:
            if not outbox.relay_once(limit=4) and not (
                OutboxEvent.objects.all_orgs().filter(processed_at__isnull=True).exists()
            ):
                return
            time.sleep(0.005)

    threads = [_in_thread(relay), _in_thread(relay)]
    for thread in threads:
        thread.join(30)

    ids = [i for _, _, batch in delivered for i in batch]
    assert sorted(ids) == [e.id for e in events]  # each once
    for org in orgs:
        in_order = [i for _, org_id, batch in delivered if org_id == org.id for i in batch]
        assert in_order == sorted(in_order)
    assert {thread for thread, _, _ in delivered} == {t.name for t in threads}  # both worked
    assert not OutboxEvent.objects.all_orgs().filter(processed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_relay_skips_an_organization_another_holds_and_goes_on_with_the_others(consumers):
    held_org, free_org = OrganizationFactory(), OrganizationFactory()
    settle_existing_events()
    first, elsewhere = event(held_org), event(free_org)
    entered, release = threading.Event(), threading.Event()
    calls = []

    def gated(org, batch):
        calls.append((org.id, [e.id for e in batch]))
        if org.id == held_org.id and not release.is_set():
            entered.set()
            release.wait(10)

    register("test.gated", gated)
    holder = _in_thread(lambda: outbox.relay_once(limit=1))
    assert entered.wait(10)
    second = event(held_org)

    # The held organization's new event is left to its holder; the other goes ahead.
    assert outbox.relay_once() == 1
    assert calls == [(held_org.id, [first.id]), (free_org.id, [elsewhere.id])]

    release.set()
    holder.join(10)
    assert outbox.relay_once() == 1
    assert calls[-1] == (held_org.id, [second.id])
    assert OutboxDelivery.objects.all_orgs().filter(event=first).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_task_relays_under_the_workers_row_level_security_guard(org, members):
    """A worker's task starts with no organization: the relay must say where it works (the
    claim as an audited bypass, each consumer inside its organization) or fail loudly."""
    admin, rep = members["admin"], members["team"]
    contact = ContactFactory(org=org, owner=None, first_name="Ada", last_name="Lovelace")
    services.contact_assign_owner(
        contact=contact, actor=Actor.for_user(admin.user), owner=rep.user, policy=Policy(admin)
    )

    assert relay_outbox_task.apply().get() >= 1

    assert [n.title for n in _notes(org, rep.user)] == [
        f"{admin.user.display_name} assigned you Ada Lovelace"
    ]
    assert outbox.lag()["pending"] == 0


# The first consumer: owners hear about contacts given to them ----------------------------------


def _notes(org, user):
    return list(Notification.objects.for_org(org).filter(user=user).order_by("id"))


def test_a_member_hears_once_when_an_admin_assigns_them_a_contact(org, members):
    admin, rep = members["admin"], members["team"]
    contact = ContactFactory(org=org, owner=None, first_name="Ada", last_name="Lovelace")
    services.contact_assign_owner(
        contact=contact, actor=Actor.for_user(admin.user), owner=rep.user, policy=Policy(admin)
    )

    outbox.relay()
    outbox.relay()

    notes = _notes(org, rep.user)
    assert [n.title for n in notes] == [f"{admin.user.display_name} assigned you Ada Lovelace"]
    assert notes[0].url == reverse("contacts:contact_detail", args=[contact.public_id])
    assert not Notification.objects.for_org(org).exclude(user=rep.user).exists()


def test_a_member_hears_when_an_edit_gives_them_a_contact(org, members):
    admin, rep = members["admin"], members["team"]
    contact = ContactFactory(org=org, owner=admin.user, first_name="Grace", last_name="Hopper")
    services.contact_update(
        contact=contact,
        actor=Actor.for_user(admin.user),
        data={"owner": rep.user},
        policy=Policy(admin),
    )

    outbox.relay()

    assert [n.title for n in _notes(org, rep.user)] == [
        f"{admin.user.display_name} assigned you Grace Hopper"
    ]


def test_taking_or_releasing_contacts_yourself_tells_no_one(org, members):
    admin, rep = members["admin"], members["team"]
    unowned = ContactFactory(org=org, owner=None)
    reps = ContactFactory(org=org, owner=rep.user)
    services.contact_claim(contact=unowned, actor=Actor.for_user(rep.user), policy=Policy(rep))
    services.contact_assign_owner(
        contact=reps, actor=Actor.for_user(admin.user), owner=admin.user, policy=Policy(admin)
    )
    services.contact_release(contact=unowned, actor=Actor.for_user(rep.user), policy=Policy(rep))

    outbox.relay()

    assert OutboxEvent.objects.for_org(org).filter(event_type="contact.owner_changed").count() == 3
    assert not OutboxEvent.objects.for_org(org).filter(processed_at__isnull=True).exists()
    assert not Notification.objects.for_org(org).exists()


def _bulk_reassign(client, contacts, owner):
    return client.post(
        reverse("contacts:bulk_action"),
        {
            "bulk_action": "reassign",
            "ids": [str(c.public_id) for c in contacts],
            "bulk_owner": str(owner.public_id),
            "bulk_confirmed": "1",
            "bulk_expected": str(len(contacts)),
        },
        HTTP_HX_REQUEST="true",
    )


def test_a_bulk_reassign_tells_the_new_owner_once_for_all_its_contacts(org, members, client_as):
    admin, rep = members["admin"], members["team"]
    contacts = ContactFactory.create_batch(3, org=org, owner=admin.user)

    assert _bulk_reassign(client_as(admin), contacts, rep.user).status_code == 204
    outbox.relay()
    outbox.relay()

    notes = _notes(org, rep.user)
    assert [n.title for n in notes] == [f"{admin.user.display_name} assigned you 3 contacts"]
    assert notes[0].url == reverse("contacts:contact_list") + "?owner=me"
    assert all(c.full_name in notes[0].body for c in contacts)
    assert not Notification.objects.for_org(org).exclude(user=rep.user).exists()


def test_a_bulk_reassign_to_yourself_tells_no_one(org, members, client_as):
    admin, rep = members["admin"], members["team"]
    contacts = ContactFactory.create_batch(2, org=org, owner=rep.user)

    assert _bulk_reassign(client_as(admin), contacts, admin.user).status_code == 204
    outbox.relay()

    assert OutboxEvent.objects.for_org(org).filter(event_type="contact.owner_changed").count() == 2
    assert not Notification.objects.for_org(org).exists()


def test_a_member_who_left_is_not_told(org, members):
    admin = members["admin"]
    leaving = member(org, "team")
    contact = ContactFactory(org=org, owner=None)
    services.contact_assign_owner(
        contact=contact, actor=Actor.for_user(admin.user), owner=leaving.user, policy=Policy(admin)
    )
    leaving.is_active = False
    leaving.save(update_fields=["is_active"])

    outbox.relay()

    assert not Notification.objects.for_org(org).exists()


# /healthz: the relay's lag, for staff only ------------------------------------------------------


@override_settings(HEALTHZ_CELERY_TIMEOUT=0.1)
def test_healthz_shows_staff_the_relays_lag(client_as, org, other_org):
    settle_existing_events()
    old = event(other_org)
    OutboxEvent.objects.all_orgs().filter(pk=old.pk).update(
        created_at=timezone.now() - dt.timedelta(seconds=120)
    )
    event(org)
    # A staff member working in one organization still sees the lag of all of them.
    client = client_as(member(org, "owner", user=UserFactory(is_staff=True)))

    lag = client.get(reverse("healthz")).json()["outbox"]

    assert lag["pending"] == 2
    assert 120 <= lag["oldest_age_seconds"] < 180
    assert lag["retrying"] == 0


@override_settings(HEALTHZ_CELERY_TIMEOUT=0.1)
def test_healthz_shows_staff_no_lag_when_the_relay_is_done(client, org):
    settle_existing_events()
    client.force_login(UserFactory(is_staff=True))

    lag = client.get(reverse("healthz")).json()["outbox"]

    assert lag == {"pending": 0, "oldest_age_seconds": 0.0, "retrying": 0}


@override_settings(HEALTHZ_CELERY_TIMEOUT=0.1)
@pytest.mark.parametrize("who", ["visitor", "member"])
def test_healthz_tells_everyone_else_nothing_of_the_relay(client, org, who):
    event(org)
    if who == "member":
        client.force_login(member(org, "owner").user)

    body = client.get(reverse("healthz")).json()

    assert set(body) == {"status"}
