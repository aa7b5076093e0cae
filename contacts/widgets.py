"""Dashboard figures of the contacts app: how many contacts the member works with, and
their open tasks. Counts are cached briefly: the dashboard is opened often, and a count over
a million rows should not be paid on every visit."""

from django.core.cache import cache
from django.urls import reverse

from crm.permissions import policy_for
from crm.widgets import register, register_panel

from .importing.views.history import recent_imports_panel
from .models import Contact, Task

CACHE_SECONDS = 120


def _scope_key(request, module: str) -> str:
    policy = policy_for(request)
    scope = policy.scope(module)
    if scope == "all":
        return f"all:{request.org.pk}"
    team = request.membership.team_id if scope == "team" else None
    return f"{scope}:{request.org.pk}:{team or request.user.pk}"


@register("contacts")
def contact_figures(request):
    policy = policy_for(request)
    key = f"contacts:widget:count:{_scope_key(request, 'contacts')}"
    count = cache.get(key)
    if count is None:
        count = (
            Contact.objects.for_org(request.org)
            .filter(policy.scope_filter("contacts"), is_archived=False)
            .count()
        )
        cache.set(key, count, CACHE_SECONDS)
    return [{"label": "Contacts", "value": f"{count:,}", "url": reverse("contacts:contact_list")}]


@register("tasks")
def task_figures(request):
    # Uses the (org, assignee, status, due_at) index; always fresh, since people tick tasks
    # off and come back to the dashboard expecting the number to have moved.
    count = (
        Task.objects.for_org(request.org)
        .filter(assignee=request.user, status=Task.Status.OPEN)
        .count()
    )
    return [{"label": "My open tasks", "value": count, "url": reverse("contacts:inbox")}]


# Registered here, not in crm.widgets: crm never imports a domain app (import-linter).
register_panel("contacts")(recent_imports_panel)
