"""Stream the records of an uploaded file, whatever its format, in constant memory."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator

from .detect import SAMPLE_BYTES, detect, is_footer_row

XLSX_MAGIC = b"PK\x03\x04"

csv.field_size_limit(16 * 1024 * 1024)  # a generous cell limit; Python's default is 128 KB


def file_kind(name: str, head: bytes) -> str:
    if name.lower().endswith((".xlsx", ".xlsm")) or head.startswith(XLSX_MAGIC):
        return "xlsx"
    return "csv"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def xlsx_rows(fileobj) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    workbook = load_workbook(fileobj, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            yield [_cell(v) for v in row]
    finally:
        workbook.close()


def xlsx_sample(fileobj, limit: int = 300) -> bytes:
    """The first rows of a workbook as UTF-8 CSV, so detection works the same way."""
    out = io.StringIO()
    writer = csv.writer(out)
    for i, row in enumerate(xlsx_rows(fileobj)):
        if i >= limit:
            break
        writer.writerow(row)
    return out.getvalue().encode()


def sniff_file(fileobj, name: str, **overrides):
    """Detection for an uploaded file (CSV/TSV by its bytes, XLSX by its first rows)."""
    fileobj.seek(0)
    head = fileobj.read(SAMPLE_BYTES + 1)
    fileobj.seek(0)
    kind = file_kind(name, head)
    if kind == "xlsx":
        sample = xlsx_sample(fileobj)
        fileobj.seek(0)
        found = detect(
            sample, encoding="utf-8", delimiter=",", header_row=overrides.get("header_row")
        )
        return kind, found
    truncated = len(head) > SAMPLE_BYTES
    return kind, detect(head[:SAMPLE_BYTES], truncated=truncated, **overrides)


def iter_records(
    fileobj, *, kind: str, encoding: str, delimiter: str, header_row: int
) -> Iterator[list[str]]:
    """Every record after the header (blank ones included, so numbering stays true)."""
    fileobj.seek(0)
    text = None
    if kind == "xlsx":
        rows = xlsx_rows(fileobj)
    else:
        text = io.TextIOWrapper(fileobj, encoding=encoding, errors="replace", newline="")
        rows = csv.reader(text, delimiter=delimiter)
    try:
        for index, row in enumerate(rows):
            if index <= header_row:
                continue
            yield row
    finally:
        # A TextIOWrapper closes the file it wraps when it is collected; detaching hands the
        # file back open, so the caller can read it again (count rows, then import them).
        if text is not None:
            text.detach()


def is_data_row(row: list[str], width: int) -> bool:
    """Not blank and not a footer ("Total", "Grand total: 12"...). Called for every record,
    so a row with more filled cells than a footer ever has is taken without the pattern."""
    filled = [c for c in row if c and not c.isspace()]
    if not filled:
        return False
    return len(filled) > max(2, width // 3) or not is_footer_row(filled, width)
