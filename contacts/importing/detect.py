"""What kind of file is this? Encoding, delimiter, where the header is, where the data ends.

Everything here works on a sample of the file (the first ~256 KB) so it is instant even for a
200 MB upload; the streaming reader then applies the decision to the whole file.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field

from .limits import bounds, csv_records, fit_csv_field_limit

SAMPLE_BYTES = 256 * 1024
DELIMITERS = [",", ";", "\t", "|"]
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
ENCODINGS = [
    ("utf-8-sig", "UTF-8 (with BOM)"),
    ("utf-8", "UTF-8"),
    ("utf-16", "UTF-16"),
    ("cp1252", "Windows-1252"),
    ("latin-1", "Latin-1 (ISO-8859-1)"),
]
ENCODING_LABELS = dict(ENCODINGS)

# Rows after the data that spreadsheets and report exports append.
_FOOTER_RE = re.compile(
    r"^\s*(totals?|grand totals?|sub-?totals?|sum|count|generated|exported|report generated|"
    r"confidential|copyright|©|page \d+|end of report|records?:|\d+ records?)\b",
    re.IGNORECASE,
)


@dataclass
class Detection:
    encoding: str
    delimiter: str
    header_row: int  # 0-based index of the header among the parsed rows
    headers: list[str]
    raw_headers: list[str]
    sample_rows: list[list[str]]
    footer_rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def encoding_label(self) -> str:
        return ENCODING_LABELS.get(self.encoding, self.encoding)

    @property
    def delimiter_label(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))


def detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # UTF-16 without BOM: every other byte is NUL for mostly-ASCII text.
    if len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4:
        return "utf-16-le"
    if len(sample) >= 4 and sample[0::2].count(0) > len(sample) // 4:
        return "utf-16-be"
    try:
        _decode_prefix(sample, "utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _decode_prefix(sample: bytes, encoding: str) -> str:
    """Decode a sample that may end in the middle of a multi-byte character."""
    decoder = codecs.getincrementaldecoder(encoding)()
    return decoder.decode(sample, final=False)


def decode_sample(sample: bytes, encoding: str) -> str:
    try:
        return _decode_prefix(sample, encoding)
    except UnicodeDecodeError:
        return sample.decode(encoding, errors="replace")


def _complete_lines(text: str, truncated: bool) -> str:
    """Drop a trailing partial record when the sample was cut."""
    if not truncated:
        return text
    cut = text.rfind("\n")
    return text[: cut + 1] if cut > 0 else text


def detect_delimiter(text: str) -> str:
    lines = [ln for ln in text.splitlines()[:200] if ln.strip()]
    if not lines:
        return ","
    best, best_score = ",", -1.0
    for delim in DELIMITERS:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
        except csv.Error:
            continue
        widths = [len(r) for r in rows if any(c.strip() for c in r)]
        if not widths:
            continue
        mode, freq = Counter(widths).most_common(1)[0]
        if mode < 2:
            continue
        # Many columns, consistently: the share of rows at the modal width matters most.
        score = (freq / len(widths)) * 10 + min(mode, 50) / 50
        if score > best_score:
            best, best_score = delim, score
    return best


def _looks_like_header(row: list[str]) -> bool:
    cells = [c.strip() for c in row if c.strip()]
    if len(cells) < max(1, len(row) // 2):
        return False
    textual = sum(1 for c in cells if not re.fullmatch(r"[-+\d.,/: ]+", c) and "@" not in c)
    return textual >= max(1, int(len(cells) * 0.7)) and len(set(cells)) >= len(cells) * 0.6


def find_header_row(rows: list[list[str]]) -> int:
    """The first row that has the data's width and reads like labels (skips preambles such
    as "Report: All contacts" or "Exported 2026-03-01" above the real header)."""
    widths = [len(r) for r in rows if any(c.strip() for c in r)]
    if not widths:
        return 0
    mode = Counter(widths).most_common(1)[0][0]
    for i, row in enumerate(rows[:50]):
        if len(row) >= mode and _looks_like_header(row):
            return i
    for i, row in enumerate(rows):
        if len(row) >= mode:
            return i
    return 0


def dedupe_headers(headers: list[str]) -> list[str]:
    """Blank headers get "Column N"; repeats get " (2)", " (3)"... so no column is lost."""
    out: list[str] = []
    seen: Counter = Counter()
    for i, raw in enumerate(headers):
        # A NUL is dropped as in the cells: PostgreSQL can't store one (the headers are JSON).
        name = " ".join(raw.replace("\ufeff", "").replace("\x00", "").split()) or f"Column {i + 1}"
        seen[name.lower()] += 1
        if seen[name.lower()] > 1:
            name = f"{name} ({seen[name.lower()]})"
        out.append(name)
    return out


def is_footer_row(row: list[str], width: int) -> bool:
    cells = [c.strip() for c in row if c.strip()]
    if not cells:
        return False
    return bool(_FOOTER_RE.match(cells[0]) and len(cells) <= max(2, width // 3))


def count_footer_rows(rows: list[list[str]], width: int) -> int:
    count = 0
    for row in reversed(rows):
        if not any(c.strip() for c in row):
            count += 1
            continue
        if is_footer_row(row, width):
            count += 1
            continue
        break
    # Only the footer rows, not the blank lines between them and the data, are "footer".
    return count


def detect(
    sample: bytes,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    header_row: int | None = None,
    truncated: bool = False,
    workbook: bool = False,
) -> Detection:
    """Detect from a sample; any argument given overrides detection (the user's correction).
    The sample is read inside the import's bounds, so a file over one is refused at once
    (`workbook`: the sample is a workbook's rows written as CSV, whose cells may hold any
    number of lines)."""
    limits = bounds()
    fit_csv_field_limit(limits)  # before the delimiter is guessed with the csv module
    notes: list[str] = []
    enc = encoding or detect_encoding(sample)
    text = _complete_lines(decode_sample(sample, enc), truncated)
    if "\ufffd" in text and not encoding:
        notes.append("Some characters could not be decoded; check the encoding.")
    delim = delimiter or detect_delimiter(text)
    rows = list(csv_records(io.StringIO(text), delim, limits=limits, lines=not workbook))
    hdr = header_row if header_row is not None else find_header_row(rows)
    hdr = max(0, min(hdr, max(0, len(rows) - 1)))
    raw_headers = rows[hdr] if rows else []
    if hdr:
        notes.append(f"Skipped {hdr} line(s) above the header.")
    headers = dedupe_headers(raw_headers)
    if [h.lower() for h in headers] != [" ".join(h.split()).lower() for h in raw_headers]:
        notes.append("Blank or repeated column names were renamed so no column is lost.")
    body = [r for r in rows[hdr + 1 :]]
    footer = 0 if truncated else count_footer_rows(body, len(headers))
    if footer:
        body = body[:-footer]
        notes.append(f"Ignored {footer} trailing summary or empty row(s).")
    sample_rows = [r for r in body if any(c.strip() for c in r)][:200]
    return Detection(
        encoding=enc,
        delimiter=delim,
        header_row=hdr,
        headers=headers,
        raw_headers=raw_headers,
        sample_rows=sample_rows,
        footer_rows=footer,
        notes=notes,
    )
