"""Stream the records of an uploaded file, whatever its format, in constant memory and
inside the bounds of limits.py."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import logging
import re
import zipfile
import zlib
from collections.abc import Iterator
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

from .detect import SAMPLE_BYTES, detect, is_footer_row
from .limits import (
    DAMAGED,
    MB,
    OLE_MAGIC,
    OLE_REFUSAL,
    RECORD_CHARS,
    SAVE_AS_CSV,
    SHARED_STRINGS_BYTES,
    WHOLE_PART_BYTES,
    BoundedStream,
    Bounds,
    FileRefused,
    bounds,
    cell_too_long,
    check_part_size,
    check_zip_directory,
    check_zip_members,
    csv_records,
    too_many_columns,
)

log = logging.getLogger(__name__)

XLSX_MAGIC = b"PK\x03\x04"
# How much of a sheet's XML the upload reads for its sample rows, as SAMPLE_BYTES is for a
# text file (XML takes several times the bytes of the same rows as CSV).
SAMPLE_SHEET_BYTES = 16 * MB


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


def xlsx_rows(fileobj, *, max_bytes: int | None = None) -> Iterator[list[str]]:
    """The first worksheet's rows as text cells. openpyxl's reader reads the workbook's
    parts (where the sheets are, which styles are dates, the date system); the shared
    strings and the sheet's cells are streamed through expat (`SharedStrings`,
    `SheetCells`), several times faster than openpyxl's read-only rows. (Its read-only
    workbook would also read a sheet that does not state its size once more in full, just
    to size it.) `max_bytes`: stop after that much of the sheet's XML (a sample)."""
    limits = bounds()
    with _readable(), _first_sheet(fileobj, limits, cells=True) as (reader, source, strings):
        if source is not None:
            cells = SheetCells(reader.wb, strings, limits)
            yield from cells.rows(source, max_bytes=max_bytes)


# A row's start tag in a sheet's XML (namespace prefix optional) and its `r` attribute.
_ROW_TAG = re.compile(rb"<(?:[\w.-]+:)?row(\s[^>]*)?>")
_ROW_NUMBER = re.compile(rb"""\sr\s*=\s*["']([^"']*)["']""")


def xlsx_row_count(fileobj) -> int:
    """How many rows `xlsx_rows` gives for the workbook, from the row tags alone: a fifth
    of the time of reading the cells. Counts as the reader does: a row without a number
    follows the one before, rows left out count as empty rows, a row numbered backwards
    is ignored, a row beyond the limit is refused."""
    limits = bounds()
    number, rest = 0, b""
    with _readable(), _first_sheet(fileobj, limits, cells=False) as (_, source, _strings):
        while source is not None:
            chunk = source.read(SheetCells.CHUNK_BYTES)
            text = rest + chunk
            # A tag the chunk cut in two waits for the next chunk.
            cut = text.rfind(b"<") if chunk else -1
            text, rest = (text[:cut], text[cut:]) if cut >= 0 else (text, b"")
            for tag in _ROW_TAG.finditer(text):
                found = _ROW_NUMBER.search(tag.group(1) or b"")
                number = max(number, _row_number(found and found.group(1).decode(), number))
            if number > limits.rows:
                raise _row_beyond(number, limits.rows)
            if not chunk:
                break
    return number


def _row_number(ref: str | None, previous: int) -> int:
    """A row tag's number: its `r`, else the one after the row before."""
    if not ref:
        return previous + 1
    try:
        return int(ref)
    except ValueError:
        return int(float(ref))  # "7.0" from some writers; junk fails as a damaged file


def _row_beyond(number: int, limit: int) -> FileRefused:
    shown = f"{number:,}" if number < 10**15 else f"far beyond {limit:,}"
    return FileRefused(
        f"The sheet has a row numbered {shown}; an import takes at most {limit:,} rows. "
        f"Delete what is below row {limit:,} in the sheet, or split it into smaller files."
    )


# What a damaged or foreign file makes the zip and XML code raise.
_UNREADABLE = (
    zipfile.BadZipFile,
    NotImplementedError,  # zipfile: a compression method Excel never uses
    zlib.error,
    EOFError,
    OSError,  # openpyxl: "File contains no valid workbook part" (a zip that is no workbook)
    KeyError,  # a part the workbook names is missing
    IndexError,  # a cell points past the shared strings
    ValueError,  # a number, date or row number that is none
    TypeError,
    OverflowError,
    expat.ExpatError,
    ParseError,
)


