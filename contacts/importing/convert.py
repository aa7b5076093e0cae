"""Convert a chunk of records column by column, and write it out as COPY text.

A file repeats itself: first names, job titles, cities, countries, stages, tags and custom
choices come from small sets, so each column converts every distinct cell once (a memo per
column) and the rest of its cells are dictionary look-ups. Only the converted values of a
chunk's good rows travel on, as one list per staged field, and the COPY text of the staging
table is written from those lists, again with a memo per field.

A bad value in one field never costs the whole row: the cell is left empty and the row
carries a note naming the column and why (the error report lists it). A phone number that
cannot be read is such a field too: stored numbers are all valid, so an unreadable one could
match no contact anyway. Only a refused email or external id refuses the row, since the row
could then land on the wrong contact or a duplicate; and a row left with nothing to know the
person by (no name, email or phone) is refused, naming what was left out. Rows are checked
in the mapping's column order and the first column that refuses a row names its error, as a
person reading the row left to right would expect.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from ..fields import CUSTOM_PREFIX
from ..normalize import normalize_phone, phone_region
from .reader import is_data_row
from .values import (
    _ESCAPED_LEADS,
    _SPLIT_MULTI,
    dumps,
    parse_country,
)

# A memo is dropped when it grows past this many cells (a column of unique values gains
# nothing from it and must not hold a whole file in memory).
MEMO_LIMIT = 50_000
# Targets whose cells add up instead of replacing each other, and are never "blank values".
_GATHERED = {"tags", "other_emails", "note", "full_name"}
# Targets that only feed the company of a row.
COMPANY_TARGETS = {"company", "company_name", "company_domain", "company_website"}
# Targets that decide which contact a row is: a cell of these that is refused refuses the
# row; any other refused cell is left empty and noted.
ROW_KEYS = frozenset({"email", "external_id"})
IDENTITY_MESSAGE = "The row has no name, email or phone."


class _Refused:
    """A memoised refusal: the message a cell's conversion raised."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


@dataclass
class Converted:
    """A chunk converted: the good rows' numbers and staged values (one list per staged
    field, aligned with `numbers`), (row number, message) for every refused row, and
    (row number, message) for the good rows that left some cells out."""

    numbers: list[int]
    columns: dict[str, list]
    bad: list[tuple[int, str]]
    lanes: list[int] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)

    def notes_by_lane(self, lanes: list[int]) -> dict[int, list[tuple[int, str]]]:
        """The notes of each of `lanes`: a note goes with its row's merge lane, which
        drops it should the merge refuse the row after all."""
        out: dict[int, list] = {lane: [] for lane in lanes}
        if self.notes:
            lane_of = dict(zip(self.numbers, self.lanes or [0] * len(self.numbers), strict=True))
            for number, message in self.notes:
                out.setdefault(lane_of.get(number, 0), []).append((number, message))
        return out

    @property
    def tag_names(self) -> set[str]:
        """The good rows' tags, lower-cased."""
        tags = self.columns.get("tags") or ()
        return {t.lower() for row in set(tags) if row for t in row}

    def row(self, index: int) -> dict:
        return {name: values[index] for name, values in self.columns.items()}


def _memoised(convert: Callable, memo: dict, message_prefix: str):
    """`convert` with a memo: returns the value, or a _Refused carrying the row's message."""

    def run(raw):
        found = memo.get(raw, memo)
        if found is not memo:
            return found
        try:
            found = convert(raw)
        except ValidationError as exc:
            found = _Refused(f"{message_prefix}{' '.join(exc.messages)}")
        except ValueError:
            found = _Refused(f"{message_prefix}“{raw}” is not a number.")
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[raw] = found
        return found

    return run


def _note_text(notes: list[str]) -> str:
    """One report message for the cells a good row left out."""
    tail = "This value was left out." if len(notes) == 1 else "These values were left out."
    return f"{' '.join(notes)} {tail}"


def _cleaned(raw: str) -> str:
    raw = raw.strip()
    if "\x00" in raw:
        raw = raw.replace("\x00", "")  # PostgreSQL text cannot hold NUL characters
    if raw[:1] == "'" and raw[1:2] in _ESCAPED_LEADS:
        return raw[1:]  # our own error report (and Excel) escape formulas this way
    return raw


