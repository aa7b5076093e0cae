from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from ..decorators import member_required
from ..health import relay_lag, run_checks
from ..middleware import SESSION_ORG_KEY
from ..models import UserPreference
from ..widgets import dashboard_panels, dashboard_widgets


@require_GET
@never_cache
def healthz(request):
    """Anyone (a load balancer, a monitor) learns whether the app is up; only staff see which
    service is down and why: exception text names hosts, ports and internals. Staff also see
    the outbox relay's lag (events pending, age of the oldest).
    `manage.py healthcheck` prints the same probes on the server."""
    results = run_checks()
    down = [name for name, result in results.items() if not result["ok"]]
    body = {"status": "ok" if not down else "down"}
    if request.user.is_authenticated and request.user.is_staff and request.user.is_active:
        body.update(down=down, checks=results, outbox=relay_lag())
    return JsonResponse(body, status=200 if not down else 503)


@member_required()
def dashboard(request):
    return render(
        request,
        "crm/dashboard.html",
        {"widgets": dashboard_widgets(request), "panels": dashboard_panels(request)},
    )


@login_required
def no_access(request):
    if request.org is not None:
        return redirect("crm:dashboard")
    return render(request, "crm/no_access.html", status=403)


@login_required
@require_POST
def switch_org(request, org_public_id):
    # Among the memberships the middleware read before the request entered its current
    # organization: a query now would only see that organization's rows.
    membership = next((m for m in request.memberships if m.org.public_id == org_public_id), None)
    if membership is None:
        raise Http404("No such organization among yours.")
    request.session[SESSION_ORG_KEY] = membership.org_id
    UserPreference.objects.update_or_create(
        user=request.user, defaults={"last_org": membership.org}
    )
    messages.success(request, f"Now working in {membership.org.name}.")
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}) or "/" not in target:
        target = "crm:dashboard"
    if request.htmx:
        response = JsonResponse({})
        response["HX-Redirect"] = target if target.startswith("/") else "/"
        return response
    return redirect(target)
