"""Every parser of an uploaded file has bounds: the zip's parts (unpacked size and ratio,
checked before they are read), rows, columns, cell length, the shared strings of a
workbook, the lines one CSV cell may span. A file over one gets a clear message where the
member is (the upload form, or the import's page when only the import finds it), never a
dead worker, never a 500. The hostile files are built here, small."""

import csv
import html
import io
import os
import re
import time
import tracemalloc
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import Workbook

from contacts.importing import limits, services
from contacts.importing.limits import DAMAGED, FileRefused, human_size
from contacts.importing.models import ImportJob
from contacts.importing.reader import (
    SheetCells,
    iter_records,
    record_count,
    sniff_file,
    xlsx_row_count,
    xlsx_rows,
)
from contacts.models import Contact
from crm.permissions import Policy
from crm.services import Actor

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
SHEET = "xl/worksheets/sheet1.xml"


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


# Building hostile files --------------------------------------------------------------------


def workbook_bytes(rows=(("Email",),)) -> bytes:
    """A workbook openpyxl writes (shared strings, styles, the usual parts)."""
    workbook = Workbook()
    for row in rows:
        workbook.active.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def replaced(data: bytes, parts: dict[str, bytes | str], *, extra=()) -> bytes:
    """The workbook `data` with some parts' content replaced, and `extra` (name, bytes)
    parts added, all deflated."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            content = parts.get(item.filename, source.read(item.filename))
            target.writestr(item.filename, content)
        for name, content in extra:
            target.writestr(name, content)
    return out.getvalue()


def sheet(body: str, head: str = "") -> str:
    return f'{head}<worksheet xmlns="{MAIN_NS}"><sheetData>{body}</sheetData></worksheet>'


def with_sheet(body: str, head: str = "") -> bytes:
    return replaced(workbook_bytes(), {SHEET: sheet(body, head)})


SHARED_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
SHARED_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"


def with_shared_strings(strings: list[str], body: str, *, declared: int | None = None) -> bytes:
    """A workbook whose sheet is `body` and whose shared string table holds `strings` (each
    an <si>'s inner XML), as Excel writes them (openpyxl writes inline strings only)."""
    base = workbook_bytes()
    with zipfile.ZipFile(io.BytesIO(base)) as archive:
        types = archive.read("[Content_Types].xml").decode()
        rels = archive.read("xl/_rels/workbook.xml.rels").decode()
    count = len(strings) if declared is None else declared
    table = "".join(f"<si>{inner}</si>" for inner in strings)
    return replaced(
        base,
        {
            "[Content_Types].xml": types.replace(
                "</Types>",
                f'<Override PartName="/xl/sharedStrings.xml" ContentType="{SHARED_TYPE}"/></Types>',
            ),
            "xl/_rels/workbook.xml.rels": rels.replace(
                "</Relationships>",
                f'<Relationship Id="rIdShared" Type="{SHARED_REL}" Target="sharedStrings.xml"/>'
                "</Relationships>",
            ),
            SHEET: sheet(body),
        },
        extra=[
            (
                "xl/sharedStrings.xml",
                f'<sst xmlns="{MAIN_NS}" count="{count}" uniqueCount="{count}">{table}</sst>',
            )
        ],
    )


def shared_cells(count: int) -> str:
    """Rows 1..count, each one cell pointing at shared string number row - 1."""
    return "".join(
        f'<row r="{n}"><c r="A{n}" t="s"><v>{n - 1}</v></c></row>' for n in range(1, count + 1)
    )


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def directory_entry(data: bytearray, name: str) -> int:
    """Where the zip's central directory entry for the part `name` starts."""
    entry = data.index(b"PK\x01\x02")
    while data[entry + 46 : entry + 46 + len(name)] != name.encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    return entry


def rows_of(data: bytes) -> list[list[str]]:
    return list(xlsx_rows(io.BytesIO(data)))


def refusal(data: bytes, reader=rows_of) -> str:
    with pytest.raises(FileRefused) as refused:
        reader(data)
    return str(refused.value)


def csv_rows(text: str) -> list[list[str]]:
    return list(
        iter_records(
            io.BytesIO(text.encode()), kind="csv", encoding="utf-8", delimiter=",", header_row=-1
        )
    )


# The issue's example ------------------------------------------------------------------------

# The issue's 169-byte sheet, give or take its namespace: a header, then a row numbered a
# billion, which the reader used to pad with a billion empty rows.
ISSUE_SHEET = sheet(f'<row r="1">{inline("A1", "Email")}</row><row r="2"/><row r="1000000000"/>')


def test_a_row_numbered_a_billion_is_refused_at_once_instead_of_padded():
    data = replaced(workbook_bytes(), {SHEET: ISSUE_SHEET})
    tracemalloc.start()
    started = time.monotonic()
    try:
        message = refusal(data)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert message.startswith("The sheet has a row numbered 1,000,000,000; an import takes")
    assert "at most 1,048,576 rows" in message
    assert elapsed < 0.5
    assert peak < 5 * 1024 * 1024
    # The count before an import says the same, from the row tags alone.
    assert refusal(data, lambda d: xlsx_row_count(io.BytesIO(d))) == message


def test_the_issue_example_is_refused_on_the_upload_form(owner, client_as):
    data = replaced(workbook_bytes(), {SHEET: ISSUE_SHEET})

    response = client_as(owner).post(
        reverse("contacts:import_start"), {"file": SimpleUploadedFile("people.xlsx", data)}
    )

    assert response.status_code == 400
    assert "The sheet has a row numbered 1,000,000,000" in page_text(response)
    assert not ImportJob.objects.filter(org=owner.org).exists()


def test_rows_a_sheet_leaves_out_keep_their_numbers_without_being_held():
    body = (
        f'<row r="1">{inline("A1", "Email")}</row><row r="2">{inline("A2", "a@x.test")}</row>'
        f'<row r="300000">{inline("A300000", "z@x.test")}</row>'
    )
    data = with_sheet(body)
    tracemalloc.start()
    try:
        count = last = 0
        for count, row in enumerate(xlsx_rows(io.BytesIO(data)), start=1):  # noqa: B007
            last = row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (count, last) == (300_000, ["z@x.test"])  # row 300,000 is still row 300,000
    assert peak < 5 * 1024 * 1024  # made one at a time: 300,000 lists would take ~20 MB
    assert xlsx_row_count(io.BytesIO(data)) == 300_000


def test_rows_beyond_a_lowered_row_limit_are_refused(settings):
    settings.IMPORT_MAX_ROWS = 10
    data = workbook_bytes([("Email",)] + [(f"p{i}@x.test",) for i in range(10)])

    assert "an import takes at most 10 rows" in refusal(data)
    assert "row numbered 11" in refusal(data, lambda d: xlsx_row_count(io.BytesIO(d)))


# Zip bombs and broken zips -------------------------------------------------------------------


def test_a_zip_bomb_is_refused_from_its_directory_before_any_part_is_read(monkeypatch):
    # 5 MB of zeros deflate to ~5 KB: a ratio of ~1,000 to 1.
    bomb = replaced(workbook_bytes(), {}, extra=[("xl/media/padding.bin", bytes(5 * 1024 * 1024))])
    assert len(bomb) < 64 * 1024
    opened = []
    real_open = zipfile.ZipFile.open

    def spied_open(archive, name, *args, **kwargs):
        opened.append(name)
        return real_open(archive, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spied_open)

    message = refusal(bomb)

    assert message.startswith("This workbook looks like a zip bomb: its part xl/media/padding.bin")
    assert "to 5 MB" in message and "real workbooks stay under 100 times" in message
    assert opened == []  # refused from the zip's directory: nothing was unpacked


def test_a_workbook_that_unpacks_beyond_the_total_limit_is_refused(settings):
    settings.IMPORT_MAX_UNPACKED_MB = 1
    noise = os.urandom(2 * 1024 * 1024)  # incompressible: a ratio of 1, under any ratio limit

    message = refusal(replaced(workbook_bytes(), {}, extra=[("xl/media/photo.bin", noise)]))

    assert message.startswith("This workbook unpacks to 2 MB; the limit is 1 MB.")
    assert "Save the sheet as CSV" in message


def test_a_part_read_whole_is_refused_over_its_own_limit(monkeypatch):
    monkeypatch.setattr("contacts.importing.reader.WHOLE_PART_BYTES", 500)

    message = refusal(workbook_bytes())

    assert "unpacks to" in message and "the limit is 500 bytes" in message


def test_a_zip_with_a_huge_table_of_contents_is_refused_before_zipfile_reads_it(monkeypatch):
    monkeypatch.setattr(limits, "CENTRAL_DIRECTORY_BYTES", 100)

    assert "table of contents" in refusal(workbook_bytes())


def test_a_part_that_holds_more_than_its_directory_says_is_never_read_beyond_it():
    data = bytearray(with_sheet(f'<row r="1">{inline("A1", "Email")}</row>' * 200))
    entry = directory_entry(data, SHEET)
    data[entry + 24 : entry + 28] = (100).to_bytes(4, "little")  # "unpacks to 100 bytes"

    assert refusal(bytes(data)) == DAMAGED


def test_the_stream_guard_stops_a_part_that_unpacks_beyond_its_declared_size():
    stream = limits.BoundedStream(io.BytesIO(b"x" * 1000), 600, SHEET)
    assert len(stream.read(500)) == 500

    with pytest.raises(FileRefused, match="unpacks to more than its directory says"):
        stream.read(500)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda: b"just some text, not a zip", DAMAGED),
        (lambda: workbook_bytes()[:3000], DAMAGED),
        (lambda: limits.OLE_MAGIC + bytes(4096), limits.OLE_REFUSAL),
    ],
    ids=["not-a-zip", "cut-short", "encrypted-or-xls"],
)
def test_files_that_are_not_workbooks_are_refused_plainly(content, expected):
    assert refusal(content(), lambda d: sniff_file(io.BytesIO(d), "people.xlsx")) == expected


