"""The incremental scan: only the contacts changed since the last scan, chunk by chunk.

Each chunk's contacts get their keys replaced in the index, their block partners looked up
there (`index.block_partners`), and their scan-found pairs replaced, each chunk in its own
transaction. Its cost grows with the contacts changed, not with the organization: the
background job runs it every night but Sunday's, when the full scan runs instead."""

from __future__ import annotations

import time

from django.db import transaction
from django.utils import timezone

from crm import rls

from ...models import Contact
from ..compare import compare
from ..model import default_model
from ..models import DedupKey, DedupSettings, DuplicateDismissal, DuplicatePair
from ._base import MAX_BLOCK, FoundPair, Progress, ScanResult, _report, band_for, org_rules
from .full import scan_full
from .index import _insert_keys, block_partners
from .keys import _load_people, key_hashes, refine_subs
from .pairs import _mark_scanned, _upsert_pairs


def scan_incremental(
    org,
    *,
    since=None,
    progress: Progress | None = None,
    max_block: int = MAX_BLOCK,
    chunk: int = 2000,
) -> ScanResult:
    """Compare the contacts changed since `since` (default: the last scan) with their
    blocks, found through the blocking-key index; refresh their keys and their scan-found
    pairs. An organization never scanned gets a full scan."""
    with transaction.atomic(), rls.tenant(org.id):
        found = DedupSettings.objects.for_org(org).first()
    since = since or (found.last_scan_at if found else None)
    if since is None or (found is None or found.last_full_scan_at is None):
        return scan_full(org, progress=progress, max_block=max_block)
    result = ScanResult(org_id=org.id, full=False)
    started_at = timezone.now()
    clock = time.perf_counter()
    model = default_model()
    with transaction.atomic(), rls.tenant(org.id):
        rules = org_rules(org, model=model)
        changed_ids = list(
            Contact.objects.for_org(org)
            .filter(updated_at__gt=since)
            .order_by("id")
            .values_list("id", flat=True)
        )
        dismissed = frozenset(
            DuplicateDismissal.objects.for_org(org).values_list("contact_a_id", "contact_b_id")
        )
    for start in range(0, len(changed_ids), chunk):
        with transaction.atomic(), rls.tenant(org.id):
            _rescan_chunk(
                org, changed_ids[start : start + chunk], rules, model, dismissed, max_block, result
            )
        _report(progress, "compare", min(start + chunk, len(changed_ids)), len(changed_ids))
    with transaction.atomic(), rls.tenant(org.id):
        _mark_scanned(org, started_at, full=False)
    result.seconds["total"] = time.perf_counter() - clock
    return result


def _rescan_chunk(org, ids, rules, model, dismissed, max_block, result) -> None:
    changed = _load_people(org, ids, rules.email)  # archived ones are left out
    result.contacts += len(ids)
    keys = {contact_id: key_hashes(person) for contact_id, person in changed.items()}
    subs = {contact_id: refine_subs(person) for contact_id, person in changed.items()}
    # Their keys as they are now: a contact archived or merged since has none.
    DedupKey.objects.for_org(org).filter(contact_id__in=ids).delete()
    _insert_keys(org, ((key, contact_id) for contact_id, hashes in keys.items() for key in hashes))
    result.keys += sum(len(hashes) for hashes in keys.values())
    partners = block_partners(org, keys, subs, max_block, store=True)
    candidates: set[tuple[int, int]] = set()
    for contact_id, others in partners.items():
        for other in others:
            candidates.add((min(contact_id, other), max(contact_id, other)))
    result.blocks += len(partners)
    needed = {x for pair in candidates for x in pair} - changed.keys()
    people = {**changed, **_load_people(org, needed, rules.email)}
    pairs: list[FoundPair] = []
    for a, b in candidates:
        if a not in people or b not in people:
            continue  # a stale key of a contact archived or deleted since the last scan
        result.compared += 1
        comparison = compare(people[a], people[b])
        score = model.probability(comparison)
        band = band_for(score, rules)
        if band is None or (a, b) in dismissed:
            continue
        pairs.append(FoundPair(a, b, round(score, 6), band, model.reasons(comparison)))
    scan_rows = DuplicatePair.objects.for_org(org).filter(found_by=DuplicatePair.FoundBy.SCAN)
    scan_rows.filter(contact_a_id__in=ids).delete()
    scan_rows.filter(contact_b_id__in=ids).delete()
    _upsert_pairs(org, pairs)
    result.pairs.extend(pairs)
