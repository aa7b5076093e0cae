"""Settings → Privacy: the organization's privacy mode, the double opt-in window, the consent
text people agree to, and the preference center's brand."""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.services import Actor, audit, diff, emit_event, snapshot

from ..models import PrivacySettings
from ..tokens import MAX_CONFIRMATION_HOURS

FIELDS = (
    "mode",
    "confirmation_hours",
    "consent_text",
    "consent_text_version",
    "brand_name",
    "brand_color",
)
BRAND_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_CONSENT_TEXT = 4000


def clean_privacy_settings(data: Mapping) -> dict:
    """Checked values for the fields present in `data`; ValidationError per field."""
    errors: dict[str, list[str]] = {}
    values: dict = {}
    if "mode" in data:
        if data["mode"] not in PrivacySettings.Mode.values:
            errors["mode"] = ["Choose a privacy mode."]
        else:
            values["mode"] = data["mode"]
    if "confirmation_hours" in data:
        try:
            hours = int(data["confirmation_hours"])
        except (TypeError, ValueError):
            hours = 0
        if not 1 <= hours <= MAX_CONFIRMATION_HOURS:
            errors["confirmation_hours"] = [
                f"Enter a number of hours from 1 to {MAX_CONFIRMATION_HOURS} (30 days)."
            ]
        else:
            values["confirmation_hours"] = hours
    if "consent_text" in data:
        text = str(data["consent_text"] or "").strip()
        if len(text) > MAX_CONSENT_TEXT:
            errors["consent_text"] = [f"Use at most {MAX_CONSENT_TEXT} characters."]
        else:
            values["consent_text"] = text
    for name, limit in (("consent_text_version", 40), ("brand_name", 120)):
        if name in data:
            text = " ".join(str(data[name] or "").split())
            if len(text) > limit:
                errors[name] = [f"Use at most {limit} characters."]
            else:
                values[name] = text
    if "brand_color" in data:
        color = str(data["brand_color"] or "").strip()
        if color and not BRAND_COLOR.fullmatch(color):
            errors["brand_color"] = ["Enter a colour as #rrggbb, for example #2563eb."]
        else:
            values["brand_color"] = color.lower() or "#2563eb"
    if values.get("consent_text") == "" and values.get("mode", "off") != "off":
        errors.setdefault("consent_text", []).append(
            "Write the text people agree to: double opt-in emails show it."
        )
    if errors:
        raise ValidationError(errors)
    return values


@transaction.atomic
def update_privacy_settings(*, org, actor: Actor, data: Mapping) -> PrivacySettings:
    """Save the organization's privacy settings (the fields in `data`), audited as
    "privacy.settings_changed". The caller checks that the member may edit compliance."""
    values = clean_privacy_settings(data)
    row = PrivacySettings.objects.for_org(org).select_for_update().first()
    if row is None:
        row = PrivacySettings(org=org)
    before = snapshot(row, FIELDS) if row.pk else {}
    for name, value in values.items():
        setattr(row, name, value)
    changes = diff(before, snapshot(row, FIELDS))
    if row.pk and not changes:
        return row
    row.save()
    audit(org=org, actor=actor, verb="privacy.settings_changed", obj=row, changes=changes)
    emit_event(
        org=org,
        event_type="privacy.settings_changed",
        payload={"fields": sorted(changes), "mode": row.mode},
    )
    return row
