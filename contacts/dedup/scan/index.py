"""The blocking-key index (`DedupKey`): writing it and finding block partners in it.

The full scan rewrites an organization's index (`_replace_keys`, only the difference); the
incremental scan replaces the keys of the contacts it rescans (`_insert_keys`). The
incremental scan, a contact not saved yet (`pairs_for`) and an import's duplicate check
then find a contact's block partners here (`block_partners`) instead of reading the whole
organization, splitting a block too large by the same codes the full scan uses."""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable

from django.db import connection

from crm.bulk_load import copy_lines

from .keys import refined_hash

KEY_BATCH = 50_000


def _insert_keys(org, rows: Iterable[tuple[int, int]]) -> None:
    """Insert (key, contact id) rows in batches. COPY would be faster, but PostgreSQL does
    not allow COPY FROM into a table under row-level security; unnest() arrays come close."""
    keys: list[int] = []
    contacts: list[int] = []

    def flush() -> None:
        if keys:
            cursor.execute(
                "INSERT INTO contacts_dedupkey (org_id, key, contact_id) "
                "SELECT %s, k, c FROM unnest(%s::bigint[], %s::bigint[]) AS t(k, c) "
                "ON CONFLICT DO NOTHING",
                [org.id, keys, contacts],
            )
            keys.clear()
            contacts.clear()

    with connection.cursor() as cursor:
        for key, contact_id in rows:
            keys.append(key)
            contacts.append(contact_id)
            if len(keys) >= KEY_BATCH:
                flush()
        flush()


def _replace_keys(org, ids: list[int], buckets: list[array], *, skip=frozenset()) -> None:
    """Bring the organization's blocking-key index up to date with this scan: every key of
    every contact, the refined keys of large blocks included, so the incremental scan and
    the contact form find the same blocks. The scan's keys are loaded with COPY into a
    temporary table (PostgreSQL refuses COPY into a table under row-level security, and a
    temporary table is the transaction's own); then only the difference is written: rows
    that no longer hold are deleted and new ones inserted in key order. A weekly scan of an
    organization that changed little writes little; the first one fills the index."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(
            "CREATE TEMP TABLE dedup_scan_keys (key bigint NOT NULL, contact_id bigint NOT NULL)"
            " ON COMMIT DROP"
        )

        def lines() -> Iterable[str]:
            for flat in buckets:
                for position in range(0, len(flat), 2):
                    if flat[position] not in skip:
                        yield f"{flat[position]}\t{ids[flat[position + 1]]}\n"

        copy_lines(cursor, "dedup_scan_keys", ["key", "contact_id"], lines())
        cursor.execute("ANALYZE dedup_scan_keys")
        cursor.execute(
            "DELETE FROM contacts_dedupkey d WHERE d.org_id = %s AND NOT EXISTS ("
            " SELECT 1 FROM dedup_scan_keys t WHERE t.key = d.key AND t.contact_id = d.contact_id)",
            [org.id],
        )
        cursor.execute(
            "INSERT INTO contacts_dedupkey (org_id, key, contact_id)"
            " SELECT %s, t.key, t.contact_id FROM dedup_scan_keys t WHERE NOT EXISTS ("
            "  SELECT 1 FROM contacts_dedupkey d"
            "   WHERE d.org_id = %s AND d.key = t.key AND d.contact_id = t.contact_id)"
            " ORDER BY t.key, t.contact_id ON CONFLICT DO NOTHING",
            [org.id, org.id],
        )
        cursor.execute("DROP TABLE dedup_scan_keys")


def _counts(cursor, org, hashes) -> dict[int, int]:
    """How many contacts are indexed under each key (an index-only count per key)."""
    cursor.execute(
        "SELECT key, count(*) FROM contacts_dedupkey WHERE org_id = %s AND key = ANY(%s) "
        "GROUP BY key",
        [org.id, sorted(hashes)],
    )
    return dict(cursor.fetchall())


def block_partners(
    org, keys: dict, subs: dict, max_block: int, *, store: bool = False
) -> dict[int | None, list[int]]:
    """The contacts sharing a usable block with each contact: `keys` maps a contact (its id,
    or None for one not saved) to its key hashes, `subs` to its refining codes; a block over
    `max_block` is split by the refining codes as the full scan splits it. Returns
    {contact: [partner ids]}. `store`: the refined keys are added to the index too."""
    every = {key for hashes in keys.values() for key in hashes}
    if not every:
        return {}
    partners: dict[int, list[int]] = defaultdict(list)
    with connection.cursor() as cursor:
        counts = _counts(cursor, org, every)
        # A contact rescanned is indexed already: its own row does not make a block large.
        usable: dict = {}
        refined_rows: list[tuple[int, int]] = []
        for contact, hashes in keys.items():
            own = 1 if contact is not None and store else 0
            mine: list[int] = []
            large: list[int] = []
            for key in hashes:
                (large if counts.get(key, 0) - own > max_block else mine).append(key)
            for key in large:
                for sub in subs.get(contact, ()):
                    refined = refined_hash(key, sub)
                    mine.append(refined)
                    if store:
                        refined_rows.append((refined, contact))
            usable[contact] = mine
        if refined_rows:
            _insert_keys(org, refined_rows)
        wanted = {key for hashes in usable.values() for key in hashes}
        counts = _counts(cursor, org, wanted) if wanted else {}
        small = [key for key in wanted if 0 < counts.get(key, 0) <= max_block + 1]
        if not small:
            return {}
        cursor.execute(
            "SELECT key, contact_id FROM contacts_dedupkey WHERE org_id = %s AND key = ANY(%s)",
            [org.id, sorted(small)],
        )
        members: dict[int, list[int]] = defaultdict(list)
        for key, contact_id in cursor.fetchall():
            members[key].append(contact_id)
    for contact, hashes in usable.items():
        for key in hashes:
            partners[contact].extend(other for other in members.get(key, ()) if other != contact)
    return partners
