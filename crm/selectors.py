"""Reads of the core app. Every function takes the organization and returns rows of it only."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from .models import AuditEvent, Membership, Organization
from .pagination import decode_moment_cursor, encode_moment_cursor


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


# Keyset pagination ----------------------------------------------------------------------


def encode_cursor(row) -> str:
    """An opaque token for the (created_at, id) position of `row`."""
    return encode_moment_cursor(row.created_at, row.pk)


@dataclass
class KeysetPage:
    rows: list = field(default_factory=list)
    older_cursor: str | None = None
    newer_cursor: str | None = None

    @property
    def has_older(self) -> bool:
        return self.older_cursor is not None

    @property
    def has_newer(self) -> bool:
        return self.newer_cursor is not None


def keyset_page(
    queryset: QuerySet,
    *,
    before: str | None = None,
    after: str | None = None,
    size: int = 50,
) -> KeysetPage:
    """One page of a queryset ordered newest first by (created_at, id).

    `before` asks for the rows older than a cursor, `after` for the rows newer than one; with
    neither, the newest page. Seeking on the (org, created_at) index keeps every page as fast
    as the first, unlike OFFSET, and rows written meanwhile never shift a page."""
    older_than = decode_moment_cursor(before)
    newer_than = decode_moment_cursor(after) if older_than is None else None

    if newer_than is not None:
        moment, pk = newer_than
        seek = Q(created_at__gt=moment) | Q(created_at=moment, id__gt=pk)
        ascending = list(queryset.filter(seek).order_by("created_at", "id")[: size + 1])
        more_newer = len(ascending) > size
        rows = list(reversed(ascending[:size]))
        if not rows:
            # Nothing newer any more: show the newest page instead of an empty one.
            return keyset_page(queryset, size=size)
        page = KeysetPage(rows=rows)
        page.newer_cursor = encode_cursor(rows[0]) if more_newer else None
        page.older_cursor = encode_cursor(rows[-1]) if _exists_older(queryset, rows[-1]) else None
        return page

    base = queryset.order_by("-created_at", "-id")
    if older_than is not None:
        moment, pk = older_than
        base = base.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=pk))
    fetched = list(base[: size + 1])
    rows = fetched[:size]
    if older_than is not None and not rows:
        # A stale cursor (e.g. the filters changed): start over at the newest page.
        return keyset_page(queryset, size=size)
    page = KeysetPage(rows=rows)
    if len(fetched) > size:
        page.older_cursor = encode_cursor(rows[-1])
    if older_than is not None and rows and _exists_newer(queryset, rows[0]):
        page.newer_cursor = encode_cursor(rows[0])
    return page


def _exists_older(queryset: QuerySet, row) -> bool:
    return queryset.filter(
        Q(created_at__lt=row.created_at) | Q(created_at=row.created_at, id__lt=row.pk)
    ).exists()


def _exists_newer(queryset: QuerySet, row) -> bool:
    return queryset.filter(
        Q(created_at__gt=row.created_at) | Q(created_at=row.created_at, id__gt=row.pk)
    ).exists()
