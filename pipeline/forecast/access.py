"""Who sees the forecast, and which deals its figures are made of.

The forecast opens with the pipeline module's view right or the analytics module's (a Board
member has both, read-only). Its figures are made of the deals the member may see: the
pipeline module's record scope (own / team / all) when they have the pipeline module, else
the analytics module's. Exports need the export right of either module. Exchange rates and
quotas are changed by settings admins only.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from crm.models import Membership, Team, User
from crm.permissions import RightMissing

from ..models import Deal, Pipeline

MODULES = ("pipeline", "analytics")


def may_view(policy) -> bool:
    return any(policy.can(module, "view") for module in MODULES)


def require_view(policy) -> None:
    if not may_view(policy):
        raise RightMissing("pipeline", "view")


def may_export(policy) -> bool:
    return any(policy.can(module, "export") for module in MODULES)


def require_export(policy) -> None:
    if not may_export(policy):
        raise RightMissing("pipeline", "export")


def may_manage(policy) -> bool:
    """Exchange rates and quotas: settings admins only."""
    return policy.is_settings_admin()


def scope_filter(policy, owner_field: str = "owner") -> Q:
    """The member's record scope over deals (or anything with an owning user)."""
    module = "pipeline" if policy.can_access("pipeline") else "analytics"
    return policy.scope_filter(module, owner_field=owner_field)


@dataclass(frozen=True)
class DealFilters:
    """The page's filters: one pipeline, one owner, one team (the owner's team)."""

    pipeline: Pipeline | None = None
    owner: User | None = None
    team: Team | None = None

    def q(self, org, prefix: str = "") -> Q:
        """The filters as a Q over deals (`prefix` reaches a deal through a relation)."""
        q = Q()
        if self.pipeline is not None:
            q &= Q(**{f"{prefix}pipeline_id": self.pipeline.pk})
        if self.owner is not None:
            q &= Q(**{f"{prefix}owner_id": self.owner.pk})
        if self.team is not None:
            teammates = Membership.objects.for_org(org).filter(team_id=self.team.pk)
            q &= Q(**{f"{prefix}owner_id__in": teammates.values("user_id")})
        return q

    def user_q(self, org, field: str = "user") -> Q:
        """The owner and team filters over rows that belong to a user (quotas)."""
        q = Q()
        if self.owner is not None:
            q &= Q(**{f"{field}_id": self.owner.pk})
        if self.team is not None:
            teammates = Membership.objects.for_org(org).filter(team_id=self.team.pk)
            q &= Q(**{f"{field}_id__in": teammates.values("user_id")})
        return q

    @property
    def active(self) -> bool:
        return any(value is not None for value in (self.pipeline, self.owner, self.team))


def forecast_deals(org, policy, filters: DealFilters | None = None):
    """The unarchived deals of `org` the member may see, narrowed by `filters`. `policy`
    None: every deal (system work such as the weekly snapshot)."""
    deals = Deal.objects.for_org(org).filter(is_archived=False)
    if policy is not None:
        deals = deals.filter(scope_filter(policy))
    if filters is not None:
        deals = deals.filter(filters.q(org))
    return deals


def scoped_users(org, policy):
    """The active members whose records the member may see (the owner filter's choices,
    the reps of the quota table)."""
    memberships = Membership.objects.for_org(org).filter(is_active=True)
    if policy is not None:
        memberships = memberships.filter(scope_filter(policy, owner_field="user"))
    return User.objects.filter(pk__in=memberships.values("user_id")).order_by(
        "first_name", "last_name", "email"
    )
