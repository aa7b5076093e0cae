"""Every write of the contacts app: contacts, companies, tags, notes, tasks (to-dos), the
timeline, custom fields, smart views and lead-scoring rules.

Each public function runs in one transaction, records an AuditEvent with the before/after of
what changed and emits a domain event, so the record, its history and its outbox row commit or
vanish together. Views, import, bulk actions, the API and the AI all write through here.

`policy` (a crm.permissions.Policy) is the acting member's; pass None only for system work
(imports already checked, demo data, migrations of data), which then may write any field.
Bad input raises django's ValidationError keyed by catalog field key ("email",
"custom.budget"), so a form can show each message next to its field; a forbidden action
raises PermissionDenied.
"""

from ..timeline import BOOKKEEPING_TYPES
from ._base import (
    CONTACTED_TYPES,
    EMAIL_TAKEN,
    QUICK_LOG_TYPES,
    FieldNotEditable,
)
from .companies import (
    company_archive,
    company_create,
    company_for,
    company_restore,
    company_update,
)
from .contacts import (
    contact_archive,
    contact_assign_owner,
    contact_claim,
    contact_create,
    contact_release,
    contact_restore,
    contact_update,
    tag_get_or_create,
)
from .definitions import (
    customfield_create,
    customfield_deactivate,
    customfield_reactivate,
    customfield_update,
)
from .scoring_rules import scoring_rule_create, scoring_rule_delete, scoring_rule_update
from .smart_views import (
    list_preference_save,
    smartview_create,
    smartview_delete,
    smartview_rename,
    smartview_update,
)
from .timeline import activity_log, note_create, note_delete, note_update, quick_log
from .todos import task_complete, task_create, task_delete, task_reopen, task_update

__all__ = [
    "BOOKKEEPING_TYPES",
    "CONTACTED_TYPES",
    "EMAIL_TAKEN",
    "QUICK_LOG_TYPES",
    "FieldNotEditable",
    "activity_log",
    "company_archive",
    "company_create",
    "company_for",
    "company_restore",
    "company_update",
    "contact_archive",
    "contact_assign_owner",
    "contact_claim",
    "contact_create",
    "contact_release",
    "contact_restore",
    "contact_update",
    "customfield_create",
    "customfield_deactivate",
    "customfield_reactivate",
    "customfield_update",
    "list_preference_save",
    "note_create",
    "note_delete",
    "note_update",
    "quick_log",
    "scoring_rule_create",
    "scoring_rule_delete",
    "scoring_rule_update",
    "smartview_create",
    "smartview_delete",
    "smartview_rename",
    "smartview_update",
    "tag_get_or_create",
    "task_complete",
    "task_create",
    "task_delete",
    "task_reopen",
    "task_update",
]
