"""The outbox relay: domain events leave the outbox for the consumers registered for them.

Services write an `OutboxEvent` in the transaction of their change (`emit_event`; bulk
actions insert one per contact). Webhooks, the timeline and notifications read them through
one relay. An app registers its consumer when it loads (its AppConfig.ready imports the
module), so crm never imports a domain app:

    from crm import outbox

    @outbox.consumer("contacts.owner_notifications", events={"contact.owner_changed"})
    def tell_new_owners(org, events): ...

`events` holds event types, or prefixes written "contact.*". A consumer is called with one
organization and a list of that organization's events in id order (at most `batch_size`). It
returns nothing, or raises to have them retried. Its work and the relay's note that it is done
commit in one transaction, inside the organization's row-level security context
(`rls.tenant`). The guarantees:

- **At least once, idempotent per consumer.** A consumer that succeeded is never handed the
  event again; one that failed is retried without re-running the others. A consumer's database
  writes commit with the note, so they happen once. Work outside the database (an HTTP call)
  happens again if the transaction fails afterwards, so such a consumer must tolerate a repeat
  (a webhook carries the event's id for that).
- **In order per organization and consumer.** A consumer sees an organization's events in id
  order. When it fails on one, its later events of that organization wait for that event's
  retry; other consumers, and other organizations, go on. Retries back off (5 s, 10 s, 20 s,
  ..., at most 10 min). After MAX_ATTEMPTS (about half an hour) the delivery is given up,
  logged as an error, and the organization's later events flow again: one poisoned event
  cannot stop a consumer for good. Events a batched call failed on are retried one at a time,
  so one bad event cannot keep failing its neighbours.
- `OutboxEvent.processed_at` is set once every consumer that wants the event is done with it
  (succeeded or gave up). An event that no consumer wants is marked processed at once.
- **One relay per organization at a time.** Beat starts a relay every few seconds
  (crm.tasks.relay_outbox_task), and two may run at once. The claim (`_claim`, the relay's
  only read across organizations) locks the oldest pending events with FOR UPDATE SKIP LOCKED,
  then takes a session advisory lock per organization. Row locks end with the claim's
  transaction, but consumers commit in transactions of their own, so the organization stays
  held by the advisory lock until its batch is done. Another relay skips a held organization
  instead of waiting for it, and the lock dies with the connection if the worker does.
  Order is the order of ids: an event whose transaction commits after a later event was
  already relayed arrives after it.
- **Oldest first, across organizations.** A pass takes the oldest due events, so one
  organization's large backlog (a bulk change of owner on 100k contacts writes 100k events)
  is worked through before younger events of others: it delays them, it does not block them
  (see bench_outbox for the rate). An event waiting out a retry is not due, so it never holds
  up anyone else.

A consumer registered while an earlier event of its organization waits out another
consumer's retry gets that event when the retry is due, after later ones.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import rls
from .models import Organization, OutboxDelivery, OutboxEvent

logger = logging.getLogger(__name__)

# Events one relay pass claims at most (across organizations).
BATCH_SIZE = 500
# The claim looks for organizations among this many batches' worth of the oldest events.
CLAIM_WINDOW = 4
# A relay run (one beat tick) stops starting new passes after this long.
RUN_SECONDS = 4.0
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=10)
# The attempt that fails for the MAX_ATTEMPTS-th time gives the delivery up.
MAX_ATTEMPTS = 10
# The first key of the relay's advisory locks (the second is the organization's id), so they
# cannot collide with another feature's locks.
LOCK_SPACE = 0x0B0C


def backoff(attempts: int) -> timedelta:
    """How long a consumer waits after its `attempts`-th failed attempt."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


# The registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """What a consumer is handed: one outbox row, read-only."""

    id: int
    org_id: int
    type: str
    payload: dict
    created_at: datetime


Handler = Callable[[Organization, list[Event]], Any]


@dataclass(frozen=True)
class Consumer:
    name: str
    handle: Handler
    types: frozenset[str]
    prefixes: tuple[str, ...]
    batch_size: int = 1

    def wants(self, event_type: str) -> bool:
        return event_type in self.types or event_type.startswith(self.prefixes)


