from django.conf import settings

from .models import Notification, UserPreference
from .navigation import navigation_for
from .permissions import policy_for


def workspace(request):
    """What every page's shell needs: the org, the policy, the sidebar, the theme."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {
            "theme": UserPreference.DEFAULT_THEME,
            "google_login_enabled": settings.GOOGLE_LOGIN_ENABLED,
        }
    policy = policy_for(request)
    sidebar, settings_nav = navigation_for(policy, request.path)
    pref = UserPreference.objects.filter(user=user).only("theme").first()
    return {
        "org": getattr(request, "org", None),
        "membership": getattr(request, "membership", None),
        "policy": policy,
        "sidebar": sidebar,
        "settings_nav": settings_nav,
        "my_memberships": sorted(
            getattr(request, "memberships", []), key=lambda m: m.org.name.casefold()
        ),
        "theme": pref.theme if pref else UserPreference.DEFAULT_THEME,
        "themes": UserPreference.THEMES,
        "google_login_enabled": settings.GOOGLE_LOGIN_ENABLED,
        # A callable, so the count is only queried on pages that show the bell.
        "unread_notifications": lambda: _unread(request, user),
    }


def _unread(request, user) -> int:
    org = getattr(request, "org", None)
    if org is None:
        return 0
    return Notification.objects.for_org(org).filter(user=user, read_at__isnull=True).count()