def test_a_zip_that_is_no_workbook_or_whose_data_is_corrupt_is_refused_plainly():
    document = io.BytesIO()
    with zipfile.ZipFile(document, "w") as archive:
        archive.writestr("word/document.xml", "<document/>")
    corrupt = bytearray(with_sheet(f'<row r="1">{inline("A1", "Email")}</row>' * 500))
    sheet_at = corrupt.index(SHEET.encode()) + len(SHEET)
    corrupt[sheet_at + 40 : sheet_at + 60] = bytes(20)  # inside the deflated sheet

    odd_method = bytearray(workbook_bytes())
    entry = directory_entry(odd_method, "[Content_Types].xml")
    odd_method[entry + 10 : entry + 12] = (99).to_bytes(2, "little")  # compression method

    assert refusal(document.getvalue()) == DAMAGED
    assert refusal(bytes(corrupt)) == DAMAGED
    assert refusal(bytes(odd_method)) == DAMAGED


def test_a_password_protected_workbook_named_csv_is_refused_as_such():
    upload = io.BytesIO(limits.OLE_MAGIC + bytes(4096))

    assert refusal(upload, lambda d: sniff_file(d, "people.csv")) == limits.OLE_REFUSAL


def test_a_nul_in_a_header_is_dropped_instead_of_failing_the_upload(owner, client_as):
    response = client_as(owner).post(
        reverse("contacts:import_start"),
        {"file": SimpleUploadedFile("people.csv", b"Em\x00ail,Name\na@x.test,Ann\n")},
    )

    assert response.status_code == 302
    assert ImportJob.objects.get(org=owner.org).headers == ["Email", "Name"]


