"""Comparing two people field by field. Each field's comparison lands on one level ("exact",
"close", "differ", "missing"...), the unit the model learns a weight for, and says in words
why it counts, for the reasons a pair is shown with."""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import JaroWinkler
from rapidfuzz.fuzz import token_set_ratio

from .normalize import same_person_names
from .records import Person

CLOSE_NAME = 0.9  # Jaro-Winkler similarity from which two names are "close"
CLOSE_TEXT = 88  # token-set ratio (0-100) from which two streets or companies are "close"

FEATURES = ("email", "phone", "first", "last", "postal", "street", "city", "company", "domain")


@dataclass
class Comparison:
    levels: dict[str, str]
    reasons: dict[str, str]  # feature -> words, for the levels that speak for a match
    swapped: bool = False


def _email(a: Person, b: Person) -> tuple[str, str]:
    if not a.emails or not b.emails:
        return "missing", ""
    if set(a.emails) & set(b.emails):
        return "exact", "same email"
    if set(a.email_locals) & set(b.email_locals):
        return "local", "same email name at another domain"
    return "differ", ""


def _phone(a: Person, b: Person) -> tuple[str, str]:
    if not a.phones or not b.phones:
        return "missing", ""
    for x in a.phones:
        for y in b.phones:
            short, long = sorted((x, y), key=len)
            # A national number ("030 123456": trunk 0, no country code) ends the
            # international one ("+49 30 123456") without its trunk digit.
            national = short[1:] if short.startswith("0") else short
            if x == y or (len(national) >= 8 and long.endswith(national)):
                return "exact", "same phone"
    if set(a.phone_tails) & set(b.phone_tails):
        return "tail", "phones end in the same 7 digits"
    return "differ", ""


def _given(x: str, y: str) -> tuple[str, float]:
    if not x or not y:
        return "missing", 0.0
    if x == y:
        return "exact", 1.0
    xs, ys = x.split(" ")[0], y.split(" ")[0]
    if same_person_names(xs, ys):
        return "nickname", 1.0
    similarity = JaroWinkler.similarity(x, y)
    if similarity >= CLOSE_NAME:
        return "close", similarity
    if (len(xs) == 1 and ys.startswith(xs)) or (len(ys) == 1 and xs.startswith(ys)):
        return "initial", 0.0
    return "differ", similarity


def _family(x: str, y: str) -> tuple[str, float]:
    if not x or not y:
        return "missing", 0.0
    if x == y:
        return "exact", 1.0
    similarity = JaroWinkler.similarity(x, y)
    # A double-barrelled name holds the other one: "garcia lopez" / "garcia".
    if similarity >= CLOSE_NAME or set(x.split(" ")) & set(y.split(" ")):
        return "close", similarity
    return "differ", similarity


_NAME_RANK = {"exact": 5, "nickname": 4, "close": 3, "initial": 2, "differ": 0, "missing": 1}


def _names(a: Person, b: Person) -> tuple[str, str, float, bool]:
    straight = (*_given(a.first, b.first), *_family(a.last, b.last))
    crossed = (*_given(a.first, b.last), *_family(a.last, b.first))

    def rank(levels):
        return _NAME_RANK[levels[0]] + _NAME_RANK[levels[2]] + levels[1] + levels[3]

    use_crossed = (
        bool(a.first and a.last and b.first and b.last) and rank(crossed) > rank(straight) + 1
    )
    first_level, first_sim, last_level, last_sim = crossed if use_crossed else straight
    return first_level, last_level, (first_sim + last_sim) / 2, use_crossed


def _equal(x: str, y: str, words: str) -> tuple[str, str]:
    if not x or not y:
        return "missing", ""
    return ("same", words) if x == y else ("differ", "")


def _street(a: Person, b: Person) -> tuple[str, str]:
    if not a.street or not b.street:
        return "missing", ""
    if a.street == b.street:
        return "same", "same street address"
    if a.house_number == b.house_number and token_set_ratio(a.street, b.street) >= CLOSE_TEXT:
        return "close", "street addresses alike"
    return "differ", ""


def _company(a: Person, b: Person) -> tuple[str, str]:
    if not a.company or not b.company:
        return "missing", ""
    if a.company == b.company:
        return "same", "same company"
    if token_set_ratio(a.company, b.company) >= CLOSE_TEXT:
        return "close", "company names alike"
    return "differ", ""


def _domain(a: Person, b: Person) -> tuple[str, str]:
    if not a.domains or not b.domains:
        return "missing", ""
    if set(a.domains) & set(b.domains):
        return "same", "same email domain"
    return "differ", ""


def compare(a: Person, b: Person) -> Comparison:
    levels: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for feature, fn in (("email", _email), ("phone", _phone)):
        levels[feature], reason = fn(a, b)
        if reason:
            reasons[feature] = reason
    first, last, similarity, swapped = _names(a, b)
    levels["first"], levels["last"] = first, last
    if first in ("exact", "nickname", "close") and last in ("exact", "close"):
        if first == last == "exact":
            reasons["first"] = "same name"
        else:
            reasons["first"] = f"names {round(similarity * 100)}% alike"
            if first == "nickname":
                reasons["first"] += " (nickname)"
    elif last == "exact":
        reasons["last"] = "same last name"
    if swapped:
        reasons["last"] = "first and last name swapped"
    levels["postal"], reason = _equal(a.postal, b.postal, "same postal code")
    if reason:
        reasons["postal"] = reason
    levels["street"], reason = _street(a, b)
    if reason:
        reasons["street"] = reason
    levels["city"], reason = _equal(a.city, b.city, "same city")
    if reason:
        reasons["city"] = reason
    levels["company"], reason = _company(a, b)
    if reason:
        reasons["company"] = reason
    levels["domain"], reason = _domain(a, b)
    if reason:
        reasons["domain"] = reason
    return Comparison(levels=levels, reasons=reasons, swapped=swapped)
