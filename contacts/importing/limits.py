"""The bounds of what an uploaded file may make the importer do, and the checks that stand
apart from a format's reader: a workbook's zip directory, and CSV records as they are read
(the sheet's own checks are in reader.SheetCells).

Every parser of an uploaded file stays inside these bounds (ARCHITECTURE.md, rule 5): a file
over one is refused with a message that says which bound and what to do, on the upload
form when the upload finds it, on the import's page when only the import does. The bounds
users may meet are settings (crm/settings.py, IMPORT_*); the rest are here, each far above
what a real file needs.
"""

from __future__ import annotations

import csv
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError

MB = 1024 * 1024

# Zip members that unpack to less than this may be compressed beyond the ratio: small XML
# parts full of repeated markup (styles, an empty sheet) often are, and cost nothing.
RATIO_FLOOR_BYTES = 1 * MB
# A workbook's table of contents (the zip's central directory) is read whole, and each entry
# becomes an object: a real workbook's is a few KB.
CENTRAL_DIRECTORY_BYTES = 4 * MB
# Parts that openpyxl parses into objects whole (content types, the workbook, its links,
# the styles) take ~10 times their size in memory. Excel's 64,000 cell formats fit in ~10 MB.
WHOLE_PART_BYTES = 16 * MB
# The shared strings are held in memory for the whole read, since any cell may point at
# any of them: 2,000,000 strings of ~100 characters.
SHARED_STRINGS_BYTES = 256 * MB
# One record (a CSV line, or the lines of one record) as a whole: far above any real row,
# and what a reader may hold before it has checked the record's cells and columns.
RECORD_CHARS = 4 * 1024 * 1024

# An encrypted workbook (and the old .xls format) is an OLE compound file, not a zip.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
OLE_REFUSAL = (
    "This workbook is password-protected, or in the old Excel 97-2003 (.xls) format. "
    "Remove the password (or save it as .xlsx) in Excel and upload it again."
)
SAVE_AS_CSV = "Save the sheet as CSV (comma delimited) and upload that instead."
DAMAGED = (
    "This workbook can't be read: it is damaged or not an Excel .xlsx file. "
    "Open it in Excel, save it again as .xlsx, and upload that."
)


class FileRefused(ValidationError):
    """An uploaded file is over a bound, or can't be read. A ValidationError, so views that
    show a service's ValidationError show this too; str() is the message alone (the
    import's failure says "The import stopped: <message>")."""

    def __init__(self, message: str):
        super().__init__(message, code="file_refused")

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Bounds:
    unpacked_bytes: int
    compression_ratio: int
    rows: int
    columns: int
    cell_chars: int
    shared_strings: int
    cell_lines: int


def bounds() -> Bounds:
    """The bounds as configured now (read on each call, so a changed setting applies)."""
    return Bounds(
        unpacked_bytes=getattr(settings, "IMPORT_MAX_UNPACKED_MB", 2048) * MB,
        compression_ratio=getattr(settings, "IMPORT_MAX_COMPRESSION_RATIO", 100),
        rows=getattr(settings, "IMPORT_MAX_ROWS", 1_048_576),
        columns=getattr(settings, "IMPORT_MAX_COLUMNS", 1_000),
        cell_chars=getattr(settings, "IMPORT_MAX_CELL_CHARS", 131_072),
        shared_strings=getattr(settings, "IMPORT_MAX_SHARED_STRINGS", 2_000_000),
        cell_lines=getattr(settings, "IMPORT_MAX_CELL_LINES", 100),
    )