@contextlib.contextmanager
def _readable():
    """A workbook that can't be read is refused with one clear message; the details are
    for the log, not for the member."""
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        yield
    except (*_UNREADABLE, InvalidFileException) as exc:
        log.info("unreadable workbook: %r", exc)
        raise FileRefused(DAMAGED) from None


@contextlib.contextmanager
def _first_sheet(fileobj, limits: Bounds, *, cells: bool):
    """openpyxl's reader of the workbook, the XML of its first worksheet (not a chart
    sheet) inside the zip (None without one) and, with `cells`, the shared strings, after
    the reader has read what reading the cells needs (the styles). Every part is checked
    against the bounds before it is read: the zip's directory, then each part read whole."""
    from openpyxl.packaging.relationship import get_rels_path

    # _find_workbook_part: how read_workbook finds the part, so the part checked is the one read.
    from openpyxl.reader.excel import ExcelReader, _find_workbook_part
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.xml.constants import ARC_CONTENT_TYPES, ARC_STYLE

    check_zip_directory(fileobj)
    # External links hold cached copies of other workbooks: never needed, never read.
    reader = ExcelReader(fileobj, read_only=True, data_only=True, keep_links=False)
    archive = reader.archive
    try:
        check_zip_members(archive, limits)
        check_part_size(archive, ARC_CONTENT_TYPES, WHOLE_PART_BYTES, "list of parts")
        reader.read_manifest()
        workbook_part = _find_workbook_part(reader.package).PartName[1:]
        check_part_size(archive, workbook_part, WHOLE_PART_BYTES, "list of sheets")
        check_part_size(
            archive, get_rels_path(workbook_part), WHOLE_PART_BYTES, "list of sheet links"
        )
        reader.read_workbook()
        strings: list[str] = []
        if cells:
            check_part_size(archive, ARC_STYLE, WHOLE_PART_BYTES, "formatting (styles)")
            apply_stylesheet(archive, reader.wb)
            strings = _shared_strings(reader, limits)
        target = next(
            (
                rel.target
                for _, rel in reader.parser.find_sheets()
                if rel.target in reader.valid_files and "chartsheet" not in rel.Type
            ),
            None,
        )
        if target is None:
            yield reader, None, strings
        else:
            with archive.open(target) as source:
                yield reader, _bounded(archive, target, source), strings
    finally:
        archive.close()


def _bounded(archive: zipfile.ZipFile, name: str, source) -> BoundedStream:
    return BoundedStream(source, archive.getinfo(name).file_size, name)


def _shared_strings(reader, limits: Bounds) -> list[str]:
    """The workbook's shared strings (the text cells point at by index), [] without."""
    from openpyxl.xml.constants import SHARED_STRINGS

    found = reader.package.find(SHARED_STRINGS)
    if found is None:
        return []
    name = found.PartName[1:]
    check_part_size(reader.archive, name, SHARED_STRINGS_BYTES, "shared text (sharedStrings)")
    with reader.archive.open(name) as source:
        return SharedStrings(limits).read(_bounded(reader.archive, name, source))


def _column_number(ref: str) -> int:
    """1 for "A7", 28 for "AB7"."""
    number = 0
    for char in ref:
        if char <= "9":
            break
        number = number * 26 + (ord(char) & 31)
    return number


def _xml_parser():
    """An expat parser that refuses entity declarations: no spreadsheet writes them, and
    they are how a few bytes of XML expand to gigabytes of text."""
    parser = expat.ParserCreate()
    parser.buffer_text = True

    def refuse(*_):
        raise FileRefused(
            "This workbook can't be read: its XML declares entities, which no spreadsheet "
            "program writes. Open it in Excel, save it again as .xlsx, and upload that."
        )

    parser.EntityDeclHandler = refuse
    return parser


def _parse(parser, source, chunk_bytes: int, until=None, max_bytes: int | None = None):
    """Feed `source` to `parser` a chunk at a time, pausing after each (the caller takes
    what the chunk finished). Stops early once `until()` is true (what is wanted has been
    read) or `max_bytes` have been read (a sample)."""
    read = 0
    while chunk := source.read(chunk_bytes):
        parser.Parse(chunk, False)
        yield
        read += len(chunk)
        if (until is not None and until()) or (max_bytes is not None and read >= max_bytes):
            return
    parser.Parse(b"", True)
    yield


