"""CSV formula neutralization: only what a spreadsheet would run gets the apostrophe.

A plain number or a phone number ("+1 617 428 7721", "-42") is data and is written as it is;
text that starts with "=", "@", "+", "-", a tab or a carriage return followed by anything else
is still prefixed. The rule lives in crm.csvutils.safe_cell, shared by the contact export,
the audit log export and the import's error report. When LibreOffice is installed, the last
test opens a written CSV in it (headless) and checks what the spreadsheet made of each cell.
"""

import csv
import io
import shutil
import subprocess

import pytest
from django.urls import reverse

from crm.csvutils import is_inert_number, safe_cell, stream_csv
from tests.factories import ContactFactory

# Data: written as it is.
INERT = [
    "+1 617 428 7721",
    "+16174287721",
    "+49 (30) 123-45",
    "+44 20 7946 0958",
    "+33 6 12 34 56 78",
    "+1-617-428-7721",
    "+1.617.428.7721",
    "+31 (0)20 555 0100",
    "-42",
    "-3.5",
    "-1,234.50",
    "+7",
    "+0.25",
    "+12345",
]

# Formulas (or text a spreadsheet would read as one): prefixed with an apostrophe.
FORMULAS = [
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1)",
    "=1+1",
    '=HYPERLINK("http://evil.example","x")',
    "+SUM(1,2)",
    "-A1",
    "+A1",
    "+1 617 428 7721 x12",  # a letter: could be a cell reference (X12)
    "+1 617+cmd",
    "+1 (617) !A0",
    "+1|cmd",
    "+1:2",
    "+",
    "-",
    "-.5",  # not the shape we let through; the apostrophe is the safe side
    "+1 234",  # too few digits for a phone number, and not a number
    "+1 234 567 890 123 456",  # 16 digits: longer than any phone number
    "-42 ",
    "\t+1 617 428 7721",
    "\r-42",
    "\t",
    "\rcmd",
    "@",
    "=",
]


@pytest.mark.parametrize("value", INERT)
def test_numbers_and_phone_numbers_are_written_as_they_are(value):
    assert is_inert_number(value)
    assert safe_cell(value) == value


@pytest.mark.parametrize("value", FORMULAS)
def test_anything_else_that_starts_like_a_formula_gets_the_apostrophe(value):
    assert not is_inert_number(value)
    assert safe_cell(value) == "'" + value


def test_text_that_does_not_start_like_a_formula_is_untouched():
    for value in ["Jane", "617 428 7721", "a=b", "1+1", "x=1", "(617) 428 7721"]:
        assert safe_cell(value) == value


def test_real_numbers_pass_through_whatever_their_sign():
    assert safe_cell(-42) == -42
    assert safe_cell(3.5) == 3.5


def test_the_contact_export_writes_phones_plainly_and_neutralizes_formulas(org, members, client_as):
    ContactFactory(
        org=org,
        first_name="+cmd|' /C calc'!A0",
        last_name="-2+3+cmd",
        job_title="-42",
        department="@SUM(1)",
        source="=1+1",
        city="+49 (30) 123-45",
        phone="+16174287721",
    )

    response = client_as(members["admin"]).get(reverse("contacts:export_csv"))

    text = b"".join(response.streaming_content).decode("utf-8").lstrip("\ufeff")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["Phone"] == "+16174287721"
    assert row["City"] == "+49 (30) 123-45"
    assert row["Job title"] == "-42"
    assert row["First name"] == "'+cmd|' /C calc'!A0"
    assert row["Last name"] == "'-2+3+cmd"
    assert row["Department"] == "'@SUM(1)"
    assert row["Source"] == "'=1+1"


# Proof in a real spreadsheet ----------------------------------------------------------------

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_shows_inert_values_as_written_and_runs_no_neutralized_formula(tmp_path):
    """LibreOffice opens our CSV with formulas evaluated (its import option 13), then saves
    what each cell shows. A phone number or number written plainly shows without an
    apostrophe (the complaint: the apostrophe used to show); every neutralized formula shows
    as its own text, never as a result."""
    phones = ["+1 617 428 7721", "+49 (30) 123-45", "+44 20 7946 0958", "+31 (0)20 555 0100"]
    numbers = ["-42", "-3.5", "+16174287721"]
    formulas = ["=1+1", "-2+3", "@SUM(1)", "+SUM(1,2)", "=2*21"]
    values = phones + numbers + formulas
    source = tmp_path / "export.csv"
    source.write_text(
        "".join(stream_csv(([v] for v in values), ["value"])).lstrip("\ufeff"), encoding="utf-8"
    )
    # Control: the same formulas written raw are evaluated, so the test can tell.
    raw = tmp_path / "raw.csv"
    raw.write_text("value\n=1+1\n=2*21\n", encoding="utf-8")
    out = tmp_path / "out"
    # Comma, double quote, UTF-8, from line 1, standard language, quoted fields as text off,
    # detect special numbers, ..., evaluate formulas (token 13) on.
    options = "44,34,76,1,,0,false,true,true,false,false,0,true"
    for name in ("export.csv", "raw.csv"):
        subprocess.run(
            [
                SOFFICE,
                "--headless",
                f"-env:UserInstallation=file://{tmp_path}/profile",
                f"--infilter=CSV:{options}",
                "--convert-to",
                f"csv:Text - txt - csv (StarCalc):{options}",
                "--outdir",
                str(out),
                str(tmp_path / name),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    raw_shown = [r[0] for r in csv.reader(io.StringIO((out / "raw.csv").read_text()))][1:]
    assert raw_shown == ["2", "42"]  # LibreOffice does evaluate formulas in this mode

    shown = [r[0] for r in csv.reader(io.StringIO((out / "export.csv").read_text()))][1:]
    by_value = dict(zip(values, shown, strict=True))
    for phone in phones:
        assert by_value[phone] == phone, phone
    assert float(by_value["-42"]) == -42
    assert float(by_value["-3.5"]) == -3.5
    assert by_value["+16174287721"] == "16174287721"  # a number to a spreadsheet: no "'"
    for formula in formulas:
        assert by_value[formula] == "'" + formula, formula
