"""Contacts as the engine sees them, and their blocking keys.

A contact (a database row, a form's values, an import row) becomes a prepared `Person`, its
blocking keys become 64-bit hashes (`key_hash`, the values `DedupKey` stores), and the codes
that split a block too large to compare come from its names (`refine_subs`). `Compact` is the
slimmer copy a full scan holds for each contact. Every driver and the import's duplicate
check read contacts through here, so a key is computed one way wherever it is compared."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import jellyfish

from ...models import Contact
from ..blocking import blocking_keys
from ..records import EmailRules, Person, prepare
from ._base import CONTACT_COLUMNS, WRITE_BATCH


class Compact:
    """A prepared contact with only what `compare()` reads, in slots: about half the memory
    of a `Person`, which matters with a million of them held during a full scan."""

    id: int  # the contact's id (a slot, declared here for type checkers)

    __slots__ = (
        "city",
        "company",
        "domains",
        "email_locals",
        "emails",
        "first",
        "house_number",
        "id",
        "last",
        "phone_tails",
        "phones",
        "postal",
        "street",
        "subs",
    )

    def __init__(self, person: Person):
        for name in self.__slots__:
            if name != "subs":
                setattr(self, name, getattr(person, name))
        self.subs = refine_subs(person)


def key_hash(key: str) -> int:
    """A blocking key as a signed 64-bit integer, the same in every process and release
    (Python's own `hash()` of a string changes per process): what DedupKey stores."""
    return int.from_bytes(
        hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big", signed=True
    )


def refine_subs(person: Person) -> tuple[str, ...]:
    """What splits a block too large to compare: codes of the contact's given name (and of
    its family name, for a record with the two swapped): Metaphone of the formal name
    (Bob → Robert) and the first three letters."""
    subs = set()
    first_word = person.first.split(" ")[0] if person.first else ""
    last_word = person.last.split(" ")[-1] if person.last else ""
    for name in (*person.extra.get("formal_first", ()), first_word, last_word):
        if name:
            subs.add(name[:3])
            code = jellyfish.metaphone(name)
            if code:
                subs.add("~" + code)
    return tuple(sorted(subs))


def refined_hash(key: int, sub: str) -> int:
    return key_hash(f"{key}|{sub}")


def person_from_values(id, values: dict, rules: EmailRules) -> Person:
    """A `Person` from contact field values (a form's cleaned data, an import row, a row
    read from the database). `company` may be a name or a Company."""
    company = values.get("company") or values.get("company__name") or ""
    if not isinstance(company, str):
        company = getattr(company, "name", "") or ""
    emails = [values.get("email") or ""]
    others = values.get("other_emails") or []
    if isinstance(others, str):
        others = [others]
    emails.extend(e for e in others if isinstance(e, str))
    return prepare(
        id,
        first_name=values.get("first_name") or "",
        last_name=values.get("last_name") or "",
        emails=[e for e in emails if e],
        phones=[values.get("phone") or "", values.get("mobile") or ""],
        street=values.get("street") or "",
        postal_code=values.get("postal_code") or "",
        city=values.get("city") or "",
        company=company,
        rules=rules,
    )


def person_from_row(row: tuple, rules: EmailRules) -> Person:
    return person_from_values(row[0], dict(zip(CONTACT_COLUMNS, row, strict=True)), rules)


def key_hashes(person: Person) -> tuple[int, ...]:
    return tuple(sorted({key_hash(key) for key in blocking_keys(person)}))


def _active_contacts(org):
    return Contact.objects.for_org(org).filter(is_archived=False)


def _load_people(org, ids: Iterable[int], rules: EmailRules) -> dict[int, Person]:
    people: dict[int, Person] = {}
    ids = list(ids)
    for start in range(0, len(ids), WRITE_BATCH):
        rows = (
            _active_contacts(org)
            .filter(id__in=ids[start : start + WRITE_BATCH])
            .values_list(*CONTACT_COLUMNS)
        )
        for row in rows:
            people[row[0]] = person_from_row(row, rules)
    return people
