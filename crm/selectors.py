"""Reads of the core app. Every function takes the organization and returns rows of it only."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.db.models import QuerySet

from .models import AuditEvent, Membership, Organization


def org_timezone(org: Organization) -> dt.tzinfo:
    """The organization's timezone; UTC when the stored name is unknown to this machine."""
    try:
        return zoneinfo.ZoneInfo(org.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def start_of_day(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The first instant of `day` in `tz` (an aware datetime, DST handled by zoneinfo)."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


# Audit log -------------------------------------------------------------------------------


def audit_events(org: Organization, filters: dict | None = None) -> QuerySet[AuditEvent]:
    """The organization's audit events, newest first, narrowed by `filters`:

    - member: a Membership of `org` whose user acted
    - actor: text found in the actor's label (API key name, system job, AI, email)
    - actor_type: one of AuditEvent.ActorType
    - verb, object_type: exact values
    - date_from, date_to: dates, inclusive, read as calendar days in the org's timezone
    """
    filters = filters or {}
    qs = AuditEvent.objects.for_org(org).select_related("actor_user")
    membership = filters.get("member")
    if membership is not None:
        qs = qs.filter(actor_user_id=membership.user_id)
    if filters.get("actor"):
        qs = qs.filter(actor_label__icontains=filters["actor"])
    if filters.get("actor_type"):
        qs = qs.filter(actor_type=filters["actor_type"])
    if filters.get("verb"):
        qs = qs.filter(verb=filters["verb"])
    if filters.get("object_type"):
        qs = qs.filter(object_type=filters["object_type"])
    tz = org_timezone(org)
    if filters.get("date_from"):
        qs = qs.filter(created_at__gte=start_of_day(filters["date_from"], tz))
    if filters.get("date_to"):
        next_day = filters["date_to"] + dt.timedelta(days=1)
        qs = qs.filter(created_at__lt=start_of_day(next_day, tz))
    return qs.order_by("-created_at", "-id")


def audit_verbs(org: Organization) -> list[str]:
    """The verbs that occur in the organization's log, for the filter's select."""
    return list(
        AuditEvent.objects.for_org(org).order_by("verb").values_list("verb", flat=True).distinct()
    )


def audit_object_types(org: Organization) -> list[str]:
    return list(
        AuditEvent.objects.for_org(org)
        .order_by("object_type")
        .values_list("object_type", flat=True)
        .distinct()
    )


def org_members(org: Organization) -> QuerySet[Membership]:
    """Every membership of the organization, deactivated ones included (their history stays)."""
    return Membership.objects.for_org(org).select_related("user").order_by("user__email")
