"""Compliance → Export all data: the whole organization as one ZIP, built by a background job.

Who may start one: Owners always, and any role with the Compliance "export" right (the
built-in Admin has it; Executive and Director only view Compliance). The right is read again
when the job runs, so a member who lost it meanwhile gets a failed job, not the data.

What a non-Owner gets: every file, with the contact columns their role may see (the same
`contacts.export.export_columns` that the contact list export applies) and the deal columns
their deal field rules leave visible; hidden fields have no column at all. Record scope does
not narrow the export: it is the organization's data, exported under the compliance right.
The compliance records themselves (ledger, suppressions, requests) are exported whole, as
the compliance pages show them to whoever holds the right.

How it runs, in constant memory and resumable:
1. Writing. Each object ("section") is read in chunks of ids (`jobs.ids_after`, keyset on the
   primary key) and its rows appended to two working files, `<name>.csv` and
   `<name>.jsonl`. Each chunk commits, with the job row locked, where it got to: the section,
   the last id, and the byte length of both files. A worker that dies is replaced by one
   that cuts the files back to the committed lengths and carries on after the last id.
2. Packing. The working files are copied, block by block, into entries of a ZIP (deflate)
   next to them, which is renamed into place once complete; a worker lost while packing
   packs again from the working files. Then the working files go.
Progress counts each row twice (written, then packed), so the bar moves through both steps.

The finished file lives under MEDIA_ROOT/org_exports/<org id>/, for `EXPORT_DAYS` days. Its
download link is signed (django.core.signing) over the job and its expiry; the view serves
it only to the member who started it or an Owner of the same organization. Expired files
are deleted daily by beat (compliance.tasks) and when the export page is next opened
(`purge_expired`).

The package, one module per step, so each reads on its own and none imports one that imports
it back (the project's import contracts check that):
- `_base`: what every step shares: the job kind and title, the phases, the right, and the two
  ways a run stops early.
- `objects`: the sections, i.e. which rows and columns each object's files hold, and what a
  non-Owner's role hides.
- `writer`: where the files live, the working files appended chunk by chunk, and the packing
  into the ZIP.
- `start`: starting an export (one per organization at a time) and the list the page shows.
- `job`: the runner crm.jobs calls, chunk by chunk, and how a run ends (finished or failed).
  Importing this package imports it, which registers the runner: compliance.apps relies on
  that so a worker can run the kind it is handed.
- `download`: the signed link, who may follow it, and the deletion of expired files.

Callers use the names below. The names here are bindings to the modules' objects: to swap a
setting or a step in a test (`CHUNK_ROWS`, `contact_section`, `_commit`), patch the module
that reads it (`objects`, `job`), not this package.
"""

from ._base import EXPORT_DAYS, JOB_KIND, PACKING, TITLE, WRITING, may_export
from .download import (
    LINK_SALT,
    LinkContents,
    download_file_name,
    download_path,
    download_token,
    expires_at,
    is_expired,
    may_download,
    purge_expired,
    read_download_token,
    record_download,
)
from .job import LOST_FILES, NO_RIGHT, fail_org_export, run_org_export
from .objects import (
    SECTION_NAMES,
    Column,
    Section,
    build_sections,
    contact_section,
    deal_section,
    model_columns,
    model_section,
)
from .start import ACTIVE_STATUSES, LOCK_NAMESPACE, OrgExportError, exports_for, start_org_export
from .writer import STORAGE_DIR, export_root, work_dir, zip_name, zip_path

__all__ = [
    "ACTIVE_STATUSES",
    "EXPORT_DAYS",
    "JOB_KIND",
    "LINK_SALT",
    "LOCK_NAMESPACE",
    "LOST_FILES",
    "NO_RIGHT",
    "PACKING",
    "SECTION_NAMES",
    "STORAGE_DIR",
    "TITLE",
    "WRITING",
    "Column",
    "LinkContents",
    "OrgExportError",
    "Section",
    "build_sections",
    "contact_section",
    "deal_section",
    "download_file_name",
    "download_path",
    "download_token",
    "expires_at",
    "export_root",
    "exports_for",
    "fail_org_export",
    "is_expired",
    "may_download",
    "may_export",
    "model_columns",
    "model_section",
    "purge_expired",
    "read_download_token",
    "record_download",
    "run_org_export",
    "start_org_export",
    "work_dir",
    "zip_name",
    "zip_path",
]
