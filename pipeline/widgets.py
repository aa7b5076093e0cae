"""Dashboard figures of the pipeline: the member's open deals and this month's wins, in
their record scope. The open count is cached briefly, like the contact count."""

from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from crm.permissions import policy_for
from crm.widgets import register

from .models import Deal
from .selectors import visible_deals

CACHE_SECONDS = 120


@register("pipeline")
def deal_figures(request):
    policy = policy_for(request)
    scope = policy.scope("pipeline")
    who = "all" if scope == "all" else f"{scope}:{request.membership.team_id or request.user.pk}"
    key = f"pipeline:widget:open:{request.org.pk}:{who}"
    deals = visible_deals(request.org, policy)
    open_count = cache.get(key)
    if open_count is None:
        open_count = deals.filter(status=Deal.Status.OPEN).count()
        cache.set(key, open_count, CACHE_SECONDS)
    month_start = timezone.localdate().replace(day=1)
    won = deals.filter(status=Deal.Status.WON, closed_at__date__gte=month_start).count()
    board = reverse("pipeline:board")
    return [
        {"label": "Open deals", "value": f"{open_count:,}", "url": board},
        {"label": "Deals won this month", "value": f"{won:,}", "url": board},
    ]