class Registry:
    def __init__(self) -> None:
        self._consumers: dict[str, Consumer] = {}

    def add(self, consumer: Consumer) -> None:
        existing = self._consumers.get(consumer.name)
        if existing is not None and existing.handle is not consumer.handle:
            raise ImproperlyConfigured(
                f"Two outbox consumers are named {consumer.name!r}: the name keys each "
                "consumer's progress, so it must be unique."
            )
        self._consumers[consumer.name] = consumer

    def __iter__(self) -> Iterator[Consumer]:
        return iter(list(self._consumers.values()))

    def names(self) -> list[str]:
        return list(self._consumers)


registry = Registry()


def consumer(name: str, *, events: Iterable[str], batch_size: int = 1):
    """Register the decorated `handler(org, events)` for the event types in `events`
    (exact, or a prefix written "contact.*"). `name` keys its progress: renaming a
    consumer makes it a new one, which starts with the events still pending."""
    if isinstance(events, str):
        raise TypeError('events= takes a set of event types, e.g. {"contact.created"}.')
    patterns = set(events)
    if not name or len(name) > 80 or not patterns or batch_size < 1:
        raise ValueError("A consumer needs a name (80 characters at most), events, batch_size ≥ 1.")
    types = frozenset(p for p in patterns if "*" not in p)
    prefixes = tuple(sorted(p[:-1] for p in patterns if p.endswith(".*") and "*" not in p[:-1]))
    if len(types) + len(prefixes) != len(patterns):
        raise ValueError('A wildcard must end an event type after a dot: "contact.*".')

    def decorator(func: Handler) -> Handler:
        registry.add(
            Consumer(name=name, handle=func, types=types, prefixes=prefixes, batch_size=batch_size)
        )
        return func

    return decorator


# The claim: the one place the relay reads across organizations ----------------------------


@dataclass
class _Delivery:
    attempts: int = 0
    processed_at: datetime | None = None
    gave_up_at: datetime | None = None
    next_attempt_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.processed_at is not None or self.gave_up_at is not None


@dataclass
class _Batch:
    """One organization's claimed events, with what the relay knows of their deliveries."""

    org_id: int
    events: list[Event]
    deliveries: dict[tuple[int, str], _Delivery]
    # consumer -> (event id, retry time) of its earliest failure still being retried here.
    blockers: dict[str, tuple[int, datetime | None]]


def _due(now: datetime) -> Q:
    return Q(processed_at__isnull=True) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def _claim(limit: int, now: datetime, held: list[int], consumers: list[Consumer]) -> list[_Batch]:
    """Claim up to `limit` due events, whole organizations at a time, and load what the
    relay needs to deliver them. Every organization claimed is appended to `held` as soon as
    its advisory lock is taken; the caller releases them (a rollback does not)."""
    with transaction.atomic(), rls.bypass("outbox relay"):
        # The oldest due events, a few batches' worth: enough to find organizations that
        # no other relay holds. SKIP LOCKED: two relays claiming at the same moment look at
        # different events rather than wait for each other.
        window = list(
            OutboxEvent.objects.all_orgs()
            .filter(_due(now))
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values_list("org_id", flat=True)[: limit * CLAIM_WINDOW]
        )
        in_window = Counter(window)
        org_ids, claimable = [], 0
        with connection.cursor() as cursor:
            # Oldest first, only as many organizations as the batch needs, so the others
            # stay free for another relay.
            for org_id in in_window:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_SPACE, _key(org_id)])
                if cursor.fetchone()[0]:
                    held.append(org_id)
                    org_ids.append(org_id)
                    claimable += in_window[org_id]
                    if claimable >= limit:
                        break
        if not org_ids:
            return []
        # Read after the locks are taken: this statement sees everything a relay that held
        # one of these organizations before committed.
        rows = list(
            OutboxEvent.objects.all_orgs()
            .filter(_due(now), org_id__in=org_ids)
            .order_by("id")
            .values_list("id", "org_id", "event_type", "payload", "created_at")[:limit]
        )
        events = [Event(*row) for row in rows]
        # Only events some consumer wants have deliveries; the others are simply processed.
        wanted = [e.id for e in events if any(c.wants(e.type) for c in consumers)]
        deliveries = _deliveries(org_ids, wanted) if wanted else {}
        blockers = _blockers(org_ids) if wanted else {}
    batches = {org_id: _Batch(org_id, [], {}, blockers.get(org_id, {})) for org_id in org_ids}
    for event in events:
        batches[event.org_id].events.append(event)
    org_of = {event.id: event.org_id for event in events}
    for (event_id, name), delivery in deliveries.items():
        batches[org_of[event_id]].deliveries[(event_id, name)] = delivery
    return list(batches.values())


