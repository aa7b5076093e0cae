"""Settings → Organization: choices an admin makes for the whole organization."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from ai import llm

from ..models import Organization
from .audit import Actor, audit

NO_PROVIDER = (
    "No AI provider is configured on this deployment, so there is nowhere to send samples."
)


@transaction.atomic
def organization_set_ai_send_samples(
    *, org: Organization, actor: Actor, policy, enabled: bool
) -> Organization:
    """Turn "Send samples to the AI provider" on or off; audited when it changes.

    Turning it off always works, so a setting left on when the provider was removed can
    still be cleared."""
    policy.require("settings", "edit")
    if enabled and not llm.configured():
        raise ValidationError({"ai_send_samples": NO_PROVIDER})
    locked = Organization.objects.select_for_update().get(pk=org.pk)
    before = locked.ai_send_samples
    if before != enabled:
        locked.ai_send_samples = enabled
        locked.save(update_fields=["ai_send_samples"])
        audit(
            org=locked,
            actor=actor,
            verb="organization.settings_changed",
            obj=locked,
            changes={"ai_send_samples": [before, enabled]},
        )
    org.ai_send_samples = enabled
    return locked


@transaction.atomic
def organization_set_modules(
    *, org: Organization, actor: Actor, policy, enabled: set[str] | list[str]
) -> Organization:
    """Turn the optional modules (crm.optional_modules) on or off; audited when the set
    changes. Turning a module off hides its pages and keeps its records: turning it on again
    brings them back."""
    from ..optional_modules import OPTIONAL_MODULE_KEYS

    policy.require("settings", "edit")
    unknown = sorted(set(enabled) - set(OPTIONAL_MODULE_KEYS))
    if unknown:
        raise ValidationError({"modules": f"There is no module “{unknown[0]}”."})
    wanted = [key for key in OPTIONAL_MODULE_KEYS if key in set(enabled)]
    locked = Organization.objects.select_for_update().get(pk=org.pk)
    before = list(locked.enabled_modules or [])
    if sorted(before) != sorted(wanted):
        locked.enabled_modules = wanted
        locked.save(update_fields=["enabled_modules"])
        audit(
            org=locked,
            actor=actor,
            verb="organization.modules_changed",
            obj=locked,
            changes={"enabled_modules": [before, wanted]},
        )
    org.enabled_modules = wanted
    return locked
