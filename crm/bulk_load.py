"""Loading many rows at once (demo seeding, benchmarks): COPY in batches, and a table's
indexes and keys dropped for a big load and put back after it."""

from __future__ import annotations

from collections.abc import Iterable

COPY_BATCH = 20_000


def copy_lines(cursor, table: str, columns: list[str], lines: Iterable[str]) -> int:
    """COPY tab-separated `lines` (each ending in a newline) into `table`; returns how many."""
    count = 0
    with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= COPY_BATCH:
                copy.write("".join(batch))
                count += len(batch)
                batch.clear()
        if batch:
            copy.write("".join(batch))
            count += len(batch)
    return count


def drop_for_load(cursor, tables) -> list[str]:
    """Drop the tables' secondary indexes, unique constraints and foreign keys; returns the
    statements that put them back. Rebuilding an index once, and checking a foreign key with
    one join, is far cheaper than maintaining them row by row through a million-row COPY.
    Unique constraints (random UUIDs are the costliest index to grow row by row) come back
    before the foreign keys, which may rely on them."""
    restore_indexes: list[str] = []
    restore_unique: list[str] = []
    restore_keys: list[str] = []
    for table in tables:
        cursor.execute(
            """
            SELECT i.relname, pg_get_indexdef(i.oid)
              FROM pg_index x
              JOIN pg_class i ON i.oid = x.indexrelid
              LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid
             WHERE x.indrelid = %s::regclass AND c.oid IS NULL
            """,
            [table],
        )
        for name, statement in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
            restore_indexes.append(statement)
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY contype DESC",
            [table],
        )
        for name, definition, kind in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            statement = f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
            (restore_unique if kind == "u" else restore_keys).append(statement)
    return restore_indexes + restore_unique + restore_keys
