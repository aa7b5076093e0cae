"""What the contact filter conditions over orders and associated records share: bounds,
the strict readers of their values, and the query shape that hands the contact list the
contacts a condition picks (`linked_contacts`)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db.models import BigIntegerField, BooleanField, Exists, F, Func, OuterRef, Q, Value

from contacts.filters import RelatedValueError

MAX_DAYS = 3650
MAX_COUNT = 100_000
MAX_TEXT = 200
MAX_ANY_OF = 100
MAX_NUMBER = Decimal("1e15")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A type's or field's key (a slug); anything else names nothing and is never looked up.
KEY_RE = re.compile(r"[-a-zA-Z0-9_]{1,60}")
NUMBER_TEXT_RE = r"^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"
NOTHING = Q(pk__in=[])
# Up to this many order or association rows, a condition hands the contact list their
# contacts' ids (see linked_contacts): as a list up to ID_LIST_CAP ids, else as an array.
ID_ARRAY_CAP = 5000
ID_LIST_CAP = 1000


def shown(text, limit: int = 40) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_object(value, example: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise RelatedValueError(f"needs an object like {example}.")
    return value


def known_keys(value: Mapping, allowed) -> None:
    unknown = sorted(str(k) for k in set(value) - set(allowed))
    if unknown:
        raise RelatedValueError(f"has an unknown option {shown(unknown[0])!r}.")


def whole(value, what: str, low: int, high: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,7}\s*", value):
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or value != int(value)
    ):
        raise RelatedValueError(f"needs {what} (a whole number).")
    if not low <= value <= high:
        raise RelatedValueError(f"needs {what} between {low:,} and {high:,}.")
    return int(value)


def day(value, what: str) -> str:
    if not isinstance(value, str) or not DATE_RE.match(value.strip()):
        raise RelatedValueError(f"needs {what} like 2024-05-31.")
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise RelatedValueError(f"has an impossible date {shown(value.strip())!r}.") from None


def picks(value, labels: dict, what: str) -> list[str]:
    """One choice or a list of them, by value or label (any case), in the choices' order."""
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > len(labels):
        raise RelatedValueError(f"needs one {what} or a list of them.")
    by_word = {**{k.casefold(): k for k in labels}, **{v.casefold(): k for k, v in labels.items()}}
    chosen = set()
    for item in items:
        found = by_word.get(item.strip().casefold()) if isinstance(item, str) else None
        if found is None:
            raise RelatedValueError(f"has no {what} {shown(item)!r}.")
        chosen.add(found)
    return [key for key in labels if key in chosen]


class IsAnyOf(Func):
    """`column = ANY(array)`: many ids as one array parameter, not one parameter each."""

    arg_joiner = " = ANY("
    template = "(%(expressions)s))"
    output_field = BooleanField()


def linked_contacts(rows, positive: bool) -> Q:
    """Contacts with a row among `rows` (orders or associations of theirs), or without any.

    Their contacts' ids are read first, up to ID_ARRAY_CAP rows: when the rows are not too
    many (a rare status, a record field that few records match, a rep's own records), the
    page and its count then fetch those contacts by key, instead of walking the whole
    contact list looking for them, which is what Postgres does when it cannot tell how few
    they are (its estimate for a JSON field or a combination of scopes is a guess). A few
    ids go as a list, more as one array. Beyond the cap the condition is a correlated EXISTS:
    the rows are then common enough for a walk to meet them soon."""
    ids = list(rows.order_by().values_list("contact_id", flat=True)[: ID_ARRAY_CAP + 1])
    if len(ids) <= ID_ARRAY_CAP:
        unique = sorted(set(ids))
        if len(unique) <= ID_LIST_CAP:
            found = Q(pk__in=unique)
        else:
            array = Value(unique, output_field=ArrayField(BigIntegerField()))
            found = Q(IsAnyOf(F("pk"), array))
    else:
        found = Q(Exists(rows.filter(contact_id=OuterRef("pk"))))
    return found if positive else ~found