def human_size(size: int) -> str:
    """1536 -> "1.5 KB", 500 MB -> "500 MB": one decimal below 10, none above."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    shown = f"{value:.1f}" if value < 10 else f"{value:,.0f}"
    return f"{shown.removesuffix('.0')} {unit}"


# Refusals that more than one reader gives -------------------------------------------------


def too_many_rows(limit: int) -> FileRefused:
    return FileRefused(
        f"This file has more than {limit:,} rows, the most one import takes. "
        "Split it into smaller files."
    )


def too_many_columns(where: str, columns: int, limit: int) -> FileRefused:
    return FileRefused(
        f"{where} has {columns:,} columns; an import takes at most {limit:,}. "
        "Remove the columns you don't need and upload the file again."
    )


def cell_too_long(where: str, limit: int) -> FileRefused:
    return FileRefused(
        f"{where} holds more than {limit:,} characters, the most one cell may hold. "
        "Shorten it and upload the file again."
    )


# Workbooks: the zip's directory, before anything is unpacked ------------------------------


def check_zip_directory(fileobj) -> None:
    """Refuse a file that is not a zip (naming the likely cause) or whose central directory
    is too big to read, before zipfile reads it into one object per entry."""
    fileobj.seek(0)
    head = fileobj.read(8)
    if head.startswith(OLE_MAGIC):
        raise FileRefused(OLE_REFUSAL)
    directory_size = _central_directory_size(fileobj)
    fileobj.seek(0)
    if directory_size is None:
        raise FileRefused(DAMAGED)
    if directory_size > CENTRAL_DIRECTORY_BYTES:
        raise FileRefused(
            f"This workbook's table of contents alone takes {human_size(directory_size)}; "
            f"a workbook's may take at most {human_size(CENTRAL_DIRECTORY_BYTES)}. "
            "It is not a real Excel workbook."
        )


_EOCD = struct.Struct("<4s4H2LH")  # the end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _central_directory_size(fileobj) -> int | None:
    """The central directory's size as the end record states it (the ZIP64 record's when
    the plain one overflows), None when the file has no end record: not a zip."""
    fileobj.seek(0, 2)
    end = fileobj.tell()
    # The end record is the last thing in the file, after a comment of up to 64 KB.
    start = max(0, end - _EOCD.size - 0xFFFF)
    fileobj.seek(start)
    tail = fileobj.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    size = _EOCD.unpack_from(tail, at)[5]
    if size != 0xFFFFFFFF:
        return size
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at < 0 or tail[locator_at : locator_at + 4] != b"PK\x06\x07":
        return None
    record_at = _ZIP64_LOCATOR.unpack_from(tail, locator_at)[2]
    fileobj.seek(record_at)
    record = fileobj.read(_ZIP64_EOCD.size)
    if len(record) < _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
        return None
    return _ZIP64_EOCD.unpack(record)[8]


def check_zip_members(archive: zipfile.ZipFile, limits: Bounds) -> None:
    """Every member's declared unpacked size and compression ratio, and their total, before
    any member is read. (zipfile never unpacks a member beyond its declared size: a member
    that holds more fails its checksum, so the declared sizes bound what reading costs.)"""
    total = 0
    for info in archive.infolist():
        if info.flag_bits & 0x1:
            raise FileRefused(
                "This workbook is password-protected. Remove the password in Excel "
                "and upload it again."
            )
        size = info.file_size
        total += size
        if size > RATIO_FLOOR_BYTES and size > limits.compression_ratio * info.compress_size:
            ratio = size // max(1, info.compress_size)
            raise FileRefused(
                f"This workbook looks like a zip bomb: its part {info.filename} unpacks "
                f"from {human_size(info.compress_size)} to {human_size(size)}, {ratio:,} "
                f"times its size; real workbooks stay under {limits.compression_ratio:,} "
                "times."
            )
    if total > limits.unpacked_bytes:
        raise FileRefused(
            f"This workbook unpacks to {human_size(total)}; the limit is "
            f"{human_size(limits.unpacked_bytes)}. {SAVE_AS_CSV}"
        )


def check_part_size(archive: zipfile.ZipFile, name: str, limit: int, what: str) -> None:
    """A part that is read whole into memory (`what` names it for people) fits `limit`."""
    try:
        size = archive.getinfo(name).file_size
    except KeyError:
        return  # a part the workbook does not have: whoever needs it says so
    if size > limit:
        raise FileRefused(
            f"This workbook's {what} unpacks to {human_size(size)}; the limit is "
            f"{human_size(limit)}. {SAVE_AS_CSV}"
        )


class BoundedStream:
    """A member's stream that refuses to give more than `limit` bytes (what its directory
    entry declared, at most the bound): zipfile already stops there, this keeps the bound
    true whatever the zip code does."""

    def __init__(self, stream, limit: int, name: str):
        self.stream, self.left, self.name = stream, limit, name

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.left -= len(data)
        if self.left < 0:
            raise FileRefused(
                f"This workbook's part {self.name} unpacks to more than its directory says. "
                "It is damaged; open it in Excel, save it again, and upload that."
            )
        return data


# CSV: records as they are read -------------------------------------------------------------


def fit_csv_field_limit(limits: Bounds) -> None:
    """Let the csv module read cells up to the cell limit. Its field limit is process-wide,
    so it is only ever raised (every reader in the process keeps at least the limit it
    had): the importer's own checks refuse a cell, naming its line and column; the
    module's limit only keeps a field from growing without end in the meantime."""
    if csv.field_size_limit() <= limits.cell_chars:
        csv.field_size_limit(limits.cell_chars + 1)


def csv_records(text, delimiter: str, *, limits: Bounds, lines: bool = True) -> Iterator[list]:
    """csv.reader over the text stream `text`, inside the bounds: records (rows) and their
    columns counted, each cell's length, each record's length, and (with `lines`) how
    many lines one record may span, so an unclosed quote is found where it opens instead
    of swallowing the rest of the file into one cell. Cheap per line: counts and compares;
    the cells are measured only in a record long enough to hold a cell over the limit."""
    fit_csv_field_limit(limits)
    line = 0  # lines read
    start = 1  # the line the record being read starts on
    chars = 0  # the characters of that record so far
    max_span = limits.cell_lines if lines else None

    def text_lines():
        nonlocal line, chars
        readline = text.readline
        while piece := readline(RECORD_CHARS + 1):
            line += 1
            chars += len(piece)
            if chars > RECORD_CHARS:
                raise FileRefused(
                    f"Line {start:,} of the file holds more than {RECORD_CHARS:,} "
                    'characters in one row. It is not a CSV file, or a quote (") is '
                    "never closed."
                )
            if max_span is not None and line - start >= max_span:
                raise FileRefused(
                    f"A quoted cell that starts on line {start:,} runs on for more than "
                    f'{max_span:,} lines: a closing quote (") is probably missing. '
                    "Fix that line and upload the file again."
                )
            yield piece

    reader = csv.reader(text_lines(), delimiter=delimiter)
    records = 0
    try:
        for record in reader:
            records += 1
            if records > limits.rows:
                raise too_many_rows(limits.rows)
            if len(record) > limits.columns:
                raise too_many_columns(f"Line {start:,}", len(record), limits.columns)
            if chars > limits.cell_chars:
                for column, cell in enumerate(record, start=1):
                    if len(cell) > limits.cell_chars:
                        where = f"The cell in column {column:,} on line {start:,}"
                        raise cell_too_long(where, limits.cell_chars)
            start, chars = line + 1, 0
            yield record
    except csv.Error as exc:
        if "field limit" in str(exc):  # the module's limit is above ours: so is the cell
            raise cell_too_long(f"A cell on line {start:,}", limits.cell_chars) from None
        raise FileRefused(f"Line {start:,} can't be read as CSV: {exc}.") from None
