"""Duplicate companies: the same web domain, or the same name once its legal form is gone.

Two keys identify a company here:

- its **domain key**: the host of the domain field, or of the website when the domain is
  empty, lower case, without scheme, "www.", port and path ("https://www.Acme.com/about"
  → "acme.com"). A website on a shared platform ("linkedin.com/company/acme") or a free
  mail host says nothing about the company and gives no key;
- its **name key**: the name folded (case, accents), punctuation dropped, "&" read as
  "and", a leading "The" dropped, and legal forms at the end removed, several if present
  ("Müller GmbH & Co. KG" → "muller", "Société Générale S.A." → "societe generale",
  "ACME Co., Ltd." → "acme"). A name that is nothing but a legal form ("Company") keeps
  that word: a key is never empty for a non-empty name, so it cannot match everything.

German umlauts are written two ways ("Müller", "Mueller") and folded a third ("Muller").
A name with ä, ö or ü gets two name keys, one folded (ü → u) and one transliterated
(ü → ue), so "Müller GmbH" joins both "Muller" and "Mueller". A name without umlauts gets
one key, so "Mueller" alone never matches "Muller": that needs the umlaut spelling between.

company_duplicate_groups() reads the org's active companies once as a stream (four short
columns, constant memory per row), keys each in Python and joins companies that share any
key (union-find): linear in the number of companies, no pairwise comparison.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from ..models import Company
from ..normalize import normalize_domain
from .normalize import FREE_MAIL_DOMAINS, fold

__all__ = [
    "LEGAL_FORMS",
    "CompanyDuplicateGroup",
    "company_domain_key",
    "company_duplicate_groups",
    "company_key_name",
    "company_name_keys",
]

# Legal forms, written as they fold with dots and spaces removed ("S.à r.l." → "sarl",
# "Sp. z o.o." → "spzoo", "GmbH & Co. KG" → "gmbhandcokg"). A form is removed only when it
# ends the name; the longest form that matches goes first, then the next, while at least
# one word of the name is left.
LEGAL_FORMS: frozenset[str] = frozenset(
    [
        # English-speaking countries and the common-law world.
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "cos",
        "coinc",
        "coltd",
        "colimited",
        "llc",
        "lc",
        "pllc",
        "lllp",
        "llp",
        "lp",
        "ltd",
        "limited",
        "limitedliabilitycompany",
        "limitedpartnership",
        "plc",
        "publiclimitedcompany",
        "cic",
        "ulc",
        "ltee",
        "limitee",
        "pty",
        "ptyltd",
        "ptylimited",
        "pte",
        "pteltd",
        "ptelimited",
        "pvt",
        "pvtltd",
        "pvtlimited",
        "privatelimited",
        "opcpvtltd",
        "socltd",
        "npc",
        "cc",
        "andco",
        "andcompany",
        "andcie",
        "etcie",
        "andcia",
        "ycia",
        "undco",
        # German-speaking countries.
        "gmbh",
        "mbh",
        "gesmbh",
        "gesellschaftmitbeschrankterhaftung",
        "gesellschaftmitbeschraenkterhaftung",
        "ag",
        "aktiengesellschaft",
        "kg",
        "kgaa",
        "gmbhandcokg",
        "gmbhcokg",
        "gmbhandcokgaa",
        "gmbhandco",
        "agandcokg",
        "ugandcokg",
        "ohg",
        "gbr",
        "ug",
        "ughaftungsbeschrankt",
        "ughaftungsbeschraenkt",
        "haftungsbeschrankt",
        "haftungsbeschraenkt",
        "ek",
        "ekfm",
        "ekfr",
        "ev",
        "eg",
        "partg",
        "partgmbb",
        # European forms.
        "se",
        "sce",
        "ewiv",
        "eeig",
        # French, Belgian, Luxembourgish, Swiss.
        "sa",
        "sas",
        "sasu",
        "sarl",
        "eurl",
        "sca",
        "scs",
        "snc",
        "sci",
        "scop",
        "sprl",
        "srl",
        "bvba",
        "asbl",
        "societeanonyme",
        # Spanish, Portuguese, Latin American.
        "sl",
        "slu",
        "sll",
        "slne",
        "sau",
        "sociedadanonima",
        "ltda",
        "lda",
        "unipessoallda",
        "sacv",
        "sadecv",
        "decv",
        "sabdecv",
        "sapidecv",
        "srldecv",
        "sderl",
        "sderldecv",
        "sc",
        "cia",
        "eireli",
        # Italian.
        "spa",
        "srls",
        "sapa",
        "scrl",
        "scarl",
        "societaperazioni",
        # Dutch.
        "bv",
        "nv",
        "vof",
        "cv",
        # Nordic.
        "ab",
        "abp",
        "publ",
        "abpubl",
        "as",
        "asa",
        "aps",
        "ivs",
        "amba",
        "oy",
        "oyj",
        "hf",
        "ehf",
        # Central and Eastern Europe.
        "spzoo",
        "spolkazoo",
        "spk",
        "spj",
        "ska",
        "sro",
        "spolsro",
        "vos",
        "kft",
        "zrt",
        "nyrt",
        "bt",
        "kkt",
        "doo",
        "dooel",
        "dd",
        "ad",
        "ood",
        "eood",
        "ead",
        "ooo",
        "zao",
        "oao",
        "pao",
        "ao",
        "pjsc",
        "ojsc",
        "cjsc",
        "jsc",
        "tov",
        "ou",
        "uab",
        "sia",
        "ооо",
        "зао",
        "оао",
        "пао",
        "ао",
        "тов",
        # Turkey, Greece.
        "ltdsti",
        "sti",
        "ae",
        "epe",
        "ike",
        # Asia.
        "kk",
        "kabushikikaisha",
        "kabushikigaisha",
        "gk",
        "godokaisha",
        "yk",
        "yugengaisha",
        "sdnbhd",
        "sendirianberhad",
        "bhd",
        "berhad",
        "tbk",
    ]
)
# Legal forms written without spaces after the name in Chinese, Japanese and Korean.
_ATTACHED_FORMS = (
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "株式会社",
    "有限会社",
    "合同会社",
    "주식회사",
)
_LONGEST_FORM = max(len(form) for form in LEGAL_FORMS)
_MAX_FORM_WORDS = 8

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
_HAS_UMLAUT = re.compile("[äöüÄÖÜ]")
_NOT_WORD = re.compile(r"[\W_]+")

# Web hosts many companies share: a page there is no company's own domain.
SHARED_WEB_HOSTS = frozenset(
    [
        "linkedin.com",
        "facebook.com",
        "fb.com",
        "instagram.com",
        "twitter.com",
        "x.com",
        "youtube.com",
        "tiktok.com",
        "xing.com",
        "github.com",
        "gitlab.com",
        "bitbucket.org",
        "medium.com",
        "google.com",
        "sites.google.com",
        "maps.google.com",
        "goo.gl",
        "bit.ly",
        "linktr.ee",
        "about.me",
        "yelp.com",
        "crunchbase.com",
        "wellfound.com",
        "angel.co",
        "glassdoor.com",
        "indeed.com",
        "wikipedia.org",
        "en.wikipedia.org",
        "de.wikipedia.org",
        "business.site",
        "wordpress.com",
        "blogspot.com",
        "wix.com",
        "squarespace.com",
        "notion.site",
        "amazon.com",
        "etsy.com",
        "ebay.com",
    ]
)
# An ASCII host, bare or as a web address ("acme.com", "https://www.acme.com:443/about"):
# its host without "www.". Anything else (user info, IDN, odd schemes) takes normalize_domain.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_URL = re.compile(
    rf"^(?:https?://)?(?:www\.)?(?P<host>{_LABEL}(?:\.{_LABEL})*\.[a-z][a-z0-9-]*[a-z0-9])"
    r"\.?(?::\d{1,5})?(?:[/?#]|$)"
)


# Names ------------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    """The folded words of a name: dots inside abbreviations closed up ("S.A." → "sa"),
    "&" read as "and", every other punctuation mark a word break."""
    text = name.lower() if name.isascii() else fold(name)  # ASCII: nothing to fold
    text = text.replace(".", "").replace("&", " and ").replace("+", " and ")
    return [word for word in _NOT_WORD.split(text) if word]


def _strip_attached(word: str) -> str:
    for form in _ATTACHED_FORMS:
        if word.endswith(form) and len(word) > len(form):
            return word[: -len(form)]
    return word


def _strip_legal_forms(words: list[str]) -> list[str]:
    """`words` without the legal forms that end it, always keeping one word."""
    words = list(words)
    while len(words) > 1:
        # The longest run of final words that spells a form goes first: "gmbh and co kg"
        # is one form, not "kg" then "co" then a stray "gmbh and".
        longest, tail = 0, ""
        for size in range(1, min(_MAX_FORM_WORDS, len(words) - 1) + 1):
            tail = words[-size] + tail
            if len(tail) > _LONGEST_FORM:
                break
            if tail in LEGAL_FORMS:
                longest = size
        if not longest:
            break
        del words[-longest:]
    if words:
        words[-1] = _strip_attached(words[-1])
    return words


def _name_words(name: str) -> list[str]:
    words = _words(name)
    if len(words) > 1 and words[0] in ("the", "die", "der", "la", "le", "les", "el", "il"):
        # Only "The" in English; its common equivalents too, as a leading article is never
        # what tells two companies apart ("La Poste SA", "Poste").
        words = words[1:]
    return _strip_legal_forms(words)


def company_key_name(name) -> str:
    """A company name reduced to what identifies it: folded, without punctuation, a
    leading article or its legal forms, as words joined by single spaces ("ACME, Inc." →
    "acme"). Empty only for a name without any letter or digit."""
    return " ".join(_name_words(str(name or "")))


def company_name_keys(name) -> tuple[str, ...]:
    """The keys two names must share to count as one company: the words of
    company_key_name() closed up ("A.C.M.E." and "Acme" agree, so do "Micro Soft" and
    "Microsoft"), plus the transliterated spelling when the name has German umlauts."""
    text = str(name or "")
    keys = ["".join(_name_words(text))]
    if _HAS_UMLAUT.search(text):
        keys.append("".join(_name_words(text.translate(_UMLAUTS))))
    return tuple(dict.fromkeys(key for key in keys if key))


# Domains ----------------------------------------------------------------------------------


def _host(value: str) -> str:
    """normalize_domain() with a fast path for what most rows hold: a plain ASCII host."""
    plain = _PLAIN_URL.match(value.strip().lower())
    if plain:
        return plain["host"]
    try:
        return normalize_domain(value)
    except ValidationError:
        return ""


# Hosts whose sub-domains belong to their users, not to one company of them.
_SHARED_PARENTS = (
    "linkedin.com",
    "facebook.com",
    "google.com",
    "wordpress.com",
    "blogspot.com",
    "wixsite.com",
    "notion.site",
    "business.site",
    "wikipedia.org",
)
_SHARED_SUFFIXES = tuple(f".{host}" for host in _SHARED_PARENTS)


def company_domain_key(domain: str = "", website: str = "") -> str:
    """The company's web domain: its domain field, else its website's host ("" when it
    has neither, or only a page on a shared platform or a free mail host)."""
    if domain and domain.strip():
        return _host(domain)
    if not website or not website.strip():
        return ""
    host = _host(website)
    if not host or host in FREE_MAIL_DOMAINS:
        return ""
    if host in SHARED_WEB_HOSTS or host.endswith(_SHARED_SUFFIXES):
        return ""
    # A website that is only a host with a path on it is still that host ("acme.com/de").
    return host


# Groups -----------------------------------------------------------------------------------


@dataclass
class CompanyDuplicateGroup:
    """Companies that look like one: their ids (oldest first) and why, in words."""

    ids: list[int]
    reasons: list[str] = field(default_factory=list)


class _Groups:
    """Union-find over company ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def root(self, node: int) -> int:
        parent = self.parent
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def join(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _keyed_rows(rows: Iterable[tuple[int, str, str, str]]):
    """(id, domain key or "", name keys, name) per company."""
    for pk, name, domain, website in rows:
        yield pk, company_domain_key(domain, website), company_name_keys(name), name


def company_duplicate_groups(org, *, companies=None) -> list[CompanyDuplicateGroup]:
    """Groups of the org's active companies that share a domain or a name without legal
    forms, biggest first. `companies` narrows the candidates (a member's record scope); it
    must be a queryset of the org's companies."""
    queryset = companies if companies is not None else Company.objects.for_org(org)
    rows = (
        queryset.filter(org=org, is_archived=False)
        .order_by("id")
        .values_list("id", "name", "domain", "website")
        .iterator(chunk_size=5000)
    )
    by_domain: dict[str, list[int]] = defaultdict(list)
    by_name: dict[str, list[int]] = defaultdict(list)
    shown_name: dict[str, str] = {}
    for pk, domain_key, name_keys, name in _keyed_rows(rows):
        if domain_key:
            by_domain[domain_key].append(pk)
        for key in name_keys:
            by_name[key].append(pk)
            if key not in shown_name:
                shown_name[key] = name
    groups = _Groups()
    reasons: dict[int, list[tuple[int, str]]] = defaultdict(list)  # first id → reasons
    for label, index in (("domain", by_domain), ("name", by_name)):
        for key, ids in index.items():
            if len(ids) < 2:
                continue
            for other in ids[1:]:
                groups.join(ids[0], other)
            if label == "domain":
                text = f"same domain {key}"
            else:
                text = f"same name without legal suffix: {_shown_key(shown_name, key)}"
            reasons[ids[0]].append((len(ids), text))
    members: dict[int, list[int]] = defaultdict(list)
    for pk in list(groups.parent):
        members[groups.root(pk)].append(pk)
    why: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for first, found in reasons.items():
        why[groups.root(first)].extend(found)
    out = [
        CompanyDuplicateGroup(
            ids=sorted(ids),
            reasons=list(dict.fromkeys(text for _n, text in sorted(why[root], key=_by_size))),
        )
        for root, ids in members.items()
        if len(ids) > 1
    ]
    out.sort(key=lambda group: (-len(group.ids), group.ids[0]))
    return out


def _by_size(item: tuple[int, str]) -> tuple[int, str]:
    return (-item[0], item[1])


def _shown_key(shown_name: dict[str, str], key: str) -> str:
    """The key as words, from the first company that has it ("acme", "societe generale")."""
    name = shown_name.get(key, "")
    spaced = company_key_name(name)
    if "".join(spaced.split()) == key:
        return spaced
    transliterated = company_key_name(name.translate(_UMLAUTS))
    return transliterated if "".join(transliterated.split()) == key else key
