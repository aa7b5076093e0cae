"""Seeding for the orders benchmark (manage.py bench_orders): an organization's orders,
custom object types, records and associations, generated in Python and loaded with COPY, the
ids reserved up front; a big load drops the table's secondary indexes and keys and rebuilds
each once at the end (cheaper than maintaining them row by row)."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from contacts.models import Contact
from crm.bulk_load import copy_lines, drop_for_load
from crm.models import Membership

from .models import ObjectAssociation, ObjectField, ObjectRecord, ObjectType, Order

BUYER_SHARE = 0.4  # contacts with at least one order (about)
# Loads at least this big drop the table's secondary indexes and keys and rebuild them once.
BIG_LOAD = 100_000
NULL = "\\N"
BENCH_TABLES = ("pipeline_order", "pipeline_objectrecord", "pipeline_objectassociation")
STATUSES = [("paid", 70), ("pending", 8), ("partially_paid", 4), ("overdue", 5)]
STATUSES += [("refunded", 5), ("canceled", 5), ("failed", 3)]
SOURCES = [("manual", 30), ("webhook", 40), ("api", 10), ("payments", 15), ("commerce", 5)]
ORDER_DAYS = 3 * 365
ORDER_COLUMNS = [
    "id",
    "public_id",
    "created_at",
    "org_id",
    "contact_id",
    "deal_id",
    "title",
    "value",
    "currency",
    "status",
    "order_date",
    "paid_date",
    "source",
    "external_id",
    "note",
    "created_by_id",
    "updated_at",
]
RECORD_COLUMNS = [
    "id",
    "public_id",
    "created_at",
    "org_id",
    "object_type_id",
    "values",
    "display_name",
    "external_id",
    "owner_id",
    "created_by_id",
    "updated_at",
]
LINK_COLUMNS = [
    "id",
    "public_id",
    "created_at",
    "org_id",
    "record_id",
    "object_type_id",
    "contact_id",
    "deal_id",
    "label",
    "associated_on",
    "created_by_id",
]
LEVELS = ["Beginner", "Intermediate", "Advanced"]
CITIES = ["Lisbon", "Porto", "Berlin", "Lyon", "Austin", "Leeds", "Turin", "Ghent"]
# (key, name, plural, fields, share of records, share of associations)
TYPES = [
    (
        "course",
        "Course",
        "Courses",
        [
            ("name", "Name", "text", []),
            ("level", "Level", "list", LEVELS),
            ("seats", "Seats", "number", []),
            ("starts", "Start date", "date", []),
            ("online", "Online", "checkbox", []),
        ],
        0.2,
        0.6,
    ),
    (
        "property",
        "Property",
        "Properties",
        [
            ("name", "Name", "text", []),
            ("city", "City", "text", []),
            ("rooms", "Rooms", "number", []),
        ],
        0.8,
        0.4,
    ),
]


def _pool(pairs) -> list:
    return [value for value, weight in pairs for _ in range(weight)]


def check_columns(model, columns) -> None:
    have = {f.column for f in model._meta.concrete_fields if not f.generated}
    if have != set(columns):
        raise CommandError(
            f"{model.__name__} has columns the bench does not write or no longer has: "
            f"{sorted(have ^ set(columns))}. Update the bench's column lists."
        )


def _reserve_ids(cursor, table: str, count: int) -> int:
    """Reserve `count` ids of `table` (locked until the transaction ends); the first one."""
    if table not in BENCH_TABLES:
        raise ValueError(f"Not a bench table: {table!r}")
    cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
    # The table name is one of BENCH_TABLES, never input.
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
        f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), "
        f"nextval(pg_get_serial_sequence('{table}', 'id'))) + %s)",
        [count],
    )
    return cursor.fetchone()[0] - count + 1


@contextmanager
def bare_table(table: str, count: int, log):
    """For a big load, `table` without its secondary indexes and keys, rebuilt at the end."""
    if count < BIG_LOAD:
        yield
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        restore = drop_for_load(cursor, [table])
    yield
    with connection.cursor() as cursor:
        for statement in restore:
            cursor.execute(statement)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    log(
        f"  {table}: rebuilt {len(restore)} indexes and keys ({time.perf_counter() - started:.1f}s)"
    )


class Seeder:
    """One organization's orders, object types, records and associations, with COPY."""

    def __init__(self, org, rng: random.Random, log):
        self.org, self.rng, self.log = org, rng, log
        self.now = timezone.now().replace(microsecond=0)
        self.uuid_bits = random.Random().getrandbits  # fresh public ids on every run
        self.owners = list(
            Membership.objects.for_org(org)
            .active()
            .order_by("user_id")
            .values_list("user_id", flat=True)
        )

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.uuid_bits(128), version=4))

    def contact_ids(self) -> list[int]:
        return list(Contact.objects.for_org(self.org).order_by("id").values_list("id", flat=True))

    def orders(self, target: int) -> int:
        missing = target - Order.objects.for_org(self.org).count()
        if missing <= 0:
            return 0
        started = time.perf_counter()
        r = self.rng.random
        ids = self.contact_ids()
        buyers = [cid for cid in ids if r() < BUYER_SHARE] or ids
        statuses, sources = _pool(STATUSES), _pool(SOURCES)
        base = self.org.base_currency
        others = [c for c in ("EUR", "GBP", "USD") if c != base]
        currencies = [base] * 85 + [others[0]] * 10 + [others[1]] * 5
        today = timezone.localdate()
        days = [(today - dt.timedelta(days=n)).isoformat() for n in range(ORDER_DAYS + 1)]
        org_id, stamp = str(self.org.pk), self.now.isoformat()

        with connection.cursor() as cursor, bare_table("pipeline_order", missing, self.log):
            first = _reserve_ids(cursor, "pipeline_order", missing)

            def lines():
                for order_id in range(first, first + missing):
                    status = statuses[int(r() * len(statuses))]
                    source = sources[int(r() * len(sources))]
                    day = days[int(r() * len(days))]
                    # Log-uniform between 5 and 5,000: many small orders, a few large ones.
                    value = f"{5 * 1000 ** r():.2f}"
                    yield (
                        f"{order_id}\t{self._uuid()}\t{stamp}\t{org_id}\t"
                        f"{buyers[int(r() * len(buyers))]}\t{NULL}\tOrder {order_id}\t{value}\t"
                        f"{currencies[int(r() * 100)]}\t{status}\t{day}\t"
                        f"{day if status == 'paid' else NULL}\t{source}\t"
                        f"{'' if source == 'manual' else f'o{order_id}'}\t\t{NULL}\t{stamp}\n"
                    )

            copy_lines(cursor, "pipeline_order", ORDER_COLUMNS, lines())
        self.log(
            f"  {self.org.name}: copied {missing:,} orders ({time.perf_counter() - started:.1f}s)"
        )
        return missing

    def object_types(self) -> list[tuple[ObjectType, float, float]]:
        out = []
        for position, (key, name, plural, fields, record_share, link_share) in enumerate(TYPES):
            object_type, _ = ObjectType.objects.for_org(self.org).get_or_create(
                org=self.org,
                key=key,
                defaults={
                    "name": name,
                    "plural": plural,
                    "primary_field_key": "name",
                    "position": position,
                },
            )
            for index, (field_key, label, kind, choices) in enumerate(fields):
                ObjectField.objects.for_org(self.org).get_or_create(
                    org=self.org,
                    object_type=object_type,
                    key=field_key,
                    defaults={
                        "label": label,
                        "field_type": kind,
                        "choices": choices,
                        "position": index,
                    },
                )
            out.append((object_type, record_share, link_share))
        return out

    def _values(self, key: str, n: int) -> tuple[str, dict]:
        r = self.rng.random
        if key == "course":
            name = f"Course {n}"
            values = {
                "name": name,
                "level": LEVELS[int(r() * 3)],
                "seats": int(r() * 60) + 5,
                "starts": (self.now.date() + dt.timedelta(days=int(r() * 400) - 200)).isoformat(),
                "online": r() < 0.5,
            }
        else:
            name = f"Property {n}"
            values = {
                "name": name,
                "city": CITIES[int(r() * len(CITIES))],
                "rooms": int(r() * 8) + 1,
            }
        return name, values

    def records(self, types, total: int) -> dict[int, list[int]]:
        """Top each type up to its share of `total` records; returns the record ids by type."""
        r = self.rng.random
        org_id, stamp = str(self.org.pk), self.now.isoformat()
        by_type = {}
        for object_type, record_share, _ in types:
            records = ObjectRecord.objects.for_org(self.org).filter(object_type=object_type)
            have = records.count()
            missing = max(1, int(total * record_share)) - have
            if missing > 0:
                started = time.perf_counter()
                with (
                    connection.cursor() as cursor,
                    bare_table("pipeline_objectrecord", missing, self.log),
                ):
                    first = _reserve_ids(cursor, "pipeline_objectrecord", missing)

                    def lines(
                        first=first,
                        missing=missing,
                        have=have,
                        key=object_type.key,
                        pk=object_type.pk,
                    ):
                        for offset in range(missing):
                            name, values = self._values(key, have + offset + 1)
                            owner = (
                                self.owners[int(r() * len(self.owners))] if self.owners else NULL
                            )
                            text = json.dumps(values).replace("\\", "\\\\")
                            yield (
                                f"{first + offset}\t{self._uuid()}\t{stamp}\t{org_id}\t{pk}\t"
                                f"{text}\t{name}\t\t{owner}\t{NULL}\t{stamp}\n"
                            )

                    copy_lines(cursor, "pipeline_objectrecord", RECORD_COLUMNS, lines())
                self.log(
                    f"  {self.org.name}: copied {missing:,} {object_type.plural.lower()} "
                    f"({time.perf_counter() - started:.1f}s)"
                )
            by_type[object_type.pk] = list(records.order_by("id").values_list("id", flat=True))
        return by_type

    def associations(self, types, records: dict[int, list[int]], target: int) -> int:
        """Link contacts to records of each type up to its share of `target`: each contact
        picked gets one to three different records of the type (a pair at most once)."""
        rng, r = self.rng, self.rng.random
        org_id, stamp = str(self.org.pk), self.now.isoformat()
        contact_ids = self.contact_ids()
        written = 0
        for object_type, _, link_share in types:
            links = ObjectAssociation.objects.for_org(self.org).filter(object_type=object_type)
            missing = round(target * link_share) - links.count()
            pool = records[object_type.pk]
            if missing <= 0 or not pool or not contact_ids:
                continue
            # Contacts that already have links of this type are left alone.
            linked = set(links.values_list("contact_id", flat=True))
            free = [cid for cid in contact_ids if cid not in linked]
            rng.shuffle(free)
            pairs = []
            for contact_id in free:
                if len(pairs) >= missing:
                    break
                for record_id in rng.sample(pool, k=min(len(pool), 1 + int(r() * 3))):
                    pairs.append((record_id, contact_id))
            pairs = pairs[:missing]
            started = time.perf_counter()
            with (
                connection.cursor() as cursor,
                bare_table("pipeline_objectassociation", len(pairs), self.log),
            ):
                first = _reserve_ids(cursor, "pipeline_objectassociation", len(pairs))
                lines = (
                    f"{first + n}\t{self._uuid()}\t{stamp}\t{org_id}\t{record_id}\t"
                    f"{object_type.pk}\t{contact_id}\t{NULL}\t\t{NULL}\t{NULL}\n"
                    for n, (record_id, contact_id) in enumerate(pairs)
                )
                copy_lines(cursor, "pipeline_objectassociation", LINK_COLUMNS, lines)
            self.log(
                f"  {self.org.name}: linked {len(pairs):,} contacts to "
                f"{object_type.plural.lower()} ({time.perf_counter() - started:.1f}s)"
            )
            written += len(pairs)
        return written
