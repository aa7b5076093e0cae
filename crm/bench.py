"""Helpers the benchmark commands share: their organization, and percentiles."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from .models import Organization
from .services import Actor, organization_create


def bench_organization(slug: str, name: str) -> Organization:
    """The organization `slug`, made on first use with an owner `owner@<slug>.test` (no
    password: nobody signs in to a benchmark's organization)."""
    org = Organization.objects.filter(slug=slug).first()
    if org is not None:
        return org
    email = f"owner@{slug}.test"
    User = get_user_model()
    user = User.objects.filter(email__iexact=email).first() or User.objects.create_user(
        email=email, password=None
    )
    return organization_create(name=name, slug=slug, owner=user, actor=Actor.system("bench"))


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]