class ChunkConverter:
    """Converts chunks of (row number, cells) for one import. Built from the row converter
    of values.py, which knows the mapping, members, custom fields and choice tables."""

    def __init__(self, rows, *, stage_fields: list[str], default_tags: list[str], lanes: int):
        self.rows = rows  # values.RowConverter: the per-cell rules
        self.width = len(rows.headers)
        self.stage_fields = stage_fields
        self.default_tags = default_tags
        self.lanes = lanes
        self._memos: dict = {}
        self._phone_memo: dict = {}

    def _column(self, records, index: int) -> list[str]:
        """The column's cells, stripped; the rare cell with a NUL character or an escaped
        formula lead is cleaned one by one (one look at the joined column finds them)."""
        cells = [cells[index].strip() if index < len(cells) else "" for _, cells in records]
        joined = "\x1f".join(cells)
        if "\x00" in joined or "'" in joined:
            cells = [_cleaned(cell) for cell in cells]
        return cells

    def _cell_function(self, target: str, header: str) -> Callable:
        rows = self.rows
        if target.startswith(CUSTOM_PREFIX):
            key = target[len(CUSTOM_PREFIX) :]
            return lambda raw: rows.custom_value(key, raw)
        return lambda raw: rows.cell_value(target, header, raw)

    # Chunks --------------------------------------------------------------------------------
    def convert(self, raw_records) -> Converted:
        """Convert a chunk of (row number, cells); blank and footer records are left out
        (they count as records of the chunk, not as rows)."""
        records = [(n, cells) for n, cells in raw_records if is_data_row(cells, self.width)]
        count = len(records)
        errors: list[str | None] = [None] * count
        notes: list[list[str] | None] = [None] * count  # per row: cells left out, and why
        plain: dict[str, list] = {}  # staged field (or company target) -> value per row
        gathered: dict[str, list] = {}  # multi-column target -> list of values per row
        custom: dict[str, list] = {}  # custom key -> value per row
        regions = self._regions(records)
        for index, target, header in self.rows.plan:
            cells = self._column(records, index)
            prefix = f"{header}: "
            if target in ("phone", "mobile"):
                column = plain.setdefault(target, [None] * count)
                self._phones(cells, regions, prefix, errors, notes, column)
                continue
            memo = self._memos.setdefault((index, target), {})
            run = _memoised(self._cell_function(target, header), memo, prefix)
            refuses_row = target in ROW_KEYS
            if target.startswith(CUSTOM_PREFIX):
                column, gather, skip_blank = custom.setdefault(target, [None] * count), False, False
            elif target in _GATHERED:
                column, gather, skip_blank = gathered.setdefault(target, [None] * count), True, True
            else:
                name = "owner_id" if target == "owner" else target
                column, gather, skip_blank = plain.setdefault(name, [None] * count), False, True
            for i, raw in enumerate(cells):
                if errors[i] is not None or (skip_blank and not raw):
                    continue
                value = memo.get(raw, memo)
                if value is memo:
                    value = run(raw)
                if type(value) is _Refused:
                    if refuses_row:
                        errors[i] = value.message
                    elif notes[i] is None:
                        notes[i] = [value.message]
                    else:
                        notes[i].append(value.message)
                elif value is None:
                    continue
                elif gather:
                    if column[i] is None:
                        column[i] = [value]
                    else:
                        column[i].append(value)
                else:
                    column[i] = value  # a later column of the same target wins
        out = self._assemble(count, plain, gathered, custom)
        self._check_identity(out, errors, notes)
        return self._split(records, errors, notes, out)

    def _regions(self, records) -> list | None:
        """The region each row's phone numbers are read in: its country, else the org's."""
        rows = self.rows
        default = phone_region(org=rows.org)
        if rows.region_column is None:
            return None
        memo = self._memos.setdefault("region", {})
        out = []
        for cell in self._column(records, rows.region_column):
            region = memo.get(cell, memo)
            if region is memo:
                try:
                    region = parse_country(cell) if cell else None
                except ValidationError:
                    region = None
                region = phone_region(country=region or "") or default
                memo[cell] = region
            out.append(region)
        return out

    def _phones(self, cells, regions, prefix, errors, notes, column) -> None:
        default = phone_region(org=self.rows.org)
        memo = self._phone_memo
        for i, raw in enumerate(cells):
            if errors[i] is not None or not raw:
                continue
            region = regions[i] if regions is not None else default
            found = memo.get((raw, region), memo)
            if found is memo:
                several = ";" in raw or "|" in raw or ":::" in raw
                first = _SPLIT_MULTI.split(raw)[0] if several else raw
                try:
                    found = normalize_phone(first, region=region)
                except ValidationError as exc:
                    found = _Refused(f"{prefix}{' '.join(exc.messages)}")
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                memo[(raw, region)] = found
            if type(found) is _Refused:
                if notes[i] is None:
                    notes[i] = [found.message]
                else:
                    notes[i].append(found.message)
            else:
                column[i] = found

    def _assemble(self, count: int, plain: dict, gathered: dict, custom: dict) -> dict:
        """The staged fields of every row, from the converted columns."""
        out: dict[str, list] = {name: [None] * count for name in self.stage_fields}
        for name, column in plain.items():
            if name in out and name != "email":
                out[name] = column
        # An email cell may hold several addresses: the first is the email, the rest extra.
        others: list = gathered.get("other_emails") or [None] * count
        emails = plain.get("email")
        if emails is not None:
            primary = out["email"]
            for i, value in enumerate(emails):
                if value is not None:
                    primary[i], extra = value
                    if extra:
                        others[i] = [extra, *(others[i] or ())]
        if "other_emails" in out:
            column = out["other_emails"]
            for i, groups in enumerate(others):
                if groups:
                    unique = dict.fromkeys(e for group in groups for e in group if e)
                    column[i] = dumps(list(unique)) if unique else None
        names = gathered.get("full_name")
        if names is not None:
            first, last = out["first_name"], out["last_name"]
            for i, parts in enumerate(names):
                if parts:
                    given, family = parts[-1]
                    if first[i] is None:
                        first[i] = given[:150] or None
                    if last[i] is None:
                        last[i] = family[:150] or None
        if "note" in out and "note" in gathered:
            out["note"] = ["\n\n".join(n) if n else None for n in gathered["note"]]
        if "tags" in out:
            out["tags"] = self._tags(gathered.get("tags"), count)
        if "company_key" in out:
            self._company(plain, out, count)
        if "custom" in out and custom:
            out["custom"] = self._custom_json(custom, count)
        return out

    def _tags(self, per_row, count: int) -> list:
        defaults = self.default_tags
        memo = self._memos.setdefault("tags", {})
        out = [None] * count
        for i in range(count):
            cells = per_row[i] if per_row is not None else None
            key = tuple(t for tags in cells for t in tags) if cells else ()
            found = memo.get(key, memo)
            if found is memo:
                seen: set[str] = set()
                found = tuple(
                    t for t in (*key, *defaults) if not ((k := t.lower()) in seen or seen.add(k))
                )
                found = found or None
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                memo[key] = found
            out[i] = found
        return out

    def _company(self, values, out, count: int) -> None:
        names = [None] * count
        for target in ("company", "company_name"):
            for i, value in enumerate(values.get(target) or ()):
                if value is not None:
                    names[i] = value
        domains = [None] * count
        for target in ("company_domain", "company_website"):
            for i, value in enumerate(values.get(target) or ()):
                if value is not None and domains[i] is None:
                    domains[i] = value
        memo = self._memos.setdefault("company", {})
        for i in range(count):
            key = (names[i], domains[i])
            found = memo.get(key, memo)
            if found is memo:
                domain = domains[i]
                name = names[i] or domain
                company_key = domain or (names[i].lower() if names[i] else None)
                found = (name, domain, company_key)
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                memo[key] = found
            out["company_name"][i], out["company_domain"][i], out["company_key"][i] = found

    def _custom_json(self, custom: dict, count: int) -> list:
        """One JSON object per row, written from memoised '"key":value' pieces."""
        memo = self._memos.setdefault("custom_json", {})
        columns = [(k[len(CUSTOM_PREFIX) :], column) for k, column in custom.items()]
        out = [None] * count
        for i in range(count):
            pieces = []
            for key, column in columns:
                value = column[i]
                if value is None:
                    continue
                piece = memo.get((key, value), None) if type(value) is not float else None
                if piece is None:
                    piece = f"{dumps(key)}:{dumps(value)}"
                    if type(value) is not float and len(memo) < MEMO_LIMIT:
                        memo[(key, value)] = piece
                pieces.append(piece)
            if pieces:
                out[i] = "{" + ",".join(pieces) + "}"
        return out

    @staticmethod
    def _check_identity(out, errors, notes) -> None:
        """A contact needs something to be known by; when what was left out would have been
        that, the refusal says so."""
        keys = [out[k] for k in ("email", "first_name", "last_name", "phone", "mobile") if k in out]
        for i in range(len(errors)):
            if errors[i] is None and not any(column[i] for column in keys):
                errors[i] = " ".join([IDENTITY_MESSAGE, *(notes[i] or ())])

    def _split(self, records, errors, notes, out) -> Converted:
        good = [i for i, e in enumerate(errors) if e is None]
        bad = [(records[i][0], errors[i]) for i, e in enumerate(errors) if e is not None]
        if len(good) != len(records):
            out = {name: [column[i] for i in good] for name, column in out.items()}
        numbers = [records[i][0] for i in good]
        converted = Converted(numbers, out, bad)
        converted.notes = [(records[i][0], _note_text(notes[i])) for i in good if notes[i]]
        converted.lanes = self._lanes(converted)
        return converted

    def _lanes(self, converted: Converted) -> list[int]:
        """The merge lane of each good row, from its match key (email, else phone, else
        mobile, else external id): rows that could be one contact always share a lane."""
        if self.lanes == 1:
            return [0] * len(converted.numbers)
        keys = [
            converted.columns.get(name) or [None] * len(converted.numbers)
            for name in ("email", "phone", "mobile", "external_id")
        ]
        lanes = self.lanes
        return [
            zlib.crc32((e or p or m or x or str(n)).encode()) % lanes
            for n, e, p, m, x in zip(converted.numbers, *keys, strict=True)
        ]


