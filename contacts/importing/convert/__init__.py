"""Convert a chunk of records column by column, and write it out as COPY text.

A file repeats itself: first names, job titles, cities, countries, stages, tags and custom
choices come from small sets, so each column converts every distinct cell once (a memo per
column) and the rest of its cells are dictionary look-ups. Only the converted values of a
chunk's good rows travel on, as one list per staged field, and the COPY text of the staging
table is written from those lists, again with a memo per field.

A bad value in one field never costs the whole row: the row is kept and carries a warning
per field, (column, kind, cell, message) in the mapping's column order (warning_kinds.py
names the kinds). The value is left out, except that a text longer than its field is cut to
fit, and a phone number the phone library cannot read is kept as typed and flagged
unverified (it is never used to match a contact). A row is refused only when nothing is
left to know the person by (no name, usable email or phone); its message names what was
left out. The per-cell cost of a warning is paid once per distinct cell (the memo keeps the
verdict) and the hot path only looks at the memoised value's type.

The modules: cells (one cell's memoised verdict, and the limits), columns (`ChunkConverter`
and its `Converted` result, and which records hold people), copy_text (the COPY text written
from a `Converted`). The names below are the package's interface: import them from here.
"""

from .cells import warning_text
from .columns import (
    COMPANY_TARGETS,
    ChunkConverter,
    Converted,
    data_records,
    header_key,
    repeats_header,
)
from .copy_text import copy_parts

__all__ = [
    "COMPANY_TARGETS",
    "ChunkConverter",
    "Converted",
    "copy_parts",
    "data_records",
    "header_key",
    "repeats_header",
    "warning_text",
]
