"""Dashboard figures and panels. Each app registers providers; the dashboard shows those
the member may see. A figure provider returns a list of {"label", "value", "url"} dicts; a
panel provider returns {"template", ...its context} or None."""

from django.urls import reverse

from .models import Invitation, Membership
from .permissions import policy_for

_PROVIDERS: list[tuple[str | None, object]] = []


def register(module: str | None):
    def decorator(func):
        _PROVIDERS.append((module, func))
        return func

    return decorator


_PANELS: list[tuple[str | None, object]] = []


def register_panel(module: str | None):
    def decorator(func):
        _PANELS.append((module, func))
        return func

    return decorator


def dashboard_panels(request) -> list[dict]:
    policy = policy_for(request)
    panels = []
    for module, provider in _PANELS:
        if module is None or policy.can_access(module):
            panel = provider(request)
            if panel is not None:
                panels.append(panel)
    return panels


def dashboard_widgets(request):
    policy = policy_for(request)
    figures = []
    for module, provider in _PROVIDERS:
        if module is None or policy.can_access(module):
            figures.extend(provider(request))
    return figures


@register("settings")
def _people_figures(request):
    url = reverse("crm:members")
    return [
        {
            "label": "Active members",
            "value": Membership.objects.for_org(request.org).active().count(),
            "url": url,
        },
        {
            "label": "Pending invitations",
            "value": Invitation.objects.for_org(request.org).pending().count(),
            "url": url,
        },
    ]


@register("contacts")
def _latest_import_figure(request):
    # Imported lazily: the contacts app builds on crm, not the other way round.
    from contacts.importing.views import latest_import_figure

    return latest_import_figure(request)


@register_panel("contacts")
def _recent_imports_panel(request):
    from contacts.importing.views import recent_imports_panel

    return recent_imports_panel(request)
