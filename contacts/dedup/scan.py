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
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import combinations

import jellyfish
from django.db import connection, transaction
from django.utils import timezone

from crm import rls
from crm.bulk_load import copy_lines

from ..models import Contact
from .blocking import blocking_keys
from .compare import compare
from .model import Model, default_model
from .models import DedupKey, DedupSettings, DuplicateDismissal, DuplicatePair
from .records import EmailRules, Person, prepare

logger = logging.getLogger(__name__)

READ_CHUNK = 5000  # rows a server-side cursor fetches at a time
# The largest block compared all with all. A larger one (a common name, a big company's
# domain) is split by the given name: its key is refined into one key per code of the
# contact's names ("smith, j" into "smith, j, JN" and "smith, j, jon"...), and a refined
# block still too large is left to the contacts' other keys. Without this, a million
# contacts put a few hundred "John Smith"-like contacts in one block and the pairs grow
# with the square of the organization's size.
MAX_BLOCK = 50
BUCKETS = 64  # key partitions: one bucket's blocks are in memory at a time
WRITE_BATCH = 5000
# Below this many contacts a scan compares in this process: forking costs more than it saves.
PARALLEL_FROM = 20_000
# Contacts changed since the last scan that `pairs_for` also compares with (their keys are
# not indexed yet), most recent first.
RECENT_UNKEYED = 2000

Progress = Callable[[str, int, int], object]

# The contact fields the engine compares (a change to one is worth a new comparison: the
# incremental scan, the contact form's warning), and what a scan reads of each contact.
IDENTITY_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "other_emails",
    "phone",
    "mobile",
    "street",
    "postal_code",
    "city",
    "company",
)
CONTACT_COLUMNS = ("id", *IDENTITY_FIELDS[:-1], "company__name")


class ScanStopped(Exception):
    """The progress callback said stop (the job was cancelled or taken over)."""


# Rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgRules:
    probable: float
    possible: float
    email: EmailRules


def org_rules(org, *, model: Model | None = None) -> OrgRules:
    """The organization's thresholds and email rules; the model's thresholds where it set
    none. "possible" never lies above "probable"."""
    model = model or default_model()
    found = DedupSettings.objects.for_org(org).first()
    if found is None:
        return OrgRules(model.probable, model.possible, EmailRules())
    probable = found.probable_threshold if found.probable_threshold is not None else model.probable
    possible = found.possible_threshold if found.possible_threshold is not None else model.possible
    return OrgRules(
        probable=probable,
        possible=min(possible, probable),
        email=EmailRules(plus_addressing=found.plus_addressing, gmail_dots=found.gmail_dots),
    )


def band_for(score: float, rules: OrgRules) -> str | None:
    if score >= rules.probable:
        return DuplicatePair.Band.PROBABLE
    if score >= rules.possible:
        return DuplicatePair.Band.POSSIBLE
    return None


# Contacts as the engine sees them ------------------------------------------------------------


class Compact:
    """A prepared contact with only what `compare()` reads, in slots: about half the memory
    of a `Person`, which matters with a million of them held during a full scan."""

    __slots__ = (
        "city",
        "company",
        "domains",
        "email_locals",
        "emails",
        "first",
        "house_number",
        "id",
        "last",
        "phone_tails",
        "phones",
        "postal",
        "street",
        "subs",
    )

    def __init__(self, person: Person):
        for name in self.__slots__:
            if name != "subs":
                setattr(self, name, getattr(person, name))
        self.subs = refine_subs(person)


def key_hash(key: str) -> int:
    """A blocking key as a signed 64-bit integer, the same in every process and release
    (Python's own `hash()` of a string changes per process): what DedupKey stores."""
    return int.from_bytes(
        hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big", signed=True
    )


def refine_subs(person: Person) -> tuple[str, ...]:
    """What splits a block too large to compare: codes of the contact's given name (and of
    its family name, for a record with the two swapped): Metaphone of the formal name
    (Bob → Robert) and the first three letters."""
    subs = set()
    first_word = person.first.split(" ")[0] if person.first else ""
    last_word = person.last.split(" ")[-1] if person.last else ""
    for name in (*person.extra.get("formal_first", ()), first_word, last_word):
        if name:
            subs.add(name[:3])
            code = jellyfish.metaphone(name)
            if code:
                subs.add("~" + code)
    return tuple(sorted(subs))


def refined_hash(key: int, sub: str) -> int:
    return key_hash(f"{key}|{sub}")


def person_from_values(id, values: dict, rules: EmailRules) -> Person:
    """A `Person` from contact field values (a form's cleaned data, an import row, a row
    read from the database). `company` may be a name or a Company."""
    company = values.get("company") or values.get("company__name") or ""
    if not isinstance(company, str):
        company = getattr(company, "name", "") or ""
    emails = [values.get("email") or ""]
    others = values.get("other_emails") or []
    if isinstance(others, str):
        others = [others]
    emails.extend(e for e in others if isinstance(e, str))
    return prepare(
        id,
        first_name=values.get("first_name") or "",
        last_name=values.get("last_name") or "",
        emails=[e for e in emails if e],
        phones=[values.get("phone") or "", values.get("mobile") or ""],
        street=values.get("street") or "",
        postal_code=values.get("postal_code") or "",
        city=values.get("city") or "",
        company=company,
        rules=rules,
    )


def person_from_row(row: tuple, rules: EmailRules) -> Person:
    return person_from_values(row[0], dict(zip(CONTACT_COLUMNS, row, strict=True)), rules)


def key_hashes(person: Person) -> tuple[int, ...]:
    return tuple(sorted({key_hash(key) for key in blocking_keys(person)}))


