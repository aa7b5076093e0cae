"""Duplicate scans: the one entry the Data Health page, the background jobs, imports, the
contact form and `manage.py dedup_scan` all use.

- `scan_full(org)` compares every active contact of an organization with the contacts it
  shares a blocking key with, and replaces the pairs earlier scans stored.
- `scan_incremental(org)` does the same for the contacts changed since the last scan only,
  finding their block partners through `DedupKey` (the blocking keys of every contact, kept by
  the scans) instead of reading the organization.
- `pairs_for(org, values)` compares one contact that is not saved yet (form values, an
  import row) with the contacts in its blocks.

How a full scan stays far below n² and bounded by the organization's size, not by its pairs:
contacts are streamed from the database in chunks and prepared once (a compact `Person`);
each blocking key is hashed to 64 bits and appended to one of `BUCKETS` flat arrays (by the
hash); a block (the contacts sharing a key) is built bucket by bucket, so only one bucket's
blocks are in memory at a time, and buckets are compared in parallel by forked workers that
share the prepared contacts. A block larger than `MAX_BLOCK` is split by the given name (see
there). A pair that shares several keys is compared once, in the block of the smallest key
they share, without any global set of pairs seen.

Memory grows with the organization (about 1-1.5 KB per contact: the prepared contact and its
keys), never with the number of pairs compared: only the pairs kept are collected.

The package, one module per step of a scan; each imports only the ones listed before it, so
none imports one that imports it back (the project's import contracts check that):
- `_base`: what every step shares: block size and batch settings, the fields read, the
  organization's thresholds, the results, `ScanStopped`.
- `keys`: contacts prepared for comparing, and their blocking keys as 64-bit hashes.
- `workers`: comparing a full scan's buckets, here or in forked workers.
- `index`: the blocking-key index (`DedupKey`): rewriting it, and finding block partners.
- `pairs`: writing the pairs a scan found, and the scan times.
- `full`, `incremental`, `unsaved`: the three entries above (`scan_full`,
  `scan_incremental`, `pairs_for`).

Callers import the names below from this package. They are bindings to the modules' objects,
so assigning one here would change nothing a scan reads: a test that swaps a setting or a step
(`PARALLEL_FROM`, `block_partners`, `_compare_all`) patches the module that reads it (`full`,
`incremental`, `unsaved`...). Assigning one of these names on the package raises, so such a
patch fails instead of passing without effect.
"""

from __future__ import annotations

import sys
import types

from ._base import (
    BUCKETS,
    CONTACT_COLUMNS,
    IDENTITY_FIELDS,
    MAX_BLOCK,
    WRITE_BATCH,
    FoundPair,
    OrgRules,
    Progress,
    ScanResult,
    ScanStopped,
    band_for,
    org_rules,
)
from .full import PARALLEL_FROM, READ_CHUNK, scan_full
from .incremental import scan_incremental
from .index import KEY_BATCH, block_partners
from .keys import (
    Compact,
    key_hash,
    key_hashes,
    person_from_row,
    person_from_values,
    refine_subs,
    refined_hash,
)
from .unsaved import RECENT_UNKEYED, Match, pairs_for

__all__ = [
    "BUCKETS",
    "CONTACT_COLUMNS",
    "IDENTITY_FIELDS",
    "KEY_BATCH",
    "MAX_BLOCK",
    "PARALLEL_FROM",
    "READ_CHUNK",
    "RECENT_UNKEYED",
    "WRITE_BATCH",
    "Compact",
    "FoundPair",
    "Match",
    "OrgRules",
    "Progress",
    "ScanResult",
    "ScanStopped",
    "band_for",
    "block_partners",
    "key_hash",
    "key_hashes",
    "org_rules",
    "pairs_for",
    "person_from_row",
    "person_from_values",
    "refine_subs",
    "refined_hash",
    "scan_full",
    "scan_incremental",
]


class _Package(types.ModuleType):
    """The package's own module type: it refuses to rebind or delete a re-exported name (see
    the docstring above), naming the modules that hold it."""

    def __setattr__(self, name: str, value: object) -> None:
        _refuse_rebinding(name)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        _refuse_rebinding(name)
        super().__delattr__(name)


def _refuse_rebinding(name: str) -> None:
    if name not in __all__:
        return  # a submodule being bound on import, or a name of its own
    holders = sorted(
        module_name
        for module_name, module in list(sys.modules.items())
        if module_name.startswith(f"{__name__}.") and name in vars(module)
    )
    raise AttributeError(
        f"{__name__}.{name} only re-exports a module's object, so changing it here changes "
        f"nothing a scan reads: patch it in {', '.join(holders)}"
    )


sys.modules[__name__].__class__ = _Package
