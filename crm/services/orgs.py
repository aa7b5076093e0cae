from __future__ import annotations

from django.db import transaction
from django.utils.text import slugify

from ..models import Membership, Organization, Role
from ..permissions import BUILTIN_ROLES, normalize_permissions
from .audit import Actor, audit, emit_event


def ensure_builtin_roles(org: Organization) -> dict[str, Role]:
    """Create any missing built-in role of `org` (never overwrites an admin's edits)."""
    roles = {}
    for position, (key, name, description, permissions) in enumerate(BUILTIN_ROLES):
        role, _ = Role.objects.for_org(org).get_or_create(
            org=org,
            key=key,
            defaults={
                "name": name,
                "description": description,
                "is_builtin": True,
                "permissions": normalize_permissions(permissions),
                "position": position,
            },
        )
        roles[key] = role
    return roles


def unique_org_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    slug, n = base, 2
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


@transaction.atomic
def organization_create(
    *,
    name: str,
    owner,
    actor: Actor | None = None,
    slug: str | None = None,
    base_currency: str = "USD",
    timezone: str = "UTC",
    locale: str = "en-us",
) -> Organization:
    """A new organization with its ten built-in roles and `owner` as its Owner."""
    name = name.strip()
    if not name:
        raise ValueError("An organization needs a name.")
    org = Organization.objects.create(
        name=name,
        slug=slug or unique_org_slug(name),
        base_currency=base_currency,
        timezone=timezone,
        locale=locale,
    )
    roles = ensure_builtin_roles(org)
    membership = Membership.objects.for_org(org).create(org=org, user=owner, role=roles["owner"])
    actor = actor or Actor.for_user(owner)
    audit(org=org, actor=actor, verb="organization.created", obj=org)
    emit_event(
        org=org,
        event_type="member.joined",
        payload={"membership": str(membership.public_id), "role": "owner"},
    )
    return org
