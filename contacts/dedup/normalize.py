"""The forms in which duplicates are compared: accents folded, nicknames resolved, emails,
phones, streets and company names reduced to what identifies them."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

# Letters NFKD does not split into a base letter and a mark.
_SPECIAL_LETTERS = str.maketrans(
    {"ß": "ss", "ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def fold(text) -> str:
    """Lower case without accents: "Zoë Müller-Łukasz" → "zoe muller-lukasz"."""
    if not text:
        return ""
    text = str(text).casefold().translate(_SPECIAL_LETTERS)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).strip()


def words(text) -> list[str]:
    """The folded words of a text, punctuation dropped."""
    return [w for w in _NOT_WORD.split(fold(text)) if w]


def name_key(text) -> str:
    """A name as one comparable string: "O'Brien-Smith" → "obriensmith"."""
    return "".join(words(text))


# Nicknames -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _nickname_groups() -> dict[str, frozenset[int]]:
    groups: dict[str, set[int]] = {}
    path = Path(__file__).with_name("nicknames.txt")
    number = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        number += 1
        for name in line.split():
            groups.setdefault(name, set()).add(number)
    return {name: frozenset(ids) for name, ids in groups.items()}


@lru_cache(maxsize=1)
def _formal_names() -> dict[int, str]:
    formal: dict[int, str] = {}
    path = Path(__file__).with_name("nicknames.txt")
    number = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        number += 1
        formal[number] = line.split()[0]
    return formal


def same_person_names(a: str, b: str) -> bool:
    """Whether two folded given names can name the same person: Bob and Robert, Kate and
    Catherine. Equal names are too."""
    if not a or not b:
        return False
    if a == b:
        return True
    groups = _nickname_groups()
    return bool(groups.get(a, frozenset()) & groups.get(b, frozenset()))


def formal_names(first: str) -> list[str]:
    """The formal names a folded given name may stand for ("bob" → ["robert"]); the name
    itself when no group holds it. For blocking: Bob and Robert share a key."""
    ids = _nickname_groups().get(first)
    if not ids:
        return [first] if first else []
    formal = _formal_names()
    return sorted({formal[i] for i in ids})


# Email -----------------------------------------------------------------------------------

_GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
# Addresses anyone can get: a shared domain of these says nothing about a shared employer.
FREE_MAIL_DOMAINS = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
        "ymail.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.de",
        "outlook.com",
        "outlook.de",
        "outlook.fr",
        "live.com",
        "live.co.uk",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "gmx.com",
        "web.de",
        "mail.com",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "zoho.com",
        "fastmail.com",
        "tutanota.com",
        "qq.com",
        "163.com",
        "126.com",
        "naver.com",
        "t-online.de",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "libero.it",
        "wp.pl",
        "seznam.cz",
        "btinternet.com",
        "comcast.net",
        "verizon.net",
        "att.net",
        "sbcglobal.net",
        "bigpond.com",
    ]
)


def email_key(email: str, *, plus_addressing: bool = True, gmail_dots: bool = True) -> str:
    """The address a mailbox is reached at: lower case; with `plus_addressing`, "+tag" dropped
    from the local part; with `gmail_dots`, dots dropped at Gmail (googlemail.com is gmail.com).
    An organization chooses both rules (its users may rely on plus addresses being distinct)."""
    email = (email or "").strip().casefold()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return email
    if plus_addressing and "+" in local:
        local = local.split("+", 1)[0] or local
    if domain in _GMAIL_DOMAINS:
        domain = "gmail.com"
        if gmail_dots:
            local = local.replace(".", "")
    return f"{local}@{domain}"


def email_local(email: str) -> str:
    return (email or "").rpartition("@")[0]


def email_domain(email: str) -> str:
    return (email or "").rpartition("@")[2].casefold()


def company_domain(email: str) -> str:
    """The email's domain when it can say where someone works (not a free mail provider)."""
    domain = email_domain(email)
    return "" if not domain or domain in FREE_MAIL_DOMAINS else domain


# Phone -----------------------------------------------------------------------------------


def phone_digits(phone: str) -> str:
    return re.sub(r"\D", "", phone or "")


def phone_tail(phone: str, length: int = 7) -> str:
    """The last digits of a number: the same line written with or without its country or
    area code ends the same. Empty for numbers too short to say anything."""
    digits = phone_digits(phone)
    return digits[-length:] if len(digits) >= length else ""


# Postal address --------------------------------------------------------------------------

# Street words written many ways, to one spelling each.
_STREET_WORDS = {
    "street": "st",
    "str": "st",
    "strasse": "st",
    "stra": "st",
    "avenue": "ave",
    "av": "ave",
    "avn": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "blv": "blvd",
    "drive": "dr",
    "lane": "ln",
    "court": "ct",
    "place": "pl",
    "square": "sq",
    "highway": "hwy",
    "parkway": "pkwy",
    "terrace": "ter",
    "circle": "cir",
    "crescent": "cres",
    "mount": "mt",
    "saint": "st",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
    "first": "1",
    "second": "2",
    "third": "3",
    "fourth": "4",
    "fifth": "5",
    "apartment": "apt",
    "suite": "ste",
    "unit": "apt",
    "number": "no",
    "floor": "fl",
}
_ORDINAL = re.compile(r"^(\d+)(st|nd|rd|th)$")


def street_key(street: str) -> str:
    """A street as comparable words: "12 Main Street, Apt. 4" and "12 main st apt 4" agree."""
    out = []
    for word in words(street):
        # German compounds: "hauptstrasse" → "haupt st".
        if word.endswith("strasse") and len(word) > 7:
            out.extend([word[:-7], "st"])
            continue
        match = _ORDINAL.match(word)
        if match:
            word = match.group(1)
        out.append(_STREET_WORDS.get(word, word))
    return " ".join(out)


def street_number(street: str) -> str:
    """The first number in the street line (the house number, usually)."""
    match = re.search(r"\d+", street or "")
    return match.group(0) if match else ""


def postal_key(postal_code: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", (postal_code or "").upper())


# Companies -------------------------------------------------------------------------------

# Legal forms, folded and without dots: "S.A." is "sa", "GmbH & Co. KG" loses "gmbh", "co", "kg".
LEGAL_SUFFIXES = frozenset(
    [
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "llc",
        "llp",
        "lp",
        "ltd",
        "limited",
        "plc",
        "pllc",
        "gmbh",
        "mbh",
        "ag",
        "kg",
        "ohg",
        "ug",
        "ev",
        "sa",
        "sas",
        "sarl",
        "sasu",
        "srl",
        "spa",
        "sl",
        "slu",
        "bv",
        "nv",
        "vof",
        "oy",
        "oyj",
        "ab",
        "as",
        "asa",
        "aps",
        "kk",
        "pty",
        "pte",
        "bhd",
        "sdn",
        "kft",
        "zrt",
        "sro",
        "spzoo",
        "sp",
        "zoo",
        "doo",
        "ooo",
        "zao",
        "pjsc",
        "jsc",
        "oao",
        "ab",
        "publ",
        "nl",
        "sc",
        "cv",
        "sab",
        "de",
    ]
)


def company_key(name: str) -> str:
    """A company name without its legal form, punctuation and a leading "the":
    "The Acme Company, Inc." and "ACME" agree."""
    text = fold(name).replace(".", "").replace("&", " and ")
    tokens = [w for w in _NOT_WORD.split(text) if w]
    if tokens and tokens[0] == "the":
        tokens = tokens[1:]
    while len(tokens) > 1 and (tokens[-1] in LEGAL_SUFFIXES or tokens[-1] == "and"):
        tokens.pop()
    return " ".join(tokens)
