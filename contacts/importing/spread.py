"""Cells whose meaning depends on their row, not only on their column.

The mapping sends each column to one field. Real exports need three things more, decided
row by row:

- A phone column beside a "- Type" (or "- Label") column: Google writes "Phone 2 - Type"
  = Mobile next to "Phone 2 - Value". The row's type says whether the number is a mobile.
- An address in a second family: a contact with no business address in an Outlook or
  Salesforce file often has a home (or "Other…") one. When the row's mapped address is
  empty, the next family that has one fills it, whole; the columns stay mapped as they
  were (their custom fields keep their values too), so nothing is moved away.
- One cell that fills several fields (COMBINED_TARGETS): a whole address, or vCard's
  "Company;Department".

`plan_spread` works out the first two from the headers once per import; convert/
applies them per chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .mapper import COMBINED_TARGETS, _address_part, normalize_header

ADDRESS = COMBINED_TARGETS["full_address"]
_MOBILE_WORDS = {
    "mobile", "cell", "cellular", "cell phone", "mobile phone", "handy", "mobil",
    "portable", "movil", "cellulare", "gsm", "iphone",
}  # fmt: skip
_NUMBERED_VALUE = re.compile(r"^(.+ \d+)(?: (?:value|number))?$")  # "Phone 2" too


@dataclass
class Spread:
    # A phone column's index -> the index of the column that types it.
    phone_types: dict[int, int] = field(default_factory=dict)
    # Address families to fall back on, best first: [(column index, field), ...] each.
    address_fallbacks: list[list[tuple[int, str]]] = field(default_factory=list)


def is_mobile_type(text: str) -> bool:
    words = normalize_header(text).replace("*", "").strip()
    return words in _MOBILE_WORDS or words.split(" ")[0] in _MOBILE_WORDS


def plan_spread(headers: list[str], plan: list[tuple[int, str, str]]) -> Spread:
    """What of the rows' own words the import must read, for these headers and this plan
    ((column index, target, header) per mapped column)."""
    norms = [normalize_header(h) for h in headers]
    spread = Spread()
    for index, target, _ in plan:
        if target not in ("phone", "mobile"):
            continue
        found = _NUMBERED_VALUE.match(norms[index])
        if not found:
            continue
        for word in ("type", "label"):
            name = f"{found.group(1)} {word}"
            if name in norms:
                spread.phone_types[index] = norms.index(name)
                break
    mapped_address = {index for index, target, _ in plan if target in ADDRESS}
    if not mapped_address:
        return spread
    main = {_address_part(norms[i])[0] for i in mapped_address if _address_part(norms[i])}
    families: dict[str, tuple[int, list]] = {}
    for i, norm in enumerate(norms):
        found = _address_part(norm)
        if found is None or i in mapped_address:
            continue
        family, _, rank, part = found
        if family in main or not part or part not in ADDRESS:
            continue
        families.setdefault(family, (rank, []))[1].append((i, part))
    order = sorted(families.values(), key=lambda f: f[0])
    spread.address_fallbacks = [cols for _, cols in order if any(p == "street" for _, p in cols)]
    return spread


def route_phone_cells(cells: list[str], types: list[str]) -> tuple[list[str], list[str]]:
    """The column's cells split in two by the row's type: (other numbers, mobiles)."""
    phones, mobiles = [], []
    for cell, kind in zip(cells, types, strict=True):
        mobile = bool(cell) and bool(kind) and is_mobile_type(kind)
        phones.append("" if mobile else cell)
        mobiles.append(cell if mobile else "")
    return phones, mobiles


def spread_combined(plain: dict[str, list], count: int) -> None:
    """Cells of a combined target, split into their fields; a field a column of its own
    fills keeps that column's value."""
    for target, fields in COMBINED_TARGETS.items():
        combined = plain.pop(target, None)
        if combined is None:
            continue
        for position, name in enumerate(fields):
            column = plain.setdefault(name, [None] * count)
            for i, parts in enumerate(combined):
                if parts is not None and column[i] is None and parts[position]:
                    column[i] = parts[position]


def fall_back_on_other_addresses(
    spread: Spread, plain: dict[str, list], count: int, cells_of, value_of
) -> None:
    """Rows whose mapped address is empty take the first other family that has a street.
    `cells_of(index)` gives a column's cells for the chunk; `value_of(field, cell)` the
    stored value of one cell (None when it can't be taken: the family is still used)."""
    if not spread.address_fallbacks:
        return
    mapped = [plain[name] for name in ADDRESS if name in plain]
    empty = [i for i in range(count) if not any(column[i] for column in mapped)]
    if not empty:
        return
    columns = {name: plain.setdefault(name, [None] * count) for name in ADDRESS}
    for family in spread.address_fallbacks:
        cells = {index: cells_of(index) for index, _ in family}
        still = []
        for i in empty:
            if not any(cells[index][i] for index, part in family if part == "street"):
                still.append(i)
                continue
            for index, part in family:
                if cells[index][i]:
                    columns[part][i] = value_of(part, cells[index][i])
        empty = still
        if not empty:
            return
