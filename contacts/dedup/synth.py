"""A labelled generator of contacts with the duplicates real data has, for training the model
and measuring detection (bench_dedup).

Each made-up person gets one clean record; some get 1-4 more copies, each damaged the way
copies are in practice: typos and OCR swaps, a nickname, first and last swapped, the email or
phone missing, the phone written another way or only partly, an abbreviated or misspelled
street, a new job, a married name. Different people share names, towns, employers and
streets too, so that near misses exist. Deterministic for a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from .normalize import _formal_names, _nickname_groups


def _word_lists() -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    current: list[str] = []
    for line in Path(__file__).with_name("synth_words.txt").read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = lists.setdefault(line.strip("[]"), [])
        else:
            current.extend(line.split())
    return lists


_WORDS = _word_lists()
_ACCENTED = dict(w.split(":", 1) for words in _WORDS.values() for w in words if ":" in w)
_FIRST_EXTRA = [w.split(":")[0] for w in _WORDS["first_extra"]]
_LAST = [w.split(":")[0] for w in _WORDS["last"]]
_STREETS = _WORDS["streets"]
_CITIES = _WORDS["cities"]
_COMPANIES = _WORDS["companies"]
_FIRST_ACCENTED = _LAST_ACCENTED = _ACCENTED

_STREET_TYPES = [
    ("Street", "St."),
    ("Avenue", "Ave"),
    ("Road", "Rd"),
    ("Lane", "Ln"),
    ("Drive", "Dr."),
    ("Boulevard", "Blvd"),
    ("Court", "Ct"),
    ("Place", "Pl"),
]
_LEGAL = ["Inc.", "LLC", "Ltd", "GmbH", "S.A.", "B.V.", "", "", "Corp.", "AG"]
_FREE = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "gmx.de"]
_OCR = [
    ("rn", "m"),
    ("m", "rn"),
    ("l", "1"),
    ("O", "0"),
    ("cl", "d"),
    ("vv", "w"),
    ("e", "c"),
    ("h", "b"),
    ("i", "l"),
]
_KEYBOARD = "qwertyuiopasdfghjklzxcvbnm"


@dataclass
class Row:
    id: int
    entity: int
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    street: str = ""
    postal_code: str = ""
    city: str = ""
    company: str = ""
    damage: list[str] = field(default_factory=list)


def _title(word: str, accented: dict) -> str:
    if word in accented:
        return accented[word]
    return " ".join(part.capitalize() for part in word.split("-"))


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.random()
    if kind < 0.3:
        return text[:i] + text[i + 1 :]  # a letter dropped
    if kind < 0.55:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]  # two letters swapped
    if kind < 0.8:
        return text[:i] + rng.choice(_KEYBOARD) + text[i + 1 :]  # a letter mistyped
    return text[:i] + text[i] + text[i:]  # a letter doubled


def _ocr(rng: random.Random, text: str) -> str:
    for old, new in rng.sample(_OCR, len(_OCR)):
        if old in text:
            return text.replace(old, new, 1)
    return _typo(rng, text)


class Generator:
    def __init__(self, seed: int = 7):
        self.rng = random.Random(seed)
        formal = sorted(set(_formal_names().values()))
        self.first_names = formal + _FIRST_EXTRA
        self.nicknames = _nickname_groups()
        self.next_id = 0

    def _person(self, entity: int) -> Row:
        rng = self.rng
        first_raw = rng.choice(self.first_names)
        last_raw = rng.choice(_LAST)
        first = _title(first_raw, _FIRST_ACCENTED)
        last = _title(last_raw, _LAST_ACCENTED)
        company_word = rng.choice(_COMPANIES)
        company = f"{company_word.replace('-', ' ')} {rng.choice(_LEGAL)}".strip()
        has_email = rng.random() < 0.75
        work = rng.random() < 0.5
        local = rng.choice(
            [
                f"{first_raw}.{last_raw}",
                f"{first_raw[0]}{last_raw}",
                f"{first_raw}{rng.randint(1, 99)}",
                f"{first_raw}_{last_raw}",
            ]
        ).replace("-", "")
        domain = f"{company_word.lower()}.com" if work else rng.choice(_FREE)
        country = rng.choice(["+1", "+44", "+49", "+33", "+31"])
        number = "".join(str(rng.randint(0, 9)) for _ in range(9))
        street_name = _title(rng.choice(_STREETS), {})
        kind = rng.choice(_STREET_TYPES)[0]
        self.next_id += 1
        return Row(
            id=self.next_id,
            entity=entity,
            first_name=first,
            last_name=last,
            email=f"{local}@{domain}" if has_email else "",
            phone=f"{country}{number}" if rng.random() < 0.7 else "",
            street=f"{rng.randint(1, 250)} {street_name} {kind}" if rng.random() < 0.6 else "",
            postal_code=f"{rng.randint(10000, 99999)}" if rng.random() < 0.65 else "",
            city=rng.choice(_CITIES),
            company=company if rng.random() < 0.6 else "",
        )

    def _copy(self, row: Row) -> Row:
        """A damaged copy that still shares something a person could recognize it by: a
        copy with a new name, no email, no phone and no address is a stranger to any method,
        and is drawn again (at most a few times)."""
        for _ in range(8):
            copy = self._damaged(row)
            if _shares_evidence(row, copy):
                break
        self.next_id += 1
        copy.id = self.next_id
        return copy

    def _damaged(self, row: Row) -> Row:
        rng = self.rng
        copy = Row(**{**row.__dict__, "damage": []})
        damages = rng.sample(
            [
                "typo_first",
                "typo_last",
                "ocr",
                "nickname",
                "swap",
                "no_email",
                "no_phone",
                "phone_format",
                "phone_partial",
                "street_abbrev",
                "street_typo",
                "new_job",
                "married",
                "email_plus",
                "new_email",
                "no_address",
                "initial",
            ],
            k=rng.choice([1, 2, 2, 3, 3, 4]),
        )
        for damage in damages:
            if self._damage(copy, damage):
                copy.damage.append(damage)
        return copy

    def _damage(self, row: Row, damage: str) -> bool:
        rng = self.rng
        if damage == "typo_first" and row.first_name:
            row.first_name = _typo(rng, row.first_name)
        elif damage == "typo_last" and row.last_name:
            row.last_name = _typo(rng, row.last_name)
        elif damage == "ocr":
            row.last_name = _ocr(rng, row.last_name)
        elif damage == "nickname":
            key = row.first_name.casefold()
            groups = self.nicknames.get(key)
            if not groups:
                return False
            options = [name for name, ids in self.nicknames.items() if ids & groups and name != key]
            row.first_name = rng.choice(sorted(options)).capitalize()
        elif damage == "swap":
            row.first_name, row.last_name = row.last_name, row.first_name
        elif damage == "no_email" and row.email:
            row.email = ""
        elif damage == "no_phone" and row.phone:
            row.phone = ""
        elif damage == "phone_format" and row.phone:
            digits = row.phone[-9:]
            row.phone = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        elif damage == "phone_partial" and row.phone:
            row.phone = row.phone[-7:]
        elif damage == "street_abbrev" and row.street:
            for full, short in _STREET_TYPES:
                row.street = row.street.replace(full, short)
        elif damage == "street_typo" and row.street:
            row.street = _typo(rng, row.street)
        elif damage == "new_job":
            word = rng.choice(_COMPANIES)
            row.company = word.replace("-", " ")
            if row.email and not any(row.email.endswith(d) for d in _FREE):
                row.email = row.email.split("@")[0] + f"@{word.lower()}.com"
        elif damage == "married":
            row.last_name = _title(rng.choice(_LAST), _LAST_ACCENTED)
        elif damage == "email_plus" and row.email:
            local, domain = row.email.split("@")
            row.email = f"{local}+{rng.choice(['news', 'crm', 'x'])}@{domain}"
        elif damage == "new_email" and row.email:
            row.email = f"{row.first_name[:1].lower()}{rng.randint(100, 999)}@{rng.choice(_FREE)}"
        elif damage == "no_address":
            row.street = row.postal_code = ""
        elif damage == "initial" and row.first_name:
            row.first_name = row.first_name[0] + "."
        else:
            return False
        return True

    def rows(self, people: int, *, duplicate_share: float = 0.3) -> list[Row]:
        out: list[Row] = []
        for entity in range(people):
            row = self._person(entity)
            out.append(row)
            if self.rng.random() < duplicate_share:
                for _ in range(self.rng.choice([1, 1, 1, 2, 2, 3, 4])):
                    out.append(self._copy(row))
        self.rng.shuffle(out)
        return out


def _shares_evidence(a: Row, b: Row) -> bool:
    """Whether two rows share a value that identifies a person: the email, the phone's last
    digits, the street with its postal code, or a name close enough to read as the same."""
    if (
        a.email
        and b.email
        and a.email.split("+")[0].split("@")[0] == b.email.split("+")[0].split("@")[0]
    ):
        return True
    if a.phone and b.phone and a.phone[-7:] == b.phone[-7:]:
        return True
    if a.postal_code and a.postal_code == b.postal_code and (a.street or b.street):
        return True
    names_a = {a.first_name.casefold(), a.last_name.casefold()}
    names_b = {b.first_name.casefold(), b.last_name.casefold()}
    return len(names_a & names_b) == 2 or (
        a.last_name.casefold() == b.last_name.casefold() and a.first_name[:1] == b.first_name[:1]
    )
