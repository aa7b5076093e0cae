"""Settings → Roles & Permissions: the role list, the permission matrix, field visibility
(contact fields and deal fields: each app registers its fields with crm.fields_registry).

Each control of the matrix saves on its own (HTMX posts one change, gets its row back so the
boxes that depend on it update); the same page is one plain form without JavaScript.
Seeing these pages needs Settings view; every change needs Settings edit, and nobody may
change their own role, the Owner role, or a role with rights beyond their own. Controls for
rights the member does not hold are shown disabled: they may not grant them (the services
refuse them anyway).
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from ..decorators import member_required
from ..fields_registry import field_rule_section
from ..models import Role
from ..permissions import (
    ACTIONS,
    FIELD_OPENNESS,
    FIELD_RULES_MODULE,
    MODULE_LABELS,
    MODULES,
    SCOPE_REACH,
    SCOPES,
    field_rule_target,
    normalize_permissions,
    policy_for,
)
from ..services import Actor
from ..services import roles as role_services

ACTION_LABELS = {
    "view": "View",
    "create": "Create",
    "edit": "Edit",
    "delete": "Delete",
    "export": "Export",
}
LEVEL_LABELS = [("editable", "Editable"), ("visible", "Visible"), ("hidden", "Hidden")]
TRUE_VALUES = {"on", "true", "1", "yes"}


class RoleCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=role_services.NAME_MAX_LENGTH)
    copy_from = forms.ModelChoiceField(
        label="Copy permissions from",
        queryset=Role.objects.for_org(None),
        required=False,
        to_field_name="public_id",
        empty_label="Nothing: start with no access",
        help_text="Start from an existing role's permissions and field visibility.",
    )

    def __init__(self, org, policy, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["copy_from"]
        field.queryset = Role.objects.for_org(org)
        # Offer only roles the member may copy (every right of them is theirs); any role of
        # the org still validates, so a forged choice gets the service's reason.
        field.choices = [
            ("", field.empty_label),
            *((r.public_id, r.name) for r in field.queryset if not policy.rights_beyond(r)),
        ]


class RoleRenameForm(forms.Form):
    name = forms.CharField(label="Name", max_length=role_services.NAME_MAX_LENGTH)
    description = forms.CharField(
        label="Description",
        max_length=role_services.DESCRIPTION_MAX_LENGTH,
        required=False,
    )


def _role(request, public_id) -> Role:
    return get_object_or_404(Role.objects.for_org(request.org), public_id=public_id)


def _change_refusal(request, role: Role) -> str:
    """Why the member may not change `role` ("" when they may), for the read-only note."""
    policy = policy_for(request)
    if not policy.can("settings", "edit"):
        return "You can look at this role; changing it needs the right to edit Settings."
    return role_services.change_refusal(policy, role)


def _can_change(request, role: Role) -> bool:
    return not _change_refusal(request, role)


def _locked_fields(request, module: str) -> set[str]:
    """Controls shown disabled: rights of `module` the member's own role lacks, which they
    may not grant. (A role that already has such a right is read-only as a whole.)"""
    mine = policy_for(request).rights(module)
    locked = {action for action in ACTIONS if not (mine.access and getattr(mine, action))}
    return locked | ({"access"} if not mine.access else set())


def _scope_options(request, module: str, current: str) -> list[dict]:
    """The record scopes, those wider than the member's own disabled (except the current)."""
    reach = SCOPE_REACH[policy_for(request).scope(module)]
    return [
        {"value": value, "label": label, "locked": value != current and SCOPE_REACH[value] > reach}
        for value, label in SCOPES
    ]


def _permission_row(request, role: Role, module: str, label: str, error: str = "") -> dict:
    entry = normalize_permissions(role.permissions)[module]
    locked = _locked_fields(request, module)
    return {
        "key": module,
        "label": label,
        "access": entry["access"],
        "access_locked": "access" in locked,
        "scope": entry["scope"],
        "scopes": _scope_options(request, module, entry["scope"]),
        "actions": [
            {
                "key": action,
                "label": ACTION_LABELS[action],
                "checked": entry[action],
                "locked": action in locked,
            }
            for action in ACTIONS
        ],
        "locked": bool(locked),
        "error": error,
    }


def _dom_id(key: str) -> str:
    """The row's id stem: "fld-email", and for another module's field its prefix spelled out
    ("fld-deal--value"), so it can never meet a contact field's ("deal_value")."""
    if field_rule_target(key)[0] != FIELD_RULES_MODULE:
        key = key.replace(".", "--", 1)
    return "fld-" + key.replace(".", "-").replace("_", "-")


