"""Set-based writes of a batch of orders (pipeline.services.order_upsert): one statement per
kind of row (new orders, changed orders, status history, outbox events), whatever the size
of the batch.

The rows travel as one JSON document read with jsonb_to_recordset. Django's psycopg cursor
binds on the client side, quoting each element of an array parameter in Python; for a batch
of 1,000 orders that quoting cost more than the database's whole work, while one JSON string
(made by the C encoder) is quoted once.

The outbox rows follow crm.services.emit_event's format (event_type, payload), written here
in bulk because the relay (crm.outbox) reads them from the table, whoever wrote them.
"""

from __future__ import annotations

import json
import uuid

from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from crm.models import OutboxEvent

from ..models import Order, OrderStatusChange

# The order columns a batch writes (the statements below spell them out).
ORDER_FIELDS = (
    "external_id",
    "contact_id",
    "deal_id",
    "title",
    "value",
    "currency",
    "status",
    "order_date",
    "paid_date",
    "note",
)

# Literal SQL: the names are the models' tables and columns (checked below), nothing here
# comes from a caller.
_INSERT_ORDERS = """
INSERT INTO pipeline_order (org_id, public_id, created_at, updated_at, source, created_by_id,
                            external_id, contact_id, deal_id, title, value, currency, status,
                            order_date, paid_date, note)
SELECT %(org)s, r.public_id, %(now)s, %(now)s, %(source)s, %(user)s,
       r.external_id, r.contact_id, r.deal_id, r.title, r.value, r.currency, r.status,
       r.order_date, r.paid_date, r.note
  FROM jsonb_to_recordset(%(rows)s::jsonb)
       AS r(public_id uuid, external_id text, contact_id bigint, deal_id bigint, title text,
            value numeric, currency text, status text, order_date date, paid_date date,
            note text)
 ORDER BY r.external_id
ON CONFLICT (org_id, source, external_id) WHERE NOT (external_id = '') DO NOTHING
RETURNING public_id, id
"""

_UPDATE_ORDERS = """
UPDATE pipeline_order AS o
   SET contact_id = u.contact_id, deal_id = u.deal_id, title = u.title, value = u.value,
       currency = u.currency, status = u.status, order_date = u.order_date,
       paid_date = u.paid_date, note = u.note, updated_at = %(now)s
  FROM jsonb_to_recordset(%(rows)s::jsonb)
       AS u(id bigint, contact_id bigint, deal_id bigint, title text, value numeric,
            currency text, status text, order_date date, paid_date date, note text)
 WHERE o.org_id = %(org)s AND o.id = u.id
"""

_INSERT_HISTORY = """
INSERT INTO pipeline_orderstatuschange (org_id, public_id, created_at, order_id, from_status,
                                        to_status, via, changed_by_id, changed_at, note)
SELECT %(org)s, gen_random_uuid(), %(now)s, h.order_id, h.from_status, h.to_status, %(via)s,
       %(user)s, %(now)s, ''
  FROM jsonb_to_recordset(%(rows)s::jsonb)
       AS h(order_id bigint, from_status text, to_status text)
"""

_INSERT_EVENTS = """
INSERT INTO crm_outboxevent (org_id, public_id, created_at, event_type, payload)
SELECT %(org)s, gen_random_uuid(), %(now)s, e.event_type, e.payload
  FROM jsonb_to_recordset(%(rows)s::jsonb) AS e(event_type text, payload jsonb)
"""

if (
    Order._meta.db_table,
    OrderStatusChange._meta.db_table,
    OutboxEvent._meta.db_table,
) != ("pipeline_order", "pipeline_orderstatuschange", "crm_outboxevent"):
    raise ImproperlyConfigured("pipeline.services.order_bulk names tables that were renamed.")


def _json(rows: list[dict]) -> str:
    # Decimal, date and UUID values go as their text, which the row type reads back.
    return json.dumps(rows, default=str)


def insert_orders(org_id: int, rows: list[dict], *, source: str, user_id, now) -> dict:
    """Insert new orders (each row: public_id and ORDER_FIELDS) unless their external id
    exists; returns {public_id: id} of the rows inserted."""
    if not rows:
        return {}
    params = {
        "org": org_id,
        "now": now,
        "source": source,
        "user": user_id,
        "rows": _json(rows),
    }
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_ORDERS, params)
        return {uuid.UUID(str(public_id)): pk for public_id, pk in cursor.fetchall()}


def update_orders(org_id: int, rows: list[dict], *, now) -> None:
    """Set every ORDER_FIELDS column but external_id on the orders of the rows' ids."""
    if rows:
        with connection.cursor() as cursor:
            cursor.execute(_UPDATE_ORDERS, {"org": org_id, "now": now, "rows": _json(rows)})


def insert_status_changes(org_id: int, rows: list[dict], *, via: str, user_id, now) -> None:
    """Status history rows: order_id, from_status, to_status."""
    if rows:
        params = {"org": org_id, "now": now, "via": via, "user": user_id, "rows": _json(rows)}
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_HISTORY, params)


def insert_events(org_id: int, events: list[dict], *, now) -> None:
    """Outbox events: event_type and payload (JSON-ready) each."""
    if events:
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_EVENTS, {"org": org_id, "now": now, "rows": _json(events)})