def test_xml_entity_declarations_are_refused():
    laughs = '<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'

    message = refusal(with_sheet(f'<row r="1">{inline("A1", "&b;")}</row>', head=laughs))

    assert "declares entities" in message


# Columns and cells ---------------------------------------------------------------------------


@pytest.mark.parametrize(("ref", "column"), [("XFD1", "16,384"), ("ZZZZ1", "475,254")])
def test_a_value_beyond_the_column_limit_is_refused(ref, column):
    message = refusal(with_sheet(f'<row r="1">{inline("A1", "Email")}{inline(ref, "x")}</row>'))

    assert message.startswith(f"Row 1 of the sheet (cell {ref}) has {column} columns")
    assert "an import takes at most 1,000" in message


def test_an_empty_formatted_cell_beyond_the_column_limit_is_left_out():
    # Excel writes styled blanks far to the right; they hold nothing to import.
    data = with_sheet(f'<row r="1">{inline("A1", "Email")}<c r="XFD1" s="1"/></row>')

    assert rows_of(data) == [["Email"]]


def test_cells_without_references_past_the_column_limit_are_refused(settings):
    settings.IMPORT_MAX_COLUMNS = 3
    cells = "".join(f'<c t="inlineStr"><is><t>{n}</t></is></c>' for n in "abcd")

    assert "has 4 columns; an import takes at most 3" in refusal(with_sheet(f"<row>{cells}</row>"))


