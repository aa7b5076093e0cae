"""The inbound order URL: signatures, bounds, per-item answers, contacts, idempotency and
the deliveries log (the batch write itself: test_order_upsert.py; the pages:
test_order_inbound_pages.py)."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import pytest
from standardwebhooks import Webhook

from contacts.models import Contact
from crm.models import AuditEvent, OutboxEvent
from pipeline.models import Order, OrderDelivery, OrderStatusChange
from pipeline.services.order_inbound import sign, signature_refusal, signing_key
from pipeline.services.order_receive import MAX_BODY_BYTES
from tests.factories import ContactFactory, DealFactory

from .inbound_helpers import (
    enable_orders,
    inbound_url,
    make_inbound,
    order,
    post_orders,
    signed_headers,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbound(org):
    enable_orders(org)
    ContactFactory(org=org, email="ann@example.com", first_name="Ann")
    return make_inbound(org)


def orders_of(org):
    return Order.objects.for_org(org)


def deliveries(org):
    return list(OrderDelivery.objects.for_org(org).order_by("id"))


# Signatures -------------------------------------------------------------------------------


def test_a_signed_order_is_created_with_history_an_event_and_one_audit_row(org, inbound):
    response = post_orders(inbound, order())

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["counts"] == {
        "items": 1,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }
    created = orders_of(org).get()
    assert answer["results"][0]["id"] == str(created.public_id)
    assert created.source == Order.Source.WEBHOOK and created.external_id == "1001"
    assert created.value == Decimal("49.90") and created.currency == "EUR"
    assert created.contact.email == "ann@example.com"
    history = list(OrderStatusChange.objects.for_org(org).filter(order=created))
    assert [(h.from_status, h.to_status, h.via) for h in history] == [("", "paid", "webhook")]
    assert OutboxEvent.objects.for_org(org).filter(event_type="order.created").count() == 1
    audits = AuditEvent.objects.for_org(org).filter(verb="order.batch_upserted")
    assert audits.count() == 1
    assert audits.get().changes["created_ids"] == [str(created.public_id)]
    assert [d.outcome for d in deliveries(org)] == ["accepted"]


def test_the_spec_test_vector_signs_as_published():
    # The Standard Webhooks specification's example secret, message and signature.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'

    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)

    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,bogus v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    assert signature_refusal(secret, headers, body, now=1614265330 + 10) == ""


def test_a_request_signed_by_the_standardwebhooks_library_is_accepted(org, inbound):
    body = json.dumps({"orders": [order()]}).encode()
    stamp = dt.datetime.now(dt.UTC)
    library = Webhook(inbound.signing_secret)
    headers = {
        "HTTP_WEBHOOK_ID": "msg_library",
        "HTTP_WEBHOOK_TIMESTAMP": str(int(stamp.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": library.sign("msg_library", stamp, body),
    }
    from django.test import Client

    response = Client().post(
        inbound_url(inbound.url_token), data=body, content_type="application/json", **headers
    )

    assert response.status_code == 200, response.content
    assert orders_of(org).count() == 1


def test_our_signature_verifies_with_the_standardwebhooks_library(inbound):
    body = b'{"orders": []}'
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(inbound.signing_secret, "msg_1", now, body),
    }

    assert Webhook(inbound.signing_secret).verify(body, headers) == {"orders": []}
    assert signing_key(inbound.signing_secret) == Webhook(inbound.signing_secret)._whsecret


def test_a_wrong_url_token_is_404_and_nothing_is_logged(org, inbound):
    response = post_orders(inbound, order(), token=inbound.url_token + "x")

    assert response.status_code == 404
    assert orders_of(org).count() == 0
    assert deliveries(org) == []


def test_a_wrong_hmac_is_refused_401_and_logged(org, inbound):
    response = post_orders(inbound, order(), secret="whsec_" + "A" * 32)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert "signature does not match" in response.json()["detail"]
    assert orders_of(org).count() == 0
    [logged] = deliveries(org)
    assert (logged.outcome, logged.status_code) == ("refused", 401)


def test_a_body_changed_after_signing_is_refused(org, inbound):
    body = json.dumps(order()).encode()
    headers = signed_headers(inbound.signing_secret, body)
    from django.test import Client

    response = Client().post(
        inbound_url(inbound.url_token),
        data=body.replace(b"49.90", b"0.01"),
        content_type="application/json",
        **headers,
    )

    assert response.status_code == 401
    assert orders_of(org).count() == 0


def test_missing_signature_headers_are_refused(org, inbound):
    from django.test import Client

    response = Client().post(
        inbound_url(inbound.url_token), data=json.dumps(order()), content_type="application/json"
    )

    assert response.status_code == 401
    assert "not signed" in response.json()["detail"]


def test_an_old_timestamp_is_refused(org, inbound):
    response = post_orders(inbound, order(), timestamp=int(time.time()) - 301)

    assert response.status_code == 401
    assert "more than 5 minutes old" in response.json()["detail"]
    assert orders_of(org).count() == 0
    assert deliveries(org)[0].outcome == "refused"


def test_a_future_timestamp_is_refused(org, inbound):
    response = post_orders(inbound, order(), timestamp=int(time.time()) + 301)

    assert response.status_code == 401
    assert "in the future" in response.json()["detail"]


def test_a_timestamp_within_five_minutes_is_accepted(org, inbound):
    response = post_orders(inbound, order(), timestamp=int(time.time()) - 240)

    assert response.status_code == 200


def test_another_organizations_url_with_this_organizations_signature_is_refused(
    org, other_org, inbound
):
    enable_orders(other_org)
    theirs = make_inbound(other_org)

    response = post_orders(inbound, order(), token=theirs.url_token)

    assert response.status_code == 401
    assert Order.objects.all_orgs().count() == 0
    assert [d.outcome for d in deliveries(other_org)] == ["refused"]
    assert deliveries(org) == []


def test_module_off_is_404_like_an_unknown_url_and_logged_as_refused(org, inbound):
    org.enabled_modules = []
    org.save()

    response = post_orders(inbound, order())
    unknown = post_orders(inbound, order(), token="ordin_nobody")

    assert response.status_code == 404
    assert response.content == unknown.content
    assert orders_of(org).count() == 0
    [logged] = deliveries(org)
    assert (logged.outcome, logged.status_code, logged.detail) == ("refused", 404, "module off")


def test_get_is_not_allowed(inbound):
    from django.test import Client

    assert Client().get(inbound_url(inbound.url_token)).status_code == 405


# Bounds and malformed bodies ------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_logged(org, inbound):
    body = b'{"orders": [' + b" " * MAX_BODY_BYTES + b"]}"

    response = post_orders(inbound, body=body)

    assert response.status_code == 413
    [logged] = deliveries(org)
    assert (logged.outcome, logged.status_code) == ("rejected", 413)
    assert logged.body_bytes == len(body)


def test_more_than_a_thousand_orders_is_400(org, inbound):
    response = post_orders(inbound, {"orders": [order(str(n)) for n in range(1001)]})

    assert response.status_code == 400
    assert "At most 1,000 orders" in response.json()["detail"]
    assert orders_of(org).count() == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe\x00",
        b"[" * 100_000,
        b'"a string"',
        b'{"orders": {"external_id": "1"}}',
        b"[]",
    ],
)
def test_a_malformed_body_is_400_with_a_problem_document(org, inbound, body):
    response = post_orders(inbound, body=body)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["detail"]
    assert deliveries(org)[0].outcome == "rejected"


# Items -----------------------------------------------------------------------------------


def test_every_item_failing_is_400_with_errors_per_item(org, inbound):
    response = post_orders(
        inbound,
        {"orders": [order("1", value="lots"), order("2", status="shipped"), "nope"]},
    )

    assert response.status_code == 400
    problem = response.json()
    assert problem["counts"]["failed"] == 3
    by_index = {e["index"]: e["errors"] for e in problem["errors"]}
    assert set(by_index[0]) == {"value"}
    assert set(by_index[1]) == {"status"}
    assert set(by_index[2]) == {"item"}
    assert orders_of(org).count() == 0
    [logged] = deliveries(org)
    assert (logged.outcome, logged.failed, logged.items) == ("rejected", 3, 3)
    assert logged.errors[0]["errors"] == by_index[0]


def test_a_bad_item_costs_the_others_nothing(org, inbound):
    response = post_orders(
        inbound,
        {"orders": [order("1"), order("2", currency="EURO"), {**order("3"), "external_id": " "}]},
    )

    assert response.status_code == 200
    answer = response.json()
    assert answer["outcome"] == "partial"
    assert [r["status"] for r in answer["results"]] == ["created", "failed", "failed"]
    assert set(answer["results"][1]["errors"]) == {"currency"}
    assert set(answer["results"][2]["errors"]) == {"external_id"}
    assert list(orders_of(org).values_list("external_id", flat=True)) == ["1"]
    [logged] = deliveries(org)
    assert (logged.outcome, logged.created, logged.failed) == ("partial", 1, 2)


def test_text_that_cannot_be_stored_is_an_item_error_not_a_500(org, inbound):
    body = (
        b'{"orders": [{"external_id": "1", "title": "a\\u0000b", "value": 1, "email": '
        b'"ann@example.com"}, {"external_id": "2", "title": "\\ud800", "value": 1, '
        b'"email": "ann@example.com"}, {"external_id": "3", "title": {"x": 1}, "value": 1, '
        b'"email": "ann@example.com"}]}'
    )

    response = post_orders(inbound, body=body)

    assert response.status_code == 400
    assert [set(e["errors"]) for e in response.json()["errors"]] == [{"title"}] * 3


def test_one_object_or_a_bare_list_is_accepted(org, inbound):
    assert post_orders(inbound, order("1")).status_code == 200
    assert post_orders(inbound, [order("2"), order("3")]).status_code == 200

    assert orders_of(org).count() == 3


def test_a_deal_is_linked_by_its_public_id_and_an_unknown_one_is_an_error(org, other_org, inbound):
    deal = DealFactory(org=org)
    theirs = DealFactory(org=other_org)

    response = post_orders(
        inbound,
        [order("1", deal_id=str(deal.public_id)), order("2", deal_id=str(theirs.public_id))],
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "failed"]
    assert results[1]["errors"] == {"deal_id": "No deal of this organization has this id."}
    assert orders_of(org).get().deal == deal


# Contacts --------------------------------------------------------------------------------


def test_the_contact_is_matched_by_email_whatever_its_case(org, inbound):
    response = post_orders(inbound, order(email=None, contact={"email": "  ANN@Example.COM "}))

    assert response.status_code == 200
    assert orders_of(org).get().contact.first_name == "Ann"
    assert Contact.objects.for_org(org).count() == 1


def test_an_unknown_email_fails_when_contacts_are_not_created(org, inbound):
    response = post_orders(inbound, [order("1"), order("2", email="new@example.com")])

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "failed"]
    assert set(results[1]["errors"]) == {"contact"}
    assert not Contact.objects.for_org(org).filter(email="new@example.com").exists()


def test_an_unknown_email_creates_the_contact_when_the_setting_is_on(org, inbound):
    inbound.create_contacts = True
    inbound.save()

    response = post_orders(
        inbound,
        [
            order("1", email=None, contact={"email": "New@Example.com", "first_name": "Nia"}),
            order("2", email="new@example.com"),
        ],
    )

    assert response.status_code == 200
    made = Contact.objects.for_org(org).get(email="new@example.com")
    assert made.first_name == "Nia" and made.owner_id is None
    assert made.source == "Orders webhook"
    assert made.consent_type == Contact.ConsentType.IMPORTED
    assert set(orders_of(org).values_list("contact_id", flat=True)) == {made.pk}
    assert AuditEvent.objects.for_org(org).filter(verb="contact.created").count() == 1


def test_a_contact_is_not_made_for_an_item_that_fails(org, inbound):
    inbound.create_contacts = True
    inbound.save()

    response = post_orders(inbound, [order("1", email="new@example.com", value="-3")])

    assert response.status_code == 400
    assert not Contact.objects.for_org(org).filter(email="new@example.com").exists()


def test_a_contact_that_cannot_be_made_fails_its_orders_only(org, inbound):
    inbound.create_contacts = True
    inbound.save()
    bad = {"email": "new@example.com", "phone": "+1 12"}

    response = post_orders(
        inbound,
        [order("1", email=None, contact=bad), order("2", email="new@example.com"), order("3")],
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["failed", "failed", "created"]
    assert results[0]["errors"]["contact"].startswith("Phone: ")
    assert results[0]["id"] is None
    assert not Contact.objects.for_org(org).filter(email="new@example.com").exists()
    assert list(orders_of(org).values_list("external_id", flat=True)) == ["3"]


def test_a_bad_email_is_an_error_on_contact(org, inbound):
    response = post_orders(inbound, [order("1", email="not an email")])

    assert set(response.json()["errors"][0]["errors"]) == {"contact"}


# Idempotency ------------------------------------------------------------------------------


def test_the_same_batch_twice_changes_nothing_the_second_time(org, inbound):
    batch = {"orders": [order(str(n), status="pending") for n in range(5)]}

    first = post_orders(inbound, batch).json()
    rows = list(orders_of(org).order_by("id").values_list("id", "public_id", "status"))
    second = post_orders(inbound, batch).json()

    assert first["counts"]["created"] == 5
    assert second["counts"] == {"items": 5, "created": 0, "updated": 0, "unchanged": 5, "failed": 0}
    assert [r["id"] for r in second["results"]] == [r["id"] for r in first["results"]]
    assert list(orders_of(org).order_by("id").values_list("id", "public_id", "status")) == rows
    assert OrderStatusChange.objects.for_org(org).count() == 5
    assert AuditEvent.objects.for_org(org).filter(verb="order.batch_upserted").count() == 1
    assert [d.outcome for d in deliveries(org)] == ["accepted", "accepted"]


def test_a_repeat_with_a_new_status_updates_and_records_the_change_once(org, inbound):
    post_orders(inbound, order("1", status="pending"))

    response = post_orders(inbound, order("1", status="paid", paid_date="2025-05-02"))
    post_orders(inbound, order("1", status="paid", paid_date="2025-05-02"))

    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "updated"
    saved = orders_of(org).get()
    assert saved.status == "paid" and saved.paid_date == dt.date(2025, 5, 2)
    changes = OrderStatusChange.objects.for_org(org).order_by("id")
    assert [(c.from_status, c.to_status) for c in changes] == [("", "pending"), ("pending", "paid")]
    events = OutboxEvent.objects.for_org(org).filter(event_type="order.status_changed")
    assert [(e.payload["from"], e.payload["to"]) for e in events] == [("pending", "paid")]


def test_an_update_may_carry_only_the_fields_that_change(org, inbound):
    post_orders(inbound, order("1", status="pending", note="gift"))

    response = post_orders(inbound, {"external_id": "1", "status": "refunded"})

    assert response.json()["results"][0]["status"] == "updated"
    saved = orders_of(org).get()
    assert (saved.status, saved.note, saved.value) == ("refunded", "gift", Decimal("49.90"))


def test_the_same_external_id_twice_in_one_batch_is_created_then_updated(org, inbound):
    response = post_orders(
        inbound, [order("1", status="pending"), order("1", status="paid"), order("1")]
    )

    assert [r["status"] for r in response.json()["results"]] == [
        "created",
        "updated",
        "unchanged",
    ]
    saved = orders_of(org).get()
    assert saved.status == "paid"
    changes = OrderStatusChange.objects.for_org(org).filter(order=saved).order_by("id")
    assert [(c.from_status, c.to_status) for c in changes] == [("", "pending"), ("pending", "paid")]


def test_a_repeat_is_never_a_409(org, inbound):
    for _ in range(3):
        response = post_orders(inbound, order("1"))
        assert response.status_code == 200
    assert orders_of(org).count() == 1


# The log -----------------------------------------------------------------------------------


def test_each_request_is_logged_with_its_counts_and_sender(org, inbound):
    post_orders(inbound, [order("1"), order("2", value="x")], msg_id="msg_abc")

    [logged] = deliveries(org)
    assert logged.message_id == "msg_abc"
    assert (logged.items, logged.created, logged.failed) == (2, 1, 1)
    assert logged.remote_ip == "127.0.0.1"
    assert logged.body_bytes > 0 and logged.duration_ms >= 0
    assert logged.errors == [
        {"index": 1, "external_id": "2", "errors": {"value": "Value must be a number."}}
    ]


def test_a_deadlocked_batch_is_run_again(org, inbound, monkeypatch):
    import psycopg
    from django.db import OperationalError

    from pipeline.services import order_receive

    real, calls = order_receive.upsert_orders, []

    def deadlock_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            try:
                raise psycopg.errors.DeadlockDetected("deadlock detected")
            except psycopg.errors.DeadlockDetected as cause:
                raise OperationalError("deadlock detected") from cause
        return real(**kwargs)

    monkeypatch.setattr(order_receive, "upsert_orders", deadlock_once)

    response = post_orders(inbound, order())

    assert response.status_code == 200
    assert len(calls) == 2
    assert orders_of(org).count() == 1


def test_a_failure_while_saving_is_a_500_problem_logged_and_nothing_is_kept(
    org, inbound, monkeypatch
):
    from pipeline.services import order_bulk

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(order_bulk, "insert_events", broken)

    response = post_orders(inbound, order())

    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert "nothing was changed" in response.json()["detail"]
    assert "disk on fire" not in response.content.decode()
    assert orders_of(org).count() == 0
    assert OrderStatusChange.objects.for_org(org).count() == 0
    [logged] = deliveries(org)
    assert (logged.outcome, logged.status_code) == ("error", 500)
