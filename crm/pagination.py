"""Keyset ("seek") pagination: the one paginator of every list (contacts, companies, the
timeline and notes, imports, the audit log).

An OFFSET page costs as much as every row before it; a keyset page seeks straight to the
position after the last row seen, so page 1 and page 20,000 cost the same. The position travels
in an opaque, signed cursor (a client cannot forge a position or a sort it was not given).

    result = page(queryset, ["-created_at", "-id"], request.GET.get("cursor"), 50)
    result.rows, result.next_cursor, result.prev_cursor

Pages link to each other with the cursor in a query parameter (`cursor` in most lists; the
audit log's `before` / `after` and the company list's `after` are kept so bookmarks work). A
cursor says which way it walks, so a view may read it from any of its parameters.

Rules for `order`: the keys all run in one direction, and the last key is unique (the id), so
every row has exactly one position. The first key may be nullable: rows without a value always
come last, in both directions, and each part is read with its own index-friendly query
(`(a, id) > (%s, %s)` row comparisons that Postgres turns into an index range).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import uuid
from dataclasses import dataclass, field

from django.core import signing
from django.db.models import BooleanField, Expression, F, Q, Value
from django.db.models.lookups import IsNull

_SALT = "crm.pagination.cursor"
NEXT = "n"
PREV = "p"


@dataclass(frozen=True)
class OrderKey:
    """One column of a sort. `name` identifies it inside cursors; `expression` is what SQL
    orders by (a field name for plain columns, or any expression such as a JSON key)."""

    name: str
    expression: object = None
    descending: bool = False
    nullable: bool = False

    def resolved(self):
        return self.expression if self.expression is not None else F(self.name)


@dataclass
class Page:
    rows: list
    next_cursor: str | None = None
    prev_cursor: str | None = None
    size: int = 50
    extra: dict = field(default_factory=dict)

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_prev(self) -> bool:
        return self.prev_cursor is not None


def order_keys(order) -> list[OrderKey]:
    keys = [
        key
        if isinstance(key, OrderKey)
        else OrderKey(name=key.lstrip("-"), descending=key.startswith("-"))
        for key in order
    ]
    if not keys:
        raise ValueError("A keyset order needs at least one key (ending with a unique one).")
    if len({key.descending for key in keys}) != 1:
        raise ValueError("All keys of a keyset order must run in the same direction.")
    if any(key.nullable for key in keys[1:]):
        raise ValueError("Only the first key of a keyset order may be nullable.")
    return keys


class RowCompare(Expression):
    """`(a, b, c) > (%s, %s, %s)`: one comparison Postgres can answer with an index range,
    unlike the equivalent chain of ORs."""

    conditional = True

    def __init__(self, lhs, operator: str, rhs):
        if operator not in ("<", ">"):
            raise ValueError(operator)
        super().__init__(output_field=BooleanField())
        self.lhs = list(lhs)
        self.operator = operator
        self.rhs = [v if hasattr(v, "resolve_expression") else Value(v) for v in rhs]

    def get_source_expressions(self):
        return [*self.lhs, *self.rhs]

    def set_source_expressions(self, exprs):
        self.lhs, self.rhs = list(exprs[: len(self.lhs)]), list(exprs[len(self.lhs) :])

    def as_sql(self, compiler, connection):
        left = [compiler.compile(expr) for expr in self.lhs]
        right = [compiler.compile(expr) for expr in self.rhs]
        sql = "({}) {} ({})".format(
            ", ".join(s for s, _ in left), self.operator, ", ".join(s for s, _ in right)
        )
        params = [p for _, ps in left for p in ps] + [p for _, ps in right for p in ps]
        return sql, params


# Cursor encoding ------------------------------------------------------------------------------


def _dump_value(value):
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"dec": str(value)}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _load_value(value):
    if isinstance(value, dict):
        if "dt" in value:
            return dt.datetime.fromisoformat(value["dt"])
        if "d" in value:
            return dt.date.fromisoformat(value["d"])
        if "dec" in value:
            return decimal.Decimal(value["dec"])
        raise ValueError("Unknown cursor value.")
    return value


def _signature(keys: list[OrderKey]) -> str:
    text = ",".join(("-" if k.descending else "") + k.name for k in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def encode_cursor(keys: list[OrderKey], values: list, direction: str) -> str:
    return signing.dumps(
        {"s": _signature(keys), "d": direction, "v": [_dump_value(v) for v in values]},
        salt=_SALT,
        compress=True,
    )


def decode_cursor(keys: list[OrderKey], cursor: str | None) -> tuple[list, str] | None:
    """(values, direction), or None for a missing, tampered or foreign-sort cursor (the
    caller then shows the first page rather than an error)."""
    if not cursor:
        return None
    try:
        data = signing.loads(cursor, salt=_SALT)
        if data.get("s") != _signature(keys) or data.get("d") not in (NEXT, PREV):
            return None
        values = [_load_value(v) for v in data["v"]]
    except (signing.BadSignature, ValueError, TypeError, KeyError, AttributeError):
        return None
    if len(values) != len(keys):
        return None
    return values, data["d"]


# Paging -------------------------------------------------------------------------------------


def _annotated(queryset, keys: list[OrderKey]):
    """Expression keys are annotated as `_keyset_<n>` so their values can be read back."""
    annotations = {
        f"_keyset_{i}": key.expression for i, key in enumerate(keys) if key.expression is not None
    }
    return queryset.annotate(**annotations) if annotations else queryset


def _row_values(row, keys: list[OrderKey]) -> list:
    values = []
    for i, key in enumerate(keys):
        attr = f"_keyset_{i}" if key.expression is not None else key.name
        value = row.get(attr) if isinstance(row, dict) else getattr(row, attr)
        values.append(value)
    return values


def _ordered(queryset, keys: list[OrderKey], forward: bool):
    descending = keys[0].descending != (not forward)
    return queryset.order_by(
        *[key.resolved().desc() if descending else key.resolved().asc() for key in keys]
    )


def _seek(keys: list[OrderKey], values: list, forward: bool) -> Q:
    ascending_in_walk = keys[0].descending != forward
    operator = ">" if ascending_in_walk else "<"
    return Q(RowCompare([k.resolved() for k in keys], operator, values))


def _segment(queryset, keys, values, forward, limit):
    if limit <= 0:
        return []
    queryset = _ordered(queryset, keys, forward)
    if values is not None:
        queryset = queryset.filter(_seek(keys, values, forward))
    return list(queryset[:limit])


def _walk(queryset, keys: list[OrderKey], values: list | None, forward: bool, limit: int) -> list:
    """Up to `limit` rows after (forward) or before (backward) the position `values`."""
    if not keys[0].nullable:
        return _segment(queryset, keys, values, forward, limit)
    first = keys[0].resolved()
    valued = queryset.filter(~Q(IsNull(first, True)))
    empty = queryset.filter(IsNull(first, True))
    rest = keys[1:]
    # A position inside the empty part has no first value: the other keys place it there.
    empty_position = values[1:] if values is not None and values[0] is None else None
    if forward:
        if empty_position is not None:
            return _segment(empty, rest, empty_position, True, limit)
        rows = _segment(valued, keys, values, True, limit)
        return rows + _segment(empty, rest, None, True, limit - len(rows))
    # Walking backward from the empty part crosses into the valued part's far end.
    if empty_position is not None:
        rows = _segment(empty, rest, empty_position, False, limit)
        return rows + _segment(valued, keys, None, False, limit - len(rows))
    return _segment(valued, keys, values, False, limit)


def page(queryset, order, cursor: str | None = None, size: int = 50) -> Page:
    """One page of `queryset` in `order`, starting at `cursor` (None: the first page)."""
    keys = order_keys(order)
    size = max(1, int(size))
    annotated = _annotated(queryset, keys)
    position = decode_cursor(keys, cursor)
    if position is None:
        values, forward = None, True
    else:
        values, forward = position[0], position[1] == NEXT
    rows = _walk(annotated, keys, values, forward, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    if forward:
        next_cursor = encode_cursor(keys, _row_values(rows[-1], keys), NEXT) if more else None
        prev_cursor = (
            encode_cursor(keys, _row_values(rows[0], keys), PREV)
            if position is not None and rows
            else None
        )
        return Page(rows, next_cursor, prev_cursor, size)
    if not more:
        # Back at the start (or rows vanished meanwhile): show a full first page instead of a
        # short one.
        return page(queryset, keys, None, size)
    rows.reverse()
    return Page(
        rows,
        next_cursor=encode_cursor(keys, _row_values(rows[-1], keys), NEXT),
        prev_cursor=encode_cursor(keys, _row_values(rows[0], keys), PREV),
        size=size,
    )


def count_up_to(queryset, cap: int = 10_000) -> tuple[int, bool]:
    """(count, exact): counts at most `cap` + 1 rows, so a million-row table costs what
    `cap` rows cost. `exact` is False when there are more than `cap`."""
    found = queryset.order_by().values("pk")[: cap + 1].count()
    return (found, True) if found <= cap else (cap, False)
