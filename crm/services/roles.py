"""Roles: custom roles and the edits of Settings → Roles & Permissions.

Rules every write here keeps:
- the Owner role never changes (it always has every right);
- nobody changes the role they hold themselves (nobody sets their own rights, and nobody
  locks themselves out of this very page);
- nobody changes a role with rights beyond their own: even taking rights away from it is for
  someone who holds them;
- a member may not grant a right, a wider record scope or a more open contact or deal field
  than their own role has (crm.permissions.Policy.rights_beyond), not even by copying a role;
- every change is audited with its before/after and emits "role.updated", one event type
  for every kind of change, so consumers (caches, webhooks) need to follow only one.
"""

from __future__ import annotations

from dataclasses import asdict

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils.text import slugify

from ..field_sizes import char_max_length
from ..fields_registry import field_rule_section, field_rule_sections
from ..models import Invitation, Membership, Organization, Role
from ..permissions import (
    ACTIONS,
    FIELD_LEVELS,
    FIELD_RULE_NOUNS,
    FIELD_RULES_MODULE,
    MODULE_KEYS,
    MODULES,
    SCOPE_KEYS,
    Policy,
    apply_permission_change,
    describe_rights,
    field_rule_target,
    normalize_permissions,
)
from .audit import Actor, audit, diff, emit_event
from .members import settings_editor_policy

NAME_MAX_LENGTH = char_max_length(Role, "name")
DESCRIPTION_MAX_LENGTH = char_max_length(Role, "description")
KEY_MAX_LENGTH = char_max_length(Role, "key")
MODULE_LABELS = dict(MODULES)
OWNER_IMMUTABLE = "The Owner role always has every permission and cannot be changed."


# Field catalogs ----------------------------------------------------------------------------
# The apps that own the fields register them with crm.fields_registry (contacts its contact
# fields, pipeline its deal fields), so crm never imports a domain app.


def _section_catalog(org, module: str) -> list[tuple[str, str, str, bool]]:
    section = field_rule_section(module)
    if section is None:
        return []
    return [(f.key, f.label, f.group, f.editable) for f in section.fields(org)]


def field_catalog(org) -> list[tuple[str, str, str, bool]]:
    """The contact fields a rule can name, as (key, label, group, editable)."""
    return _section_catalog(org, FIELD_RULES_MODULE)


def rule_catalogs(org) -> list[tuple[str, str, list[tuple[str, str, str, bool]]]]:
    """Every registered section of field rules as (module, title, fields), contacts first;
    each field is (rule key, label, group, editable): "deal.value" for a deal's value."""
    out = []
    for section in field_rule_sections():
        if section.module == FIELD_RULES_MODULE:
            fields = field_catalog(org)
        else:
            fields = _section_catalog(org, section.module)
        out.append((section.module, section.title, fields))
    return out


# Helpers -------------------------------------------------------------------------------
def _actor_policy(org, actor: Actor) -> Policy | None:
    return settings_editor_policy(org, actor, "change roles and permissions")


def _check_same_org(org, role: Role) -> None:
    if role.org_id != org.id:
        raise PermissionDenied("That role belongs to another organization.")


def _check_mutable(role: Role) -> None:
    if role.is_owner:
        raise ValidationError(OWNER_IMMUTABLE)


def _flat(permissions: dict) -> dict:
    """{"contacts.edit": True, "contacts.scope": "own", ...} for a readable audit diff."""
    return {
        f"{module}.{field}": value
        for module, entry in permissions.items()
        for field, value in entry.items()
    }


def _label(module: str) -> str:
    return MODULE_LABELS.get(module, module)


def change_refusal(actor_policy: Policy | None, role: Role) -> str:
    """Why the acting member may not change `role` at all, or "" when they may: not their
    own role, and not one with rights beyond theirs (see the module docstring)."""
    if actor_policy is None:
        return ""
    if role.is_owner:
        return OWNER_IMMUTABLE
    if actor_policy.membership.role_id == role.pk:
        return (
            f"{role.name} is your own role, so you can't change it: nobody sets their own "
            "rights. Ask another admin or an Owner."
        )
    beyond = actor_policy.rights_beyond(role)
    if beyond:
        return (
            f"You can't change {role.name}: it has rights your own role doesn't have "
            f"({describe_rights(beyond)}). Ask someone who holds them, or an Owner."
        )
    return ""


