"""Dashboard figures. Each app registers a provider; the dashboard shows those the
member may see. A provider returns a list of {"label", "value", "url"} dicts."""

from .permissions import policy_for

_PROVIDERS: list[tuple[str | None, object]] = []


def register(module: str | None):
    def decorator(func):
        _PROVIDERS.append((module, func))
        return func

    return decorator


def dashboard_widgets(request):
    policy = policy_for(request)
    figures = []
    for module, provider in _PROVIDERS:
        if module is None or policy.can_access(module):
            figures.extend(provider(request))
    return figures
