"""Who did what, and the domain events that follow from it.

`audit()` and `emit_event()` must be called inside the transaction of the write they describe,
so the record, its audit row and its outbox row commit or vanish together.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from dataclasses import dataclass

from django.db import models

from ..client_ip import client_ip
from ..models import AuditEvent, OutboxEvent, User


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, an API key, a system job, or the AI for a user."""

    type: str = AuditEvent.ActorType.SYSTEM
    user: User | None = None
    label: str = ""
    ip: str | None = None

    @classmethod
    def from_request(cls, request) -> Actor:
        user = request.user if request.user.is_authenticated else None
        ip = client_ip(request)
        return cls(
            type=AuditEvent.ActorType.USER,
            user=user,
            label=user.email if user else "anonymous",
            ip=ip or None,
        )

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(type=AuditEvent.ActorType.SYSTEM, label=label)

    @classmethod
    def for_user(cls, user, ip: str | None = None) -> Actor:
        return cls(type=AuditEvent.ActorType.USER, user=user, label=user.email, ip=ip)


def _plain(value):
    """A JSON-safe form of a field value for the audit trail."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def snapshot(instance: models.Model, fields) -> dict:
    """The current values of `fields` on `instance`, for a later `diff()`.
    For a foreign key pass the field name; its str() is recorded."""
    return {name: _plain(getattr(instance, name)) for name in fields}


def diff(before: dict, after: dict) -> dict:
    """{field: [before, after]} for every field whose value changed."""
    keys = list(dict.fromkeys([*before, *after]))
    return {
        key: [before.get(key), after.get(key)] for key in keys if before.get(key) != after.get(key)
    }


def audit(
    *,
    org,
    actor: Actor,
    verb: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    changes: dict | None = None,
) -> AuditEvent:
    if obj is not None:
        object_type = object_type or obj._meta.model_name or ""
        object_id = object_id or str(getattr(obj, "public_id", obj.pk))
        object_repr = object_repr or str(obj)[:200]
    return AuditEvent.objects.for_org(org).create(
        org=org,
        actor_type=actor.type,
        actor_user=actor.user,
        actor_label=actor.label[:200],
        verb=verb,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:200],
        changes=_plain(changes or {}),
        ip_address=actor.ip,
    )


def emit_event(*, org, event_type: str, payload: dict) -> OutboxEvent:
    """Record a domain event (`contact.created`, `member.invited`, ...) in the outbox."""
    return OutboxEvent.objects.for_org(org).create(
        org=org, event_type=event_type, payload=_plain(payload)
    )
