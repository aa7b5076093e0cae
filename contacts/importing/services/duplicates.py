"""After an import: the contacts it created that look like contacts the organization already
had (beyond exact email matches, which the import updates instead of creating) become
DuplicatePair rows found by the import, listed in Data Health, and the import's summary
says how many rows that was.

Batched on the duplicate engine's blocking-key index (contacts.dedup.scan) instead of one
`pairs_for` per row: the new contacts' keys are looked up a batch at a time, and the
existing contacts changed since the last scan (not indexed yet), or all of them when the
organization was never scanned, are indexed in memory first, up to `UNINDEXED_CAP`. The
work is bounded: at most `CHECK_CAP` created contacts are checked, and the summary says so
beyond that (the nightly scan compares the rest).

Only contacts that existed before the import are partners: two rows of the same file
that look alike are the scans' business, and the summary speaks of "existing
contacts". A pair a member marked "Not a duplicate" is never flagged again."""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

from django.db import OperationalError, transaction
from django.db.models import Min, Q

from crm import rls

from ...dedup.compare import compare
from ...dedup.model import default_model
from ...dedup.models import DedupSettings, DuplicateDismissal, DuplicatePair, ordered_pair
from ...dedup.scan import (
    CONTACT_COLUMNS,
    MAX_BLOCK,
    band_for,
    block_partners,
    key_hashes,
    org_rules,
    person_from_row,
    refine_subs,
    refined_hash,
)
from ...models import Contact
from ..models import ImportJob, ImportPart

log = logging.getLogger(__name__)

CHECK_CAP = 20_000  # created contacts compared with the existing ones
BATCH = 2_000
UNINDEXED_CAP = 20_000  # existing contacts indexed in memory (not in the key index yet)
PER_ROW = 5  # pairs kept per created contact, best first
RESULT_KEY = "duplicates"


def _first_created_id(job: ImportJob) -> int | None:
    return ImportPart.objects.filter(job=job).aggregate(first=Min("min_id"))["first"]


def _existing(job: ImportJob, first_created_id: int):
    """The active contacts the organization had before the import: the ids come from one
    sequence, and the import drew its ids as it read the file, so every contact older than
    its first new one has a lower id (a contact someone added while it ran is left to the
    scans). No clocks are compared, so a skew between servers cannot blur the line."""
    return Contact.objects.for_org(job.org_id).filter(is_archived=False, id__lt=first_created_id)


class _MemoryIndex:
    """The blocking keys of existing contacts the key index does not hold yet, with the
    full scan's rule for a block too large: it is split by the names' codes."""

    def __init__(self, rows: Iterable[tuple], rules):
        self.members: dict[int, list[int]] = defaultdict(list)
        subs_of: dict[int, tuple[str, ...]] = {}
        for row in rows:
            person = person_from_row(row, rules.email)
            contact_id = row[0]
            subs_of[contact_id] = refine_subs(person)
            for key in key_hashes(person):
                self.members[key].append(contact_id)
        self.oversized = {key for key, ids in self.members.items() if len(ids) > MAX_BLOCK}
        for key in self.oversized:
            for contact_id in self.members.pop(key):
                for sub in subs_of[contact_id]:
                    self.members[refined_hash(key, sub)].append(contact_id)
        self.size = len(subs_of)

    def partners(self, keys: tuple[int, ...], subs: tuple[str, ...]) -> set[int]:
        found: set[int] = set()
        for key in keys:
            if key in self.oversized:
                for sub in subs:
                    block = self.members.get(refined_hash(key, sub), ())
                    if len(block) <= MAX_BLOCK:
                        found.update(block)
            else:
                found.update(self.members.get(key, ()))
        return found


def _memory_index(job: ImportJob, first_created_id: int, rules) -> _MemoryIndex:
    settings_row = DedupSettings.objects.for_org(job.org_id).first()
    unindexed = _existing(job, first_created_id)
    if settings_row is not None and settings_row.last_full_scan_at is not None:
        unindexed = unindexed.filter(updated_at__gt=settings_row.last_scan_at)
    rows = unindexed.order_by("-updated_at", "-id").values_list(*CONTACT_COLUMNS)[:UNINDEXED_CAP]
    return _MemoryIndex(rows.iterator(chunk_size=5000), rules)


def _load(queryset, ids, rules) -> dict:
    people = {}
    for row in queryset.filter(id__in=list(ids)).values_list(*CONTACT_COLUMNS):
        people[row[0]] = person_from_row(row, rules.email)
    return people


