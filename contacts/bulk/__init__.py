"""Bulk actions on many contacts at once: claim, release, reassign, change owner, add or
remove tags, add to / remove from a static list, change stage, archive, restore.

A selection is either the public ids the member ticked or "all matching" the list state
(search, filters, archived), re-evaluated here on the server: a client's count is never
trusted. Every action checks the module right, the field's editability and the record
scope; rows outside the member's scope are left alone and counted as skipped.

Writes are set-based: one UPDATE per chunk of ~1000 rows, each chunk in its own transaction
with one AuditEvent, one outbox event and (for owner, stage and archive changes) one
timeline Activity per changed contact, all bulk-inserted. Small selections run in the
request; larger ones become a BackgroundJob that the job runner (crm.jobs) runs chunk by
chunk, storing its cursor (the last contact id done) in the same transaction as the chunk, so
a job resumed after a worker died continues where it stopped and never applies a chunk twice.

The package: `actions` (the actions, the selection, preparing and previewing), `writes` (how a
chunk is written) and `run` (inline or as a background job).
"""

from .actions import (
    ACTIONS,
    BIG_LIST_REMOVAL,
    CHUNK_SIZE,
    INLINE_LIMIT,
    JOB_KIND,
    BulkAction,
    BulkError,
    Prepared,
    Preview,
    Selection,
    assignable_members,
    available_actions,
    bulk_preview,
    clean_ids,
    confirm_texts,
    get_action,
    needs_confirmation,
    prepare,
    selection_queryset,
)
from .run import Started, bulk_apply_inline, bulk_start, run_bulk_job
from .writes import Outcome, summary_text

__all__ = [
    "ACTIONS",
    "BIG_LIST_REMOVAL",
    "CHUNK_SIZE",
    "INLINE_LIMIT",
    "JOB_KIND",
    "BulkAction",
    "BulkError",
    "Outcome",
    "Prepared",
    "Preview",
    "Selection",
    "Started",
    "assignable_members",
    "available_actions",
    "bulk_apply_inline",
    "bulk_preview",
    "bulk_start",
    "clean_ids",
    "confirm_texts",
    "get_action",
    "needs_confirmation",
    "prepare",
    "run_bulk_job",
    "selection_queryset",
    "summary_text",
]
