"""Convert a chunk of records column by column, and write it out as COPY text.

A file repeats itself: first names, job titles, cities, countries, stages, tags and custom
choices come from small sets, so each column converts every distinct cell once (a memo per
column) and the rest of its cells are dictionary look-ups. Only the converted values of a
chunk's good rows travel on, as one list per staged field, and the COPY text of the staging
table is written from those lists, again with a memo per field.

A bad value in one field never costs the whole row: the row is kept and carries a warning
per field, (column, kind, cell, message) in the mapping's column order (warning_kinds.py
names the kinds). The value is left out, except that a text longer than its field is cut to
fit, and a phone number the phone library cannot read is kept as typed and flagged
unverified (it is never used to match a contact). A row is refused only when nothing is
left to know the person by (no name, usable email or phone); its message names what was
left out. The per-cell cost of a warning is paid once per distinct cell (the memo keeps the
verdict) and the hot path only looks at the memoised value's type.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from ..fields import CUSTOM_PREFIX
from ..models import Contact
from ..normalize import normalize_email, normalize_phone, phone_region
from ..validators import clean_twitter_handle
from .reader import is_data_row
from .spread import (
    fall_back_on_other_addresses,
    plan_spread,
    route_phone_cells,
    spread_combined,
)
from .values import (
    _ESCAPED_LEADS,
    _SPLIT_MULTI,
    DEFAULT_OWNER,
    TAG_MAX,
    RowConverter,
    dumps,
    parse_country,
    split_full_name,
    tag_names,
)
from .warning_kinds import (
    CHOICE_UNMATCHED,
    EMAIL_LEFT_OUT,
    OUTCOME,
    OWNER_UNMATCHED,
    PHONE_AS_TYPED,
    TRUNCATED,
    VALUE_LEFT_OUT,
)

# A memo is dropped when it grows past this many cells (a column of unique values gains
# nothing from it and must not hold a whole file in memory).
MEMO_LIMIT = 50_000
# Targets whose cells add up instead of replacing each other, and are never "blank values".
_GATHERED = {"tags", "other_emails", "note", "full_name"}
# Targets that only feed the company of a row.
COMPANY_TARGETS = {"company", "company_name", "company_domain", "company_website"}
IDENTITY_MESSAGE = "The row has no name, email or phone."
# A phone number that cannot be read is kept as typed up to the column's length.
PHONE_AS_TYPED_MAX = Contact._meta.get_field("phone").max_length
# ...and only when it holds a digit: "n/a" or "ask reception" is no phone number at all.
PHONE_AS_TYPED_MIN_DIGITS = 1
NAME_MAX = 150  # first_name / last_name
# Text targets cut to fit their column, by length.
_TEXT_LIMITS = {
    **{t: Contact._meta.get_field(t).max_length for t in RowConverter.TEXT_FIELDS},
    "twitter_handle": Contact._meta.get_field("twitter_handle").max_length,
    "company": 200,
    "company_name": 200,
    "external_id": 200,
}


class _Refused:
    """A memoised refusal: the warning's kind and the message a cell's conversion raised
    (the value is left out)."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: str, message: str):
        self.kind = kind
        self.message = message


class _Warned:
    """A memoised value kept with a warning: cut to fit, or only part of the cell."""

    __slots__ = ("kind", "message", "value")

    def __init__(self, value, kind: str, message: str):
        self.value = value
        self.kind = kind
        self.message = message


def _left_out(kind: str, messages) -> _Refused:
    return _Refused(kind, f"{' '.join(messages)} {OUTCOME[kind]}")


# One warning of a kept row: (column header, kind, the cell as in the file, message).
Warning = tuple[str, str, str, str]