def _flag_batch(
    job: ImportJob, ids: list[int], first_created_id: int, rules, model, memory: _MemoryIndex
) -> dict:
    """Compare one batch of created contacts with their existing block partners and store
    what looks alike: {"rows": rows flagged, "probable": of them probable, "pairs": pairs}."""
    org_id = job.org_id
    created = _load(Contact.objects.for_org(org_id).filter(is_archived=False), ids, rules)
    keys = {contact_id: key_hashes(person) for contact_id, person in created.items()}
    subs = {contact_id: refine_subs(person) for contact_id, person in created.items()}
    partners = block_partners(job.org, keys, subs, MAX_BLOCK)
    candidates: dict[int, set[int]] = {}
    for contact_id in created:
        found = set(partners.get(contact_id, ()))
        found |= memory.partners(keys[contact_id], subs[contact_id])
        found.discard(contact_id)
        candidates[contact_id] = found
    wanted = {other for found in candidates.values() for other in found}
    # Only contacts that existed before the import (a contact of this file is no partner).
    existing = _load(_existing(job, first_created_id), wanted, rules) if wanted else {}
    dismissed = set(
        DuplicateDismissal.objects.for_org(org_id)
        .filter(Q(contact_a_id__in=ids) | Q(contact_b_id__in=ids))
        .values_list("contact_a_id", "contact_b_id")
    )
    rows = []
    flagged = probable = 0
    for contact_id, person in created.items():
        scored = []
        for other_id in candidates[contact_id]:
            other = existing.get(other_id)
            if other is None:
                continue
            pair = ordered_pair(contact_id, other_id)
            if pair in dismissed:
                continue
            comparison = compare(person, other)
            score = model.probability(comparison)
            band = band_for(score, rules)
            if band is not None:
                scored.append((score, other_id, band, model.reasons(comparison)))
        if not scored:
            continue
        scored.sort(key=lambda item: (-item[0], item[1]))
        flagged += 1
        probable += any(item[2] == DuplicatePair.Band.PROBABLE for item in scored)
        for score, other_id, band, reasons in scored[:PER_ROW]:
            low, high = ordered_pair(contact_id, other_id)
            rows.append(
                DuplicatePair(
                    org_id=org_id,
                    contact_a_id=low,
                    contact_b_id=high,
                    score=round(score, 6),
                    band=band,
                    reasons=reasons,
                    found_by=DuplicatePair.FoundBy.IMPORT,
                    import_job_id=job.pk,
                )
            )
    if rows:
        # A pair a scan (or an earlier run of this step) stored already stays as it is.
        DuplicatePair.objects.for_org(org_id).bulk_create(rows, ignore_conflicts=True)
    return {"rows": flagged, "probable": probable, "pairs": len(rows)}


def flag_import_duplicates(
    job: ImportJob, created_ids: Iterable[int], *, heartbeat: Callable[[], object] | None = None
) -> dict:
    """Flag the created contacts (`created_ids`, in any order) that look like existing
    ones; store and return the figures the summary shows (job.result["duplicates"]):
    rows flagged, of them probable, pairs stored, rows checked and rows left unchecked."""
    ids = list(itertools.islice(created_ids, CHECK_CAP + 1))
    figures = {"rows": 0, "probable": 0, "pairs": 0, "checked": 0, "unchecked": 0}
    if len(ids) > CHECK_CAP:
        ids = ids[:CHECK_CAP]
        figures["unchecked"] = max(job.created_count - CHECK_CAP, 1)
    ids.sort()
    figures["checked"] = len(ids)
    first_created_id = _first_created_id(job) if ids else None
    if first_created_id is not None:
        first_created_id = min(first_created_id, ids[0])
        model = default_model()
        with transaction.atomic(), rls.tenant(job.org_id):
            rules = org_rules(job.org, model=model)
            memory = _memory_index(job, first_created_id, rules)
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            with transaction.atomic(), rls.tenant(job.org_id):
                found = _flag_batch(job, batch, first_created_id, rules, model, memory)
            for name, value in found.items():
                figures[name] += value
            if heartbeat is not None:
                heartbeat()
    with transaction.atomic(), rls.tenant(job.org_id):
        result = {**(job.result or {}), RESULT_KEY: figures}
        ImportJob.objects.for_org(job.org_id).filter(pk=job.pk).update(result=result)
        job.result = result
    return figures


def flag_import_duplicates_safely(job: ImportJob, created_ids, *, heartbeat=None) -> None:
    """The post-import step as the run calls it: a failure here is logged and costs the
    summary its duplicate count, never the import (the nightly scan finds them anyway). A
    lost database is the run's to handle (it resumes, and this step runs again)."""
    try:
        flag_import_duplicates(job, created_ids, heartbeat=heartbeat)
    except OperationalError:
        raise
    except Exception:
        log.exception("import %s: the duplicate check failed", job.pk)