def test_a_cell_longer_than_the_limit_is_refused_naming_it(settings):
    settings.IMPORT_MAX_CELL_CHARS = 1000
    fits = with_sheet(f'<row r="1">{inline("A1", "x" * 1000)}</row>')
    over = with_sheet(f'<row r="1">{inline("A1", "ok")}{inline("B1", "x" * 1001)}</row>')

    assert rows_of(fits) == [["x" * 1000]]
    assert refusal(over) == (
        "Row 1 of the sheet (cell B1) holds more than 1,000 characters, the most one cell "
        "may hold. Shorten it and upload the file again."
    )


def test_a_long_cell_that_arrives_in_pieces_is_refused_before_it_is_whole(settings, monkeypatch):
    settings.IMPORT_MAX_CELL_CHARS = 1000
    monkeypatch.setattr(SheetCells, "CHUNK_BYTES", 97)  # the text comes in many pieces

    assert "(cell A1) holds more than 1,000" in refusal(
        with_sheet(f'<row r="1">{inline("A1", "x" * 50_000)}</row>')
    )


RICH_STRINGS = [
    "<t>Email</t>",
    '<r><rPr><b/></rPr><t>Rich </t></r><r><t xml:space="preserve">text</t></r>'
    '<rPh sb="0" eb="1"><t>ルビ</t></rPh>',
    "<t>_x005F_x000D_ stays literal</t>",
    "<t/>",
    "<t>Fish &amp; chips &lt;3</t>",
]


def test_shared_strings_read_as_openpyxl_reads_them():
    from openpyxl import load_workbook

    data = with_shared_strings(RICH_STRINGS, shared_cells(len(RICH_STRINGS)))
    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    expected = [
        [v or "" for v in row] for row in workbook.worksheets[0].iter_rows(values_only=True)
    ]
    workbook.close()

    assert rows_of(data) == expected
    assert rows_of(data)[1:3] == [["Rich text"], ["_x000D_ stays literal"]]


def test_a_shared_string_table_over_the_limit_is_refused(settings):
    settings.IMPORT_MAX_SHARED_STRINGS = 10
    texts = [f"<t>p{n}@x.test</t>" for n in range(11)]

    assert len(rows_of(with_shared_strings(texts[:10], shared_cells(10)))) == 10
    assert refusal(with_shared_strings(texts, shared_cells(11))) == (
        "This workbook has more than 10 different texts in its cells; the limit is 10. "
        "Save the sheet as CSV (comma delimited) and upload that instead."
    )


def test_a_shared_string_table_that_understates_its_size_is_counted(settings):
    settings.IMPORT_MAX_SHARED_STRINGS = 10
    texts = [f"<t>p{n}@x.test</t>" for n in range(11)]

    data = with_shared_strings(texts, shared_cells(1), declared=1)

    assert "more than 10 different texts" in refusal(data)


def test_a_shared_string_longer_than_the_cell_limit_is_refused(settings):
    settings.IMPORT_MAX_CELL_CHARS = 100
    data = with_shared_strings(["<t>Email</t>", "<t>" + "y" * 101 + "</t>"], shared_cells(1))

    assert refusal(data).startswith(
        "Text number 2 of the workbook's shared strings holds more than 100 characters"
    )


def test_a_cell_pointing_past_the_shared_strings_is_a_damaged_workbook():
    assert refusal(with_shared_strings(["<t>Email</t>"], shared_cells(2))) == DAMAGED


def test_the_sample_read_at_upload_stops_after_its_share_of_the_sheet(monkeypatch):
    monkeypatch.setattr("contacts.importing.reader.SAMPLE_SHEET_BYTES", 4096)
    monkeypatch.setattr(SheetCells, "CHUNK_BYTES", 1024)
    body = "".join(f'<row r="{n}">{inline(f"A{n}", f"p{n}@x.test")}</row>' for n in range(1, 2001))

    _, found = sniff_file(io.BytesIO(with_sheet(body)), "people.xlsx")

    # The rows in ~4 KB of XML, not the 200 a sample of the 2,000 rows would hold.
    assert 10 < len(found.sample_rows) < 100


# CSV -------------------------------------------------------------------------------------------


def test_an_unclosed_quote_is_refused_where_it_opens_instead_of_swallowing_the_file():
    text = 'Email,Notes\na@x.test,"never closed\n' + "b@x.test,fine\n" * 100_000
    started = time.monotonic()

    with pytest.raises(FileRefused) as refused:
        csv_rows(text)

    assert time.monotonic() - started < 0.5
    assert str(refused.value) == (
        "A quoted cell that starts on line 2 runs on for more than 100 lines: a closing "
        'quote (") is probably missing. Fix that line and upload the file again.'
    )


