"""What every step of Export all data shares: the job's kind and title, how long a
finished file is kept, the phases a run goes through, who may export, and the two ways a run
stops early. They live apart from the steps so that each step can use them without importing
another step. A leading underscore here means private to the package, not to the module.
"""

from __future__ import annotations

from crm.permissions import Policy

JOB_KIND = "compliance.org_export"
TITLE = "Export all data"
EXPORT_DAYS = 7
WRITING, PACKING = "writing", "packing"


def may_export(policy: Policy) -> bool:
    """Owners (who hold every right) and roles with the Compliance export right."""
    return policy.can("compliance", "export")


class _Stopped(Exception):
    """The job stopped being this worker's (another worker took it over)."""


class _LostFiles(Exception):
    """A working file is shorter than its committed length, or missing: the disk lost it."""