@dataclass
class Converted:
    """A chunk converted: the good rows' numbers and staged values (one list per staged
    field, aligned with `numbers`), (row number, message) for every refused row, and
    (row number, [warning, ...]) for the good rows with warnings."""

    numbers: list[int]
    columns: dict[str, list]
    bad: list[tuple[int, str]]
    lanes: list[int] = field(default_factory=list)
    warnings: list[tuple[int, list[Warning]]] = field(default_factory=list)

    def warnings_by_lane(self, lanes: list[int]) -> dict[int, list]:
        """The warnings of each of `lanes`: a row's warnings go with its merge lane, which
        drops them should the merge refuse the row after all."""
        out: dict[int, list] = {lane: [] for lane in lanes}
        if self.warnings:
            lane_of = dict(zip(self.numbers, self.lanes or [0] * len(self.numbers), strict=True))
            for number, found in self.warnings:
                out.setdefault(lane_of.get(number, 0), []).append((number, found))
        return out

    @property
    def tag_names(self) -> set[str]:
        """The good rows' tags, lower-cased."""
        tags = self.columns.get("tags") or ()
        return {t.lower() for row in set(tags) if row for t in row}

    def row(self, index: int) -> dict:
        return {name: values[index] for name, values in self.columns.items()}


def _memoised(convert: Callable, memo: dict, kind: str):
    """`convert` with a memo: returns the value, a _Warned, or a _Refused of `kind`."""

    def run(raw):
        found = memo.get(raw, memo)
        if found is not memo:
            return found
        try:
            found = convert(raw)
        except ValidationError as exc:
            found = _left_out(kind, exc.messages)
        except ValueError:
            found = _left_out(kind, [f"“{raw}” is not a number."])
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[raw] = found
        return found

    return run


def warning_text(found: list[Warning]) -> str:
    """One line for a row's warnings: "Column: message" per field."""
    return " ".join(f"{column}: {message}" for column, _, _, message in found)


def _emails(raw: str, *, primary: bool):
    """The addresses of an email cell: (first, others) for the email column, a tuple for
    other emails. A bad address is left out with a warning; the good ones are kept."""
    good, bad = [], []
    for part in _SPLIT_MULTI.split(raw):
        if part:
            try:
                good.append(normalize_email(part))
            except ValidationError as exc:
                bad.extend(exc.messages)
    if not good:
        return _left_out(EMAIL_LEFT_OUT, bad) if bad else None
    value = (good[0], tuple(good[1:])) if primary else tuple(good)
    if bad:
        return _Warned(value, EMAIL_LEFT_OUT, f"{' '.join(bad)} {OUTCOME[EMAIL_LEFT_OUT]}")
    return value


def _reported_if_empty(convert: Callable, kind: str, to_default=None) -> Callable:
    """A choice or owner cell matched to nothing on the match-values step ("leave empty",
    "default owner") is left out, and the report still says so: a value of the file that
    was not stored is never silent."""
    what = "a member you may give contacts to" if kind == OWNER_UNMATCHED else "a choice"
    message = f"“{{}}” was not matched to {what}. {OUTCOME[kind]}"

    def run(raw):
        value = convert(raw)
        if value is None and raw:
            return _Refused(kind, message.format(raw))
        if to_default is not None and raw in to_default:  # the default owner stands in
            return _Warned(value, kind, message.format(raw))
        return value

    return run


def _cut_message(limit: int) -> str:
    return f"Longer than the {limit} characters this field holds: cut to fit."


def _was_cut(target: str, raw: str, value) -> int:
    """The limit a converted text value was cut to, or 0 when it is whole."""
    if target == "full_name":
        if len(raw) > NAME_MAX and any(len(p) > NAME_MAX for p in split_full_name(raw)):
            return NAME_MAX
        return 0
    if target == "tags":
        if len(raw) > TAG_MAX and any(len(t) > TAG_MAX for t in tag_names(raw, None)):
            return TAG_MAX
        return 0
    limit = _TEXT_LIMITS[target]
    if len(raw) <= limit:
        return 0
    if target == "twitter_handle":
        return limit if len(clean_twitter_handle(raw)) > limit else 0
    return limit


