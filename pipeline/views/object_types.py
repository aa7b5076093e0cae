"""Settings → Custom objects: the object types, their fields and their primary field.

Reading these pages needs Settings view and access to the Custom objects module; every
change needs Settings edit as well (pipeline.services.object_types.can_manage_types). The
module must be on for the organization (404 otherwise). Types and fields belong to the
organization, not to a member: record scope does not apply to them.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from contacts.views.common import NOT_SAVED, actor, redirect_or_refresh, submit, workspace_view
from crm.decorators import module_enabled
from crm.permissions import policy_for

from ..forms.object_types import ObjectFieldForm, ObjectTypeDeleteForm, ObjectTypeForm
from ..models import ObjectField, ObjectType
from ..services import object_fields as field_services
from ..services import object_types as services

MODULE = services.MODULE


def _posted(request):
    """The form data of a POST (even an empty one: an unticked box sends nothing), else None."""
    return request.POST if request.method == "POST" else None


def _can_read(request) -> bool:
    policy = policy_for(request)
    return policy.can("settings", "view") and policy.can_access(MODULE)


def _require_reader(request) -> None:
    if not _can_read(request):
        raise PermissionDenied(
            "Custom object settings need the Settings right and access to Custom objects."
        )


def _require_manager(request) -> None:
    if not services.can_manage_types(policy_for(request)):
        raise PermissionDenied(
            "Managing object types needs the Settings edit right and access to Custom objects."
        )


def _type(request, object_type_public_id) -> ObjectType:
    return get_object_or_404(
        ObjectType.objects.for_org(request.org), public_id=object_type_public_id
    )


def _field(request, objectfield_public_id) -> ObjectField:
    return get_object_or_404(
        ObjectField.objects.for_org(request.org).select_related("object_type"),
        public_id=objectfield_public_id,
    )


def _detail_url(object_type: ObjectType) -> str:
    return reverse("pipeline:object_type_detail", args=[object_type.public_id])


@workspace_view()
@module_enabled(MODULE)
def object_types(request):
    _require_reader(request)
    types = services.type_summaries(request.org)
    for object_type in types:
        object_type.icon_key = services.icon_for(object_type)
    return render(
        request,
        "pipeline/objects/types.html",
        {
            "types": types,
            "can_manage": services.can_manage_types(policy_for(request)),
            "max_types": services.MAX_TYPES,
            "max_fields": services.MAX_FIELDS,
            "at_limit": len(types) >= services.MAX_TYPES,
        },
    )


@workspace_view()
@module_enabled(MODULE)
@require_http_methods(["GET", "POST"])
def object_type_create(request):
    _require_manager(request)
    form = ObjectTypeForm(_posted(request))
    object_type = submit(
        request,
        form,
        lambda: services.object_type_create(
            org=request.org,
            actor=actor(request),
            data=form.service_data(),
            policy=policy_for(request),
        ),
    )
    if object_type is not NOT_SAVED:
        messages.success(request, f"“{object_type.name}” was created. Add its fields here.")
        return redirect_or_refresh(request, _detail_url(object_type))
    return render(request, "pipeline/objects/type_form.html", {"form": form, "object_type": None})


@workspace_view()
@module_enabled(MODULE)
def object_type_detail(request, object_type_public_id):
    _require_reader(request)
    object_type = _type(request, object_type_public_id)
    fields = list(field_services.fields_of(object_type))
    rows = [
        {
            "field": field,
            "first": index == 0,
            "last": index == len(fields) - 1,
            "is_primary": field.key == object_type.primary_field_key,
            "can_be_primary": field.field_type in services.PRIMARY_KINDS,
        }
        for index, field in enumerate(fields)
    ]
    return render(
        request,
        "pipeline/objects/type_detail.html",
        {
            "object_type": object_type,
            "icon": services.icon_for(object_type),
            "rows": rows,
            "record_count": services.records_of(object_type).count(),
            "can_manage": services.can_manage_types(policy_for(request)),
            "max_fields": services.MAX_FIELDS,
            "at_limit": len(fields) >= services.MAX_FIELDS,
        },
    )


@workspace_view()
@module_enabled(MODULE)
@require_http_methods(["GET", "POST"])
def object_type_edit(request, object_type_public_id):
    _require_manager(request)
    object_type = _type(request, object_type_public_id)
    form = ObjectTypeForm(_posted(request), instance=object_type)
    saved = submit(
        request,
        form,
        lambda: services.object_type_update(
            object_type=object_type,
            actor=actor(request),
            data=form.service_data(),
            policy=policy_for(request),
        ),
    )
    if saved is not NOT_SAVED:
        messages.success(request, "The type was saved.")
        return redirect_or_refresh(request, _detail_url(object_type))
    return render(
        request, "pipeline/objects/type_form.html", {"form": form, "object_type": object_type}
    )


@workspace_view()
@module_enabled(MODULE)
@require_http_methods(["GET", "POST"])
def object_type_delete(request, object_type_public_id):
    """A page of its own: it says how many records would go, and asks for the box to be
    ticked when there are any."""
    _require_manager(request)
    object_type = _type(request, object_type_public_id)
    count = services.records_of(object_type).count()
    form = ObjectTypeDeleteForm(_posted(request), record_count=count)
    deleted = submit(
        request,
        form,
        lambda: services.object_type_delete(
            object_type=object_type,
            actor=actor(request),
            policy=policy_for(request),
            delete_records=bool(form.cleaned_data.get("delete_records")),
        ),
    )
    if deleted is not NOT_SAVED:
        suffix = f" with its {deleted:,} record{'s' if deleted != 1 else ''}" if deleted else ""
        messages.success(request, f"“{object_type.name}” was deleted{suffix}.")
        return redirect_or_refresh(request, reverse("pipeline:object_types"))
    return render(
        request,
        "pipeline/objects/type_delete.html",
        {"form": form, "object_type": object_type, "record_count": count},
    )


# Fields ----------------------------------------------------------------------------------


@workspace_view()
@module_enabled(MODULE)
@require_http_methods(["GET", "POST"])
def object_field_create(request, object_type_public_id):
    _require_manager(request)
    object_type = _type(request, object_type_public_id)
    form = ObjectFieldForm(_posted(request))
    field = submit(
        request,
        form,
        lambda: field_services.object_field_create(
            object_type=object_type,
            actor=actor(request),
            data=form.service_data(),
            policy=policy_for(request),
        ),
    )
    if field is not NOT_SAVED:
        messages.success(request, f"The field “{field.label}” was added.")
        return redirect_or_refresh(request, _detail_url(object_type))
    return render(
        request,
        "pipeline/objects/field_form.html",
        {"form": form, "object_type": object_type, "object_field": None},
    )


@workspace_view()
@module_enabled(MODULE)
@require_http_methods(["GET", "POST"])
def object_field_edit(request, objectfield_public_id):
    _require_manager(request)
    field = _field(request, objectfield_public_id)
    form = ObjectFieldForm(_posted(request), instance=field)
    saved = submit(
        request,
        form,
        lambda: field_services.object_field_update(
            field=field,
            actor=actor(request),
            data=form.service_data(),
            policy=policy_for(request),
        ),
    )
    if saved is not NOT_SAVED:
        messages.success(request, f"The field “{field.label}” was saved.")
        return redirect_or_refresh(request, _detail_url(field.object_type))
    return render(
        request,
        "pipeline/objects/field_form.html",
        {"form": form, "object_type": field.object_type, "object_field": field},
    )


@workspace_view()
@module_enabled(MODULE)
@require_POST
def object_field_delete(request, objectfield_public_id):
    _require_manager(request)
    field = _field(request, objectfield_public_id)
    try:
        removed = field_services.object_field_delete(
            field=field, actor=actor(request), policy=policy_for(request)
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        detail = f" and its value was removed from {removed:,} record(s)" if removed else ""
        messages.success(request, f"The field “{field.label}” was deleted{detail}.")
    return redirect_or_refresh(request, _detail_url(field.object_type))


@workspace_view()
@module_enabled(MODULE)
@require_POST
def object_field_move(request, objectfield_public_id):
    _require_manager(request)
    field = _field(request, objectfield_public_id)
    try:
        field_services.object_field_move(
            field=field,
            actor=actor(request),
            direction=request.POST.get("direction", ""),
            policy=policy_for(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect_or_refresh(request, _detail_url(field.object_type) + "#fields")


@workspace_view()
@module_enabled(MODULE)
@require_POST
def object_field_make_primary(request, objectfield_public_id):
    _require_manager(request)
    field = _field(request, objectfield_public_id)
    try:
        field_services.primary_field_set(
            object_type=field.object_type,
            field=field,
            actor=actor(request),
            policy=policy_for(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Records are now named by “{field.label}”.")
    return redirect_or_refresh(request, _detail_url(field.object_type))
