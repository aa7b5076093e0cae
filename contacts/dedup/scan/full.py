"""The full scan: every active contact of an organization, compared within its blocks.

Reads the contacts in chunks into flat bucket arrays, splits the blocks over `max_block` by
the given name, has the buckets compared (`workers`), then rewrites the key index and the
scan-found pairs in one transaction. The background job runs it on Sundays, and the
incremental scan falls back to it for an organization never scanned in full."""

from __future__ import annotations

import time
from array import array
from collections import Counter

from django.db import transaction
from django.utils import timezone

from crm import rls

from ..model import default_model
from ..models import DuplicateDismissal
from ._base import (
    BUCKETS,
    CONTACT_COLUMNS,
    MAX_BLOCK,
    FoundPair,
    Progress,
    ScanResult,
    _report,
    band_for,
    org_rules,
)
from .index import _replace_keys
from .keys import Compact, _active_contacts, key_hashes, person_from_row, refined_hash
from .pairs import _mark_scanned, _replace_scan_pairs
from .workers import _SHARED, _compare_all, _default_workers

READ_CHUNK = 5000  # rows a server-side cursor fetches at a time
# Below this many contacts a scan compares in this process: forking costs more than it saves.
PARALLEL_FROM = 20_000


def scan_full(
    org,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    max_block: int = MAX_BLOCK,
) -> ScanResult:
    """Scan every active contact of `org`; replace the pairs scans found before (pairs an
    import found stay unless found again, then the scan's row replaces them), rebuild the
    blocking-key index and set the scan times. `progress(stage, done, total)` is told how far
    it got ("read", "compare", "write"); returning False stops the scan, nothing written."""
    result = ScanResult(org_id=org.id, full=True)
    started_at = timezone.now()
    clock = time.perf_counter()
    model = default_model()
    with transaction.atomic(), rls.tenant(org.id):
        rules = org_rules(org, model=model)
        dismissed = frozenset(
            DuplicateDismissal.objects.for_org(org).values_list("contact_a_id", "contact_b_id")
        )
        total = _active_contacts(org).count()
        people: list[Compact] = []
        person_keys: list[tuple[int, ...]] = []
        buckets = [array("q") for _ in range(BUCKETS)]
        rows = _active_contacts(org).values_list(*CONTACT_COLUMNS).iterator(chunk_size=READ_CHUNK)
        for index, row in enumerate(rows):
            person = person_from_row(row, rules.email)
            keys = key_hashes(person)
            people.append(Compact(person))
            person_keys.append(keys)
            for key in keys:
                bucket = buckets[key % BUCKETS]
                bucket.append(key)
                bucket.append(index)
            if index % 50_000 == 49_999:
                _report(progress, "read", index + 1, total)
    result.contacts = len(people)
    result.seconds["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    oversized = _oversized(buckets, max_block)
    base_oversized = oversized
    result.oversized_blocks = len(oversized)
    if oversized:
        # Split the blocks too large to compare by the given name (see MAX_BLOCK).
        refined: dict[int, set[int]] = {}
        for index, keys in enumerate(person_keys):
            large = [key for key in keys if key in oversized]
            if not large:
                continue
            subs = people[index].subs
            extra = {refined_hash(key, sub) for key in large for sub in subs}
            refined[index] = extra
            for key in extra:
                bucket = buckets[key % BUCKETS]
                bucket.append(key)
                bucket.append(index)
        oversized = _oversized(buckets, max_block)
        for index, extra in refined.items():
            person_keys[index] = tuple(sorted((set(person_keys[index]) | extra) - oversized))
        del refined
    result.keys = sum(len(flat) // 2 for flat in buckets)  # refined ones included
    result.seconds["block"] = time.perf_counter() - clock
    clock = time.perf_counter()
    _SHARED.update(
        people=people,
        person_keys=person_keys,
        buckets=buckets,
        oversized=oversized,
        dismissed=dismissed,
        model=model,
        rules=rules,
    )
    try:
        chosen = workers or (_default_workers() if result.contacts >= PARALLEL_FROM else 1)
        result.blocks, result.compared, kept = _compare_all(chosen, progress)
    except BaseException:
        _SHARED.clear()
        raise
    result.seconds["compare"] = time.perf_counter() - clock

    clock = time.perf_counter()
    ids = [person.id for person in people]
    del people
    result.pairs = [
        FoundPair(a, b, score, band_for(score, rules) or "", reasons)
        for a, b, score, reasons in kept
    ]
    del person_keys
    _SHARED.clear()
    with transaction.atomic(), rls.tenant(org.id):
        # A refined block still too large is never looked up: its keys are not indexed.
        _replace_keys(org, ids, buckets, skip=oversized - base_oversized)
        _replace_scan_pairs(org, result.pairs)
        _mark_scanned(org, started_at, full=True)
    result.seconds["write"] = time.perf_counter() - clock
    _report(progress, "write", 1, 1)
    return result


def _oversized(buckets: list[array], max_block: int) -> frozenset[int]:
    """The keys shared by more than `max_block` contacts, counted bucket by bucket (one
    bucket's counts in memory at a time)."""
    found: set[int] = set()
    for flat in buckets:
        found.update(key for key, size in Counter(flat[0::2]).items() if size > max_block)
    return frozenset(found)
