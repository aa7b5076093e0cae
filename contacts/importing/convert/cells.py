"""The verdict on one cell, memoised: the converted value, a `Warned` value (kept with a warning:
cut to fit, or only part of the cell) or a `Refused` one (left out, with the message the report
shows); with the limits they apply and the conversions that need more than the row converter
(email cells with several addresses, phone cells, cells cut to fit, cleaning)."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError

from ...models import Contact
from ...normalize import normalize_email, normalize_phone
from ...validators import clean_twitter_handle
from ..values import _ESCAPED_LEADS, _SPLIT_MULTI, TAG_MAX, RowConverter, split_full_name, tag_names
from ..warning_kinds import EMAIL_LEFT_OUT, OUTCOME, OWNER_UNMATCHED, PHONE_AS_TYPED, VALUE_LEFT_OUT

# A memo is dropped when it grows past this many cells (a column of unique values gains
# nothing from it and must not hold a whole file in memory).
MEMO_LIMIT = 50_000
# A phone number that cannot be read is kept as typed up to the column's length.
PHONE_AS_TYPED_MAX = Contact._meta.get_field("phone").max_length
# ...and only when it holds a digit: "n/a" or "ask reception" is no phone number at all.
PHONE_AS_TYPED_MIN_DIGITS = 1
NAME_MAX = 150  # first_name / last_name
# Text targets cut to fit their column, by length.
TEXT_LIMITS = {
    **{t: Contact._meta.get_field(t).max_length for t in RowConverter.TEXT_FIELDS},
    "twitter_handle": Contact._meta.get_field("twitter_handle").max_length,
    "company": 200,
    "company_name": 200,
    "external_id": 200,
}


class Refused:
    """A memoised refusal: the warning's kind and the message a cell's conversion raised
    (the value is left out)."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: str, message: str):
        self.kind = kind
        self.message = message


class Warned:
    """A memoised value kept with a warning: cut to fit, or only part of the cell."""

    __slots__ = ("kind", "message", "value")

    def __init__(self, value, kind: str, message: str):
        self.value = value
        self.kind = kind
        self.message = message


def _left_out(kind: str, messages) -> Refused:
    return Refused(kind, f"{' '.join(messages)} {OUTCOME[kind]}")


# One warning of a kept row: (column header, kind, the cell as in the file, message).
Warning = tuple[str, str, str, str]


def memoised(convert: Callable, memo: dict, kind: str):
    """`convert` with a memo: returns the value, a Warned, or a Refused of `kind`."""

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


def email_value(raw: str, *, primary: bool):
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
        return Warned(value, EMAIL_LEFT_OUT, f"{' '.join(bad)} {OUTCOME[EMAIL_LEFT_OUT]}")
    return value


def reported_if_empty(convert: Callable, kind: str, to_default=None) -> Callable:
    """A choice or owner cell matched to nothing on the match-values step ("leave empty",
    "default owner") is left out, and the report still says so: a value of the file that
    was not stored is never silent."""
    what = "a member you may give contacts to" if kind == OWNER_UNMATCHED else "a choice"
    message = f"“{{}}” was not matched to {what}. {OUTCOME[kind]}"

    def run(raw):
        value = convert(raw)
        if value is None and raw:
            return Refused(kind, message.format(raw))
        if to_default is not None and raw in to_default:  # the default owner stands in
            return Warned(value, kind, message.format(raw))
        return value

    return run


def cut_message(limit: int) -> str:
    return f"Longer than the {limit} characters this field holds: cut to fit."


def was_cut(target: str, raw: str, value) -> int:
    """The limit a converted text value was cut to, or 0 when it is whole."""
    if target == "full_name":
        if len(raw) > NAME_MAX and any(len(p) > NAME_MAX for p in split_full_name(raw)):
            return NAME_MAX
        return 0
    if target == "tags":
        if len(raw) > TAG_MAX and any(len(t) > TAG_MAX for t in tag_names(raw, None)):
            return TAG_MAX
        return 0
    limit = TEXT_LIMITS[target]
    if len(raw) <= limit:
        return 0
    if target == "twitter_handle":
        return limit if len(clean_twitter_handle(raw)) > limit else 0
    return limit


def cleaned(raw: str) -> str:
    raw = raw.strip()
    if "\x00" in raw:
        raw = raw.replace("\x00", "")  # PostgreSQL text cannot hold NUL characters
    if raw[:1] == "'" and raw[1:2] in _ESCAPED_LEADS:
        return raw[1:]  # our own error report (and Excel) escape formulas this way
    return raw


def first_number_kept(cells, column, header, name, warns) -> list[str]:
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


def phone_value(raw: str, region):
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