def _check_changeable(actor_policy: Policy | None, role: Role) -> None:
    refusal = change_refusal(actor_policy, role)
    if refusal:
        raise ValidationError(refusal)


def _check_grants(actor_policy: Policy | None, before: Role, after: Role) -> None:
    """Refuse a change that gives `after` a right the actor lacks. Run after
    _check_changeable, which refused roles that were beyond the actor already."""
    if actor_policy is None:
        return
    had = set(actor_policy.rights_beyond(before))
    added = [right for right in actor_policy.rights_beyond(after) if right not in had]
    if added:
        raise ValidationError(f"You can't grant {added[0]}: your own role doesn't have it.")


def _record(org, actor: Actor, role: Role, verb: str, changes: dict) -> None:
    audit(org=org, actor=actor, verb=verb, obj=role, changes=changes)
    emit_event(
        org=org,
        event_type="role.updated",
        payload={
            "role": str(role.public_id),
            "key": role.key,
            "change": verb.removeprefix("role."),
            "changes": changes,
        },
    )


def _lock_role(role: Role) -> Role:
    """Re-read the role under a row lock, so two admins' clicks never overwrite each other."""
    return Role.objects.for_org(role.org_id).select_for_update().get(pk=role.pk)


def _lock_names(org) -> None:
    """One role naming at a time per organization, so the unique name and key checks hold
    (names are unique only case-insensitively, which no constraint enforces)."""
    Organization.objects.select_for_update().filter(pk=org.pk).first()


def _clean_name(org, name, *, exclude_pk=None) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise ValidationError({"name": "Give the role a name."})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": f"Keep the name to {NAME_MAX_LENGTH} characters or fewer."})
    taken = Role.objects.for_org(org).filter(name__iexact=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"name": f"There is already a role called “{name}”."})
    return name


def _unique_key(org, name: str) -> str:
    base = slugify(name)[: KEY_MAX_LENGTH - 4].strip("-") or "role"
    taken = set(
        Role.objects.for_org(org).filter(key__startswith=base).values_list("key", flat=True)
    )
    key, n = base, 2
    while key in taken:
        key = f"{base}-{n}"
        n += 1
    return key


# Services ------------------------------------------------------------------------------
@transaction.atomic
def role_create(org, actor: Actor, name, copy_from: Role | None = None) -> Role:
    """A custom role named `name`; it starts with no rights, or with a copy of `copy_from`'s
    permissions and field rules."""
    actor_policy = _actor_policy(org, actor)
    _lock_names(org)
    name = _clean_name(org, name)
    if copy_from is not None and copy_from.org_id != org.id:
        raise ValidationError({"copy_from": "Choose a role of this organization to copy."})
    nothing = normalize_permissions({})
    permissions = normalize_permissions(copy_from.permissions) if copy_from else nothing
    if copy_from is not None and copy_from.is_owner:
        # The Owner's stored JSON is not what it can do; copy what the policy grants it.
        owner_rights = Policy.for_role(copy_from)
        permissions = {m: asdict(owner_rights.rights(m)) for m in MODULE_KEYS}
    field_rules = dict(copy_from.field_rules or {}) if copy_from and not copy_from.is_owner else {}
    # Only a copy can hold rights: a new role starts with none.
    if actor_policy is not None and copy_from is not None:
        beyond = actor_policy.rights_beyond(Role(permissions=permissions, field_rules=field_rules))
        if beyond:
            raise ValidationError(
                {
                    "copy_from": f"You can't copy {copy_from.name}: it has rights your own "
                    f"role doesn't have ({describe_rights(beyond)})."
                }
            )
    role = Role.objects.for_org(org).create(
        org=org,
        key=_unique_key(org, name),
        name=name,
        is_builtin=False,
        permissions=permissions,
        field_rules=field_rules,
        position=1000,
    )
    changes = {"name": [None, name]}
    if copy_from is not None:
        changes["copied_from"] = [None, copy_from.name]
    changes.update(diff(_flat(nothing), _flat(permissions)))
    changes.update({f"fields.{k}": [None, v] for k, v in field_rules.items()})
    _record(org, actor, role, "role.created", changes)
    return role


