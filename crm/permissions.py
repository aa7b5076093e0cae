"""The one policy layer. Every question of "may this member ..." is answered here.

A role's `permissions` JSON has one entry per module:
    {"access": bool, "view": bool, "create": bool, "edit": bool, "delete": bool,
     "export": bool, "scope": "all" | "team" | "own"}
and `field_rules` maps a contact field key to "editable", "visible" or "hidden".
Anything missing from the JSON is denied, so a new module starts closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import Q

MODULES = [
    ("contacts", "Contacts"),
    ("companies", "Companies"),
    ("pipeline", "Pipeline"),
    ("tasks", "Tasks"),
    ("messaging", "Messaging"),
    ("analytics", "Analytics"),
    ("ai", "AI"),
    ("settings", "Settings"),
    ("compliance", "Compliance"),
    ("developer", "Developer"),
]
MODULE_KEYS = [key for key, _ in MODULES]
ACTIONS = ["view", "create", "edit", "delete", "export"]
SCOPES = [("all", "All records"), ("team", "Team's records"), ("own", "Own records")]
SCOPE_KEYS = [key for key, _ in SCOPES]
FIELD_LEVELS = ["editable", "visible", "hidden"]

_BUSINESS = ["contacts", "companies", "pipeline", "tasks", "messaging"]


def _module(actions="", scope="all"):
    """Compact builder: actions is a string of initials, e.g. "vcedx" (x = export)."""
    letters = {"v": "view", "c": "create", "e": "edit", "d": "delete", "x": "export"}
    granted = {letters[ch] for ch in actions}
    return {
        "access": bool(granted),
        **{action: action in granted for action in ACTIONS},
        "scope": scope,
    }


def _matrix(default="", scope="all", **overrides):
    out = {key: _module(default, scope) for key in MODULE_KEYS}
    for key, value in overrides.items():
        out[key] = value
    return out


# The ten built-in roles: (key, name, description, permissions).
BUILTIN_ROLES = [
    (
        "owner",
        "Owner",
        "Everything, including billing-level settings. Cannot be restricted.",
        _matrix("vcedx"),
    ),
    (
        "admin",
        "Admin",
        "Runs the organization: people, roles, settings and all data.",
        _matrix("vcedx"),
    ),
    (
        "board",
        "Board",
        "Sees analytics and the pipeline, nothing else.",
        _matrix("", analytics=_module("vx"), pipeline=_module("v")),
    ),
    (
        "executive",
        "Executive",
        "Sees and works all records; exports; no administration.",
        _matrix(
            "vcex",
            settings=_module(""),
            developer=_module(""),
            compliance=_module("v"),
        ),
    ),
    (
        "director",
        "Director",
        "Leads a team: full rights over the team's records.",
        _matrix(
            "vcedx",
            scope="team",
            settings=_module(""),
            developer=_module(""),
            compliance=_module("v"),
            analytics=_module("vx"),
        ),
    ),
    (
        "team",
        "Team",
        "A sales rep: works the records they own, sees the team's.",
        _matrix(
            "",
            **{m: _module("vce", scope="own") for m in _BUSINESS},
            analytics=_module("v"),
            ai=_module("vc"),
        ),
    ),
    (
        "support",
        "Support",
        "Helps customers: reads and updates contacts, works tasks and messages.",
        _matrix(
            "",
            contacts=_module("ve"),
            companies=_module("v"),
            tasks=_module("vced"),
            messaging=_module("vc"),
            ai=_module("v"),
        ),
    ),
    (
        "partner",
        "Partner",
        "An outside reseller: only the records they own.",
        _matrix(
            "",
            contacts=_module("vce", scope="own"),
            companies=_module("vc", scope="own"),
            pipeline=_module("vce", scope="own"),
            tasks=_module("vce", scope="own"),
        ),
    ),
    (
        "viewer",
        "Viewer",
        "Reads everything a rep works with; changes nothing.",
        _matrix("", **{m: _module("v") for m in [*_BUSINESS, "analytics"]}),
    ),
    (
        "client",
        "Client",
        "A customer with a login: sees only the tasks shared with them.",
        _matrix("", tasks=_module("v", scope="own")),
    ),
]
BUILTIN_ROLE_KEYS = [key for key, *_ in BUILTIN_ROLES]


def normalize_permissions(raw: dict) -> dict:
    """Return a complete, valid permissions dict (unknown keys dropped, missing denied)."""
    out = {}
    for module in MODULE_KEYS:
        entry = raw.get(module) or {}
        actions = {action: bool(entry.get(action, False)) for action in ACTIONS}
        access = bool(entry.get("access", False)) and actions["view"]
        if not access:
            actions = dict.fromkeys(ACTIONS, False)
        scope = entry.get("scope") if entry.get("scope") in SCOPE_KEYS else "own"
        out[module] = {"access": access, **actions, "scope": scope}
    return out


@dataclass(frozen=True)
class ModuleRights:
    access: bool
    view: bool
    create: bool
    edit: bool
    delete: bool
    export: bool
    scope: str


NO_RIGHTS = ModuleRights(False, False, False, False, False, False, "own")


class Policy:
    """Answers questions for one membership. Cheap to build; cache per request."""

    def __init__(self, membership):
        self.membership = membership
        self._rights: dict[str, ModuleRights] = {}
        if membership is not None and membership.is_active:
            role = membership.role
            perms = normalize_permissions(role.permissions or {})
            if role.is_owner:
                perms = normalize_permissions(_matrix("vcedx"))
            self._rights = {key: ModuleRights(**value) for key, value in perms.items()}
            self._field_rules = dict(role.field_rules or {}) if not role.is_owner else {}
        else:
            self._field_rules = {}

    # Modules and actions ---------------------------------------------------------------
    def rights(self, module: str) -> ModuleRights:
        return self._rights.get(module, NO_RIGHTS)

    def can_access(self, module: str) -> bool:
        return self.rights(module).access

    def can(self, module: str, action: str) -> bool:
        rights = self.rights(module)
        return rights.access and bool(getattr(rights, action, False))

    def require(self, module: str, action: str = "view") -> None:
        if not self.can(module, action):
            raise PermissionDenied(f"Your role may not {action} {module}.")

    def __getitem__(self, module: str) -> ModuleRights:
        """Template use: {% if policy.contacts.create %}."""
        return self.rights(module)

    # Record scope ----------------------------------------------------------------------
    def scope(self, module: str) -> str:
        return self.rights(module).scope

    def scope_filter(self, module: str, owner_field: str = "owner") -> Q:
        """A Q that limits a queryset to the records this member may touch in `module`."""
        m = self.membership
        if m is None or not self.can_access(module):
            return Q(pk__in=[])
        scope = self.scope(module)
        if scope == "all":
            return Q()
        if scope == "team" and m.team_id:
            from .models import Membership

            teammates = Membership.objects.filter(org_id=m.org_id, team_id=m.team_id).values(
                "user_id"
            )
            return Q(**{f"{owner_field}_id__in": teammates}) | Q(**{f"{owner_field}_id": m.user_id})
        return Q(**{f"{owner_field}_id": m.user_id})

    def scope_queryset(self, module: str, queryset, owner_field: str = "owner"):
        return queryset.filter(self.scope_filter(module, owner_field))

    def owns_in_scope(self, module: str, owner_id) -> bool:
        """Whether a record owned by user `owner_id` is inside this member's scope."""
        m = self.membership
        if m is None or not self.can_access(module):
            return False
        scope = self.scope(module)
        if scope == "all":
            return True
        if owner_id == m.user_id:
            return True
        if scope == "team" and m.team_id and owner_id:
            from .models import Membership

            return Membership.objects.filter(
                org_id=m.org_id, user_id=owner_id, team_id=m.team_id
            ).exists()
        return False

    def can_touch(self, module: str, action: str, owner_id) -> bool:
        return self.can(module, action) and self.owns_in_scope(module, owner_id)

    # Fields ------------------------------------------------------------------------------
    def field_level(self, field_key: str, module: str = "contacts") -> str:
        if not self.can(module, "view"):
            return "hidden"
        level = self._field_rules.get(field_key)
        if level not in FIELD_LEVELS:
            level = "editable"
        if level == "editable" and not self.can(module, "edit") and not self.can(module, "create"):
            level = "visible"
        return level

    def can_see_field(self, field_key: str, module: str = "contacts") -> bool:
        return self.field_level(field_key, module) != "hidden"

    def can_edit_field(self, field_key: str, module: str = "contacts") -> bool:
        return self.field_level(field_key, module) == "editable"

    def hidden_fields(self, keys, module: str = "contacts") -> set[str]:
        return {k for k in keys if not self.can_see_field(k, module)}


def policy_for(request) -> Policy:
    policy = getattr(request, "_policy", None)
    if policy is None:
        policy = Policy(getattr(request, "membership", None))
        request._policy = policy
    return policy
