"""Reads of imports: which ones a member may see, whom they may give imported contacts to,
what an import did (the contacts it created, listed on its parts, and the ones it updated,
its records), and which of them were edited since."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection
from django.db.models.expressions import RawSQL

from crm.models import Membership
from crm.pagination import NEXT, OrderKey, Page, decode_cursor, encode_cursor
from crm.permissions import Policy

from ..models import Contact
from .models import ImportJob, ImportPart

# Who may see what ---------------------------------------------------------------------------
# An import is its creator's, as a contact is its owner's: a member reaches the imports of
# the members their contacts scope covers (their own; their team's; everyone's), and no other.


def imports_in_scope(org, policy):
    """The imports of `org` this member may see and act on."""
    return ImportJob.objects.for_org(org).filter(policy.scope_filter("contacts", "created_by"))


def assignable_owners(org, policy):
    """The active members this member may give imported contacts to: the members whose
    contacts their scope reaches (themselves; their team; anyone), so nothing they import
    lands outside what they, or the people they work for, can see."""
    return Membership.objects.for_org(org).active().filter(policy.scope_filter("contacts", "user"))


def creator_policy(job: ImportJob) -> Policy | None:
    """The policy of the member who created the import (None for a system import): the
    worker writes with their rights, whoever pressed Start."""
    if job.created_by_id is None:
        return None
    membership = (
        Membership.objects.for_org(job.org)
        .filter(user_id=job.created_by_id)
        .select_related("role")
        .first()
    )
    return Policy(membership)


def owners_for_rows(job: ImportJob):
    """The members an owner column of the file may name: those the creator may give
    contacts to (every active member for a system import)."""
    policy = creator_policy(job)
    if policy is None:
        return Membership.objects.for_org(job.org).active()
    return assignable_owners(job.org, policy)


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
        assert first_row is not None  # the filter leaves out parts that created nothing
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
        assert last_row is not None  # set with first_row, which the filter requires
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
    if position is None:
        found = _created_after(job, None, size + 1)
    elif forward:
        found = _created_after(job, position[0][0], size + 1)
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

# What Undo has still to handle: contacts the import updated after record `after_record`,
# then those it created from part `part` on, past contact `after_id` within that part (an undo
# that stopped part way carries on from there; a fresh one starts before the first of each).
LEFT_TO_UNDO_SQL = """
    SELECT u.id AS contact_id, p.written_at, 'created' AS action
      FROM contacts_importpart p CROSS JOIN LATERAL unnest(p.created_ids) AS u(id)
     WHERE p.job_id = %(job)s
       AND (p.number > %(part)s OR (p.number = %(part)s AND u.id > %(after_id)s))
    UNION ALL
    SELECT r.contact_id, r.written_at, r.action
      FROM contacts_importrecord r
     WHERE r.job_id = %(job)s AND r.id > %(after_record)s
"""
LAST_BIGINT = 2**63 - 1


def _undo_position(job: ImportJob) -> dict:
    """Where Undo carries on: the start, unless an earlier undo stopped part way."""
    if job.undo_phase == ImportJob.UndoPhase.DELETE:
        ids = (
            ImportPart.objects.filter(job=job, number=job.undo_part)
            .values_list("created_ids", flat=True)
            .first()
        )
        handled = sorted(ids or [])[: job.undo_part_position]
        return {
            "after_record": LAST_BIGINT,
            "part": job.undo_part,
            "after_id": handled[-1] if handled else 0,
        }
    after_record = job.undo_after_record if job.undo_phase else 0
    return {"after_record": after_record, "part": -1, "after_id": 0}


def undo_counts(job: ImportJob) -> dict:
    """What Undo would do now: contacts it deletes, contacts it restores, and those it keeps
    because someone edited them after the import wrote them (the same test Undo uses). After
    an undo that stopped part way, only what it left is counted."""
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT count(*) FILTER (WHERE w.action = 'created' AND c.updated_at <= w.written_at),
                   count(*) FILTER (WHERE w.action = 'updated' AND c.updated_at <= w.written_at),
                   count(*) FILTER (WHERE c.updated_at > w.written_at)
              FROM ({LEFT_TO_UNDO_SQL}) w
              JOIN contacts_contact c ON c.id = w.contact_id AND c.org_id = %(org)s
            """,  # noqa: S608 -- a constant
            {"job": job.id, "org": job.org_id, **_undo_position(job)},
        )
        delete, restore, keep = cur.fetchone()
    return {"delete": delete, "restore": restore, "keep": keep}