class SharedStrings:
    """A workbook's shared string table as openpyxl reads it (each string's text and rich
    text runs, phonetic guides left out, "_x005F" escapes undone), through expat: several
    times faster than openpyxl's reader, and refused as soon as it passes a bound instead
    of once it is all in memory."""

    def __init__(self, limits: Bounds):
        self.limits = limits

    def read(self, source) -> list[str]:
        max_strings, max_chars = self.limits.shared_strings, self.limits.cell_chars
        parser = _xml_parser()
        strings: list[str] = []
        text: list[str] = []
        capture = phonetic = False
        local: dict[str, str] = {}

        def too_many() -> FileRefused:
            return FileRefused(
                f"This workbook has more than {max_strings:,} different texts in its cells; "
                f"the limit is {max_strings:,}. {SAVE_AS_CSV}"
            )

        def start(name, attrs):
            nonlocal capture, phonetic
            name = local.get(name) or local.setdefault(name, name[name.rfind(":") + 1 :])
            if name == "t":
                capture = not phonetic
            elif name == "rPh":
                phonetic = True
            elif name == "sst":
                declared = attrs.get("uniqueCount", "")
                if declared.isdigit() and int(declared) > max_strings:
                    raise too_many()  # said up front by most writers: no need to read on

        def end(name):
            nonlocal capture, phonetic
            name = local[name]
            if name == "si":
                value = "".join(text)
                text.clear()
                if len(value) > max_chars:
                    where = f"Text number {len(strings) + 1:,} of the workbook's shared strings"
                    raise cell_too_long(where, max_chars)
                strings.append(value.replace("x005F_", "") if "x005F_" in value else value)
                if len(strings) > max_strings:
                    raise too_many()
            elif name == "t":
                capture = False
            elif name == "rPh":
                phonetic = False

        def characters(data):
            if capture:
                text.append(data)
                if len(text) > 4:  # a long text comes in pieces: keep its size in check
                    _bound_pieces(text, max_chars, "A text in the workbook's shared strings")

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = characters
        for _ in _parse(parser, source, SheetCells.CHUNK_BYTES):
            pass
        return strings


def _bound_pieces(pieces: list[str], limit: int, what: str) -> None:
    """Join the pieces of one text read so far into one, refusing it beyond `limit`."""
    joined = "".join(pieces)
    if len(joined) > limit:
        raise cell_too_long(what, limit)
    pieces[:] = [joined]


