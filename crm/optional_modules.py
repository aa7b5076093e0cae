"""Modules an organization turns on or off as a whole (Settings → Organization → Modules).

They are off until an admin turns them on. This is not a permission: a role still decides who
may use a module that is on; a module that is off is off for everyone, and its pages say so."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OptionalModule:
    key: str
    label: str
    description: str


OPTIONAL_MODULES = [
    OptionalModule(
        "orders",
        "Orders registry",
        "A log of what each contact bought: orders with value, currency and status, entered by "
        "hand or received from a shop or payment tool. It records purchases; it never charges "
        "or refunds anyone.",
    ),
    OptionalModule(
        "custom_objects",
        "Custom objects",
        "Your own kinds of records (courses, properties, licenses…) with their own fields, "
        "linked to contacts and deals.",
    ),
]
OPTIONAL_MODULE_KEYS = [module.key for module in OPTIONAL_MODULES]
OPTIONAL_MODULE_LABELS = {module.key: module.label for module in OPTIONAL_MODULES}


def is_enabled(org, key: str) -> bool:
    if key not in OPTIONAL_MODULE_KEYS:
        raise ValueError(f"Unknown optional module {key!r}.")
    return org is not None and key in (org.enabled_modules or ())
