"""The kinds of warning an import gives a row it keeps, and how their counts read.

A row is refused only when nothing identifies the person (no name, usable email or phone);
any other problem costs the one value, never the contact. Each value that was not stored
as it stood in the file is a warning of one kind, listed per row and field in the report
and counted per kind on the job ("142 phone numbers kept as typed").
"""

from __future__ import annotations

from dataclasses import dataclass

PHONE_AS_TYPED = "phone_as_typed"
EMAIL_LEFT_OUT = "email_left_out"
OWNER_UNMATCHED = "owner_unmatched"
CHOICE_UNMATCHED = "choice_unmatched"
TRUNCATED = "truncated"
VALUE_LEFT_OUT = "value_left_out"


@dataclass(frozen=True)
class WarningKind:
    code: str
    one: str  # "{n} phone number kept as typed"
    many: str
    tail: str = ""  # what happened instead, after a colon

    def sentence(self, count: int, *, tail: str | None = None) -> str:
        text = (self.one if count == 1 else self.many).format(n=f"{count:,}")
        tail = self.tail if tail is None else tail
        return f"{text}: {tail}" if tail else text


KINDS: dict[str, WarningKind] = {
    k.code: k
    for k in (
        WarningKind(
            PHONE_AS_TYPED,
            "{n} phone number kept as typed",
            "{n} phone numbers kept as typed",
            "marked unverified until someone corrects them",
        ),
        WarningKind(
            EMAIL_LEFT_OUT,
            "{n} email address left out",
            "{n} email addresses left out",
            "not valid addresses",
        ),
        WarningKind(OWNER_UNMATCHED, "{n} owner not matched", "{n} owners not matched"),
        WarningKind(
            CHOICE_UNMATCHED,
            "{n} value fits no choice",
            "{n} values fit no choice",
            "left out",
        ),
        WarningKind(
            TRUNCATED,
            "{n} value cut to fit its field",
            "{n} values cut to fit their fields",
            "the full text is in the report",
        ),
        WarningKind(
            VALUE_LEFT_OUT,
            "{n} value left out",
            "{n} values left out",
            "they could not be read (dates, numbers, links, countries, custom fields…)",
        ),
    )
}
ORDER = list(KINDS)

# What a warning's own message ends with, per kind.
OUTCOME = {
    PHONE_AS_TYPED: "Kept as typed and marked unverified.",
    EMAIL_LEFT_OUT: "Left out.",
    OWNER_UNMATCHED: "Left out.",
    CHOICE_UNMATCHED: "Left out.",
    VALUE_LEFT_OUT: "Left out.",
}


def owner_tail(job) -> str:
    if (job.defaults or {}).get("owner"):
        return "the default owner was used"
    return "no owner was set from the file"


def warning_sentences(counts: dict, job=None) -> list[dict]:
    """[{"kind", "count", "text"}] for the kinds in `counts`, in a fixed order."""
    out = []
    for code in [*ORDER, *sorted(set(counts) - set(ORDER))]:
        count = int((counts or {}).get(code) or 0)
        if not count:
            continue
        kind = KINDS.get(code)
        if kind is None:
            text = f"{count:,} value{'s' if count != 1 else ''} with a warning"
        elif code == OWNER_UNMATCHED and job is not None:
            text = kind.sentence(count, tail=owner_tail(job))
        else:
            text = kind.sentence(count)
        out.append({"kind": code, "count": count, "text": text})
    return out


def count_fields(rows) -> dict[str, int]:
    """{kind: number of values} over rows of warning fields."""
    counts: dict[str, int] = {}
    for fields in rows:
        for entry in fields:
            counts[entry["kind"]] = counts.get(entry["kind"], 0) + 1
    return counts


def fields_text(fields: list[dict]) -> str:
    """The report's Warnings cell: "Column: message" per field."""
    return "\n".join(f"{f['column']}: {f['message']}" for f in fields)


# What a reader who may not see a column's field reads of its warning: the kind, never the
# value or a message that may quote it.
HIDDEN_MESSAGE = {
    PHONE_AS_TYPED: "Not a phone number we could check: kept as typed and marked unverified.",
    EMAIL_LEFT_OUT: "Not a valid email address: left out.",
    OWNER_UNMATCHED: "No member matches this owner: left out.",
    CHOICE_UNMATCHED: "Fits no choice of the field: left out.",
    TRUNCATED: "Longer than the field holds: cut to fit.",
    VALUE_LEFT_OUT: "This value could not be imported: left out.",
}


def visible_fields(fields: list[dict], headers: list[str], hidden: set[int]) -> list[dict]:
    """`fields` as a reader may see them: a hidden column's warning keeps its column and
    kind, without the value and with a message that quotes nothing."""
    if not hidden:
        return fields
    names = {headers[i] for i in hidden if i < len(headers)}
    return [
        {
            **f,
            "value": "",
            "message": HIDDEN_MESSAGE.get(f.get("kind"), HIDDEN_MESSAGE[VALUE_LEFT_OUT]),
        }
        if f.get("column") in names
        else f
        for f in fields
    ]