def _cleaned(raw: str) -> str:
    raw = raw.strip()
    if "\x00" in raw:
        raw = raw.replace("\x00", "")  # PostgreSQL text cannot hold NUL characters
    if raw[:1] == "'" and raw[1:2] in _ESCAPED_LEADS:
        return raw[1:]  # our own error report (and Excel) escape formulas this way
    return raw


def header_key(headers: list[str]) -> list[str]:
    return [h.strip().casefold() for h in headers] or [""]


def repeats_header(cells, header: list[str]) -> bool:
    if not cells or cells[0].strip().casefold() != header[0]:
        return False  # the cheap look that settles nearly every row
    return [c.strip().casefold() for c in cells[: len(header)]] == header


def data_records(raw_records, header: list[str], width: int) -> list:
    """The (row number, cells) that hold people: not blank, no footer, not the header
    written again, and not a group's title above it (monday.com exports each group of a
    board under its own title and header)."""
    raw_records = list(raw_records)
    return [
        (n, cells)
        for k, (n, cells) in enumerate(raw_records)
        if is_data_row(cells, width)
        and not repeats_header(cells, header)
        and not (
            k + 1 < len(raw_records)
            and sum(1 for c in cells if c.strip()) == 1
            and repeats_header(raw_records[k + 1][1], header)
        )
    ]


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
        self.spread = plan_spread(rows.headers, rows.plan)
        self._header = header_key(rows.headers)

    def _column(self, records, index: int) -> list[str]:
        """The column's cells, stripped; the rare cell with a NUL character or an escaped
        formula lead is cleaned one by one (one look at the joined column finds them)."""
        cells = [cells[index].strip() if index < len(cells) else "" for _, cells in records]
        joined = "\x1f".join(cells)
        if "\x00" in joined or "'" in joined:
            cells = [_cleaned(cell) for cell in cells]
        return cells

    def _cell_function(self, target: str, header: str) -> tuple[Callable, str]:
        """The conversion of one cell of `target`, and the kind of warning a refused cell
        gives."""
        rows = self.rows
        if target.startswith(CUSTOM_PREFIX):
            key = target[len(CUSTOM_PREFIX) :]
            definition = rows.definitions.get(key)
            if getattr(definition, "field_type", "") == "list":
                custom = _reported_if_empty(
                    lambda raw: rows.custom_value(key, raw), CHOICE_UNMATCHED
                )
                return custom, CHOICE_UNMATCHED
            return (lambda raw: rows.custom_value(key, raw)), VALUE_LEFT_OUT
        if target in ("email", "other_emails"):
            primary = target == "email"
            return (lambda raw: _emails(raw, primary=primary)), EMAIL_LEFT_OUT
        if target == "owner" or target in RowConverter.CHOICE_FIELDS:
            kind = OWNER_UNMATCHED if target == "owner" else CHOICE_UNMATCHED
            matched = rows.value_map.get(header) or {}
            to_default = {v for v, stored in matched.items() if stored in ("", DEFAULT_OWNER)}
            convert = _reported_if_empty(
                lambda raw: rows.cell_value(target, header, raw),
                kind,
                to_default if target == "owner" else None,
            )
            return convert, kind
        kind = VALUE_LEFT_OUT
        if target in _TEXT_LIMITS or target in ("full_name", "tags"):

            def cut_to_fit(raw):
                value = rows.cell_value(target, header, raw)
                limit = _was_cut(target, raw, value)
                return _Warned(value, TRUNCATED, _cut_message(limit)) if limit else value

            return cut_to_fit, kind
        return (lambda raw: rows.cell_value(target, header, raw)), kind

    # Chunks --------------------------------------------------------------------------------
    def convert(self, raw_records) -> Converted:
        """Convert a chunk of (row number, cells); blank and footer records are left out
        (they count as records of the chunk, not as rows), and so are the header written
        again and a group's title above it (monday.com exports each group of a board so)."""
        records = data_records(raw_records, self._header, self.width)
        count = len(records)
        errors: list[str | None] = [None] * count
        warns: list[list[Warning] | None] = [None] * count  # per row, in column order
        plain: dict[str, list] = {}  # staged field (or company target) -> value per row
        gathered: dict[str, list] = {}  # multi-column target -> list of values per row
        custom: dict[str, list] = {}  # custom key -> value per row
        regions = self._regions(records)
        for index, target, header in self.rows.plan:
            cells = self._column(records, index)
            if target in ("phone", "mobile"):
                type_index = self.spread.phone_types.get(index)
                if type_index is None:
                    routes = ((target, cells),)
                else:  # the row's "- Type" cell says phone or mobile
                    phones, mobiles = route_phone_cells(cells, self._column(records, type_index))
                    routes = (("phone", phones), ("mobile", mobiles))
                for name, these in routes:
                    column = plain.setdefault(name, [None] * count)
                    flags = plain.setdefault(f"{name}_unverified", [None] * count)
                    if type_index is not None:
                        these = _first_number_kept(these, column, header, name, warns)
                    self._phones(these, regions, header, warns, column, flags)
                continue
            memo = self._memos.setdefault((index, target), {})
            function, kind = self._cell_function(target, header)
            run = _memoised(function, memo, kind)
            if target.startswith(CUSTOM_PREFIX):
                column, gather, skip_blank = custom.setdefault(target, [None] * count), False, False
            elif target in _GATHERED:
                column, gather, skip_blank = gathered.setdefault(target, [None] * count), True, True
            else:
                name = "owner_id" if target == "owner" else target
                column, gather, skip_blank = plain.setdefault(name, [None] * count), False, True
            for i, raw in enumerate(cells):
                if skip_blank and not raw:
                    continue
                value = memo.get(raw, memo)
                if value is memo:
                    value = run(raw)
                kind = type(value)
                if kind is _Refused or kind is _Warned:
                    found = (header, value.kind, raw, value.message)
                    if warns[i] is None:
                        warns[i] = [found]
                    else:
                        warns[i].append(found)
                    if kind is _Refused:
                        continue
                    value = value.value
                if value is None:
                    continue
                if gather:
                    if column[i] is None:
                        column[i] = [value]
                    else:
                        column[i].append(value)
                else:
                    column[i] = value  # a later column of the same target wins
        spread_combined(plain, count)
        fall_back_on_other_addresses(
            self.spread,
            plain,
            count,
            cells_of=lambda index: self._column(records, index),
            value_of=self._address_value,
        )
        out = self._assemble(count, plain, gathered, custom)
        self._check_identity(out, errors, warns)
        return self._split(records, errors, warns, out)

    def _address_value(self, name: str, cell: str):
        """A cell of a fallback address family, read as its field (None if it can't be)."""
        if name == "country":
            try:
                return parse_country(cell)
            except ValidationError:
                return None
        return cell[: _TEXT_LIMITS[name]]

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

    def _phones(self, cells, regions, header, warns, column, flags) -> None:
        """A valid number in E.164 (flag false); one the phone library refuses as typed
        (flag true, with a warning); the cell's other numbers are left out with one."""
        default = phone_region(org=self.rows.org)
        memo = self._phone_memo
        for i, raw in enumerate(cells):
            if not raw:
                continue
            region = regions[i] if regions is not None else default
            found = memo.get((raw, region), memo)
            if found is memo:
                found = _phone_value(raw, region)
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                memo[(raw, region)] = found
            if type(found) is str:
                column[i] = found
                flags[i] = False
                continue
            value, unverified, problems = found
            if value is not None:
                column[i] = value
                flags[i] = unverified
            for kind, message in problems:
                if warns[i] is None:
                    warns[i] = [(header, kind, raw, message)]
                else:
                    warns[i].append((header, kind, raw, message))

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
        # A lead or organization named after the person (Close and Pipedrive name a private
        # person's lead so) is not a company: the name is the contact's own.
        first, last = out.get("first_name"), out.get("last_name")
        if first is not None and last is not None:
            for i, name in enumerate(names):
                if name and domains[i] is None and (first[i] or last[i]):
                    person = f"{first[i] or ''} {last[i] or ''}".strip()
                    if name.casefold() == person.casefold():
                        names[i] = None
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
    def _check_identity(out, errors, warns) -> None:
        """A contact needs something to be known by (a name, a usable email or a phone
        number, even one kept as typed); when what was left out would have been that, the
        refusal says so."""
        keys = [out[k] for k in ("email", "first_name", "last_name", "phone", "mobile") if k in out]
        for i in range(len(errors)):
            if errors[i] is None and not any(column[i] for column in keys):
                found = warns[i]
                errors[i] = IDENTITY_MESSAGE
                if found:
                    errors[i] += " " + warning_text(found)

    def _split(self, records, errors, warns, out) -> Converted:
        good = [i for i, e in enumerate(errors) if e is None]
        bad = [(records[i][0], errors[i]) for i, e in enumerate(errors) if e is not None]
        if len(good) != len(records):
            out = {name: [column[i] for i in good] for name, column in out.items()}
        numbers = [records[i][0] for i in good]
        converted = Converted(numbers, out, bad)
        converted.warnings = [(records[i][0], warns[i]) for i in good if warns[i]]
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


