"""Shared helpers of the inbound order URL's tests: an organization with the orders module on,
its inbound settings with known secrets, and signed requests."""

from __future__ import annotations

import json
import time
import uuid

from django.test import Client
from django.urls import reverse

from pipeline.services.order_inbound import new_signing_secret, sign
from tests.factories import OrderInboundFactory


def enable_orders(org) -> None:
    org.enabled_modules = ["orders", "custom_objects"]
    org.save()


def make_inbound(org, **kwargs):
    """OrderInbound with known clear secrets on `.url_token` / `.signing_secret`."""
    token = kwargs.pop("url_token", f"ordin_test_{uuid.uuid4().hex}")
    secret = kwargs.pop("signing_secret", new_signing_secret())
    inbound = OrderInboundFactory(org=org, url_token=token, signing_secret=secret, **kwargs)
    inbound.url_token, inbound.signing_secret = token, secret
    return inbound


def inbound_url(token: str) -> str:
    return reverse("pipeline:order_inbound", args=[token])


def signed_headers(secret: str, body: bytes, *, timestamp=None, msg_id=None) -> dict:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": stamp,
        "HTTP_WEBHOOK_SIGNATURE": sign(secret, msg_id, stamp, body),
    }


def post_orders(inbound, payload=None, *, body=None, secret=None, client=None, token=None, **kw):
    """POST `payload` (JSON) or raw `body` to the inbound URL, signed with `secret` (the
    inbound's own by default)."""
    client = client or Client()
    if body is None:
        body = json.dumps(payload).encode()
    headers = signed_headers(secret or inbound.signing_secret, body, **kw)
    return client.post(
        inbound_url(token or inbound.url_token),
        data=body,
        content_type="application/json",
        **headers,
    )


def order(external_id="1001", email="ann@example.com", **fields) -> dict:
    item = {
        "external_id": external_id,
        "title": f"Order #{external_id}",
        "value": "49.90",
        "currency": "EUR",
        "status": "paid",
        "order_date": "2025-05-01",
        "email": email,
    }
    item.update(fields)
    return {k: v for k, v in item.items() if v is not None}
