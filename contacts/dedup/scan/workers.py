"""Comparing a full scan's blocks, bucket by bucket, in this process or in forked workers.

Kept apart from the full scan's driver because it is what a forked worker runs: `_SHARED`
holds the prepared contacts, their keys and the buckets, filled by the driver just before
the pool forks, so the workers read them copy-on-write instead of receiving them pickled.
A worker compares a pair only in the block of the smallest usable key the two share, so no
set of pairs seen is needed across buckets or processes."""

from __future__ import annotations

import multiprocessing
import os
from collections import defaultdict
from itertools import combinations

from ..compare import compare
from ._base import BUCKETS, Progress, _report

# What the workers of one full scan share, set before they are forked (copy-on-write).
_SHARED: dict = {}


def _first_usable_shared(keys_a: tuple, keys_b: tuple, oversized: frozenset) -> int | None:
    for key in keys_a:  # ascending: the first shared one is the smallest
        if key in keys_b and key not in oversized:
            return key
    return None


def _compare_bucket(bucket: int) -> tuple[int, int, int, list[tuple]]:
    """Compare the blocks of one bucket: (bucket, blocks, pairs compared, kept pairs)."""
    shared = _SHARED
    people, person_keys = shared["people"], shared["person_keys"]
    oversized, dismissed = shared["oversized"], shared["dismissed"]
    model, rules = shared["model"], shared["rules"]
    flat = shared["buckets"][bucket]
    blocks: dict[int, list[int]] = defaultdict(list)
    for position in range(0, len(flat), 2):
        blocks[flat[position]].append(flat[position + 1])
    compared = 0
    block_count = 0
    kept: list[tuple] = []
    possible = rules.possible
    for key, members in blocks.items():
        if len(members) < 2 or key in oversized:
            continue
        block_count += 1
        for i, j in combinations(members, 2):
            keys_i, keys_j = person_keys[i], person_keys[j]
            if len(keys_j) < len(keys_i):
                keys_i, keys_j = keys_j, keys_i
            if _first_usable_shared(keys_i, keys_j, oversized) != key:
                continue  # compared in the block of a smaller key they share
            a, b = people[i], people[j]
            if a.id > b.id:
                a, b = b, a
            compared += 1
            comparison = compare(a, b)
            score = model.probability(comparison)
            if score < possible or (a.id, b.id) in dismissed:
                continue
            kept.append((a.id, b.id, round(score, 6), model.reasons(comparison)))
    return bucket, block_count, compared, kept


def _compare_all(workers: int, progress: Progress | None) -> tuple[int, int, list[tuple]]:
    buckets = list(range(BUCKETS))
    blocks = compared = 0
    kept: list[tuple] = []

    def collect(result) -> None:
        nonlocal blocks, compared
        _, bucket_blocks, bucket_compared, bucket_kept = result
        blocks += bucket_blocks
        compared += bucket_compared
        kept.extend(bucket_kept)

    done = 0
    if workers > 1:
        try:
            context = multiprocessing.get_context("fork")
            pool = context.Pool(workers)
        except (AssertionError, ValueError, OSError):
            # A daemonic process (a Celery prefork child) may not fork workers of its own.
            workers = 1
    if workers > 1:
        try:
            for result in pool.imap_unordered(_compare_bucket, buckets):
                collect(result)
                done += 1
                _report(progress, "compare", done, BUCKETS)
        finally:
            pool.terminate()
            pool.join()
    else:
        for bucket in buckets:
            collect(_compare_bucket(bucket))
            done += 1
            _report(progress, "compare", done, BUCKETS)
    return blocks, compared, kept


def _default_workers() -> int:
    return max(1, min(int(os.environ.get("DEDUP_SCAN_WORKERS", "0")) or os.cpu_count() or 1, 8))
