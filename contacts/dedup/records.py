"""A contact as duplicate detection sees it: its values normalized once, then compared many
times. `prepare()` takes plain values (from a database row, an import row or a form), so the
same engine serves scans, imports, the contact form and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

import jellyfish

from .normalize import (
    company_domain,
    company_key,
    email_key,
    email_local,
    fold,
    formal_names,
    name_key,
    phone_digits,
    phone_tail,
    postal_key,
    street_key,
    street_number,
    words,
)


@dataclass(frozen=True)
class EmailRules:
    """An organization's rules for when two addresses are one mailbox."""

    plus_addressing: bool = True
    gmail_dots: bool = True


@dataclass
class Person:
    id: object
    first: str = ""  # folded, one word per given name joined by spaces
    last: str = ""
    first_key: str = ""  # name_key: letters and digits only
    last_key: str = ""
    emails: tuple[str, ...] = ()  # email_key of each address
    email_locals: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()  # company domains of the addresses (free mail left out)
    phones: tuple[str, ...] = ()  # digits
    phone_tails: tuple[str, ...] = ()
    street: str = ""
    house_number: str = ""
    postal: str = ""
    city: str = ""
    company: str = ""
    phonetic_first: tuple[str, ...] = ()
    phonetic_last: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def _phonetic(name: str) -> tuple[str, ...]:
    """Metaphone and NYSIIS codes of a folded name: typos that change one often keep the
    other ("Jonson"/"Johnson")."""
    if not name:
        return ()
    codes = {jellyfish.metaphone(name), jellyfish.nysiis(name)}
    return tuple(sorted(code for code in codes if code))


def _unique(values) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        if value:
            seen.setdefault(value, None)
    return tuple(seen)


def prepare(
    id,
    *,
    first_name: str = "",
    last_name: str = "",
    emails=(),
    phones=(),
    street: str = "",
    postal_code: str = "",
    city: str = "",
    company: str = "",
    rules: EmailRules = EmailRules(),
) -> Person:
    first = " ".join(words(first_name))
    last = " ".join(words(last_name))
    keys = _unique(
        email_key(e, plus_addressing=rules.plus_addressing, gmail_dots=rules.gmail_dots)
        for e in emails
        if e and "@" in e
    )
    digits = _unique(phone_digits(p) for p in phones)
    first_word = first.split(" ")[0] if first else ""
    last_word = last.split(" ")[-1] if last else ""
    return Person(
        id=id,
        first=first,
        last=last,
        first_key=name_key(first_name),
        last_key=name_key(last_name),
        emails=keys,
        email_locals=_unique(email_local(k) for k in keys),
        domains=_unique(company_domain(k) for k in keys),
        phones=tuple(d for d in digits if len(d) >= 6),
        phone_tails=_unique(phone_tail(d) for d in digits),
        street=street_key(street),
        house_number=street_number(street),
        postal=postal_key(postal_code),
        city=fold(city),
        company=company_key(company),
        phonetic_first=_phonetic(first_word),
        phonetic_last=_phonetic(last_word),
        extra={"formal_first": formal_names(first_word)},
    )