class SheetCells:
    """A worksheet's XML to rows of text cells, as openpyxl would read them in data-only mode
    and `_cell` would write them: shared and inline strings (phonetic guides left out),
    numbers, booleans, dates and durations by the cell's style, ISO dates, formula results
    and error codes. A cell or row missing from the XML comes out empty, so columns and row
    numbers stay true; a row ends at its last cell.

    Inside the bounds: a row numbered beyond the row limit, a value beyond the column limit
    and a cell or row longer than the limits refuse the file. Rows the sheet leaves out are
    made one at a time as they are given, never held, and an empty cell beyond the column
    limit (a formatted blank, which Excel writes) is left out."""

    CHUNK_BYTES = 1 << 20

    def __init__(self, workbook, shared_strings, limits: Bounds | None = None):
        self.shared_strings = shared_strings
        self.limits = limits or bounds()
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

    def rows(self, source, *, max_bytes: int | None = None) -> Iterator[list[str]]:
        max_rows, max_columns = self.limits.rows, self.limits.columns
        max_chars = self.limits.cell_chars
        parser = _xml_parser()
        # The rows the last chunk finished; an int stands for that many empty rows.
        finished: list[list[str] | int] = []
        row: list[str] = []
        number = column = 0  # the current row's number in the sheet, the current cell's column
        row_chars = 0  # the characters of the current row's cells
        keep_row = True
        ref, kind, style, text = None, "n", None, []
        capture = inline = phonetic = done = False
        value, shared = self.value, self.shared_strings
        # Element names without a namespace prefix (some writers write "x:c"), by name.
        local: dict[str, str] = {}

        def where() -> str:
            cell = f" (cell {ref})" if ref and len(ref) < 20 else ""
            return f"Row {number:,} of the sheet{cell}"

        def start(name, attrs):
            nonlocal row, number, column, row_chars, keep_row, ref, kind, style, text
            nonlocal capture, inline, phonetic
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
                found = _row_number(attrs.get("r"), number)
                # Rows the XML leaves out are empty rows; a row numbered backwards is ignored.
                keep_row = found > number
                if keep_row:
                    if found > max_rows:
                        raise _row_beyond(found, max_rows)
                    if found > number + 1:
                        finished.append(found - number - 1)
                    number = found
                row, column, row_chars, ref = [], 0, 0, None

        def end(name):
            nonlocal capture, inline, phonetic, row_chars, done
            name = local[name]
            if name == "c":
                raw = "".join(text)
                if column > len(row) + 1 or column > max_columns:
                    if column > max_columns:
                        if raw:
                            raise too_many_columns(where(), column, max_columns)
                        return
                    row.extend([""] * (column - len(row) - 1))
                if raw:
                    size = len(raw)
                    if size > max_chars:
                        raise cell_too_long(where(), max_chars)
                    row_chars += size
                    if row_chars > RECORD_CHARS:
                        raise FileRefused(
                            f"Row {number:,} of the sheet holds more than {RECORD_CHARS:,} "
                            "characters in all. Shorten its cells and upload it again."
                        )
                # The common cells without a call: text, shared strings, plain numbers.
                if kind == "inlineStr" or kind == "str" or not raw:
                    row.append(raw)
                elif kind == "s":
                    row.append(shared[int(raw)])
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
            elif name == "row":
                if keep_row:
                    finished.append(row)
            elif name == "sheetData":
                done = True  # what follows the cells (merged ranges, links...) is not read

        def characters(data):
            if capture:
                text.append(data)
                if len(text) > 4:  # a long value comes in pieces: keep its size in check
                    _bound_pieces(text, max_chars, where())

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = characters
        for _ in _parse(parser, source, self.CHUNK_BYTES, lambda: done, max_bytes):
            for item in finished:
                if item.__class__ is int:
                    for _ in range(item):
                        yield []
                else:
                    yield item
            finished.clear()


def xlsx_sample(fileobj, limit: int = 300) -> bytes:
    """The first rows of a workbook as UTF-8 CSV, so detection works the same way: at most
    `limit` rows, from at most SAMPLE_SHEET_BYTES of the sheet's XML."""
    out = io.StringIO()
    writer = csv.writer(out)
    for i, row in enumerate(xlsx_rows(fileobj, max_bytes=SAMPLE_SHEET_BYTES)):
        if i >= limit:
            break
        writer.writerow(row)
    return out.getvalue().encode()


def sniff_file(fileobj, name: str, **overrides):
    """Detection for an uploaded file (CSV/TSV by its bytes, XLSX by its first rows)."""
    fileobj.seek(0)
    head = fileobj.read(SAMPLE_BYTES + 1)
    fileobj.seek(0)
    if head.startswith(OLE_MAGIC):  # whatever its name says, an Excel file we can't read
        raise FileRefused(OLE_REFUSAL)
    kind = file_kind(name, head)
    if kind == "xlsx":
        sample = xlsx_sample(fileobj)
        fileobj.seek(0)
        found = detect(
            sample,
            encoding="utf-8",
            delimiter=",",
            header_row=overrides.get("header_row"),
            workbook=True,
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
        rows = csv_records(text, delimiter, limits=bounds())
    try:
        for index, row in enumerate(rows):
            if index <= header_row:
                continue
            yield row
    finally:
        rows.close()  # a workbook's zip is closed before the file is handed back
        # A TextIOWrapper closes the file it wraps when it is collected; detaching hands the
        # file back open, so the caller can read it again (count rows, then import them).
        if text is not None:
            text.detach()


def job_records(job, fileobj) -> Iterator[list[str]]:
    """`iter_records` with the reading an import job settled on (detected or corrected)."""
    return iter_records(
        fileobj,
        kind=job.file_kind,
        encoding=job.encoding or "utf-8",
        delimiter=job.delimiter or ",",
        header_row=job.header_row,
    )


def record_count(fileobj, *, kind: str, encoding: str, delimiter: str, header_row: int) -> int:
    """How many records `iter_records` gives, for the progress bar: a workbook's rows are
    counted from its row tags, a text file's by reading it through. Either way the bounds
    are checked before anything is imported."""
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