@transaction.atomic
def role_rename(org, actor: Actor, role: Role, name, description=None) -> Role:
    """Rename a custom role (and, when given, change its description)."""
    _check_same_org(org, role)
    actor_policy = _actor_policy(org, actor)
    _lock_names(org)
    role = _lock_role(role)
    _check_changeable(actor_policy, role)
    if role.is_builtin:
        raise ValidationError(
            {"name": "Built-in roles keep their names; create a custom role instead."}
        )
    name = _clean_name(org, name, exclude_pk=role.pk)
    before = {"name": role.name, "description": role.description}
    role.name = name
    if description is not None:
        description = " ".join(str(description).split())
        if len(description) > DESCRIPTION_MAX_LENGTH:
            raise ValidationError(
                {"description": f"Keep it to {DESCRIPTION_MAX_LENGTH} characters or fewer."}
            )
        role.description = description
    changes = diff(before, {"name": role.name, "description": role.description})
    if changes:
        role.save(update_fields=["name", "description"])
        _record(org, actor, role, "role.renamed", changes)
    return role


@transaction.atomic
def role_delete(org, actor: Actor, role: Role) -> None:
    """Delete a custom role nobody holds and no pending invitation offers."""
    _check_same_org(org, role)
    actor_policy = _actor_policy(org, actor)
    role = _lock_role(role)
    if role.is_builtin:
        raise ValidationError("Built-in roles cannot be deleted.")
    _check_changeable(actor_policy, role)
    holders = Membership.objects.for_org(org).filter(role=role).count()
    if holders:
        people = "member holds" if holders == 1 else "members hold"
        raise ValidationError(
            f"{holders} {people} this role (deactivated members count too). "
            "Give them another role first."
        )
    invitations = Invitation.objects.for_org(org).filter(role=role)
    pending = invitations.pending().count()
    if pending:
        noun = "invitation offers" if pending == 1 else "invitations offer"
        raise ValidationError(
            f"{pending} pending {noun} this role. Revoke them or wait until they expire."
        )
    # Spent invitations (accepted, revoked, expired) can never be used again, but they still
    # point at the role; drop them with it rather than keeping the role alive forever.
    spent = invitations.count()
    changes = {
        "name": [role.name, None],
        "permissions": [normalize_permissions(role.permissions), None],
    }
    if spent:
        changes["spent_invitations_removed"] = [spent, 0]
    _record(org, actor, role, "role.deleted", changes)
    invitations.delete()
    try:
        role.delete()
    except ProtectedError as error:
        raise ValidationError(
            "Other records still use this role, so it cannot be deleted."
        ) from error


def _validate_permission(module, field, value) -> None:
    if module not in MODULE_KEYS:
        raise ValidationError(f"Unknown module “{module}”.")
    if field == "scope":
        if value not in SCOPE_KEYS:
            raise ValidationError(f"Unknown record scope “{value}”.")
    elif field == "access" or field in ACTIONS:
        if not isinstance(value, bool):
            raise ValidationError(f"{field} must be on or off.")
    else:
        raise ValidationError(f"Unknown permission “{field}”.")


def _save(org, actor, actor_policy, role: Role, after: dict, rules: dict | None = None) -> Role:
    """Validate and store permissions `after` and the field levels in `rules`; audit the
    difference (nothing is written or recorded when nothing changed)."""
    before = normalize_permissions(role.permissions)
    after = normalize_permissions(after)
    changes = diff(_flat(before), _flat(after))
    stored = role.field_rules if isinstance(role.field_rules, dict) else {}
    field_changes = {}
    for key, (level, default) in (rules or {}).items():
        old = stored.get(key, default)
        if old != level:
            field_changes[f"fields.{key}"] = [old, level]
    if not changes and not field_changes:
        return role
    after_rules = {**stored, **{k: level for k, (level, _) in (rules or {}).items()}}
    _check_grants(
        actor_policy, role, Role(name=role.name, permissions=after, field_rules=after_rules)
    )
    role.permissions = after
    role.field_rules = after_rules
    role.save(update_fields=["permissions", "field_rules"])
    verb = "role.permissions_changed" if changes else "role.field_rules_changed"
    _record(org, actor, role, verb, {**changes, **field_changes})
    return role