def test_an_unclosed_quote_is_refused_on_the_upload_form(owner, client_as):
    text = 'Email,Notes\na@x.test,"never closed\n' + "b@x.test,fine\n" * 1000

    response = client_as(owner).post(
        reverse("contacts:import_start"),
        {"file": SimpleUploadedFile("people.csv", text.encode())},
    )

    assert response.status_code == 400
    assert "A quoted cell that starts on line 2 runs on for more than 100 lines" in page_text(
        response
    )
    assert not ImportJob.objects.filter(org=owner.org).exists()


def test_a_quoted_cell_may_span_lines_up_to_the_limit():
    notes = "\n".join(f"line {n}" for n in range(100))

    rows = csv_rows(f'Email,Notes\na@x.test,"{notes}"\nb@x.test,short\n')

    assert rows[1] == ["a@x.test", notes]
    assert rows[2] == ["b@x.test", "short"]


def test_a_cell_over_the_limit_is_refused_naming_its_line_and_column(settings):
    settings.IMPORT_MAX_CELL_CHARS = 32_767
    before = csv.field_size_limit()
    text = "Email,Notes\na@x.test,short\nb@x.test," + "n" * 100_000 + "\n"

    with pytest.raises(FileRefused) as refused:
        csv_rows(text)

    assert str(refused.value).startswith(
        "The cell in column 2 on line 3 holds more than 32,767 characters"
    )
    # The csv module's limit is process-wide: it is never lowered for other readers.
    assert csv.field_size_limit() >= before


def test_a_long_text_cell_a_crm_exports_fits_the_default_limit():
    # Salesforce's long text areas hold up to 131,072 characters; their exports must import.
    notes = "n" * 131_072

    assert csv_rows(f"Email,Notes\na@x.test,{notes}\n")[1][1] == notes
    with pytest.raises(FileRefused, match="holds more than 131,072 characters"):
        csv_rows(f"Email,Notes\na@x.test,{notes}n\n")


def test_too_many_columns_are_refused_at_upload_and_on_a_later_line():
    wide_header = ",".join(f"c{n}" for n in range(1001)) + "\n"
    late = "Email,Name\n" + "a@x.test,Ada\n" * 50 + "," * 1000 + "\n"

    with pytest.raises(FileRefused) as at_upload:
        sniff_file(io.BytesIO(wide_header.encode()), "wide.csv")
    with pytest.raises(FileRefused) as later:
        csv_rows(late)

    assert str(at_upload.value).startswith(
        "Line 1 has 1,001 columns; an import takes at most 1,000"
    )
    assert str(later.value).startswith("Line 52 has 1,001 columns")


def test_a_line_without_end_is_refused_before_it_is_read_whole(monkeypatch):
    monkeypatch.setattr(limits, "RECORD_CHARS", 10_000)

    with pytest.raises(FileRefused, match="Line 2 of the file holds more than 10,000 characters"):
        csv_rows("Email\n" + "x" * 1_000_000)


def test_rows_beyond_the_row_limit_are_refused(settings):
    settings.IMPORT_MAX_ROWS = 100
    text = "Email\n" + "".join(f"p{n}@x.test\n" for n in range(100))

    with pytest.raises(FileRefused, match="more than 100 rows"):
        record_count(
            io.BytesIO(text.encode()), kind="csv", encoding="utf-8", delimiter=",", header_row=0
        )


def mapped(membership, name: str, data: bytes) -> ImportJob:
    actor, policy = Actor.for_user(membership.user), Policy(membership)
    job = services.import_create(
        org=membership.org, actor=actor, policy=policy, upload=SimpleUploadedFile(name, data)
    )
    return services.import_set_mapping(
        job=job,
        actor=actor,
        policy=policy,
        mapping=job.mapping,
        defaults={},
        import_policy="upsert",
        blank_policy="keep",
    )


@pytest.mark.django_db
def test_reading_the_file_again_with_other_settings_keeps_the_bounds_in_place(
    owner, client_as, settings
):
    job = mapped(owner, "people.csv", b"Email,Notes\na@x.test;b;c;d,fine\n")
    settings.IMPORT_MAX_COLUMNS = 3

    response = client_as(owner).post(
        reverse("contacts:import_map", args=[job.public_id]),
        {"step": "detect", "encoding": "utf-8", "delimiter": ";", "header_row": 1},
    )

    assert response.status_code == 400
    assert "Line 2 has 4 columns; an import takes at most 3" in page_text(response)
    job.refresh_from_db()
    assert job.delimiter == ","


