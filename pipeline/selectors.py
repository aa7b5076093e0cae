"""Reads of deals, limited to what a member may see (organization and record scope)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from crm.permissions import policy_for

from .models import Deal, Pipeline


def visible_deals(org, policy, *, archived: bool | None = False):
    """The organization's deals inside the member's pipeline scope (policy None: all)."""
    queryset = Deal.objects.for_org(org)
    if archived is not None:
        queryset = queryset.filter(is_archived=archived)
    if policy is not None:
        queryset = policy.scope_queryset("pipeline", queryset)
    return queryset


def deal_for_request(request, public_id, *, archived: bool | None = None) -> Deal:
    """The deal a page is about: another organization's, or one outside the member's scope,
    is simply not found (404)."""
    queryset = visible_deals(request.org, policy_for(request), archived=archived)
    return get_object_or_404(
        queryset.select_related("pipeline", "stage", "owner", "contact", "company", "team"),
        public_id=public_id,
    )


def pipelines_of(org):
    return Pipeline.objects.for_org(org).order_by("position", "id")