@transaction.atomic
def role_set_permission(org, actor: Actor, role: Role, module, field, value) -> Role:
    """Change one control of the matrix: `field` is "access", an action or "scope".

    Access off closes the module; view off does too; access on or any action on opens the
    module with view (see permissions.apply_permission_change)."""
    _check_same_org(org, role)
    _check_mutable(role)
    actor_policy = _actor_policy(org, actor)
    _validate_permission(module, field, value)
    role = _lock_role(role)
    _check_changeable(actor_policy, role)
    current = normalize_permissions(role.permissions)
    after = {**current, module: apply_permission_change(current[module], field, value)}
    return _save(org, actor, actor_policy, role, after)


def merge_submitted_entry(current: dict, submitted: dict) -> dict:
    """One module's entry after a whole-matrix form post, read as the clicks that changed it:
    access switched off wins; then actions switched off, access switched on, actions switched
    on, in that order, each with the same knock-on effects as an instant save."""
    changed = [f for f in ("access", *ACTIONS) if bool(submitted.get(f)) != current[f]]
    entry = dict(current)
    if "access" in changed and not submitted.get("access"):
        entry = apply_permission_change(entry, "access", False)
    else:
        for action in ACTIONS:
            if action in changed and not submitted.get(action):
                entry = apply_permission_change(entry, action, False)
        if "access" in changed:
            entry = apply_permission_change(entry, "access", True)
        for action in ACTIONS:
            if action in changed and submitted.get(action):
                entry = apply_permission_change(entry, action, True)
    entry["scope"] = submitted.get("scope", current["scope"])
    return entry


@transaction.atomic
def role_update_matrix(
    org, actor: Actor, role: Role, permissions: dict, field_rules: dict | None = None
) -> Role:
    """Apply a whole submitted matrix at once (the form works without JavaScript): all of it
    is saved, or, when one part is refused, none of it.

    `permissions` maps module -> {"access": bool, action: bool, ..., "scope": str};
    a module left out keeps its rights. `field_rules` maps a rule key (contact field key,
    or "deal.<key>" for a deal field) -> level."""
    _check_same_org(org, role)
    _check_mutable(role)
    actor_policy = _actor_policy(org, actor)
    unknown = set(permissions) - set(MODULE_KEYS)
    if unknown:
        raise ValidationError(f"Unknown module “{sorted(unknown)[0]}”.")
    role = _lock_role(role)
    _check_changeable(actor_policy, role)
    current = normalize_permissions(role.permissions)
    after = dict(current)
    for module, submitted in permissions.items():
        scope = submitted.get("scope", current[module]["scope"])
        if scope not in SCOPE_KEYS:
            raise ValidationError(f"Unknown record scope “{scope}” for {_label(module)}.")
        after[module] = merge_submitted_entry(current[module], {**submitted, "scope": scope})
    rules = _clean_field_rules(org, field_rules or {})
    return _save(org, actor, actor_policy, role, after, rules)


def default_field_level(editable: bool) -> str:
    """The level of a field without a rule: editable, or visible for fields the CRM fills in."""
    return "editable" if editable else "visible"


def _clean_field_rules(org, field_rules: dict) -> dict[str, tuple[str, str]]:
    """{key: (level, level without a rule)} after checking keys and levels."""
    if not field_rules:
        return {}
    catalog = {
        key: (label, editable)
        for _module, _title, fields in rule_catalogs(org)
        for key, label, _group, editable in fields
    }
    cleaned = {}
    for key, level in field_rules.items():
        if key not in catalog:
            module, field = field_rule_target(str(key))
            raise ValidationError(f"Unknown {FIELD_RULE_NOUNS.get(module, 'field')} “{field}”.")
        label, editable = catalog[key]
        if level not in FIELD_LEVELS:
            raise ValidationError(f"Choose editable, visible or hidden for {label}.")
        if level == "editable" and not editable:
            raise ValidationError(f"{label} is filled in by the CRM; it can't be editable.")
        cleaned[key] = (level, default_field_level(editable))
    return cleaned


@transaction.atomic
def role_set_field_rule(org, actor: Actor, role: Role, field_key, level) -> Role:
    """Whether holders of `role` may edit, only see, or not see one field: a contact field,
    or a deal field by its rule key ("deal.value")."""
    _check_same_org(org, role)
    _check_mutable(role)
    actor_policy = _actor_policy(org, actor)
    rules = _clean_field_rules(org, {field_key: level})
    role = _lock_role(role)
    _check_changeable(actor_policy, role)
    return _save(org, actor, actor_policy, role, role.permissions, rules)
