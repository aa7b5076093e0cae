"""Who may import, and the limits of an upload: the rules every step of the import asks."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied

from ..models import ImportJob

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = getattr(settings, "IMPORT_MAX_UPLOAD_MB", 200) * 1024 * 1024
ALLOWED_EXTENSIONS = (".csv", ".tsv", ".txt", ".xlsx")


def max_upload_bytes() -> int:
    """The upload limit, read when asked so a changed setting applies without a restart."""
    return getattr(settings, "IMPORT_MAX_UPLOAD_MB", 200) * 1024 * 1024


def require_import_rights(policy) -> None:
    if not (policy.can("contacts", "create") or policy.can("contacts", "edit")):
        raise PermissionDenied("Your role may not import contacts.")


def require_import_in_scope(job: ImportJob, policy) -> None:
    """An import is its creator's: only they, and members whose contacts scope covers them,
    may change, start, cancel or undo it (the views answer 404 before this is reached)."""
    require_import_rights(policy)
    if not policy.owns_in_scope("contacts", job.created_by_id):
        raise PermissionDenied("This import belongs to someone outside your records.")


def owner_refusal(policy) -> str:
    """What a member is told when they name an owner they may not give contacts to."""
    scope = policy.scope("contacts")
    if scope == "all":
        return "Choose an active member as owner."
    if scope == "team" and policy.membership is not None and policy.membership.team_id:
        return "You may give imported contacts only to yourself or a member of your team."
    return "You may give imported contacts only to yourself."