def _deliveries(org_ids: list[int], event_ids: list[int]) -> dict[tuple[int, str], _Delivery]:
    rows = (
        OutboxDelivery.objects.all_orgs()
        .filter(org_id__in=org_ids, event_id__in=event_ids)
        .values_list(
            "event_id", "consumer", "attempts", "processed_at", "gave_up_at", "next_attempt_at"
        )
    )
    return {(event_id, name): _Delivery(*state) for event_id, name, *state in rows}


def _blockers(org_ids: list[int]) -> dict[int, dict[str, tuple[int, datetime | None]]]:
    """Per organization and consumer, its earliest failure still being retried: the event
    (and its retry time) that the consumer's later events of the organization wait for."""
    blockers: dict[int, dict[str, tuple[int, datetime | None]]] = {}
    rows = (
        OutboxDelivery.objects.all_orgs()
        .filter(
            org_id__in=org_ids,
            processed_at__isnull=True,
            gave_up_at__isnull=True,
            event__processed_at__isnull=True,
        )
        .order_by("org_id", "consumer", "event_id")
        .distinct("org_id", "consumer")
        .values_list("org_id", "consumer", "event_id", "next_attempt_at")
    )
    for org_id, name, event_id, next_at in rows:
        blockers.setdefault(org_id, {})[name] = (event_id, next_at)
    return blockers


def _key(org_id: int) -> int:
    """The second key of an organization's advisory lock (an int4)."""
    return org_id % 2**31


def _release(org_ids: list[int]) -> None:
    if not org_ids:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, key) FROM unnest(%s::int[]) AS k(key)",
                [LOCK_SPACE, [_key(org_id) for org_id in org_ids]],
            )
    except Exception:
        # A connection that broke took its session locks with it.
        logger.warning("could not release the outbox locks of %s", org_ids, exc_info=True)


# Delivery: each consumer call in its own transaction, inside its organization -------------


def _calls(events: list[Event], consumer: Consumer, batch: _Batch) -> Iterator[list[Event]]:
    """The events in calls of at most `batch_size`; an event that failed before goes alone."""
    call: list[Event] = []
    for event in events:
        delivery = batch.deliveries.get((event.id, consumer.name))
        if delivery is not None and delivery.attempts:
            if call:
                yield call
                call = []
            yield [event]
            continue
        call.append(event)
        if len(call) >= consumer.batch_size:
            yield call
            call = []
    if call:
        yield call


def _outcome(
    batch: _Batch, consumer: Consumer, events: list[Event], now: datetime, error: str = ""
) -> dict[tuple[int, str], _Delivery]:
    """Each event's delivery for `consumer` after one more attempt (failed if `error`)."""
    states = {}
    for event in events:
        before = batch.deliveries.get((event.id, consumer.name)) or _Delivery()
        after = _Delivery(attempts=before.attempts + 1)
        if not error:
            after.processed_at = now
        elif after.attempts >= MAX_ATTEMPTS:
            after.gave_up_at = now
        else:
            after.next_attempt_at = now + backoff(after.attempts)
        states[(event.id, consumer.name)] = after
    return states


