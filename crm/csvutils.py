"""CSV output shared by every export (audit log, contacts, ...).

Spreadsheet programs execute a cell that starts with a formula character, so a contact named
`=HYPERLINK("http://evil", "click")` would run when an admin opens the export. `safe_cell`
neutralizes such text with a leading apostrophe, which spreadsheets treat as "this is text".
Only text a spreadsheet would run gets it: a plain number ("-42", "+3.5") or a phone number
("+1 617 428 7721", "+49 (30) 123-45") has no function, reference or operator a spreadsheet
could act on, and an apostrophe there would show up as part of the value.
Exports stream row by row, so memory stays flat however many rows the organization has.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import re
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Text that starts like a formula yet is only data. A signed number: digits, with "." or ","
# between groups ("-42", "-1,234.50", "+3,5"). A phone number: "+", then digits, spaces and
# the separators people write in phone numbers ("( ) - . /"), 6 to 15 digits in all (E.164
# has at most 15). Neither may hold a letter, a quote, "!", "|", ":" or a second "+": no
# function name, cell reference, DDE call or sum can hide in them.
_SIGNED_NUMBER = re.compile(r"[+-]\d+(?:[.,]\d+)*")
_PHONE_NUMBER = re.compile(r"\+\d[\d ().\-/]*\d")
_PHONE_DIGITS = (6, 15)

# Excel opens a UTF-8 CSV as mojibake unless the file starts with a byte-order mark.
UTF8_BOM = "\ufeff"


def safe_cell(value) -> str | int | float | decimal.Decimal:
    """The value as a CSV cell that a spreadsheet will not evaluate.

    Real numbers pass through unchanged (a negative amount is data, not a formula, and cannot
    carry one); everything else becomes text, prefixed with an apostrophe when it starts with
    a character that would make a spreadsheet treat it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_PREFIXES) and not is_inert_number(text):
        return "'" + text
    return text


def is_inert_number(text: str) -> bool:
    """Whether `text`, though it starts with "+" or "-", is a plain number or a phone number
    that a spreadsheet cannot run as a formula."""
    if _SIGNED_NUMBER.fullmatch(text):
        return True
    if not _PHONE_NUMBER.fullmatch(text):
        return False
    digits = sum(ch.isdigit() for ch in text)
    return _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]


class _LineBuffer:
    """A file-like object whose write() hands back what it was given, so csv.writer
    produces one formatted line per call instead of accumulating a whole file."""

    def write(self, text: str) -> str:
        return text


def stream_csv(rows: Iterable[Iterable], header: Iterable[str]) -> Iterator[str]:
    """Yield the CSV text of `header` and then of each row, every cell passed through
    `safe_cell`. `rows` may be a lazy iterator (e.g. queryset.iterator(chunk_size=...))."""
    writer = csv.writer(_LineBuffer())
    yield UTF8_BOM + writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def csv_response(rows: Iterable[Iterable], header: Iterable[str], filename: str):
    """A streaming download of `rows` under `filename`."""
    response = StreamingHttpResponse(stream_csv(rows, header), content_type="text/csv")
    safe_name = filename.replace('"', "").replace("\r", "").replace("\n", "")
    response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response["Cache-Control"] = "no-store"
    return response
