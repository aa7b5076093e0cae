"""Dashboard figures and panels. Each app registers providers; the dashboard shows those
the member may see. A figure provider returns a list of {"label", "value", "url"} dicts; a
panel provider returns {"template", ...its context} or None."""

from django.urls import reverse

from .models import Invitation, Membership
from .permissions import policy_for

_FIGURES: list[tuple[str | None, object]] = []
_PANELS: list[tuple[str | None, object]] = []


def _registrar(registry: list):
    """A decorator factory: `@register(module)` adds a provider shown to members who may
    access `module` (None: everyone)."""

    def register(module: str | None):
        def decorator(func):
            registry.append((module, func))
            return func

        return decorator

    return register


register = _registrar(_FIGURES)
register_panel = _registrar(_PANELS)


def _provided(request, registry: list) -> list:
    """What each provider of `registry` the member may see returns, in order."""
    policy = policy_for(request)
    return [
        provider(request)
        for module, provider in registry
        if module is None or policy.can_access(module)
    ]


def dashboard_panels(request) -> list[dict]:
    return [panel for panel in _provided(request, _PANELS) if panel is not None]


def dashboard_widgets(request):
    return [figure for figures in _provided(request, _FIGURES) for figure in figures]


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