# The contacts Undo would delete or restore: those the import created or updated that nobody
# has edited since (the test Undo applies batch by batch; an edit or a new owner moves
# updated_at on, and Undo then keeps the contact).
UNDO_TARGETS_SQL = """
    SELECT u.id
      FROM contacts_importpart p CROSS JOIN LATERAL unnest(p.created_ids) AS u(id)
      JOIN contacts_contact c ON c.id = u.id
     WHERE p.job_id = %s AND c.updated_at <= p.written_at
    UNION ALL
    SELECT r.contact_id
      FROM contacts_importrecord r JOIN contacts_contact c ON c.id = r.contact_id
     WHERE r.job_id = %s AND c.updated_at <= r.written_at
"""


def undo_outside_scope(job: ImportJob, policy) -> int:
    """How many of the contacts Undo would delete or restore lie outside this member's
    contacts scope (unowned ones included): Undo may not do for them what they could not do
    by hand. One query."""
    ids = RawSQL(UNDO_TARGETS_SQL, [job.id, job.id])  # noqa: S611 -- a constant, bound ids
    targets = Contact.objects.for_org(job.org_id).filter(pk__in=ids)
    return targets.exclude(pk__in=targets.filter(policy.scope_filter("contacts"))).count()


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


# The undo job's batches ------------------------------------------------------------------------


def undo_total(job: ImportJob) -> int:
    """How many contacts Undo handles: every one the import updated or created."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT (SELECT count(*) FROM contacts_importrecord
                     WHERE job_id = %(job)s AND action = 'updated')
                 + (SELECT coalesce(sum(cardinality(created_ids)), 0)
                      FROM contacts_importpart WHERE job_id = %(job)s)
            """,
            {"job": job.id},
        )
        return cur.fetchone()[0]


def updated_after(job: ImportJob, after: int, size: int) -> list[tuple[int, int, object]]:
    """(record id, contact id, written_at) of the next `size` contacts the import updated,
    in record id order after record `after`."""
    return list(
        job.records.filter(action="updated", pk__gt=after)
        .order_by("pk")
        .values_list("pk", "contact_id", "written_at")[:size]
    )


@dataclass(frozen=True)
class CreatedBatch:
    """The next created contacts, each with the moment its part wrote it, and where the
    batch after this one starts (part number, ids of that part already taken)."""

    contacts: list[tuple[int, object]]
    next_part: int
    next_position: int


def created_after(job: ImportJob, part: int, position: int, size: int) -> CreatedBatch:
    """Up to `size` contacts the import created, from part number `part` on (skipping the
    first `position` ids of that part), part by part and in id order within each."""
    contacts: list[tuple[int, object]] = []
    next_part, next_position = part, position
    for number, ids, written_at in (
        ImportPart.objects.filter(job=job, number__gte=part)
        .order_by("number")
        .values_list("number", "created_ids", "written_at")
        .iterator(chunk_size=PARTS_FETCHED_TOGETHER)
    ):
        start = position if number == part else 0
        taken = sorted(ids)[start : start + size - len(contacts)]
        contacts.extend((contact_id, written_at) for contact_id in taken)
        if start + len(taken) < len(ids):
            next_part, next_position = number, start + len(taken)
            break
        next_part, next_position = number + 1, 0
        if len(contacts) >= size:
            break
    return CreatedBatch(contacts, next_part, next_position)
