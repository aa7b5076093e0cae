"""Writing what a scan found: its pairs (`DuplicatePair` rows found by a scan) and its times.

The full scan replaces the organization's scan-found pairs with its own, writing only what
changed (`_replace_scan_pairs`); the incremental scan inserts or refreshes the pairs of the
contacts it rescanned (`_upsert_pairs`). Both then record when the scan ran
(`_mark_scanned`), which tells the next incremental scan where to start."""

from __future__ import annotations

import json

from django.db import connection
from django.utils import timezone

from crm.bulk_load import copy_lines

from ..models import DedupSettings, DuplicatePair
from ._base import WRITE_BATCH, FoundPair


def _upsert_pairs(org, pairs: list[FoundPair]) -> None:
    """Insert or refresh pairs in batches; a pair already stored (by an import or an earlier
    scan) becomes this scan's find, with its new score and reasons."""
    now = timezone.now()
    with connection.cursor() as cursor:
        for start in range(0, len(pairs), WRITE_BATCH):
            batch = pairs[start : start + WRITE_BATCH]
            cursor.execute(
                """
                INSERT INTO contacts_duplicatepair
                       (public_id, created_at, org_id, contact_a_id, contact_b_id, score, band,
                        reasons, found_by, found_at)
                SELECT gen_random_uuid(), %(now)s, %(org)s, a, b, score, band, reasons::jsonb,
                       %(scan)s, %(now)s
                  FROM unnest(%(a)s::bigint[], %(b)s::bigint[], %(score)s::float8[],
                              %(band)s::text[], %(reasons)s::text[])
                       AS found(a, b, score, band, reasons)
                ON CONFLICT ON CONSTRAINT duplicate_pair_once DO UPDATE
                   SET score = EXCLUDED.score, band = EXCLUDED.band, reasons = EXCLUDED.reasons,
                       found_by = EXCLUDED.found_by, found_at = EXCLUDED.found_at
                """,
                {
                    "now": now,
                    "org": org.id,
                    "scan": DuplicatePair.FoundBy.SCAN,
                    "a": [p.a for p in batch],
                    "b": [p.b for p in batch],
                    "score": [p.score for p in batch],
                    "band": [p.band for p in batch],
                    "reasons": [json.dumps(p.reasons) for p in batch],
                },
            )


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _replace_scan_pairs(org, pairs: list[FoundPair]) -> None:
    """The organization's scan-found pairs become exactly `pairs`, writing only what
    changed: pairs no longer found are deleted, new ones inserted, a stored pair whose score
    or reasons moved is updated (and keeps when it was first found), an import's pair found
    again becomes the scan's. Loaded through a temporary table with COPY, as the keys."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(
            "CREATE TEMP TABLE dedup_scan_pairs (a bigint NOT NULL, b bigint NOT NULL,"
            " score float8 NOT NULL, band text NOT NULL, reasons jsonb NOT NULL) ON COMMIT DROP"
        )
        copy_lines(
            cursor,
            "dedup_scan_pairs",
            ["a", "b", "score", "band", "reasons"],
            (
                f"{p.a}\t{p.b}\t{p.score!r}\t{p.band}\t{_copy_text(json.dumps(p.reasons))}\n"
                for p in pairs
            ),
        )
        cursor.execute("ANALYZE dedup_scan_pairs")
        cursor.execute(
            "DELETE FROM contacts_duplicatepair d WHERE d.org_id = %s AND d.found_by = %s"
            " AND NOT EXISTS (SELECT 1 FROM dedup_scan_pairs t"
            "  WHERE t.a = d.contact_a_id AND t.b = d.contact_b_id)",
            [org.id, DuplicatePair.FoundBy.SCAN],
        )
        now = timezone.now()
        cursor.execute(
            """
            INSERT INTO contacts_duplicatepair AS d
                   (public_id, created_at, org_id, contact_a_id, contact_b_id, score, band,
                    reasons, found_by, found_at)
            SELECT gen_random_uuid(), %(now)s, %(org)s, a, b, score, band, reasons, %(scan)s,
                   %(now)s
              FROM dedup_scan_pairs ORDER BY a, b
            ON CONFLICT ON CONSTRAINT duplicate_pair_once DO UPDATE
               SET score = EXCLUDED.score, band = EXCLUDED.band, reasons = EXCLUDED.reasons,
                   found_by = EXCLUDED.found_by
             WHERE (d.score, d.band, d.reasons, d.found_by)
                   IS DISTINCT FROM
                   (EXCLUDED.score, EXCLUDED.band, EXCLUDED.reasons, EXCLUDED.found_by)
            """,
            {"now": now, "org": org.id, "scan": DuplicatePair.FoundBy.SCAN},
        )
        cursor.execute("DROP TABLE dedup_scan_pairs")


def _mark_scanned(org, started_at, *, full: bool) -> None:
    fields = {"last_scan_at": started_at}
    if full:
        fields["last_full_scan_at"] = started_at
    DedupSettings.objects.for_org(org).update_or_create(org=org, defaults=fields)
