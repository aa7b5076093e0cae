"""Acme's privacy demo (manage.py seed_demo): GDPR and CCPA by country, a few suppressed
addresses (one lifted again), data requests in each state (one overdue), and a retention
rule left off, so every Compliance page has something true to show."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from contacts.models import Contact
from crm import demo
from crm.models import Membership
from crm.services import Actor

from .models import DataRequest, PrivacySettings, RetentionPolicy
from .services import requests, retention
from .services.suppression import suppress, unsuppress

ACTOR = Actor.system("seed_demo")


def _people(org, count: int) -> list[Contact]:
    return list(
        Contact.objects.for_org(org)
        .filter(is_archived=False)
        .exclude(email="")
        .order_by("id")[:count]
    )


def _suppressions(org, people: list[Contact]) -> None:
    plans = [
        ("bounce", "Mailbox does not exist (550 5.1.1)", "Bounce report"),
        ("unsubscribe", "", "Unsubscribe link"),
        ("complaint", "Marked the newsletter as spam", "Feedback loop"),
        ("do_not_contact", "Asked on the phone not to be contacted again", "Phone call"),
    ]
    for contact, (reason, note, source) in zip(people, plans, strict=False):
        suppress(
            org=org,
            channel="email",
            address=contact.email,
            reason=reason,
            actor=ACTOR,
            contact=contact,
            note=note,
            source=source,
        )
    if len(people) > len(plans):
        lifted = suppress(
            org=org,
            channel="email",
            address=people[len(plans)].email,
            reason="bounce",
            actor=ACTOR,
            contact=people[len(plans)],
            note="Mailbox was full",
            source="Bounce report",
        )
        unsuppress(suppression=lifted, actor=ACTOR, note="The mailbox works again (checked).")


def _requests(org, people: list[Contact]) -> None:
    now = timezone.now()
    dpo = (
        Membership.objects.for_org(org)
        .active()
        .filter(role__key__in=["owner", "admin"])
        .select_related("user")
        .order_by("id")
        .first()
    )
    plans = [
        ("access", "gdpr", 6, "open", "Would like a copy of everything you hold on me."),
        ("erasure", "gdpr", 33, "in_progress", "Please delete my data; I left the company."),
        ("do_not_sell", "ccpa", 12, "done", "Do not sell or share my personal information."),
        ("rectification", "gdpr", 2, "open", "My last name is misspelled."),
    ]
    for contact, (kind, regime, days_ago, status, details) in zip(people, plans, strict=False):
        req = requests.create_request(
            org=org,
            actor=ACTOR,
            kind=kind,
            regime=regime,
            contact=contact,
            requester_email=contact.email,
            details=details,
            assignee=dpo.user if dpo else None,
            received_at=now - dt.timedelta(days=days_ago),
        )
        if status != DataRequest.Status.OPEN:
            requests.set_request_status(
                data_request=req,
                actor=ACTOR,
                status=status,
                resolution="Done as asked." if status == DataRequest.Status.DONE else "",
            )


@demo.register
def seed_compliance_demo(command, orgs, options) -> None:
    """Acme's privacy settings, suppressions, data requests and a retention rule (off)."""
    acme = orgs[0]
    if PrivacySettings.objects.for_org(acme).exists():
        return
    with transaction.atomic():
        PrivacySettings.objects.for_org(acme).create(
            org=acme, mode=PrivacySettings.Mode.BOTH, brand_name=acme.name
        )
        people = _people(acme, 9)
        _suppressions(acme, people[:5])
        _requests(acme, people[5:9])
        if not RetentionPolicy.objects.for_org(acme).exists():
            retention.save_policy(
                org=acme,
                actor=ACTOR,
                data={
                    "name": "Stale leads",
                    "action": "delete",
                    "condition": "no_activity",
                    "months": 24,
                    "lifecycle_stage": "lead",
                },
            )
    command.stdout.write("Acme: privacy mode GDPR and CCPA, suppressions, data requests")
