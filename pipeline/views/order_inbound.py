"""The inbound order URL (for shops and payment tools: no member, a signed request), its
settings page and its deliveries log.

The URL's view only reads the request and answers: pipeline.services.order_receive decides,
pipeline.services.order_inbound finds the organization and logs the request. It runs outside
any member's transaction (the request has no member; crm.middleware leaves it alone): the
organization comes from the URL token, and the work runs in that organization's row-level
security context.

The pages need the Settings module (and the orders module on); changing anything needs
Settings edit, and the URL and signing secret are shown only to members who may change
settings for the whole organization (services.order_inbound.may_see_secrets).
"""

from __future__ import annotations

import time

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from crm.client_ip import client_ip
from crm.decorators import member_required, module_enabled
from crm.pagination import page as keyset_page
from crm.permissions import policy_for
from crm.services import Actor

from ..models import OrderDelivery
from ..services import order_inbound as inbound_services
from ..services.order_receive import MAX_BODY_BYTES, Reply, not_found, receive
from ..services.order_upsert import MAX_ITEMS

PAGE_SIZE = 50
NEWEST_FIRST = ["-received_at", "-id"]
HEADERS = (
    inbound_services.ID_HEADER,
    inbound_services.TIMESTAMP_HEADER,
    inbound_services.SIGNATURE_HEADER,
)


# The URL ----------------------------------------------------------------------------------


def _read_body(request) -> tuple[bytes | None, int]:
    """(the raw body, its size), the body None when larger than MAX_BODY_BYTES: reading
    stops there, and a declared length above it is not read at all."""
    try:
        declared = max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return None, declared
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return None, max(declared, len(body))
    return body, len(body)


def _answer(reply: Reply) -> JsonResponse:
    return JsonResponse(reply.body, status=reply.status, content_type=reply.content_type)


@csrf_exempt
@require_POST
def order_inbound(request, token):
    started, received_at = time.monotonic(), timezone.now()
    inbound = inbound_services.inbound_for_token(token)
    if inbound is None:
        # No organization is known, so there is nowhere to log it.
        return _answer(not_found())
    body, size = _read_body(request)
    headers = {name: request.headers.get(name, "") for name in HEADERS}
    remote_ip = client_ip(request)
    reply = receive(inbound, headers=headers, body=body, remote_ip=remote_ip)
    inbound_services.record_delivery(
        inbound.org,
        received_at=received_at,
        message_id=headers[inbound_services.ID_HEADER],
        remote_ip=remote_ip,
        body_bytes=size,
        duration_ms=int((time.monotonic() - started) * 1000),
        **reply.log_fields(),
    )
    return _answer(reply)


# Settings ---------------------------------------------------------------------------------

EXAMPLE_BODY = (
    '{"orders": [{"external_id": "1001", "title": "Order #1001", "value": "49.90", '
    '"currency": "EUR", "status": "paid", "order_date": "2025-05-01", '
    '"contact": {"email": "ann@example.com", "first_name": "Ann"}}]}'
)


def curl_example(url: str) -> str:
    """A shell example that signs with openssl (the secret comes from the environment)."""
    return "\n".join(
        [
            "# export ORDERS_SIGNING_SECRET='whsec_…'  (Settings → Orders inbound)",
            f"BODY='{EXAMPLE_BODY}'",
            'ID="msg_$(date +%s)_$RANDOM"; TS="$(date +%s)"',
            'KEY="$(printf %s "${ORDERS_SIGNING_SECRET#whsec_}" | base64 -d'
            " | od -An -tx1 | tr -d ' \\n')\"",
            'SIG="$(printf %s "$ID.$TS.$BODY"'
            ' | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$KEY" -binary | base64)"',
            f"curl -sS -X POST '{url}' \\",
            "  -H 'content-type: application/json' \\",
            '  -H "webhook-id: $ID" -H "webhook-timestamp: $TS" -H "webhook-signature: v1,$SIG" \\',
            '  --data-raw "$BODY"',
        ]
    )


def python_example(url: str) -> str:
    """The same in Python's standard library (or use any Standard Webhooks library)."""
    return "\n".join(
        [
            "import base64, hashlib, hmac, json, os, time, uuid, urllib.request",
            "",
            f'URL = "{url}"',
            'SECRET = os.environ["ORDERS_SIGNING_SECRET"]  # whsec_…',
            "",
            "orders = [{",
            '    "external_id": "1001", "title": "Order #1001", "value": "49.90",',
            '    "currency": "EUR", "status": "paid", "order_date": "2025-05-01",',
            '    "contact": {"email": "ann@example.com", "first_name": "Ann"},',
            "}]",
            'body = json.dumps({"orders": orders}).encode()',
            'msg_id, timestamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))',
            'key = base64.b64decode(SECRET.removeprefix("whsec_"))',
            'mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)',
            'request = urllib.request.Request(URL, data=body, method="POST", headers={',
            '    "content-type": "application/json",',
            '    "webhook-id": msg_id,',
            '    "webhook-timestamp": timestamp,',
            '    "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),',
            "})",
            "with urllib.request.urlopen(request) as answer:",
            "    print(json.load(answer))",
        ]
    )