def _first_number_kept(cells, column, header, name, warns) -> list[str]:
    """A typed phone column's cells for `name`, blank where an earlier column already gave
    the row that number: the first is kept and the report names the other."""
    out = cells
    for i, cell in enumerate(cells):
        if cell and column[i] is not None:
            if out is cells:
                out = list(cells)
            out[i] = ""
            message = f"The row's {name} is already “{column[i]}”. {OUTCOME[VALUE_LEFT_OUT]}"
            found = (header, VALUE_LEFT_OUT, cell, message)
            if warns[i] is None:
                warns[i] = [found]
            else:
                warns[i].append(found)
    return out


def _phone_value(raw: str, region):
    """The memoised verdict on a phone cell: the E.164 number (str) when the cell holds one
    valid number, else (value or None, unverified, ((kind, message), ...))."""
    several = ";" in raw or "|" in raw or ":::" in raw
    parts = [p for p in _SPLIT_MULTI.split(raw) if p] if several else [raw]
    if not parts:
        return None, False, ()
    first, rest = parts[0], parts[1:]
    problems = []
    try:
        value, unverified = normalize_phone(first, region=region), False
    except ValidationError as exc:
        typed = " ".join(first.split())
        if sum(c.isdigit() for c in typed) < PHONE_AS_TYPED_MIN_DIGITS:
            # "n/a", "ask reception", "-": no number was typed, so none is kept.
            value, unverified = None, False
            problems.append(
                (VALUE_LEFT_OUT, f"“{typed[:80]}” holds no phone number. {OUTCOME[VALUE_LEFT_OUT]}")
            )
        elif len(typed) > PHONE_AS_TYPED_MAX:
            value, unverified = None, False
            problems.append(
                (
                    VALUE_LEFT_OUT,
                    f"“{typed[:80]}…” is too long for a phone number "
                    f"(at most {PHONE_AS_TYPED_MAX} characters). {OUTCOME[VALUE_LEFT_OUT]}",
                )
            )
        else:
            value, unverified = typed, True
            problems.append((PHONE_AS_TYPED, f"{' '.join(exc.messages)} {OUTCOME[PHONE_AS_TYPED]}"))
    if rest:
        others = ", ".join(f"“{p}”" for p in rest)
        problems.append(
            (VALUE_LEFT_OUT, f"Only the first number is kept; {others} {OUTCOME[VALUE_LEFT_OUT]}")
        )
    if not problems:
        return value
    return value, unverified, tuple(problems)


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