def _field_rows(request, role: Role, catalog=None) -> list[dict]:
    """One row per field of `catalog` ((key, label, group, editable) tuples; default: every
    registered section's fields)."""
    if catalog is None:
        catalog = [f for _m, _t, fields in role_services.rule_catalogs(request.org) for f in fields]
    stored = role.field_rules if isinstance(role.field_rules, dict) else {}
    policy = policy_for(request)
    rows = []
    for key, label, group, editable in catalog:
        default = role_services.default_field_level(editable)
        current = "editable" if role.is_owner else stored.get(key, default)
        # A level more open than the member's own for this field is not theirs to give.
        module, field = field_rule_target(key)
        mine = FIELD_OPENNESS[policy.field_level(field, module)]
        rows.append(
            {
                "key": key,
                "label": label,
                "group": group,
                "dom_id": _dom_id(key),
                "level": current,
                # One cell per level; "editable" is not offered for fields the CRM fills in.
                "cells": [
                    {
                        "level": level,
                        "label": level_label,
                        "offered": editable or level != "editable",
                        "locked": level != current and FIELD_OPENNESS[level] > mine,
                    }
                    for level, level_label in LEVEL_LABELS
                ],
                "error": "",
            }
        )
    return rows


def _field_row(request, role: Role, field_key: str, error: str = "") -> dict | None:
    for row in _field_rows(request, role):
        if row["key"] == field_key:
            row["error"] = error
            return row
    return None


def _field_sections(request, role: Role) -> list[dict]:
    """The field tables of the page: contact fields, deal fields (what is registered)."""
    permissions = normalize_permissions(role.permissions)
    sections = []
    for module, title, catalog in role_services.rule_catalogs(request.org):
        rows = _field_rows(request, role, catalog)
        groups: dict[str, list] = {}
        for row in rows:
            groups.setdefault(row["group"], []).append(row)
        rights = permissions[module]
        registered = field_rule_section(module)
        sections.append(
            {
                "module": module,
                "module_label": MODULE_LABELS.get(module, module),
                "title": title,
                "help": registered.help if registered else "",
                "records": registered.records if registered else "records",
                # The contact section keeps the ids it always had.
                "dom": "fields" if module == FIELD_RULES_MODULE else f"{module}-fields",
                "groups": list(groups.items()),
                "rows": rows,
                "visible": role.is_owner or rights["access"],
                "editable": role.is_owner or rights["edit"] or rights["create"],
            }
        )
    return sections


def _detail_context(request, role: Role, **extra) -> dict:
    field_sections = _field_sections(request, role)
    member_count = role.memberships.filter(is_active=True).count()
    change_refusal = _change_refusal(request, role)
    rows = [_permission_row(request, role, key, label) for key, label in MODULES]
    context = {
        "role": role,
        "can_change": not change_refusal,
        "change_refusal": change_refusal,
        "rows": rows,
        "greyed": any(row["locked"] for row in rows)
        or any(
            cell["locked"]
            for section in field_sections
            for r in section["rows"]
            for cell in r["cells"]
        ),
        "field_sections": field_sections,
        "member_count": member_count,
        "matrix_errors": [],
        "rename_form": RoleRenameForm(initial={"name": role.name, "description": role.description}),
    }
    context.update(extra)
    return context


def _parse_matrix(request, role: Role) -> tuple[dict, dict]:
    """The whole submitted form as the services expect it. Disabled controls are not sent
    by browsers, so locked ones keep their current value."""
    current = normalize_permissions(role.permissions)
    permissions = {}
    for module, _label in MODULES:
        locked = _locked_fields(request, module)
        entry = {}
        for field in ("access", *ACTIONS):
            name = f"{module}-{field}"
            entry[field] = current[module][field] if field in locked else name in request.POST
        entry["scope"] = request.POST.get(f"{module}-scope", current[module]["scope"])
        permissions[module] = entry
    field_rules = {}
    for _module, _title, catalog in role_services.rule_catalogs(request.org):
        for key, *_rest in catalog:
            level = request.POST.get(f"field-{key}")
            if level:
                field_rules[key] = level
    return permissions, field_rules


