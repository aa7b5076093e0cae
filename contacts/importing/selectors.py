"""Reads of what an import did: the contacts it created (listed on its parts), the ones it
updated (its records), and which of them were edited since."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from crm.pagination import NEXT, OrderKey, Page, decode_cursor, encode_cursor

from .models import ImportJob, ImportPart

CREATED_KEYS = [OrderKey("row_number"), OrderKey("contact_id")]
PARTS_FETCHED_TOGETHER = 4


@dataclass(frozen=True)
class CreatedRow:
    """A contact the import created, shaped like an ImportRecord for the diff view."""

    row_number: int
    contact_id: int
    changes: dict = field(default_factory=dict)


def _created_after(job: ImportJob, after: int | None, limit: int) -> list[tuple[int, int]]:
    """(row, contact id) of the first `limit` created rows after row `after`. Parts are
    opened in the order of their first row and only while they can still hold one of them
    (a chunk's lanes cover the same rows, later chunks later ones)."""
    parts = ImportPart.objects.filter(job=job, first_row__isnull=False)
    if after is not None:
        parts = parts.filter(last_row__gt=after)
    found: list[tuple[int, int]] = []
    for first_row, rows, ids in (
        parts.order_by("first_row", "number")
        .values_list("first_row", "created_rows", "created_ids")
        .iterator(chunk_size=PARTS_FETCHED_TOGETHER)
    ):
        if len(found) >= limit and first_row > found[limit - 1][0]:
            break
        pairs = zip(rows, ids, strict=True)
        found.extend(pair for pair in pairs if after is None or pair[0] > after)
        found.sort()
        del found[limit:]
    return found


def _created_before(job: ImportJob, before: int, limit: int) -> list[tuple[int, int]]:
    """The last `limit` created rows before row `before`, nearest first."""
    parts = ImportPart.objects.filter(job=job, first_row__lt=before)
    found: list[tuple[int, int]] = []
    for last_row, rows, ids in (
        parts.order_by("-last_row", "-number")
        .values_list("last_row", "created_rows", "created_ids")
        .iterator(chunk_size=PARTS_FETCHED_TOGETHER)
    ):
        if len(found) >= limit and last_row < found[limit - 1][0]:
            break
        found.extend(pair for pair in zip(rows, ids, strict=True) if pair[0] < before)
        found.sort(reverse=True)
        del found[limit:]
    return found


def created_page(job: ImportJob, cursor: str | None, size: int) -> Page:
    """One keyset page (by row number) of the contacts the import created."""
    position = decode_cursor(CREATED_KEYS, cursor)
    forward = position is None or position[1] == NEXT
    if forward:
        after = position[0][0] if position else None
        found = _created_after(job, after, size + 1)
    else:
        found = _created_before(job, position[0][0], size + 1)
    more = len(found) > size
    found = found[:size]
    if not forward:
        if not more:
            return created_page(job, None, size)  # back at the start: a full first page
        found.reverse()
    rows = [CreatedRow(row, contact_id) for row, contact_id in found]

    def cursor_at(row: CreatedRow, direction: str) -> str:
        return encode_cursor(CREATED_KEYS, [row.row_number, row.contact_id], direction)

    has_next = more if forward else True
    has_prev = (position is not None) if forward else True
    return Page(
        rows,
        next_cursor=cursor_at(rows[-1], NEXT) if rows and has_next else None,
        prev_cursor=cursor_at(rows[0], "p") if rows and has_prev else None,
        size=size,
    )


# Undo ------------------------------------------------------------------------------------------

# Contacts the import wrote, each with the moment it wrote them: created ones from its parts,
# updated ones from its records.
WRITTEN_SQL = """
    SELECT u.id AS contact_id, p.written_at, 'created' AS action
      FROM contacts_importpart p CROSS JOIN LATERAL unnest(p.created_ids) AS u(id)
     WHERE p.job_id = %(job)s
    UNION ALL
    SELECT r.contact_id, r.written_at, r.action
      FROM contacts_importrecord r
     WHERE r.job_id = %(job)s
"""


def edited_since(job: ImportJob) -> list[int]:
    """Contacts the import wrote that someone changed afterwards (Undo leaves them be)."""
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT w.contact_id FROM ({WRITTEN_SQL}) w
              JOIN contacts_contact c ON c.id = w.contact_id
             WHERE c.updated_at > w.written_at
             ORDER BY w.contact_id
            """,  # noqa: S608 -- a constant
            {"job": job.id},
        )
        return [contact_id for (contact_id,) in cur.fetchall()]


def undo_counts(job: ImportJob) -> dict:
    """What Undo would do now: contacts it deletes, contacts it restores, and those it keeps
    because someone edited them after the import wrote them (the same test Undo uses)."""
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT count(*) FILTER (WHERE w.action = 'created' AND c.updated_at <= w.written_at),
                   count(*) FILTER (WHERE w.action = 'updated' AND c.updated_at <= w.written_at),
                   count(*) FILTER (WHERE c.updated_at > w.written_at)
              FROM ({WRITTEN_SQL}) w
              JOIN contacts_contact c ON c.id = w.contact_id AND c.org_id = %(org)s
            """,  # noqa: S608 -- a constant
            {"job": job.id, "org": job.org_id},
        )
        delete, restore, keep = cur.fetchone()
    return {"delete": delete, "restore": restore, "keep": keep}


def created_ids(job: ImportJob):
    """The ids of the contacts the import created, part by part (in id order within each)."""
    for ids in (
        ImportPart.objects.filter(job=job)
        .order_by("number")
        .values_list("created_ids", flat=True)
        .iterator(chunk_size=PARTS_FETCHED_TOGETHER)
    ):
        yield from sorted(ids)


def touched_ids(job: ImportJob):
    """Every contact the import created or updated."""
    yield from created_ids(job)
    yield from job.records.values_list("contact_id", flat=True).iterator(chunk_size=10_000)
