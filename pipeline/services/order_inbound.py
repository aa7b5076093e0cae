"""The organization's inbound order URL: its two secrets, its settings, the Standard Webhooks
signature its requests carry, and the log of every request.

- The URL carries a random token. It is looked up by its SHA-256 digest (crm.secrets.digest)
  and kept encrypted, so the settings page can show the URL again.
- Requests are signed the Standard Webhooks way (https://www.standardwebhooks.com): headers
  `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated
  list of `v1,<base64 HMAC-SHA256>` over "{id}.{timestamp}.{raw body}". The key is the
  base64-decoded part of the `whsec_…` secret after its prefix, so any Standard Webhooks
  library signs for us (tests/pipeline/test_order_inbound.py proves it with the
  `standardwebhooks` package). A timestamp more than five minutes away from our clock is
  refused, which bounds replays.
- The URL and the signing secret are shown only to members who may change settings for the
  whole organization (Settings edit, scope "all"): whoever holds both can write orders for
  any contact and, with the setting on, create contacts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from crm import rls
from crm import secrets as crm_secrets
from crm.services import Actor, audit, emit_event

from ..models import OrderDelivery, OrderInbound

TOKEN_PREFIX = "ordin_"  # noqa: S105 (a readable prefix, not a secret)
TOKEN_BYTES = 32
SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix)
SECRET_BYTES = 24
TOLERANCE_SECONDS = 5 * 60
# Signatures read from one webhook-signature header (a sender rotating keys sends two or three).
MAX_SIGNATURES = 10
# Longer tokens are never ours: refused before any hashing or query.
TOKEN_MAX = 200
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)


# Secrets ------------------------------------------------------------------------------------


def new_url_token() -> str:
    return crm_secrets.new_token(TOKEN_PREFIX, TOKEN_BYTES)


def new_signing_secret() -> str:
    """`whsec_` + standard base64 of random bytes: the spec's format, which every Standard
    Webhooks library decodes the same way."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: its base64 part decoded. The URL-safe alphabet and
    missing padding are accepted too (secrets we issue use neither, so for them this is
    exactly the spec's decoding)."""
    text = secret.removeprefix(SECRET_PREFIX).strip().rstrip("=")
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` value for a request: "v1,<base64 HMAC-SHA256>"."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_refusal(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Why the request's signature is not valid, or "" when it is. `headers` are the three
    Standard Webhooks headers by their lower-case names. Every comparison is constant-time."""
    msg_id = headers.get(ID_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not (msg_id and stamp and given):
        return (
            "The request is not signed: send the webhook-id, webhook-timestamp and "
            "webhook-signature headers (Standard Webhooks)."
        )
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return "webhook-timestamp must be the time of sending in Unix seconds."
    age = now - int(stamp)
    if age > TOLERANCE_SECONDS:
        return (
            "The webhook-timestamp is more than 5 minutes old: sign the request again with "
            "the current time (and check the sender's clock)."
        )
    if age < -TOLERANCE_SECONDS:
        return (
            "The webhook-timestamp is more than 5 minutes in the future: check the sender's clock."
        )
    expected = sign(secret, msg_id, stamp, body).encode()
    matched = False
    for candidate in given.split(" ")[:MAX_SIGNATURES]:
        # No early exit: every entry costs the same comparison.
        matched |= hmac.compare_digest(expected, candidate.strip().encode("utf-8", "replace"))
    if not matched:
        return (
            'The signature does not match: sign "{webhook-id}.{webhook-timestamp}.{body}" '
            "with this URL's signing secret (Settings → Orders inbound)."
        )
    return ""


# Finding the organization of a request -------------------------------------------------------


def inbound_for_token(token: str) -> OrderInbound | None:
    """The inbound settings (with their organization) whose URL token this is, or None.
    The request has no member, so no organization yet: the one look-up across organizations,
    by the token's digest (a unique index), under the logged bypass."""
    if not token or len(token) > TOKEN_MAX:
        return None
    wanted = crm_secrets.digest(token)
    with (
        transaction.atomic(),
        rls.bypass("inbound order URL: find the organization that owns a URL token"),
    ):
        found = (
            OrderInbound.objects.all_orgs()
            .select_related("org")
            .filter(url_token_digest=wanted)
            .first()
        )
    if found is None or not crm_secrets.same(found.url_token_digest, wanted):
        return None
    return found


def record_delivery(org, **fields) -> OrderDelivery:
    """Log one request, in a transaction of its own: the log row stays whatever became of the
    request's own work (a refused or failed request is logged too)."""
    fields["detail"] = (fields.get("detail") or "")[:500]
    fields["message_id"] = (fields.get("message_id") or "").replace("\x00", "")[:200]
    with transaction.atomic(), rls.tenant(org.pk):
        return OrderDelivery.objects.for_org(org).create(org=org, **fields)


# Settings ------------------------------------------------------------------------------------


def may_see_secrets(policy) -> bool:
    """Members who may change settings for the whole organization (Settings edit, scope
    "all"); None is system work."""
    if policy is None:
        return True
    return policy.can("settings", "edit") and policy.scope("settings") == "all"


def _require_secrets(policy) -> None:
    if not may_see_secrets(policy):
        raise PermissionDenied(
            "Only members who may change settings for the whole organization manage the "
            "inbound order URL."
        )


def ensure_inbound(org, *, actor: Actor) -> OrderInbound:
    """The organization's inbound settings, made on first use. Two first visits at once make
    one row (the unique constraint on org decides; the loser reads the winner's row)."""
    found = OrderInbound.objects.for_org(org).first()
    if found is not None:
        return found
    token, secret = new_url_token(), new_signing_secret()
    with transaction.atomic():
        inbound, created = OrderInbound.objects.for_org(org).get_or_create(
            org=org,
            defaults={
                "url_token_digest": crm_secrets.digest(token),
                "url_token_encrypted": crm_secrets.encrypt(token),
                "signing_secret_encrypted": crm_secrets.encrypt(secret),
            },
        )
        if created:
            audit(
                org=org,
                actor=actor,
                verb="order_inbound.created",
                obj=inbound,
                object_repr="Inbound order URL",
            )
    return inbound


def url_token(inbound: OrderInbound) -> str:
    return crm_secrets.decrypt(inbound.url_token_encrypted)


def signing_secret(inbound: OrderInbound) -> str:
    return crm_secrets.decrypt(inbound.signing_secret_encrypted)


def reveal_signing_secret(inbound: OrderInbound, *, actor: Actor, policy) -> str:
    """The clear signing secret, for a member who may see it; each reveal is audited."""
    _require_secrets(policy)
    with transaction.atomic():
        audit(
            org=inbound.org,
            actor=actor,
            verb="order_inbound.secret_revealed",
            obj=inbound,
            object_repr="Inbound order URL",
        )
    return signing_secret(inbound)


@transaction.atomic
def rotate_inbound(org, *, actor: Actor, policy) -> OrderInbound:
    """A new URL token and a new signing secret: the old URL answers 404 from now on."""
    _require_secrets(policy)
    inbound = ensure_inbound(org, actor=actor)
    inbound = OrderInbound.objects.for_org(org).select_for_update().get(pk=inbound.pk)
    token, secret = new_url_token(), new_signing_secret()
    inbound.url_token_digest = crm_secrets.digest(token)
    inbound.url_token_encrypted = crm_secrets.encrypt(token)
    inbound.signing_secret_encrypted = crm_secrets.encrypt(secret)
    inbound.rotated_at = timezone.now()
    inbound.save()
    audit(
        org=org,
        actor=actor,
        verb="order_inbound.rotated",
        obj=inbound,
        object_repr="Inbound order URL",
        changes={"url": ["(old)", "(new)"], "signing_secret": ["(old)", "(new)"]},
    )
    emit_event(
        org=org,
        event_type="order_inbound.rotated",
        payload={"inbound": inbound.public_id, "rotated_at": inbound.rotated_at},
    )
    return inbound


@transaction.atomic
def set_create_contacts(org, *, actor: Actor, policy, enabled: bool) -> OrderInbound:
    """Whether an order for an email no contact has creates the contact (else it fails)."""
    if policy is not None:
        policy.require("settings", "edit")
    inbound = ensure_inbound(org, actor=actor)
    inbound = OrderInbound.objects.for_org(org).select_for_update().get(pk=inbound.pk)
    if inbound.create_contacts == enabled:
        return inbound
    before = inbound.create_contacts
    inbound.create_contacts = enabled
    inbound.save(update_fields=["create_contacts"])
    audit(
        org=org,
        actor=actor,
        verb="order_inbound.updated",
        obj=inbound,
        object_repr="Inbound order URL",
        changes={"create_contacts": [before, enabled]},
    )
    emit_event(
        org=org,
        event_type="order_inbound.updated",
        payload={"inbound": inbound.public_id, "create_contacts": enabled},
    )
    return inbound
