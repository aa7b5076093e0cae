"""Services own every write. Import from the submodule that fits; the common ones are here."""

from .audit import Actor, audit, diff, emit_event, snapshot
from .orgs import ensure_builtin_roles, organization_create
from .preferences import preference_set_theme, theme_for

__all__ = [
    "Actor",
    "audit",
    "diff",
    "emit_event",
    "ensure_builtin_roles",
    "organization_create",
    "preference_set_theme",
    "snapshot",
    "theme_for",
]
