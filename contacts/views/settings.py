"""Settings → Custom fields: the admin's definitions of extra contact and company fields."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from crm.permissions import policy_for

from .. import services
from ..forms import CustomFieldDefinitionForm
from ..models import CustomFieldDefinition
from .common import actor, redirect_or_refresh, workspace_view


def _definitions(request):
    return CustomFieldDefinition.objects.for_org(request.org).order_by(
        "entity", "-is_active", "position", "label"
    )


@workspace_view("settings", "view")
def custom_fields(request):
    definitions = list(_definitions(request))
    sections = [
        (entity, label, [d for d in definitions if d.entity == entity])
        for entity, label in (
            (CustomFieldDefinition.Entity.CONTACT, "Contact fields"),
            (CustomFieldDefinition.Entity.COMPANY, "Company fields"),
            (CustomFieldDefinition.Entity.DEAL, "Deal fields"),
        )
    ]
    return render(
        request,
        "contacts/custom_fields.html",
        {"sections": sections, "total": len(definitions)},
    )


def _back():
    return reverse("contacts:custom_fields")


@workspace_view("settings", "edit")
@require_http_methods(["GET", "POST"])
def custom_field_create(request):
    initial = {}
    if request.GET.get("entity") in CustomFieldDefinition.Entity.values:
        initial["entity"] = request.GET["entity"]
    form = CustomFieldDefinitionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            definition = services.customfield_create(
                org=request.org,
                actor=actor(request),
                data=form.service_data(),
                policy=policy_for(request),
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"The field “{definition.label}” was added.")
            return redirect_or_refresh(request, _back())
    return render(request, "contacts/custom_field_form.html", {"form": form, "definition": None})


def _definition(request, public_id) -> CustomFieldDefinition:
    return get_object_or_404(
        CustomFieldDefinition.objects.for_org(request.org), public_id=public_id
    )


@workspace_view("settings", "edit")
@require_http_methods(["GET", "POST"])
def custom_field_edit(request, public_id):
    definition = _definition(request, public_id)
    form = CustomFieldDefinitionForm(request.POST or None, instance=definition)
    if request.method == "POST" and form.is_valid():
        try:
            services.customfield_update(
                definition=definition,
                actor=actor(request),
                data=form.service_data(),
                policy=policy_for(request),
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"The field “{definition.label}” was saved.")
            return redirect_or_refresh(request, _back())
    return render(
        request, "contacts/custom_field_form.html", {"form": form, "definition": definition}
    )


@workspace_view("settings", "edit")
@require_POST
def custom_field_deactivate(request, public_id):
    definition = _definition(request, public_id)
    services.customfield_deactivate(
        definition=definition, actor=actor(request), policy=policy_for(request)
    )
    messages.success(
        request,
        f"“{definition.label}” is turned off. Its stored values are kept; turn it back on "
        "to see them again.",
    )
    return redirect_or_refresh(request, _back())


@workspace_view("settings", "edit")
@require_POST
def custom_field_reactivate(request, public_id):
    definition = _definition(request, public_id)
    services.customfield_reactivate(
        definition=definition, actor=actor(request), policy=policy_for(request)
    )
    messages.success(request, f"“{definition.label}” is back on.")
    return redirect_or_refresh(request, _back())