def _settings_context(request, inbound, *, secret: str = "") -> dict:
    policy = policy_for(request)
    may_see = inbound_services.may_see_secrets(policy)
    url = ""
    if may_see:
        path = reverse("pipeline:order_inbound", args=[inbound_services.url_token(inbound)])
        url = request.build_absolute_uri(path)
    latest = OrderDelivery.objects.for_org(request.org).order_by(*NEWEST_FIRST).first()
    return {
        "inbound": inbound,
        "may_see_secrets": may_see,
        "can_edit": policy.can("settings", "edit"),
        "url": url,
        "secret": secret,
        "latest": latest,
        "max_items": f"{MAX_ITEMS:,}",
        "max_mb": MAX_BODY_BYTES // (1024 * 1024),
        "tolerance_minutes": inbound_services.TOLERANCE_SECONDS // 60,
        "curl_example": curl_example(url or "https://…/pipeline/inbound/orders/…/"),
        "python_example": python_example(url or "https://…/pipeline/inbound/orders/…/"),
    }


@member_required("settings")
@module_enabled("orders")
def order_inbound_settings(request):
    inbound = inbound_services.ensure_inbound(request.org, actor=Actor.from_request(request))
    return render(
        request, "pipeline/orders_inbound/settings.html", _settings_context(request, inbound)
    )


@require_POST
@member_required("settings", "edit")
@module_enabled("orders")
def order_inbound_reveal(request):
    actor = Actor.from_request(request)
    inbound = inbound_services.ensure_inbound(request.org, actor=actor)
    policy = policy_for(request)
    if not inbound_services.may_see_secrets(policy):
        raise PermissionDenied("Your role may not see the signing secret.")
    secret = inbound_services.reveal_signing_secret(inbound, actor=actor, policy=policy)
    context = _settings_context(request, inbound, secret=secret)
    template = "pipeline/orders_inbound/settings.html"
    if request.htmx:
        template += "#secret"
    response = render(request, template, context)
    # The page now holds the secret: no cache keeps it.
    response["Cache-Control"] = "no-store"
    return response


class CreateContactsForm(forms.Form):
    create_contacts = forms.BooleanField(required=False)


@require_POST
@member_required("settings", "edit")
@module_enabled("orders")
def order_inbound_create_contacts(request):
    form = CreateContactsForm(request.POST)
    form.is_valid()  # a checkbox: absent is False, anything else True
    enabled = bool(form.cleaned_data.get("create_contacts"))
    inbound_services.set_create_contacts(
        request.org,
        actor=Actor.from_request(request),
        policy=policy_for(request),
        enabled=enabled,
    )
    if enabled:
        messages.success(request, "Orders for unknown emails now create the contact.")
    else:
        messages.success(request, "Orders for unknown emails are now refused.")
    return redirect("pipeline:order_inbound_settings")


@require_POST
@member_required("settings", "edit")
@module_enabled("orders")
def order_inbound_rotate(request):
    policy = policy_for(request)
    if not inbound_services.may_see_secrets(policy):
        raise PermissionDenied("Your role may not change the inbound order URL.")
    inbound_services.rotate_inbound(request.org, actor=Actor.from_request(request), policy=policy)
    messages.success(
        request,
        "New URL and signing secret made. The old URL answers 404 now: give the new ones to "
        "your shop.",
    )
    return redirect("pipeline:order_inbound_settings")


# Deliveries -------------------------------------------------------------------------------


class DeliveryFilterForm(forms.Form):
    outcome = forms.ChoiceField(
        required=False,
        choices=[("", "Any outcome"), *OrderDelivery.Outcome.choices],
        label="Outcome",
    )


@member_required("settings")
@module_enabled("orders")
def order_deliveries(request):
    form = DeliveryFilterForm(request.GET or None)
    deliveries = OrderDelivery.objects.for_org(request.org)
    outcome = form.cleaned_data.get("outcome") if form.is_valid() else ""
    if outcome:
        deliveries = deliveries.filter(outcome=outcome)
    cursor = request.GET.get("cursor")
    page = keyset_page(deliveries, NEWEST_FIRST, cursor, PAGE_SIZE)
    if cursor and not page.rows:
        # A stale cursor (the filter changed): start again at the newest.
        page = keyset_page(deliveries, NEWEST_FIRST, None, PAGE_SIZE)
    for delivery in page.rows:
        delivery.first_errors = _first_errors(delivery.errors)
    context = {"form": form, "page": page, "outcome": outcome}
    full_page = not request.htmx or request.htmx.history_restore_request
    template = "pipeline/orders_inbound/deliveries.html"
    return render(request, template if full_page else template + "#results", context)


def _first_errors(errors, limit: int = 3) -> list[dict]:
    """The first item errors of a delivery, as rows the page lists ("#3 · value: …")."""
    rows = []
    for entry in errors if isinstance(errors, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("errors"), dict):
            continue
        for field, message in entry["errors"].items():
            rows.append(
                {
                    "index": entry.get("index"),
                    "external_id": entry.get("external_id") or "",
                    "field": field,
                    "message": message,
                }
            )
            if len(rows) >= limit:
                return rows
    return rows