@pytest.mark.django_db
def test_a_preview_that_meets_a_bound_past_the_upload_sample_says_so_on_the_mapping(
    owner, client_as
):
    people = "".join(f"p{n}@x.test,Person {n}\n" for n in range(12_000))  # ~300 KB
    text = "Email,First Name\n" + people + 'late@x.test,"never closed\n' + "x,y\n" * 200
    job = mapped(owner, "people.csv", text.encode())
    client = client_as(owner)

    response = client.get(reverse("contacts:import_preview", args=[job.public_id]))

    assert response.status_code == 302
    assert response["Location"] == reverse("contacts:import_map", args=[job.public_id])
    page = page_text(client.get(response["Location"]))
    assert "A quoted cell that starts on line 12,002 runs on for more than 100 lines" in page


@pytest.mark.django_db
def test_the_mapping_page_of_a_file_over_a_bound_lowered_since_upload_says_why(
    owner, client_as, settings
):
    job = mapped(owner, "people.csv", b"Email,Notes,Phone,City\na@x.test,fine,1,Paris\n")
    settings.IMPORT_MAX_COLUMNS = 3
    client = client_as(owner)

    response = client.get(reverse("contacts:import_map", args=[job.public_id]))

    assert response.status_code == 302
    assert response["Location"] == reverse("contacts:import_start")
    assert "an import takes at most 3" in page_text(client.get(response["Location"]))


# Messages ---------------------------------------------------------------------------------------


def test_sizes_in_messages_read_as_people_write_them():
    assert human_size(512) == "512 bytes"
    assert human_size(1536) == "1.5 KB"
    assert human_size(500 * 1024 * 1024) == "500 MB"
    assert human_size(int(3.1 * 1024**3)) == "3.1 GB"
    assert human_size(3 * 1024**3) == "3 GB"


# Found only by the import, in the worker -----------------------------------------------------


def page_text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def started(membership, name: str, data: bytes) -> ImportJob:
    job = mapped(membership, name, data)
    services.import_start(job=job, actor=Actor.for_user(membership.user), policy=Policy(membership))
    return job


@pytest.mark.django_db
def test_an_unclosed_quote_past_the_upload_sample_fails_the_job_before_any_write(owner, client_as):
    # The upload reads the first 256 KB; the broken line comes after them.
    people = "".join(f"p{n}@x.test,Person {n}\n" for n in range(20_000))
    text = "Email,First Name\n" + people + 'late@x.test,"never closed\n' + "x,y\n" * 200
    job = started(owner, "people.csv", text.encode())

    services.run_import(org_id=job.org_id, job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith(
        "The import stopped: A quoted cell that starts on line 20,002 runs on for more than "
        "100 lines"
    )
    assert not Contact.objects.for_org(owner.org).exists()  # the count found it first
    page = page_text(client_as(owner).get(reverse("contacts:import_detail", args=[job.public_id])))
    assert "A quoted cell that starts on line 20,002" in page


@pytest.mark.django_db
def test_a_value_beyond_the_columns_past_the_upload_sample_fails_the_job(owner, monkeypatch):
    # The upload reads 300 rows (and the rest of the XML chunk they end in).
    monkeypatch.setattr(SheetCells, "CHUNK_BYTES", 4096)
    workbook = Workbook()
    workbook.active.append(["Email", "First Name"])
    for n in range(600):
        workbook.active.append([f"p{n}@x.test", f"P{n}"])
    workbook.active.cell(row=550, column=1001, value="stray")
    buffer = io.BytesIO()
    workbook.save(buffer)
    job = started(owner, "people.xlsx", buffer.getvalue())

    services.run_import(org_id=job.org_id, job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith(
        "The import stopped: Row 550 of the sheet (cell ALM550) has 1,001 columns"
    )


@pytest.mark.django_db
def test_rows_beyond_a_limit_lowered_after_the_upload_fail_the_job(owner, settings):
    text = "Email\n" + "".join(f"p{n}@x.test\n" for n in range(40))
    job = started(owner, "people.csv", text.encode())
    settings.IMPORT_MAX_ROWS = 30

    services.run_import(org_id=job.org_id, job_id=job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error == (
        "The import stopped: This file has more than 30 rows, the most one import takes. "
        "Split it into smaller files."
    )