# Views ---------------------------------------------------------------------------------
@member_required("settings", "view")
def role_list(request):
    form = RoleCreateForm(request.org, policy_for(request))
    if request.method == "POST":
        policy_for(request).require("settings", "edit")
        form = RoleCreateForm(request.org, policy_for(request), request.POST)
        if form.is_valid():
            try:
                role = role_services.role_create(
                    request.org,
                    Actor.from_request(request),
                    form.cleaned_data["name"],
                    copy_from=form.cleaned_data["copy_from"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, f"Role “{role.name}” created. Set its permissions.")
                return redirect("crm:role_detail", public_id=role.public_id)
    roles = Role.objects.for_org(request.org).annotate(
        member_count=Count("memberships", filter=Q(memberships__is_active=True))
    )
    return render(
        request,
        "crm/roles_list.html",
        {"roles": roles, "form": form, "can_edit": policy_for(request).can("settings", "edit")},
    )


@member_required("settings", "view")
def role_detail(request, public_id):
    role = _role(request, public_id)
    if request.method == "POST":
        policy_for(request).require("settings", "edit")
        permissions, field_rules = _parse_matrix(request, role)
        try:
            role_services.role_update_matrix(
                request.org, Actor.from_request(request), role, permissions, field_rules
            )
        except ValidationError as error:
            role.refresh_from_db()
            context = _detail_context(request, role, matrix_errors=error.messages)
            return render(request, "crm/roles_detail.html", context)
        messages.success(request, f"Saved the permissions of {role.name}.")
        return redirect("crm:role_detail", public_id=role.public_id)
    return render(request, "crm/roles_detail.html", _detail_context(request, role))


@member_required("settings", "view")
def role_permission(request, public_id):
    """One control of the matrix changed; answers with that module's row."""
    role = _role(request, public_id)
    if request.method != "POST":
        return redirect("crm:role_detail", public_id=role.public_id)
    policy_for(request).require("settings", "edit")
    module = request.POST.get("module", "")
    field = request.POST.get("field", "")
    if field == "scope":
        value = request.POST.get("value", request.POST.get(f"{module}-scope", ""))
    elif "value" in request.POST:
        value = request.POST["value"].lower() in TRUE_VALUES
    else:
        # A checkbox posts its name only while ticked.
        value = f"{module}-{field}" in request.POST
    labels = dict(MODULES)
    error = ""
    try:
        role = role_services.role_set_permission(
            request.org, Actor.from_request(request), role, module, field, value
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
        messages.error(request, error)
        role.refresh_from_db()
    else:
        action = "access" if field == "access" else ACTION_LABELS.get(field, "scope").lower()
        messages.success(request, f"Saved: {labels.get(module, module)} {action} for {role.name}.")
    if not request.htmx:
        return redirect("crm:role_detail", public_id=role.public_id)
    if module not in labels:
        # Nothing on the page to redraw; the error reaches the member as a toast.
        return HttpResponse(status=400)
    row = _permission_row(request, role, module, labels[module], error=error)
    return render(
        request,
        "crm/roles_detail.html#permission_row",
        {"row": row, "role": role, "can_change": _can_change(request, role)},
    )


@member_required("settings", "view")
def role_field_rule(request, public_id):
    """One field's radio changed; answers with that field's row."""
    role = _role(request, public_id)
    if request.method != "POST":
        return redirect("crm:role_detail", public_id=role.public_id)
    policy_for(request).require("settings", "edit")
    field_key = request.POST.get("field_key", "")
    level = request.POST.get("level", request.POST.get(f"field-{field_key}", ""))
    error = ""
    try:
        role = role_services.role_set_field_rule(
            request.org, Actor.from_request(request), role, field_key, level
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
        messages.error(request, error)
        role.refresh_from_db()
    row = _field_row(request, role, field_key, error=error)
    if not error and row is not None:
        messages.success(request, f"Saved: {row['label']} is {level} for {role.name}.")
    if not request.htmx:
        return redirect("crm:role_detail", public_id=role.public_id)
    if row is None:
        return HttpResponse(status=400)
    return render(
        request,
        "crm/roles_detail.html#field_row",
        {"row": row, "role": role, "can_change": _can_change(request, role)},
    )


@member_required("settings", "view")
def role_rename(request, public_id):
    role = _role(request, public_id)
    if request.method != "POST":
        return redirect("crm:role_detail", public_id=role.public_id)
    policy_for(request).require("settings", "edit")
    form = RoleRenameForm(request.POST)
    if form.is_valid():
        try:
            role_services.role_rename(
                request.org,
                Actor.from_request(request),
                role,
                form.cleaned_data["name"],
                description=form.cleaned_data["description"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Role renamed.")
            return redirect("crm:role_detail", public_id=role.public_id)
    role.refresh_from_db()
    return render(
        request, "crm/roles_detail.html", _detail_context(request, role, rename_form=form)
    )


@member_required("settings", "view")
def role_delete(request, public_id):
    """GET asks for confirmation (so it works without JavaScript); POST deletes."""
    role = _role(request, public_id)
    errors = []
    if request.method == "POST":
        policy_for(request).require("settings", "edit")
        try:
            role_services.role_delete(request.org, Actor.from_request(request), role)
        except ValidationError as error:
            errors = error.messages
        else:
            messages.success(request, f"Role “{role.name}” deleted.")
            return redirect("crm:roles")
    return render(
        request,
        "crm/roles_delete.html",
        {
            "role": role,
            "errors": errors,
            "holders": role.memberships.count(),
            "can_edit": policy_for(request).can("settings", "edit"),
        },
    )
