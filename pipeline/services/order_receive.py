"""One request to an organization's inbound order URL, from its raw bytes to its answer.

`receive` checks, in this order: the orders module is on (else 404, as for an unknown URL),
the body's size (413), the Standard Webhooks signature (401), the JSON (400), the number of
orders (400); then upserts the orders (pipeline.services.order_upsert) as the organization,
and says what became of each one. Every answer is JSON; refusals are RFC 9457 problem
documents (application/problem+json). Nothing the sender wrote is echoed outside JSON.

The caller (the view) logs every answer on the deliveries page with `record_delivery`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import OperationalError, transaction

from crm import rls
from crm.models import AuditEvent
from crm.optional_modules import is_enabled
from crm.services import Actor

from ..models import Order, OrderDelivery, OrderInbound, OrderStatusChange
from .order_inbound import signature_refusal, signing_secret
from .order_upsert import FAILED, MAX_ITEMS, upsert_orders

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
# Item errors kept on a delivery's log row (the answer itself lists them all).
LOGGED_ERRORS = 20
# A batch that deadlocks with another (they touch the same orders in a different way) is run
# again this many times in all before the sender is told to retry.
ATTEMPTS = 3
PROBLEM = "application/problem+json"
Outcome = OrderDelivery.Outcome
NOT_FOUND = {"type": "about:blank", "title": "Not Found", "status": 404}


@dataclass
class Reply:
    status: int
    body: dict
    outcome: str
    detail: str = ""
    counts: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    content_type: str = "application/json"

    def log_fields(self) -> dict:
        counts = {k: v for k, v in self.counts.items() if k != "items"}
        return {
            "outcome": self.outcome,
            "status_code": self.status,
            "detail": self.detail,
            "items": self.counts.get("items", 0),
            **counts,
            "errors": self.errors[:LOGGED_ERRORS],
        }


def problem(status: int, title: str, detail: str, outcome: str, **extra) -> Reply:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Reply(status, body, outcome, detail, content_type=PROBLEM)


def not_found(detail: str = "") -> Reply:
    """The answer for an unknown URL, and for a known one whose module is off: the same
    bytes, so a caller cannot tell them apart."""
    return Reply(404, dict(NOT_FOUND), Outcome.REFUSED, detail, content_type=PROBLEM)


def _items(body: bytes) -> tuple[list | None, str]:
    """The orders of a body (one object, {"orders": [...]}, or a list), or None and why not."""
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "The body is not valid JSON (UTF-8)."
    if isinstance(data, dict) and "orders" in data:
        data = data["orders"]
        if not isinstance(data, list):
            return None, '"orders" must be a list of order objects.'
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return None, 'Send one order object, a list of them, or {"orders": [...]}.'
    if not data:
        return None, "The request holds no orders."
    if len(data) > MAX_ITEMS:
        return None, f"At most {MAX_ITEMS:,} orders per request; send the rest in another one."
    return data, ""


def _upsert(inbound: OrderInbound, items: list, actor: Actor):
    org = inbound.org
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction.atomic(), rls.tenant(org.pk):
                return upsert_orders(
                    org=org,
                    items=items,
                    source=Order.Source.WEBHOOK,
                    via=OrderStatusChange.Via.WEBHOOK,
                    actor=actor,
                    create_contacts=inbound.create_contacts,
                )
        except OperationalError as exc:
            # psycopg's DeadlockDetected / SerializationFailure: the transaction was rolled
            # back whole, so running it again is safe.
            retryable = type(exc.__cause__).__name__ in ("DeadlockDetected", "SerializationFailure")
            if not retryable or attempt == ATTEMPTS:
                raise
            logger.info("inbound orders of org %s deadlocked; attempt %s", org.pk, attempt)
    raise AssertionError("unreachable")


def receive(
    inbound: OrderInbound,
    *,
    headers: Mapping[str, str],
    body: bytes | None,
    remote_ip: str | None = None,
    now: float | None = None,
) -> Reply:
    """The answer to one request. `body` None means it was larger than MAX_BODY_BYTES (the
    caller stops reading there); `headers` are the Standard Webhooks ones, lower-case."""
    org = inbound.org
    if not is_enabled(org, "orders"):
        return not_found("module off")
    if body is None:
        return problem(
            413,
            "Content Too Large",
            f"A request holds at most {MAX_BODY_BYTES // (1024 * 1024)} MB; send the orders "
            "in smaller batches.",
            Outcome.REJECTED,
        )
    refusal = signature_refusal(
        signing_secret(inbound), headers, body, time.time() if now is None else now
    )
    if refusal:
        return problem(401, "Unauthorized", refusal, Outcome.REFUSED)
    items, why = _items(body)
    if items is None:
        return problem(400, "Bad Request", why, Outcome.REJECTED)
    actor = Actor(type=AuditEvent.ActorType.SYSTEM, label="Inbound order URL", ip=remote_ip)
    try:
        result = _upsert(inbound, items, actor)
    except Exception:
        # Never a half write (the transaction rolled back) and never a bare 500 page: the
        # sender is told to try again, and the log says it happened.
        logger.exception("inbound orders of org %s could not be saved", org.pk)
        return problem(
            500,
            "Internal Server Error",
            "The orders could not be saved and nothing was changed; send them again later.",
            Outcome.ERROR,
        )
    counts = result.counts
    failures = [item.as_dict() for item in result.failures]
    errors = [{k: f[k] for k in ("index", "external_id", "errors")} for f in failures]
    results = [item.as_dict() for item in result.items]
    if counts[FAILED] == counts["items"]:
        reply = problem(
            400,
            "Bad Request",
            "No order in the request could be saved; see errors for each one.",
            Outcome.REJECTED,
            errors=errors,
            counts=counts,
            results=results,
        )
    else:
        outcome = Outcome.PARTIAL if failures else Outcome.ACCEPTED
        detail = (
            f"{counts[FAILED]} of {counts['items']} orders could not be saved." if failures else ""
        )
        reply = Reply(
            200,
            {"outcome": outcome, "counts": counts, "results": results, "errors": errors},
            outcome,
            detail,
        )
    reply.counts, reply.errors = counts, errors
    return reply
