"""Settings → Organization: choices that hold for everyone in the organization: whether the
contact import may send column names and sample values to the AI provider, and which optional
modules (the orders registry, custom objects) are on.

Seeing the page needs Settings view; changing it needs Settings edit (Owner and Admin by
default); the service checks the same again."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from ai import llm

from ..decorators import member_required
from ..optional_modules import OPTIONAL_MODULES
from ..permissions import policy_for
from ..services import Actor
from ..services.org_settings import organization_set_ai_send_samples, organization_set_modules


class AISettingsForm(forms.Form):
    ai_send_samples = forms.BooleanField(label="Send samples to the AI provider", required=False)


@member_required("settings", "view")
@require_http_methods(["GET", "POST"])
def organization_settings(request):
    # The import's own numbers, so the page says exactly what it sends.
    from contacts.importing.ai_mapping import SAMPLES_PER_COLUMN

    policy = policy_for(request)
    form = AISettingsForm(initial={"ai_send_samples": request.org.ai_send_samples})
    status = 200
    if request.method == "POST":
        policy.require("settings", "edit")
        form = AISettingsForm(request.POST)
        if form.is_valid():
            enabled = form.cleaned_data["ai_send_samples"]
            try:
                organization_set_ai_send_samples(
                    org=request.org,
                    actor=Actor.from_request(request),
                    policy=policy,
                    enabled=enabled,
                )
            except ValidationError as exc:
                form.add_error("ai_send_samples", exc.message_dict["ai_send_samples"])
            else:
                messages.success(
                    request,
                    "Samples are sent to the AI provider."
                    if enabled
                    else "Nothing is sent to the AI provider.",
                )
                return redirect("crm:organization_settings")
        status = 400
    context = {
        "form": form,
        "can_edit": policy.can("settings", "edit"),
        "provider_configured": llm.configured(),
        "provider": llm.provider_label(),
        "model": settings.OPENAI_MODEL,
        "samples_per_column": SAMPLES_PER_COLUMN,
        "enabled": request.org.ai_send_samples,
        "modules": _modules(request.org),
    }
    return render(request, "crm/organization.html", context, status=status)


def _modules(org) -> list[dict]:
    enabled = set(org.enabled_modules or ())
    return [
        {"key": m.key, "label": m.label, "description": m.description, "on": m.key in enabled}
        for m in OPTIONAL_MODULES
    ]


@member_required("settings", "edit")
@require_POST
def organization_modules(request):
    """Turn optional modules on or off: the form lists every module, a checked box is on."""
    wanted = {key for key in request.POST.getlist("modules") if isinstance(key, str)}
    try:
        organization_set_modules(
            org=request.org,
            actor=Actor.from_request(request),
            policy=policy_for(request),
            enabled=wanted,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        on = [m["label"] for m in _modules(request.org) if m["on"]]
        messages.success(
            request, f"Modules on: {', '.join(on)}." if on else "All optional modules are off."
        )
    return redirect("crm:organization_settings")
