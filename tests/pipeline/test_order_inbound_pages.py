"""Settings → Orders inbound (the URL, the signing secret, the example, the contacts setting,
rotation) and the deliveries log: who sees and changes what."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from crm.models import AuditEvent
from pipeline.models import Order, OrderDelivery, OrderInbound
from pipeline.services.order_inbound import ensure_inbound, signing_secret, url_token
from tests.factories import (
    ContactFactory,
    MembershipFactory,
    OrderDeliveryFactory,
    OrganizationFactory,
    custom_role,
    member,
)

from .inbound_helpers import enable_orders, inbound_url, order, post_orders

pytestmark = pytest.mark.django_db

SETTINGS = reverse("pipeline:order_inbound_settings")
DELIVERIES = reverse("pipeline:order_deliveries")


@pytest.fixture(autouse=True)
def _orders_on(org):
    enable_orders(org)


def settings_role_member(org, actions: str, scope: str = "all"):
    letters = {"v": "view", "c": "create", "e": "edit", "d": "delete", "x": "export"}
    granted = {letters[ch] for ch in actions}
    entry = {"access": True, **{a: a in granted for a in letters.values()}, "scope": scope}
    role = custom_role(org, permissions={"settings": entry})
    return MembershipFactory(org=org, role=role)


def inbound_of(org) -> OrderInbound:
    return OrderInbound.objects.for_org(org).get()


# The settings page ---------------------------------------------------------------------------


def test_the_first_visit_makes_the_url_and_shows_it_with_a_working_example(org, client_as):
    admin = member(org, "admin")

    response = client_as(admin).get(SETTINGS)

    assert response.status_code == 200
    inbound = inbound_of(org)
    url = "http://testserver" + inbound_url(url_token(inbound))
    body = response.content.decode()
    assert url in body
    assert signing_secret(inbound) not in body  # shown only on demand
    assert "webhook-signature" in body and "openssl dgst" in body
    assert 'data-confirm="Make a new URL' in body
    assert reverse("pipeline:order_inbound_rotate") in body
    assert signing_secret(inbound).startswith("whsec_")
    assert AuditEvent.objects.for_org(org).filter(verb="order_inbound.created").count() == 1
    client_as(admin).get(SETTINGS)
    assert OrderInbound.objects.for_org(org).count() == 1


def test_the_python_example_sends_a_signed_order_that_is_accepted(org, client_as):
    ContactFactory(org=org, email="ann@example.com")
    admin = member(org, "admin")
    page = client_as(admin).get(SETTINGS)
    inbound = inbound_of(org)
    example = page.context["python_example"]
    sent = {}

    class FakeUrlopen:
        """Hands the example's request to the test client instead of the network."""

        def __init__(self, request):
            from django.test import Client

            sent["url"] = request.full_url
            headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.headers.items()}
            self.response = Client().post(
                request.full_url.removeprefix("http://testserver"),
                data=request.data,
                content_type="application/json",
                **{k: v for k, v in headers.items() if k != "HTTP_CONTENT_TYPE"},
            )

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, *args):
            return self.response.content

    import urllib.request

    original = urllib.request.urlopen
    os.environ["ORDERS_SIGNING_SECRET"] = signing_secret(inbound)
    urllib.request.urlopen = FakeUrlopen
    try:
        exec(compile(example, "example.py", "exec"), {"print": lambda *a: None})  # noqa: S102
    finally:
        urllib.request.urlopen = original
        del os.environ["ORDERS_SIGNING_SECRET"]

    assert sent["url"].endswith(inbound_url(url_token(inbound)))
    assert Order.objects.for_org(org).get().external_id == "1001"


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "openssl", "od", "base64")),
    reason="the shell example needs bash, openssl, od and base64",
)
def test_the_shell_example_computes_the_same_signature_as_the_server(org, client_as):
    admin = member(org, "admin")
    page = client_as(admin).get(SETTINGS)
    inbound = inbound_of(org)
    # Everything but the curl call, then print what it would send.
    script = (
        page.context["curl_example"].split("curl -sS")[0]
        + 'printf "%s\\n%s\\n%s" "$ID" "$TS" "$SIG"'
    )
    env = {**os.environ, "ORDERS_SIGNING_SECRET": signing_secret(inbound)}

    output = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=True, timeout=10
    ).stdout.split("\n")

    from pipeline.services.order_inbound import sign
    from pipeline.views.order_inbound import EXAMPLE_BODY

    msg_id, stamp, signature = output[:3]
    assert "v1," + signature == sign(signing_secret(inbound), msg_id, stamp, EXAMPLE_BODY.encode())