# COPY text -----------------------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})
NULL = "\\N"


def _text(value) -> str:
    text = value if type(value) is str else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text or "\x00" in text:
        return text.translate(_ESCAPES)
    return text


def _array(items) -> str:
    inner = ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in items)
    return _text("{" + inner + "}")


def _field_text(sql_type: str) -> Callable:
    if sql_type == "boolean":
        return lambda v: "t" if v else "f"
    if sql_type == "timestamptz":
        return lambda v: v.isoformat()
    if sql_type == "text[]":
        return _array
    return _text


def copy_parts(converted: Converted, types: dict[str, str], lanes: list[int]) -> dict:
    """{lane: (COPY text, rows)} for each of `lanes`: the rows of that merge lane as
    tab-separated lines (\\N for NULL), row number first, then the fields of `types` in
    order."""
    columns = []
    for name, sql_type in types.items():
        values = converted.columns.get(name)
        if values is None:
            columns.append([NULL] * len(converted.numbers))
            continue
        render = _field_text(sql_type)
        memo: dict = {None: NULL}
        rendered = []
        for value in values:
            hashable = type(value) is not float
            text = memo.get(value) if hashable else None
            if text is None:
                text = render(value)
                if hashable and len(memo) < MEMO_LIMIT:
                    memo[value] = text
            rendered.append(text)
        columns.append(rendered)
    lines = ["\t".join(row) for row in zip(map(str, converted.numbers), *columns, strict=True)]
    if len(lanes) == 1 and all(lane == lanes[0] for lane in converted.lanes):
        return {lanes[0]: (("\n".join(lines) + "\n").encode() if lines else b"", len(lines))}
    out = {}
    for lane in lanes:
        mine = [line for line, of in zip(lines, converted.lanes, strict=True) if of == lane]
        out[lane] = (("\n".join(mine) + "\n").encode() if mine else b"", len(mine))
    return out
