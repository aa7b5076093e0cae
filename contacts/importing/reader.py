"""Stream the records of an uploaded file, whatever its format, in constant memory."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import re
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
        # Excel keeps a date as a moment at midnight; written as the date the cell shows.
        if not (value.hour or value.minute or value.second or value.microsecond):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def xlsx_rows(fileobj) -> Iterator[list[str]]:
    """The first worksheet's rows as text cells. openpyxl's reader reads the workbook's
    parts (where the sheets are, shared strings, which styles are dates, the date system);
    the sheet's cells are streamed through expat by `SheetCells`, several times faster than
    openpyxl's read-only rows. (Its read-only workbook would also read a sheet that does not
    state its size once more in full, just to size it.)"""
    with _first_sheet(fileobj, cells=True) as (reader, source):
        if source is not None:
            yield from SheetCells(reader.wb, reader.shared_strings).rows(source)


# A row's start tag in a sheet's XML (namespace prefix optional) and its `r` attribute.
_ROW_TAG = re.compile(rb"<(?:[\w.-]+:)?row(\s[^>]*)?>")
_ROW_NUMBER = re.compile(rb"""\sr\s*=\s*["']([^"']*)["']""")


def xlsx_row_count(fileobj) -> int:
    """How many rows `xlsx_rows` gives for the workbook, from the row tags alone: a fifth
    of the time of reading the cells. Counts as the reader does: a row without a number
    follows the one before, rows left out count as empty rows, a row numbered backwards
    is ignored."""
    number, rest = 0, b""
    with _first_sheet(fileobj, cells=False) as (_, source):
        while source is not None:
            chunk = source.read(SheetCells.CHUNK_BYTES)
            text = rest + chunk
            # A tag the chunk cut in two waits for the next chunk.
            cut = text.rfind(b"<") if chunk else -1
            text, rest = (text[:cut], text[cut:]) if cut >= 0 else (text, b"")
            for tag in _ROW_TAG.finditer(text):
                found = _ROW_NUMBER.search(tag.group(1) or b"")
                number = max(number, int(float(found.group(1))) if found else number + 1)
            if not chunk:
                break
    return number


@contextlib.contextmanager
def _first_sheet(fileobj, *, cells: bool):
    """openpyxl's reader of the workbook and the XML of its first worksheet (not a chart
    sheet) inside the zip, None without one. With `cells`, the reader has also read what
    reading the cells needs: the shared strings and the styles."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet

    reader = ExcelReader(fileobj, read_only=True, data_only=True)
    try:
        reader.read_manifest()
        if cells:
            reader.read_strings()
        reader.read_workbook()
        if cells:
            apply_stylesheet(reader.archive, reader.wb)
        target = next(
            (
                rel.target
                for _, rel in reader.parser.find_sheets()
                if rel.target in reader.valid_files and "chartsheet" not in rel.Type
            ),
            None,
        )
        if target is None:
            yield reader, None
        else:
            with reader.archive.open(target) as source:
                yield reader, source
    finally:
        reader.archive.close()


def _column_number(ref: str) -> int:
    """1 for "A7", 28 for "AB7"."""
    number = 0
    for char in ref:
        if char <= "9":
            break
        number = number * 26 + (ord(char) & 31)
    return number


