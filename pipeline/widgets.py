"""Dashboard figures of the pipeline: the member's open deals and this month's wins, in
their record scope. The open count is cached briefly, like the contact count."""

from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from crm.permissions import policy_for
from crm.selectors import org_timezone, start_of_day
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
    # The month's first instant in the organization's time zone: a plain comparison that the
    # (org, closed_at) index serves, where closed_at__date would cast every row.
    tz = org_timezone(request.org)
    month_start = start_of_day(timezone.now().astimezone(tz).date().replace(day=1), tz)
    won = deals.filter(status=Deal.Status.WON, closed_at__gte=month_start).count()
    board = reverse("pipeline:board")
    return [
        {"label": "Open deals", "value": f"{open_count:,}", "url": board},
        {"label": "Deals won this month", "value": f"{won:,}", "url": board},
    ]