def test_show_signing_secret_reveals_it_and_audits_the_reveal(org, client_as):
    admin = member(org, "admin")
    client = client_as(admin)
    client.get(SETTINGS)

    response = client.post(reverse("pipeline:order_inbound_reveal"))

    assert response.status_code == 200
    assert signing_secret(inbound_of(org)) in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert AuditEvent.objects.for_org(org).filter(verb="order_inbound.secret_revealed").count() == 1
    htmx = client_as(admin, htmx=True).post(reverse("pipeline:order_inbound_reveal"))
    assert htmx.content.decode().lstrip().startswith('<section class="card" id="signing-secret"')


def test_a_settings_viewer_sees_the_page_but_neither_url_nor_secret_nor_changes(org, client_as):
    viewer = settings_role_member(org, "v")
    client = client_as(viewer)

    response = client.get(SETTINGS)

    assert response.status_code == 200
    inbound = inbound_of(org)
    body = response.content.decode()
    assert url_token(inbound) not in body and signing_secret(inbound) not in body
    assert reverse("pipeline:order_inbound_rotate") not in body
    assert reverse("pipeline:order_inbound_reveal") not in body
    assert 'name="create_contacts"' not in body
    assert client.post(reverse("pipeline:order_inbound_reveal")).status_code == 403
    assert client.post(reverse("pipeline:order_inbound_rotate")).status_code == 403
    assert (
        client.post(
            reverse("pipeline:order_inbound_create_contacts"), {"create_contacts": "on"}
        ).status_code
        == 403
    )
    assert inbound_of(org).create_contacts is False
    assert client.get(DELIVERIES).status_code == 200


def test_an_own_scope_settings_editor_cannot_see_or_rotate_the_secret(org, client_as):
    rep = settings_role_member(org, "vce", scope="own")
    client = client_as(rep)

    response = client.get(SETTINGS)

    assert response.status_code == 200
    inbound = inbound_of(org)
    assert url_token(inbound) not in response.content.decode()
    assert client.post(reverse("pipeline:order_inbound_reveal")).status_code == 403
    assert client.post(reverse("pipeline:order_inbound_rotate")).status_code == 403
    assert url_token(inbound_of(org)) == url_token(inbound)


@pytest.mark.parametrize("role_key", ["team", "viewer", "executive", "support"])
def test_members_without_the_settings_module_get_403(org, client_as, role_key):
    client = client_as(member(org, role_key))

    assert client.get(SETTINGS).status_code == 403
    assert client.get(DELIVERIES).status_code == 403
    assert client.post(reverse("pipeline:order_inbound_reveal")).status_code == 403
    assert not OrderInbound.objects.for_org(org).exists()


def test_the_pages_say_the_module_is_off(org, client_as):
    org.enabled_modules = []
    org.save()
    client = client_as(member(org, "admin"))

    assert client.get(SETTINGS).status_code == 404
    assert client.get(DELIVERIES).status_code == 404
    assert client.post(reverse("pipeline:order_inbound_rotate")).status_code == 404


def test_the_contacts_setting_is_changed_and_audited(org, client_as):
    client = client_as(member(org, "admin"))

    response = client.post(
        reverse("pipeline:order_inbound_create_contacts"), {"create_contacts": "on"}
    )

    assert response.status_code == 302
    assert inbound_of(org).create_contacts is True
    audit = AuditEvent.objects.for_org(org).get(verb="order_inbound.updated")
    assert audit.changes == {"create_contacts": [False, True]}
    client.post(reverse("pipeline:order_inbound_create_contacts"), {})
    assert inbound_of(org).create_contacts is False


