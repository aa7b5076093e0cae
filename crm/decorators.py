from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render

from .optional_modules import OPTIONAL_MODULE_LABELS, is_enabled
from .permissions import policy_for


def member_required(module: str | None = None, action: str = "view"):
    """The view needs a signed-in, active member of the current organization and, when
    `module` is given, the right to `action` in it (403 otherwise)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.org is None:
                return redirect("crm:no_access")
            if module is not None:
                policy_for(request).require(module, action)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def module_enabled(key: str):
    """The view belongs to optional module `key` (crm.optional_modules): while the
    organization has it off, the page says so (404) instead of running. Put it under
    member_required, so the member and organization are known first."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not is_enabled(getattr(request, "org", None), key):
                return render(
                    request,
                    "crm/module_off.html",
                    {"module_label": OPTIONAL_MODULE_LABELS[key]},
                    status=404,
                )
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
