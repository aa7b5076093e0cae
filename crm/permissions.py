"""The one policy layer. Every question of "may this member ..." is answered here.

A role's `permissions` JSON has one entry per module:
    {"access": bool, "view": bool, "create": bool, "edit": bool, "delete": bool,
     "export": bool, "scope": "all" | "team" | "own"}
and `field_rules` maps a field's rule key to "editable", "visible" or "hidden": a contact
field's key as it is ("email"), another module's field under that module's prefix
(FIELD_RULE_PREFIXES: "deal.value" is a deal's value, under the Pipeline module's rights).
Anything missing from the JSON is denied, so a new module starts closed. A module is open
only with both `access` and `view`: the other actions mean nothing without seeing the records.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import Q

MODULES = [
    ("contacts", "Contacts"),
    ("companies", "Companies"),
    ("pipeline", "Pipeline"),
    ("custom_objects", "Custom objects"),
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
FIELD_RULES_MODULE = "contacts"  # the module whose fields `field_rules` describe
# Other modules whose fields have rules, under a prefix: "deal.value" is the deal's value.
FIELD_RULE_PREFIXES = {"pipeline": "deal."}
# How refusals name a field of each module: "the deal field “value”".
FIELD_RULE_NOUNS = {FIELD_RULES_MODULE: "contact field", "pipeline": "deal field"}
# How far a scope reaches, for "may not grant more than you have" checks.
SCOPE_REACH = {"own": 0, "team": 1, "all": 2}
# How open a field level is, for the same checks on field rules.
FIELD_OPENNESS = {"hidden": 0, "visible": 1, "editable": 2}
MODULE_LABELS = dict(MODULES)


def field_rule_target(rule_key: str) -> tuple[str, str]:
    """(module, field key) of a stored rule key: ("pipeline", "value") for "deal.value".
    A key without another module's prefix is a contact field's ("custom.tier" included)."""
    for module, prefix in FIELD_RULE_PREFIXES.items():
        if rule_key.startswith(prefix):
            return module, rule_key.removeprefix(prefix)
    return FIELD_RULES_MODULE, rule_key


_BUSINESS = ["contacts", "companies", "pipeline", "custom_objects", "tasks", "messaging"]


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
        "A sales rep: sees and works the records they own.",
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
        "A customer with a login: sees only the tasks assigned to them.",
        _matrix("", tasks=_module("v", scope="own")),
    ),
]
BUILTIN_ROLE_KEYS = [key for key, *_ in BUILTIN_ROLES]


def normalize_permissions(raw) -> dict:
    """Return a complete, valid permissions dict (unknown keys dropped, missing denied).

    Only a real `True` grants: JSON edited by hand with "false" or 1 must not open a module."""
    raw = raw if isinstance(raw, dict) else {}
    out = {}
    for module in MODULE_KEYS:
        entry = raw.get(module)
        entry = entry if isinstance(entry, dict) else {}
        actions = {action: entry.get(action) is True for action in ACTIONS}
        access = entry.get("access") is True and actions["view"]
        if not access:
            actions = dict.fromkeys(ACTIONS, False)
        scope = entry.get("scope")
        scope = scope if isinstance(scope, str) and scope in SCOPE_KEYS else "own"
        out[module] = {"access": access, **actions, "scope": scope}
    return out


def apply_permission_change(entry: dict, field: str, value) -> dict:
    """One module's entry after one control of the matrix changes, keeping it coherent:
    access off (or view off) closes the module; access on, or any action on, opens it
    with view. Returns a new dict; `field` and `value` must already be valid."""
    entry = dict(entry)
    if field == "scope":
        entry["scope"] = value
    elif field in ("access", "view") and not value:
        entry["access"] = False
        entry.update(dict.fromkeys(ACTIONS, False))
    elif value:
        entry["access"] = True
        entry["view"] = True
        if field != "access":
            entry[field] = True
    else:
        entry[field] = False
    return entry


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

# How the 403 page and refusals name an action: "the right to edit Contacts".
ACTION_WORDS = {
    "access": "open",
    "view": "see",
    "create": "add",
    "edit": "edit",
    "delete": "delete",
    "export": "export",
}


def right_description(module: str, action: str) -> str:
    """One right in words: "the right to edit contacts" (our own module and action names:
    nothing of a record or of another organization)."""
    label = MODULE_LABELS.get(module, module)
    label = label if label.isupper() else label.lower()  # "AI" stays "AI"
    return f"the right to {ACTION_WORDS.get(action, action)} {label}"


class RightMissing(PermissionDenied):
    """A refusal for want of one right: module `module`, action `action`. The 403 page names
    the right (`description`) so the member knows what to ask their admin for."""

    def __init__(self, module: str, action: str):
        self.module = module
        self.action = action
        super().__init__(f"Your role may not {action} {module}.")

    @property
    def description(self) -> str:
        return right_description(self.module, self.action)


def describe_rights(phrases: list[str], limit: int = 3) -> str:
    """Phrases joined for a refusal message: "export on Contacts, delete on Tasks and 2 more"."""
    shown = phrases[:limit]
    if len(phrases) > limit:
        return f"{', '.join(shown)} and {len(phrases) - limit} more"
    if len(shown) > 1:
        return f"{', '.join(shown[:-1])} and {shown[-1]}"
    return "".join(shown)


class Policy:
    """Answers questions for one membership. Cheap to build; cache per request."""

    def __init__(self, membership):
        self.membership = membership
        self._rights: dict[str, ModuleRights] = {}
        # field_level answers, by (field, module): a page asks about every field for every
        # row or section, and the answer never changes for the life of the policy.
        self._field_levels: dict[tuple[str, str], str] = {}
        if membership is not None and membership.is_active:
            role = membership.role
            perms = normalize_permissions(role.permissions or {})
            if role.is_owner:
                perms = normalize_permissions(_matrix("vcedx"))
            self._rights = {key: ModuleRights(**value) for key, value in perms.items()}
            rules = role.field_rules if isinstance(role.field_rules, dict) else {}
            self._field_rules = {} if role.is_owner else dict(rules)
        else:
            self._field_rules = {}

    @classmethod
    def for_role(cls, role) -> Policy:
        """What any holder of `role` may do (saved or not): for comparing roles."""
        from .models import Membership

        return cls(Membership(role=role, is_active=True))

    @property
    def is_owner(self) -> bool:
        m = self.membership
        return bool(m is not None and m.is_active and m.role.is_owner)

    # Modules and actions ---------------------------------------------------------------
    def rights(self, module: str) -> ModuleRights:
        return self._rights.get(module, NO_RIGHTS)

    def can_access(self, module: str) -> bool:
        return self.rights(module).access

    def can(self, module: str, action: str) -> bool:
        # Only real actions: getattr(rights, "scope") is a non-empty string and would say yes.
        if action != "access" and action not in ACTIONS:
            return False
        rights = self.rights(module)
        return rights.access and getattr(rights, action) is True

    def require(self, module: str, action: str = "view") -> None:
        if not self.can(module, action):
            raise RightMissing(module, action)

    def __getitem__(self, module: str) -> ModuleRights:
        """Template use: {% if policy.contacts.create %}.

        Templates try `policy[name]` before `policy.name`, so anything that is not a module
        must raise KeyError; otherwise {{ policy.membership }} would turn into NO_RIGHTS."""
        if module not in MODULE_KEYS:
            raise KeyError(module)
        return self.rights(module)

    # Record scope ----------------------------------------------------------------------
    def scope(self, module: str) -> str:
        return self.rights(module).scope

    def scope_filter(self, module: str, owner_field: str = "owner") -> Q:
        """A Q that limits a queryset to the records this member may touch in `module`.

        `owner_field` is the path to the owning user's foreign key ("owner", "deal__owner").
        A "team" scope for a member without a team falls back to their own records; records
        of deactivated teammates stay visible to the team, so nothing they owned is lost."""
        m = self.membership
        if m is None or not self.can_access(module):
            return Q(pk__in=[])
        scope = self.scope(module)
        if scope == "all":
            return Q()
        if scope == "team" and m.team_id:
            from .models import Membership

            teammates = (
                Membership.objects.for_org(m.org_id).filter(team_id=m.team_id).values("user_id")
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

            return (
                Membership.objects.for_org(m.org_id)
                .filter(user_id=owner_id, team_id=m.team_id)
                .exists()
            )
        return False

    def can_touch(self, module: str, action: str, owner_id) -> bool:
        return self.can(module, action) and self.owns_in_scope(module, owner_id)

    # Administration ----------------------------------------------------------------------
    # "Admin" means two different things, so each has its own name.

    def is_contact_admin(self) -> bool:
        """Edits every contact (scope "all"). Such members alone give contacts to other
        people, release contacts someone else owns, change anyone's notes and run the bulk
        actions marked admin-only."""
        return self.can("contacts", "edit") and self.scope("contacts") == "all"

    def is_settings_admin(self) -> bool:
        """Runs the workspace (Settings edit): people, roles, and anyone's shared smart views."""
        return self.can("settings", "edit")

    # Smart views -------------------------------------------------------------------------
    def can_share_views(self) -> bool:
        """Shared views appear for everyone, so sharing is for people who work the records."""
        return self.can("contacts", "edit") or self.is_settings_admin()

    def can_manage_view(self, view) -> bool:
        """The author manages their smart views; settings admins also manage shared ones."""
        user_id = self.membership.user_id if self.membership is not None else None
        mine = user_id is not None and view.owner_id == user_id
        return mine or (view.is_shared and self.is_settings_admin())

    # Fields ------------------------------------------------------------------------------
    def field_level(self, field_key: str, module: str = "contacts") -> str:
        """How this member may treat a field: editable, visible or hidden.

        Rules apply to contact fields, and to the fields of the modules in
        FIELD_RULE_PREFIXES (deal fields). A field without a rule is editable; a rule with
        a value we do not know hides the field (fail closed). Without the module's edit or
        create right, editable drops to visible; without its view right every field is hidden."""
        cached = self._field_levels.get((field_key, module))
        if cached is None:
            cached = self._field_levels[field_key, module] = self._field_level(field_key, module)
        return cached

    def _field_level(self, field_key: str, module: str) -> str:
        if not self.can(module, "view"):
            return "hidden"
        # Field rules are written for contact fields, and for deal fields under a "deal."
        # prefix; a company field that happens to share a key ("owner", "created_at") must
        # not inherit a contact rule.
        if module == FIELD_RULES_MODULE:
            level = self._field_rules.get(field_key, "editable")
        elif module in FIELD_RULE_PREFIXES:
            level = self._field_rules.get(FIELD_RULE_PREFIXES[module] + field_key, "editable")
        else:
            level = "editable"
        if level not in FIELD_LEVELS:
            return "hidden"
        if level == "editable" and not self.can(module, "edit") and not self.can(module, "create"):
            level = "visible"
        return level

    def can_see_field(self, field_key: str, module: str = "contacts") -> bool:
        return self.field_level(field_key, module) != "hidden"

    def can_edit_field(self, field_key: str, module: str = "contacts") -> bool:
        return self.field_level(field_key, module) == "editable"

    def hidden_fields(self, keys, module: str = "contacts") -> set[str]:
        return {k for k in keys if not self.can_see_field(k, module)}

    # Granting -----------------------------------------------------------------------------
    # Nobody grants a role or a right they do not hold themselves. Holding Settings edit is
    # what lets a member manage people and roles at all; it is not a right to everything:
    # what they hand out is measured module by module, scope by scope, field by field
    # against their own role.

    def rights_beyond(self, role) -> list[str]:
        """What holders of `role` could do that this member cannot, as short phrases
        ("export on Contacts"); empty when every right of `role` is one this member holds.

        Compared: access and each action of every module `role` opens, the record scope
        there, and how open each field with a rule is, contact and deal fields alike (a field
        hidden or only visible for this member may not be visible or editable for `role`).
        The Owner holds everything."""
        if self.is_owner:
            return []
        other = Policy.for_role(role)
        beyond = []
        for module in MODULE_KEYS:
            theirs, mine = other.rights(module), self.rights(module)
            if not theirs.access:
                continue
            label = MODULE_LABELS[module]
            if not mine.access:
                beyond.append(f"access to {label}")
            beyond += [
                f"{action} on {label}"
                for action in ACTIONS
                if getattr(theirs, action) and not (mine.access and getattr(mine, action))
            ]
            if mine.access and SCOPE_REACH[theirs.scope] > SCOPE_REACH[mine.scope]:
                beyond.append(f"a wider record scope on {label}")
        for key in sorted({*self._field_rules, *other._field_rules}):
            module, field = field_rule_target(key)
            level = other.field_level(field, module)
            if FIELD_OPENNESS[level] > FIELD_OPENNESS[self.field_level(field, module)]:
                kind = "edit" if level == "editable" else "view"
                noun = FIELD_RULE_NOUNS.get(module, "field")
                beyond.append(f"{kind} access to the {noun} “{field}”")
        return beyond

    def grant_refusal(self, role) -> str:
        """Why this member may not give `role` to anyone, or "" when they may."""
        if not self.can("settings", "edit"):
            return "Your role may not change members or their roles."
        if role.is_owner and not self.is_owner:
            return "Only an Owner may grant the Owner role."
        beyond = self.rights_beyond(role)
        if beyond:
            return (
                f"You can't grant the {role.name} role: it has rights your own role doesn't "
                f"have ({describe_rights(beyond)})."
            )
        return ""

    def may_grant_role(self, role) -> bool:
        return not self.grant_refusal(role)

    def reaches_team(self, module: str, team_id) -> bool:
        """Whether this member reaches every record of team `team_id` in `module`."""
        if not self.can_access(module):
            return False
        scope = self.scope(module)
        if scope == "all":
            return True
        return scope == "team" and team_id is not None and self.membership.team_id == team_id

    def placement_refusal(self, role, team, *, user_id=None, team_changed: bool = True) -> str:
        """Why this member may not put someone (`user_id`, None for a new person) in `team`
        with `role`, or "" when they may. Call after `grant_refusal`.

        A team decides who sees whose records under the "team" scope, so a placement must
        not reach past this member either way: the person must not come to see team records
        this member cannot see, and, on a team change, the team's members must not come to
        see records of the person that this member cannot see."""
        if team is None or self.is_owner:
            return ""
        placed = Policy.for_role(role)
        for module in MODULE_KEYS:
            team_scoped = placed.can_access(module) and placed.scope(module) == "team"
            if team_scoped and not self.reaches_team(module, team.pk):
                return (
                    f"You can't give the {role.name} role in team {team.name}: it would see "
                    f"that team's {MODULE_LABELS[module]} records, which your own role "
                    "doesn't reach."
                )
        if not team_changed or user_id is None:
            return ""
        from .models import Membership

        teammates = (
            Membership.objects.for_org(team.org_id)
            .filter(team_id=team.pk, is_active=True)
            .exclude(user_id=user_id)
            .select_related("role")
        )
        watched = set()
        for mate in map(Policy, teammates):
            watched |= {m for m in MODULE_KEYS if mate.can_access(m) and mate.scope(m) == "team"}
        for module in MODULE_KEYS:
            if module in watched and not self.owns_in_scope(module, user_id):
                return (
                    f"You can't move this member into team {team.name}: its members would see "
                    f"their {MODULE_LABELS[module]} records, which your own role doesn't reach."
                )
        return ""


def policy_for(request) -> Policy:
    policy = getattr(request, "_policy", None)
    if policy is None:
        policy = Policy(getattr(request, "membership", None))
        request._policy = policy
    return policy