def test_rotating_retires_the_old_url_and_secret(org, client_as):
    ContactFactory(org=org, email="ann@example.com")
    client = client_as(member(org, "admin"))
    client.get(SETTINGS)
    old = inbound_of(org)
    old.url_token, old.signing_secret = url_token(old), signing_secret(old)

    response = client.post(reverse("pipeline:order_inbound_rotate"))

    assert response.status_code == 302
    new = inbound_of(org)
    new.url_token, new.signing_secret = url_token(new), signing_secret(new)
    assert new.url_token != old.url_token and new.signing_secret != old.signing_secret
    assert post_orders(old, order()).status_code == 404
    assert post_orders(new, order(), secret=old.signing_secret).status_code == 401
    assert post_orders(new, order()).status_code == 200
    audit = AuditEvent.objects.for_org(org).get(verb="order_inbound.rotated")
    assert old.signing_secret not in str(audit.changes)


@pytest.mark.django_db(transaction=True)
def test_two_first_visits_at_once_make_one_inbound_url():
    org = OrganizationFactory()
    barrier = threading.Barrier(2)
    made, errors = [], []

    def visit():
        try:
            from django.db import transaction

            from crm import rls
            from crm.services import Actor

            barrier.wait(timeout=5)
            with transaction.atomic(), rls.tenant(org.pk):
                made.append(ensure_inbound(org, actor=Actor.system("test")).pk)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=visit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    assert len(set(made)) == 1
    assert OrderInbound.objects.all_orgs().filter(org=org).count() == 1


# The deliveries page -------------------------------------------------------------------------


def test_deliveries_are_listed_newest_first_with_their_errors(org, client_as):
    now = timezone.now()
    OrderDeliveryFactory(org=org, received_at=now - dt.timedelta(hours=1), detail="first one")
    OrderDeliveryFactory(
        org=org,
        received_at=now,
        outcome="partial",
        items=2,
        created=1,
        failed=1,
        detail="1 of 2 orders could not be saved.",
        errors=[
            {"index": 1, "external_id": "<b>x</b>", "errors": {"value": "Value must be a number."}}
        ],
    )

    response = client_as(member(org, "admin")).get(DELIVERIES)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.index("1 of 2 orders") < body.index("first one")
    assert "#1 (&lt;b&gt;x&lt;/b&gt;) · value: Value must be a number." in body


def test_deliveries_filter_by_outcome(org, client_as):
    OrderDeliveryFactory(org=org, outcome="refused", status_code=401, detail="bad signature")
    OrderDeliveryFactory(org=org, outcome="accepted", detail="all good")
    client = client_as(member(org, "admin"))

    body = client.get(DELIVERIES, {"outcome": "refused"}).content.decode()
    empty = client.get(DELIVERIES, {"outcome": "partial"}).content.decode()
    bogus = client.get(DELIVERIES, {"outcome": "<script>"})

    assert "bad signature" in body and "all good" not in body
    assert "No deliveries with this outcome" in empty
    assert bogus.status_code == 200 and "all good" in bogus.content.decode()


def test_deliveries_page_through_with_a_cursor(org, client_as):
    start = timezone.now()
    for n in range(55):
        OrderDeliveryFactory(
            org=org, received_at=start - dt.timedelta(minutes=n), detail=f"d-{n:02}"
        )
    client = client_as(member(org, "admin"))

    first = client.get(DELIVERIES)
    older = client.get(DELIVERIES, {"cursor": first.context["page"].next_cursor})

    assert [d.detail for d in first.context["page"].rows][:2] == ["d-00", "d-01"]
    assert [d.detail for d in older.context["page"].rows] == [f"d-{n:02}" for n in range(50, 55)]
    assert not older.context["page"].has_next


def test_deliveries_empty_state(org, client_as):
    body = client_as(member(org, "admin")).get(DELIVERIES).content.decode()

    assert "No deliveries yet" in body


def test_another_organizations_deliveries_are_not_shown(org, other_org, client_as):
    OrderDeliveryFactory(org=other_org, detail="theirs")

    body = client_as(member(org, "admin")).get(DELIVERIES).content.decode()

    assert "theirs" not in body
    assert OrderDelivery.objects.for_org(org).count() == 0