# One statement per call, whatever its size (the ORM's bulk upsert spent more time building
# rows in Python than the database spent writing them).
_UPSERT_DELIVERIES = """
INSERT INTO crm_outboxdelivery (org_id, event_id, consumer, attempts, processed_at,
                                gave_up_at, next_attempt_at, last_error, created_at)
SELECT %(org)s, d.event_id, %(consumer)s, d.attempts, d.processed_at, d.gave_up_at,
       d.next_attempt_at, %(error)s, %(now)s
  FROM unnest(%(events)s::bigint[], %(attempts)s::int[], %(processed)s::timestamptz[],
              %(gave_up)s::timestamptz[], %(next)s::timestamptz[])
       AS d(event_id, attempts, processed_at, gave_up_at, next_attempt_at)
ON CONFLICT (event_id, consumer, org_id) DO UPDATE
   SET attempts = EXCLUDED.attempts,
       processed_at = EXCLUDED.processed_at,
       gave_up_at = EXCLUDED.gave_up_at,
       next_attempt_at = EXCLUDED.next_attempt_at,
       -- A success keeps the last error, for whoever wonders why it took a while.
       last_error = COALESCE(NULLIF(EXCLUDED.last_error, ''), crm_outboxdelivery.last_error)
"""


def _write(
    batch: _Batch, consumer: Consumer, states: dict[tuple[int, str], _Delivery], error: str = ""
) -> None:
    rows = [(event_id, state) for (event_id, _name), state in states.items()]
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT_DELIVERIES,
            {
                "org": batch.org_id,
                "consumer": consumer.name,
                "error": error,
                "now": timezone.now(),
                "events": [event_id for event_id, _ in rows],
                "attempts": [state.attempts for _, state in rows],
                "processed": [state.processed_at for _, state in rows],
                "gave_up": [state.gave_up_at for _, state in rows],
                "next": [state.next_attempt_at for _, state in rows],
            },
        )


def _call(
    batch: _Batch, org: Organization, consumer: Consumer, events: list[Event], now: datetime
) -> datetime | None:
    """Hand `events` to `consumer`. None when that settled them (done, or given up after
    MAX_ATTEMPTS), else the time it may try again."""
    states = _outcome(batch, consumer, events, now)
    try:
        with transaction.atomic(), rls.tenant(batch.org_id):
            consumer.handle(org, list(events))
            _write(batch, consumer, states)
    except Exception as exc:
        # A consumer may fail in any way: the failure is recorded and retried, never fatal.
        logger.warning(
            "outbox consumer %s failed on events %s-%s of organization %s",
            consumer.name,
            events[0].id,
            events[-1].id,
            batch.org_id,
            exc_info=True,
        )
        error = f"{type(exc).__name__}: {exc}"[:2000]
        states = _outcome(batch, consumer, events, now, error)
        with transaction.atomic(), rls.tenant(batch.org_id):
            _write(batch, consumer, states, error)
        batch.deliveries.update(states)
        for (event_id, _name), state in states.items():
            if state.gave_up_at is not None:
                logger.error(
                    "outbox consumer %s gave up on event %s of organization %s after %s "
                    "attempts: %s",
                    consumer.name,
                    event_id,
                    batch.org_id,
                    state.attempts,
                    error,
                )
        retries = [s.next_attempt_at for s in states.values() if s.next_attempt_at is not None]
        return min(retries) if retries else None
    batch.deliveries.update(states)
    return None


