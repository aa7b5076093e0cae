"""Streaming exports: rows read through a server-side cursor and written as they come, so an
export of any size takes constant memory. Each app's export module says what a row's cells
(CSV) or record (JSON) are; this module only moves rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

CHUNK_SIZE = 2000


def local_value(value, tz):
    """A moment as ISO 8601 in `tz` (to the second), a day as ISO 8601; anything else as is."""
    if isinstance(value, dt.datetime):
        return value.astimezone(tz).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def json_object(row: dict, columns, tz, raw_value: Callable) -> dict:
    """One record as a JSON object: stored values as they are (choice keys, amounts as
    strings), times in `tz`, custom fields together under "custom". Columns carry `key` and
    `custom_key`; `raw_value(row, column)` reads a column's value from the row."""
    record: dict = {}
    custom: dict = {}
    for column in columns:
        value = local_value(raw_value(row, column), tz)
        if column.custom_key is not None:
            custom[column.custom_key] = value
        else:
            record[column.key] = value
    if any(column.custom_key is not None for column in columns):
        record["custom"] = custom
    return record


def streamed(rows_queryset, chunk_size: int = CHUNK_SIZE) -> Iterator[dict]:
    """Rows through a server-side cursor. Inside a transaction the cursor is not WITH HOLD,
    so Postgres streams it instead of materializing the whole result first."""
    with transaction.atomic():
        yield from rows_queryset.iterator(chunk_size=chunk_size)


def csv_rows(rows_queryset, columns, tz, cell: Callable) -> Iterator[list]:
    """Row values for `crm.csvutils.csv_response`, which neutralizes every cell."""
    for row in streamed(rows_queryset):
        yield [cell(row, column, tz) for column in columns]


def json_array(rows_queryset, columns, tz, record: Callable) -> Iterator[str]:
    """A valid JSON array written element by element."""
    encoder = DjangoJSONEncoder(ensure_ascii=False)
    yield "["
    first = True
    for row in streamed(rows_queryset):
        yield ("\n" if first else ",\n") + encoder.encode(record(row, columns, tz))
        first = False
    yield "\n]\n"
