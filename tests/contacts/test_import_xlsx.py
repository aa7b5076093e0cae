"""Workbooks are read by streaming the sheet's XML through expat. Whatever the cell type,
the text must be what openpyxl's own reader gives (through the same `_cell`), on workbooks
openpyxl writes (shared strings, inline strings, both date systems) and on XML that other
writers produce (namespace prefixes, rich text with phonetic guides, cells and rows without
a reference, formula results, ISO dates, booleans, error codes)."""

import datetime as dt
import io
import zipfile

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from contacts.importing.reader import _cell, _column_number, xlsx_row_count, xlsx_rows


def openpyxl_rows(data: bytes) -> list[list[str]]:
    """The rows as openpyxl's read-only reader gives them, through `_cell`."""
    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        return [
            [_cell(v) for v in row] for row in workbook.worksheets[0].iter_rows(values_only=True)
        ]
    finally:
        workbook.close()


def trimmed(rows: list[list[str]]) -> list[list[str]]:
    """Rows without trailing empty cells, and without the empty rows at the end: openpyxl
    pads rows to the size a sheet states, the streamed reader ends a row at its last cell."""
    out = [list(row) for row in rows]
    for row in out:
        while row and row[-1] == "":
            row.pop()
    while out and not out[-1]:
        out.pop()
    return out


def streamed(data: bytes) -> list[list[str]]:
    return list(xlsx_rows(io.BytesIO(data)))


VALUES = [
    ["Name", "Count", "Ratio", "Big", "Flag", "Born", "Seen", "At", "Took", "Share"],
    ["Ada", 3, 0.25, 12345678901234, True, dt.date(1815, 12, 10), dt.datetime(2026, 3, 1, 9, 30)],
    [
        "  spaced  ",
        -7,
        3.0,
        1e20,
        False,
        dt.date(1900, 2, 27),
        dt.datetime(2024, 2, 29, 23, 59, 59),
    ],
    ["Zoë Ñandú 東京", 0, 1.5e-7, -0.5, None, None, None, dt.time(8, 15), dt.timedelta(hours=36)],
]


def workbook_bytes(*, write_only=False, epoch=None) -> bytes:
    workbook = Workbook(write_only=write_only)
    if epoch is not None:
        workbook.epoch = epoch
    sheet = workbook.create_sheet() if write_only else workbook.active
    for row in VALUES:
        sheet.append(row)
    sheet.append([])  # an empty row in the middle
    sheet.append(["after the gap", None, None, "=SUM(B2:B4)", "#N/A"])
    if not write_only:
        sheet["J2"] = 0.125
        sheet["J2"].number_format = "0.0%"
        sheet["C9"] = "a cell far below, rows 7 and 8 missing"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("write_only", "epoch"),
    [(False, None), (True, None), (False, CALENDAR_MAC_1904)],
    ids=["shared-strings", "inline-strings", "1904-dates"],
)
def test_workbooks_openpyxl_writes_read_as_openpyxl_reads_them(write_only, epoch):
    data = workbook_bytes(write_only=write_only, epoch=epoch)

    rows = streamed(data)

    assert trimmed(rows) == trimmed(openpyxl_rows(data))
    assert xlsx_row_count(io.BytesIO(data)) == len(rows)
    assert rows[1][:7] == [
        "Ada",
        "3",
        "0.25",
        "12345678901234",
        "True",
        "1815-12-10",  # a date: midnight is left out
        "2026-03-01 09:30:00",
    ]
    assert rows[3][7:9] == ["08:15:00", "1 day, 12:00:00"]
    assert rows[4] == []  # the empty row keeps its place, so row numbers stay true
    if not write_only:
        assert rows[8] == ["", "", "a cell far below, rows 7 and 8 missing"]


def with_sheet(data: bytes, sheet_xml: str) -> bytes:
    """The workbook `data` with its first sheet's XML replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = sheet_xml.encode()
            target.writestr(item, content)
    return out.getvalue()


OTHER_WRITERS_SHEET = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<x:sheetData>
<x:row r="1">
  <x:c r="A1" t="inlineStr"><x:is>
    <x:r><x:t>Rich </x:t></x:r><x:r><x:t xml:space="preserve">text</x:t></x:r>
    <x:rPh sb="0" eb="1"><x:t>ルビ</x:t></x:rPh>
  </x:is></x:c>
  <x:c r="C1" t="str"><x:f>A1&amp;"!"</x:f><x:v>Rich text!</x:v></x:c>
  <x:c r="D1"><x:f>1+1</x:f><x:v>2</x:v></x:c>
  <x:c r="E1" t="b"><x:v>1</x:v></x:c>
  <x:c r="F1" t="e"><x:v>#DIV/0!</x:v></x:c>
  <x:c r="G1" t="d"><x:v>2026-12-02T10:30:00</x:v></x:c>
  <x:c r="H1"><x:v>007</x:v></x:c>
  <x:c r="I1" t="n"><x:v></x:v></x:c>
  <x:c r="J1" t="inlineStr"><x:is><x:t>Fish &amp; chips &lt;3</x:t></x:is></x:c>
</x:row>
<x:row>
  <x:c t="inlineStr"><x:is><x:t>no references</x:t></x:is></x:c>
  <x:c><x:v>1.0E-3</x:v></x:c>
</x:row>
<x:row r="5"><x:c r="AB5" t="inlineStr"><x:is><x:t>column AB</x:t></x:is></x:c></x:row>
</x:sheetData>
</x:worksheet>
"""


def test_xml_other_writers_produce_reads_as_openpyxl_reads_it():
    data = with_sheet(workbook_bytes(), OTHER_WRITERS_SHEET)

    rows = streamed(data)

    assert rows[0] == [
        "Rich text",  # the phonetic guide is not part of the text
        "",
        "Rich text!",
        "2",
        "True",
        "#DIV/0!",
        "2026-12-02 10:30:00",
        "7",
        "",
        "Fish & chips <3",
    ]
    assert rows[1] == ["no references", "0.001"]
    assert rows[2:4] == [[], []]
    assert rows[4] == [""] * 27 + ["column AB"]
    assert trimmed(rows) == trimmed(openpyxl_rows(data))
    assert xlsx_row_count(io.BytesIO(data)) == len(rows) == 5


def test_a_big_sheet_is_streamed_and_counted_in_pieces_with_rows_whole(monkeypatch):
    from contacts.importing.reader import SheetCells

    monkeypatch.setattr(SheetCells, "CHUNK_BYTES", 97)  # cuts through tags and values
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    expected = [[f"person {i}", str(i), f"p{i}@example.com"] for i in range(500)]
    for name, number, email in expected:
        sheet.append([name, int(number), email])
    buffer = io.BytesIO()
    workbook.save(buffer)

    assert streamed(buffer.getvalue()) == expected
    assert xlsx_row_count(io.BytesIO(buffer.getvalue())) == 500


def test_column_numbers_from_cell_references():
    assert [_column_number(ref) for ref in ("A1", "Z9", "AA10", "AB5", "XFD1048576")] == [
        1,
        26,
        27,
        28,
        16384,
    ]