def _deliver_to(
    batch: _Batch, org: Organization, consumer: Consumer, now: datetime
) -> dict[int, datetime]:
    """Give `consumer` its due events of the batch, in order; return the events it still
    owes, each with the time it may take them."""
    pending = [
        event
        for event in batch.events
        if consumer.wants(event.type)
        and not getattr(batch.deliveries.get((event.id, consumer.name)), "finished", False)
    ]
    claimed_ids = {event.id for event in batch.events}
    blocker = batch.blockers.get(consumer.name)
    ready: list[Event] = []
    wait_until: datetime | None = None
    for event in pending:
        delivery = batch.deliveries.get((event.id, consumer.name))
        if blocker is not None and blocker[0] < event.id and blocker[0] not in claimed_ids:
            # An earlier event of the organization waits for this consumer's retry.
            wait_until = blocker[1] or now
        elif delivery is not None and delivery.next_attempt_at and delivery.next_attempt_at > now:
            wait_until = delivery.next_attempt_at
        if wait_until is not None:
            break
        ready.append(event)
    owed = {event.id: wait_until for event in pending[len(ready) :] if wait_until}
    done = 0
    for call in _calls(ready, consumer, batch):
        retry_at = _call(batch, org, consumer, call, now)
        done += len(call)
        if retry_at is not None:
            # Keep the order: the rest of this organization's events wait for the retry.
            owed.update(
                (event.id, retry_at)
                for event in ready[done - len(call) :]
                if not batch.deliveries.get((event.id, consumer.name), _Delivery()).finished
            )
            break
    return owed


def _deliver(batch: _Batch, org: Organization, consumers: list[Consumer], now: datetime) -> None:
    owed: dict[int, datetime] = {}
    for consumer_ in consumers:
        for event_id, when in _deliver_to(batch, org, consumer_, now).items():
            owed[event_id] = min(owed.get(event_id, when), when)
    done = [event.id for event in batch.events if event.id not in owed]
    waiting: dict[datetime, list[int]] = {}
    for event_id, when in owed.items():
        # Never "now": the event would be claimed again at once, and the same pass repeated
        # until the run's time is up.
        waiting.setdefault(when if when > now else now + BACKOFF_BASE, []).append(event_id)
    with transaction.atomic(), rls.tenant(batch.org_id):
        events = OutboxEvent.objects.for_org(batch.org_id)
        if done:
            events.filter(id__in=done).update(processed_at=now, next_attempt_at=None)
        for when, event_ids in waiting.items():
            events.filter(id__in=event_ids).update(next_attempt_at=when)


# Running the relay ----------------------------------------------------------------------------


def relay_once(*, limit: int = BATCH_SIZE, now: datetime | None = None) -> int:
    """One pass: claim up to `limit` due events and hand them to their consumers. Returns
    how many events it claimed (0: nothing was due, or other relays hold what is). `now`
    stands in for the clock (tests step it past a backoff)."""
    now = now or timezone.now()
    consumers = list(registry)
    held: list[int] = []
    try:
        batches = _claim(limit, now, held, consumers)
        orgs = Organization.objects.in_bulk([batch.org_id for batch in batches])
        for batch in batches:
            try:
                # An organization deleted since the claim took its events with it.
                if batch.events and batch.org_id in orgs:
                    _deliver(batch, orgs[batch.org_id], consumers, now)
            finally:
                # Free each organization as soon as it is done, for other relays.
                _release([batch.org_id])
                held.remove(batch.org_id)
    finally:
        _release(held)
    return sum(len(batch.events) for batch in batches)


def relay(*, limit: int = BATCH_SIZE, seconds: float = RUN_SECONDS) -> int:
    """Passes until nothing is due or `seconds` have gone by; returns the events claimed."""
    started, total = time.monotonic(), 0
    while True:
        claimed = relay_once(limit=limit)
        total += claimed
        if not claimed or time.monotonic() - started >= seconds:
            return total


def lag(now: datetime | None = None) -> dict:
    """How far behind the relay is, across organizations: events not processed yet, the
    age of the oldest (seconds), and deliveries waiting for a retry."""
    now = now or timezone.now()
    with transaction.atomic(), rls.bypass("outbox lag for /healthz"):
        pending = OutboxEvent.objects.all_orgs().filter(processed_at__isnull=True)
        count = pending.count()
        oldest = pending.order_by("id").values_list("created_at", flat=True).first()
        retrying = (
            OutboxDelivery.objects.all_orgs()
            .filter(processed_at__isnull=True, gave_up_at__isnull=True)
            .count()
        )
    age = max((now - oldest).total_seconds(), 0.0) if oldest else 0.0
    return {"pending": count, "oldest_age_seconds": round(age, 1), "retrying": retrying}