class SheetCells:
    """A worksheet's XML to rows of text cells, as openpyxl would read them in data-only mode
    and `_cell` would write them: shared and inline strings (phonetic guides left out),
    numbers, booleans, dates and durations by the cell's style, ISO dates, formula results
    and error codes. A cell or row missing from the XML comes out empty, so columns and row
    numbers stay true; a row ends at its last cell."""

    CHUNK_BYTES = 1 << 20

    def __init__(self, workbook, shared_strings):
        self.shared_strings = shared_strings
        self.epoch = workbook.epoch
        self.date_styles = workbook._date_formats
        self.duration_styles = workbook._timedelta_formats
        from openpyxl.utils.datetime import from_excel, from_ISO8601

        self.from_excel, self.from_iso = from_excel, from_ISO8601

    def value(self, kind: str, style: str | None, text: str) -> str:
        """One cell's text from its type (the `t` attribute), style and raw value."""
        if not text:
            return ""
        if kind == "n":
            number = float(text) if ("." in text or "E" in text or "e" in text) else int(text)
            style_id = int(style) if style else 0
            if style_id in self.date_styles:
                try:
                    moment = self.from_excel(
                        number, self.epoch, timedelta=style_id in self.duration_styles
                    )
                except (OverflowError, ValueError):
                    return "#VALUE!"
                return _cell(moment)
            return _cell(number)
        if kind == "s":
            return str(self.shared_strings[int(text)])
        if kind == "b":
            return str(bool(int(text)))
        if kind == "d":
            return _cell(self.from_iso(text))
        return text  # "str" (a formula's text), "inlineStr", "e" (an error code)

    def rows(self, source) -> Iterator[list[str]]:
        import xml.parsers.expat

        parser = xml.parsers.expat.ParserCreate()
        parser.buffer_text = True
        finished: list[list[str]] = []
        row: list[str] = []
        number = column = 0  # the current row's number in the sheet, the current cell's column
        keep_row = True
        kind, style, text = "n", None, []
        capture = inline = phonetic = False
        value, shared = self.value, self.shared_strings
        # Element names without a namespace prefix (some writers write "x:c"), by name.
        local: dict[str, str] = {}

        def start(name, attrs):
            nonlocal row, number, column, keep_row, kind, style, text, capture, inline, phonetic
            name = local.get(name) or local.setdefault(name, name[name.rfind(":") + 1 :])
            if name == "c":
                ref = attrs.get("r")
                column = _column_number(ref) if ref else column + 1
                kind, style, text = attrs.get("t", "n"), attrs.get("s"), []
            elif name == "v":
                capture = kind != "inlineStr"
            elif name == "t":
                capture = inline and not phonetic
            elif name == "is":
                inline = True
            elif name == "rPh":
                phonetic = True
            elif name == "row":
                ref = attrs.get("r")
                found = int(float(ref)) if ref else number + 1
                # Rows the XML leaves out are empty rows; a row numbered backwards is ignored.
                keep_row = found > number
                if keep_row:
                    finished.extend([] for _ in range(number + 1, found))
                    number = found
                row, column = [], 0

        def end(name):
            nonlocal capture, inline, phonetic
            name = local[name]
            if name == "c":
                if column > len(row) + 1:
                    row.extend([""] * (column - len(row) - 1))
                raw = "".join(text)
                # The common cells without a call: text, shared strings, plain numbers.
                if kind == "inlineStr" or kind == "str" or not raw:
                    row.append(raw)
                elif kind == "s":
                    row.append(str(shared[int(raw)]))
                elif kind == "n" and not style and raw.isdigit():
                    row.append(str(int(raw)))
                else:
                    row.append(value(kind, style, raw))
            elif name == "v" or name == "t":
                capture = False
            elif name == "is":
                inline = False
            elif name == "rPh":
                phonetic = False
            elif name == "row" and keep_row:
                finished.append(row)

        def characters(data):
            if capture:
                text.append(data)

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = characters
        while chunk := source.read(self.CHUNK_BYTES):
            parser.Parse(chunk, False)
            yield from finished
            finished.clear()
        parser.Parse(b"", True)
        yield from finished


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


def record_count(fileobj, *, kind: str, encoding: str, delimiter: str, header_row: int) -> int:
    """How many records `iter_records` gives, for the progress bar: a workbook's rows are
    counted from its row tags, a text file's by reading it through."""
    if kind == "xlsx":
        fileobj.seek(0)
        return max(0, xlsx_row_count(fileobj) - header_row - 1)
    records = iter_records(
        fileobj, kind=kind, encoding=encoding, delimiter=delimiter, header_row=header_row
    )
    try:
        return sum(1 for _ in records)
    finally:
        records.close()


def is_data_row(row: list[str], width: int) -> bool:
    """Not blank and not a footer ("Total", "Grand total: 12"...). Called for every record,
    so a row with more filled cells than a footer ever has is taken without the pattern."""
    filled = [c for c in row if c and not c.isspace()]
    if not filled:
        return False
    return len(filled) > max(2, width // 3) or not is_footer_row(filled, width)