def _active_contacts(org):
    return Contact.objects.for_org(org).filter(is_archived=False)


# Results ---------------------------------------------------------------------------------


@dataclass
class FoundPair:
    a: int  # the lower contact id
    b: int
    score: float
    band: str
    reasons: list[str]


@dataclass
class ScanResult:
    org_id: int
    full: bool
    contacts: int = 0  # contacts scanned (a full scan: all active; incremental: changed)
    compared: int = 0  # candidate pairs compared
    keys: int = 0  # blocking keys written
    blocks: int = 0  # blocks of 2 or more contacts
    oversized_blocks: int = 0  # blocks too large to compare (left to the other keys)
    pairs: list[FoundPair] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def candidates_per_record(self) -> float:
        return round(2 * self.compared / self.contacts, 1) if self.contacts else 0.0

    def summary(self) -> str:
        kind = "Full" if self.full else "Incremental"
        probable = sum(1 for p in self.pairs if p.band == DuplicatePair.Band.PROBABLE)
        return (
            f"{kind} duplicate scan: {self.contacts:,} contacts, {self.compared:,} pairs "
            f"compared, {probable:,} probable and {len(self.pairs) - probable:,} possible "
            "duplicates."
        )


# Comparing blocks (shared with forked workers) ---------------------------------------------

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


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None and progress(stage, done, total) is False:
        raise ScanStopped(stage)


def _default_workers() -> int:
    return max(1, min(int(os.environ.get("DEDUP_SCAN_WORKERS", "0")) or os.cpu_count() or 1, 8))


# Full scan -------------------------------------------------------------------------------


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
        FoundPair(a, b, score, band_for(score, rules), reasons) for a, b, score, reasons in kept
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


def _oversized(buckets: list[array], max_block: int) -> frozenset[int]:
    """The keys shared by more than `max_block` contacts, counted bucket by bucket (one
    bucket's counts in memory at a time)."""
    found: set[int] = set()
    for flat in buckets:
        found.update(key for key, size in Counter(flat[0::2]).items() if size > max_block)
    return frozenset(found)


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


# Incremental scan --------------------------------------------------------------------------


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
) -> dict[int, list[int]]:
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
            mine = []
            large = []
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


def _load_people(org, ids: Iterable[int], rules: EmailRules) -> dict[int, Person]:
    people: dict[int, Person] = {}
    ids = list(ids)
    for start in range(0, len(ids), WRITE_BATCH):
        rows = (
            _active_contacts(org)
            .filter(id__in=ids[start : start + WRITE_BATCH])
            .values_list(*CONTACT_COLUMNS)
        )
        for row in rows:
            people[row[0]] = person_from_row(row, rules)
    return people


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


# One contact not saved yet -----------------------------------------------------------------


@dataclass
class Match:
    contact_id: int
    public_id: object
    name: str
    score: float
    band: str
    reasons: list[str]


def pairs_for(
    org,
    person_or_values: Person | dict,
    *,
    limit: int = 5,
    exclude_id: int | None = None,
    max_block: int = MAX_BLOCK,
) -> list[Match]:
    """The existing active contacts that `person_or_values` (a prepared Person, or contact
    field values from a form or an import row) probably or possibly duplicates, best first.
    Its block partners come from the blocking-key index; contacts changed since the last
    scan (not indexed yet) and those with the same email or phone are compared as well.
    `exclude_id`: the contact being edited. Runs in the caller's transaction (a request is
    already in its organization)."""
    model = default_model()
    rules = org_rules(org, model=model)
    if isinstance(person_or_values, Person):
        person = person_or_values
    else:
        person = person_from_values(None, person_or_values, rules.email)
    found = block_partners(org, {None: key_hashes(person)}, {None: refine_subs(person)}, max_block)
    candidate_ids: set[int] = set(found.get(None, ()))
    settings_row = DedupSettings.objects.for_org(org).first()
    recent = _active_contacts(org)
    if settings_row is not None and settings_row.last_scan_at is not None:
        recent = recent.filter(updated_at__gt=settings_row.last_scan_at)
    candidate_ids.update(
        recent.order_by("-updated_at").values_list("id", flat=True)[:RECENT_UNKEYED]
    )
    if not isinstance(person_or_values, Person):
        email = (person_or_values.get("email") or "").strip().lower()
        if email:
            candidate_ids.update(
                _active_contacts(org).filter(email=email).values_list("id", flat=True)[:50]
            )
        phone = (person_or_values.get("phone") or "").strip()
        if phone:
            candidate_ids.update(
                _active_contacts(org).filter(phone=phone).values_list("id", flat=True)[:50]
            )
    candidate_ids.discard(exclude_id)
    people = _load_people(org, candidate_ids, rules.email)
    scored = []
    for contact_id, other in people.items():
        comparison = compare(person, other)
        score = model.probability(comparison)
        band = band_for(score, rules)
        if band is not None:
            scored.append((score, contact_id, band, model.reasons(comparison)))
    scored.sort(key=lambda item: (-item[0], item[1]))
    best = scored[:limit]
    names = {
        row[0]: row[1:]
        for row in _active_contacts(org)
        .filter(id__in=[item[1] for item in best])
        .values_list("id", "public_id", "first_name", "last_name", "email")
    }
    matches = []
    for score, contact_id, band, reasons in best:
        public_id, first, last, email = names[contact_id]
        name = f"{first} {last}".strip() or email or "(no name)"
        matches.append(Match(contact_id, public_id, name, round(score, 4), band, reasons))
    return matches
