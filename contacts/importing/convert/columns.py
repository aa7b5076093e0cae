"""A chunk of records converted column by column (`ChunkConverter`) into `Converted`: the good
rows' staged values, one list per field, with the refused rows and each kept row's warnings; and
which records of a chunk hold people at all."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from ...fields import CUSTOM_PREFIX
from ...normalize import phone_region
from ..reader import is_data_row
from ..spread import fall_back_on_other_addresses, plan_spread, route_phone_cells, spread_combined
from ..values import DEFAULT_OWNER, RowConverter, dumps, parse_country
from ..warning_kinds import (
    CHOICE_UNMATCHED,
    EMAIL_LEFT_OUT,
    OWNER_UNMATCHED,
    TRUNCATED,
    VALUE_LEFT_OUT,
)
from .cells import (
    MEMO_LIMIT,
    TEXT_LIMITS,
    Refused,
    Warned,
    Warning,
    cleaned,
    cut_message,
    email_value,
    first_number_kept,
    memoised,
    phone_value,
    reported_if_empty,
    warning_text,
    was_cut,
)

# Targets whose cells add up instead of replacing each other, and are never "blank values".
_GATHERED = {"tags", "other_emails", "note", "full_name"}
# Targets that only feed the company of a row.
COMPANY_TARGETS = {"company", "company_name", "company_domain", "company_website"}
IDENTITY_MESSAGE = "The row has no name, email or phone."


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
            cells = [cleaned(cell) for cell in cells]
        return cells

    def _cell_function(self, target: str, header: str) -> tuple[Callable, str]:
        """The conversion of one cell of `target`, and the kind of warning a refused cell
        gives."""
        rows = self.rows
        if target.startswith(CUSTOM_PREFIX):
            key = target[len(CUSTOM_PREFIX) :]
            definition = rows.definitions.get(key)
            if getattr(definition, "field_type", "") == "list":
                custom = reported_if_empty(
                    lambda raw: rows.custom_value(key, raw), CHOICE_UNMATCHED
                )
                return custom, CHOICE_UNMATCHED
            return (lambda raw: rows.custom_value(key, raw)), VALUE_LEFT_OUT
        if target in ("email", "other_emails"):
            primary = target == "email"
            return (lambda raw: email_value(raw, primary=primary)), EMAIL_LEFT_OUT
        if target == "owner" or target in RowConverter.CHOICE_FIELDS:
            kind = OWNER_UNMATCHED if target == "owner" else CHOICE_UNMATCHED
            matched = rows.value_map.get(header) or {}
            to_default = {v for v, stored in matched.items() if stored in ("", DEFAULT_OWNER)}
            convert = reported_if_empty(
                lambda raw: rows.cell_value(target, header, raw),
                kind,
                to_default if target == "owner" else None,
            )
            return convert, kind
        kind = VALUE_LEFT_OUT
        if target in TEXT_LIMITS or target in ("full_name", "tags"):

            def cut_to_fit(raw):
                value = rows.cell_value(target, header, raw)
                limit = was_cut(target, raw, value)
                return Warned(value, TRUNCATED, cut_message(limit)) if limit else value

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
                        these = first_number_kept(these, column, header, name, warns)
                    self._phones(these, regions, header, warns, column, flags)
                continue
            memo = self._memos.setdefault((index, target), {})
            function, kind = self._cell_function(target, header)
            run = memoised(function, memo, kind)
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
                if kind is Refused or kind is Warned:
                    found = (header, value.kind, raw, value.message)
                    if warns[i] is None:
                        warns[i] = [found]
                    else:
                        warns[i].append(found)
                    if kind is Refused:
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
        return cell[: TEXT_LIMITS[name]]

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
                found = phone_value(raw, region)
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
