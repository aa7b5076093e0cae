"""Suggest a target field for every column of an uploaded file.

Deterministic: header names as real CRM, mail and address-book exports spell them (in
several languages), normalized and matched exactly, then loosely; then the column's values
confirm or correct the guess (a column full of emails is email). Every suggestion carries a
confidence in [0, 1] and a short reason, so the page can flag the ones worth a look.

The word tables it matches against (header synonyms, honorifics, statuses, address words) are
in mapper_data.py; this module holds the rules.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from .mapper_data import (
    ADDRESS_KINDS,
    ADDRESS_PARTS,
    AMBIGUOUS_TITLE,
    CONTACT_STATUS_WORDS,
    HONORIFICS,
    LEAD_STATUSES,
    NOISE_WORDS,
    SYNONYMS,
)

SKIP = "__skip__"
CUSTOM = "__custom__"

# Import-only targets beside the contact catalog's keys.
EXTRA_TARGETS = [
    ("full_name", "Full name (split into first / last)", "Core"),
    (
        "full_address",
        "Whole address in one cell (split into street, city, region, postal code, country)",
        "Address",
    ),
    ("company_department", "Company;Department in one cell (split in two)", "Company"),
    ("company_domain", "Company domain", "Company"),
    ("company_website", "Company website", "Company"),
    ("external_id", "External ID", "Core"),
    ("note", "Note (added to the timeline)", "Core"),
]

# Import-only targets whose one cell fills several fields.
COMBINED_TARGETS = {
    "full_address": ("street", "city", "region", "postal_code", "country"),
    "company_department": ("company", "department"),
}

# Targets that accept several columns (values are merged).
MULTI_TARGETS = {"other_emails", "tags", "note"}


_EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[a-z]{2,}$", re.IGNORECASE)
_PHONE_RE = re.compile(r"^\+?[\d\s().\-/]{7,20}$")
_URL_RE = re.compile(r"^(https?://|www\.)\S+$", re.IGNORECASE)
_DATE_RE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2})?.*)?|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}.*)$"
)
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
# A whole value that is a date (with an optional time), and nothing more: "01.23.45.67.89"
# is a French phone number, not a date followed by something.
_WHOLE_DATE_RE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2})?)?$"
)


def normalize_header(header: str) -> str:
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", header)  # camelCase / PascalCase → words
    text = text.replace("__c", " ")
    text = unicodedata.normalize("NFKD", text)
    # "ß" has no decomposition: spell it "ss" so "Straße" and "Strasse" are one word.
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower().replace("ß", "ss")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


def _strip_noise(norm: str) -> str:
    words = [w for w in norm.split() if w not in NOISE_WORDS]
    return " ".join(words) or norm


_EXACT: dict[str, str] = {}
_STRIPPED: dict[str, str] = {}
for _target, _names in SYNONYMS.items():
    for _name in _names:
        _n = normalize_header(_name)
        _EXACT.setdefault(_n, _target)
        _STRIPPED.setdefault(_strip_noise(_n), _target)
_CHOICES = list(_EXACT)


@dataclass
class Suggestion:
    column: str
    target: str  # a target key, CUSTOM or SKIP
    confidence: float
    reason: str


def sniff_values(values: list[str]) -> tuple[str | None, float]:
    """The field a column's values look like, and the share of values that fit."""
    vals = [v.strip() for v in values if v and v.strip()]
    if not vals:
        return None, 0.0
    n = len(vals)

    def share(pred) -> float:
        return sum(1 for v in vals if pred(v)) / n

    checks = [
        (
            "email",
            share(
                lambda v: all(_EMAIL_RE.match(p.strip()) for p in re.split(r"[;,]", v) if p.strip())
            ),
        ),
        ("linkedin_url", share(lambda v: "linkedin.com/" in v.lower())),
        ("company_website", share(lambda v: bool(_URL_RE.match(v)))),
        (
            "phone",
            share(
                # "2024-03-01" has the digits and dashes of a phone number.
                lambda v: (
                    bool(_PHONE_RE.match(v))
                    and sum(c.isdigit() for c in v) >= 7
                    and not _WHOLE_DATE_RE.match(v)
                )
            ),
        ),
        ("date", share(lambda v: bool(_DATE_RE.match(v)))),
        ("country", share(lambda v: bool(_COUNTRY_RE.match(v)))),
    ]
    best, best_share = None, 0.0
    for kind, s in checks:
        if s > best_share:
            best, best_share = kind, s
    return best, best_share


# The kinds of custom field an import can create for a column ("Store as custom field").
CUSTOM_TYPES = [
    ("text", "Text"),
    ("number", "Number"),
    ("date", "Date"),
    ("checkbox", "Checkbox (yes/no)"),
    ("link", "Link"),
]
_NUMBER_RE = re.compile(r"^-?(0|[1-9]\d{0,2}(,\d{3})+|[1-9]\d*)([.]\d+)?$")
_YES_NO = {"yes", "no", "true", "false", "y", "n"}  # what a checkbox field reads


def custom_type_for(values: list[str]) -> str:
    """The kind of custom field a column's values call for. Only when every value in the
    sample fits: a number with a leading zero (a postal code, an account code) stays text,
    and so does anything mixed, since a typed field refuses the cells that do not fit."""
    vals = [v.strip() for v in values if v and v.strip()]
    if not vals:
        return "text"
    if all(_WHOLE_DATE_RE.match(v) for v in vals):
        return "date"
    if all(_NUMBER_RE.match(v) for v in vals):
        return "number"
    if all(v.lower() in _YES_NO for v in vals):
        return "checkbox"
    if all(_URL_RE.match(v) for v in vals):
        return "link"
    return "text"


# Columns whose names mislead (issue 11): what they hold, whatever the name suggests.
_HONORIFIC_REASON = (
    "an honorific (Mr., Dr.), not the job title; there is no salutation field, so it is"
    " skipped (store it as a custom field to keep it)"
)
_LEAD_STATUS_REASON = (
    "a lead status (New, Open, In progress…), not the contact's Active/Inactive status;"
    " kept as a custom field"
)
_ACCOUNT_ID_REASON = "Salesforce account ids (001…) name no company here; kept as a custom value"
_OWNER_ID_REASON = "the old system's owner id, not an owner email; kept as a custom value"
_OTHER_STATUS_REASON = (
    "its values are not a contact status (Active, Inactive, Unsubscribed, Bounced);"
    " kept as a custom field"
)
# Dynamics 365's "Export to Excel" puts three hidden columns first, for its own re-import:
# "(Do Not Modify) <Table>" (the record's id), "(Do Not Modify) Row Checksum" and
# "(Do Not Modify) Modified On".
_DO_NOT_MODIFY = "do not modify "
_MISLEADING: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        ["salutation", "anrede", "name prefix", "prefix", "honorific", "civilite"],
        (SKIP, _HONORIFIC_REASON),
    ),
    **dict.fromkeys(["lead status", "hs lead status"], (CUSTOM, _LEAD_STATUS_REASON)),
    **dict.fromkeys(
        ["marketing contact status", "hs marketable status"],
        (
            CUSTOM,
            "HubSpot's marketing contact status is a billing flag, not consent;"
            " kept as a custom field",
        ),
    ),
    **dict.fromkeys(
        ["account id", "accountid", "account 18 id", "company id", "organization id"],
        (CUSTOM, _ACCOUNT_ID_REASON),
    ),
    **dict.fromkeys(["owner id", "ownerid", "owner user id"], (CUSTOM, _OWNER_ID_REASON)),
}
# Google's "E-mail 1 - Type"/"Phone 1 - Label", Outlook's "E-mail Type"/"E-mail Display
# Name": they describe the column beside them. ("Person - Label" is Pipedrive's tags.)
_DESCRIBES_RE = re.compile(r"^(?:.+ \d+ (?:type|label)|e ?mail(?: \d+)? (?:type|display name))$")
# A Salesforce record id: 3-char key prefix, 2-char pod, a reserved 0, 9 chars, and for
# the 18-char form a 3-char case checksum.
_SFID_RE = re.compile(r"^[0-9a-zA-Z]{5}0[0-9a-zA-Z]{9}(?:[A-Z0-5]{3})?$")


def _is_sfid(v: str) -> bool:
    return len(v) in (15, 18) and bool(_SFID_RE.match(v)) and any(c.isdigit() for c in v[:3])


def _is_company_department(v: str) -> bool:
    # vCard's ORG property: the organization, then its units, separated by ";".
    return v.count(";") == 1 and not v.startswith(";")


def _is_honorific(v: str) -> bool:
    # Cheap on purpose (it runs on every sampled value of unmatched columns).
    if len(v) > 16:
        return False
    words = v.lower().replace(".", " ").split()
    return bool(words) and all(w in HONORIFICS for w in words)


def _mostly(vals: list[str], pred, share: float = 0.8) -> bool:
    """Whether `share` of the values fit; stops as soon as too many don't, so a column
    that is nothing of the kind costs a few values, not the whole sample."""
    allowed_misses = len(vals) * (1 - share)
    misses = 0
    for v in vals:
        if not pred(v):
            misses += 1
            if misses > allowed_misses:
                return False
    return bool(vals)


def _address_part(norm: str) -> tuple[str, str, int, str] | None:
    """(family key, family name, rank, part) of an address column, or None. Part "" is a
    line with no field of its own (second street line, PO box, formatted)."""
    words = norm.split()
    if len(words) > 2 and words[0] == "address" and words[1].isdigit():
        family, name, rank, rest = f"address {words[1]}", f"Address {words[1]}", 1, words[2:]
    else:
        kinds = [w for w in words if w in ADDRESS_KINDS]
        rest = [w for w in words if w not in ADDRESS_KINDS]
        family = name = kinds[0] if kinds else "main"
        rank = ADDRESS_KINDS[kinds[0]] if kinds else 1
    line = 1
    if len(rest) > 1 and rest[-1].isdigit():
        line = int(rest[-1])
        rest = rest[:-1]
    part = ADDRESS_PARTS.get(" ".join(rest))
    if part is None and len(rest) > 1 and rest[0] == "address":
        part = ADDRESS_PARTS.get(" ".join(rest[1:]))  # vCard: "Address (Work) State"
    if part is None:
        return None
    return family, name, rank, part if line == 1 else ""


# Mailchimp locates each subscriber from their IP address: these columns are a guess of
# where they were when they signed up, not the address they gave.
_IP_GEO_MARKERS = {"latitude", "longitude", "gmtoff", "dstoff"}
_IP_GEO_PLACES = {"cc", "region", "country", "city"}


def _ip_geolocation_aside(raw: list, norms: list[str]) -> None:
    if not _IP_GEO_MARKERS.issubset(norms):
        return
    for k, norm in enumerate(norms):
        if norm in _IP_GEO_PLACES and raw[k].target != SKIP:
            reason = "located from the IP address at sign-up, not an address the person gave"
            raw[k] = Suggestion(raw[k].column, CUSTOM, 0.8, reason)


def _pick_address_family(headers, norms, columns, raw, allowed_targets) -> None:
    """All address columns of one family land together: the business (mailing, work) one
    first, else the first with values in the sample; the others are kept aside as custom
    fields (skipped when empty), never half an address from each."""
    families: dict[str, list] = {}
    for i, norm in enumerate(norms):
        if (raw[i].target == SKIP and _DESCRIBES_RE.match(norm)) or raw[i].target == "full_address":
            continue
        found = _address_part(norm)
        if found is None:
            continue
        family, name, rank, part = found
        entry = families.setdefault(family, [name, rank, False, []])
        entry[2] = entry[2] or any(v.strip() for v in columns[i])
        entry[3].append((i, part))
    families = {k: f for k, f in families.items() if any(p for _, p in f[3])}
    if not families:
        return
    for family, entry in families.items():
        if family.startswith("address "):  # Google: the family's "Type" column says which
            for label in ("type", "label"):
                if f"{family} {label}" in norms:
                    kinds = [normalize_header(v) for v in columns[norms.index(f"{family} {label}")]]
                    kinds = [k for k in kinds if k]
                    if kinds:
                        top = max(set(kinds), key=kinds.count)
                        entry[1] = ADDRESS_KINDS.get(top.split()[0], 1)
    has_sample = any(columns)
    order = list(families)
    winner = min(
        order, key=lambda k: (has_sample and not families[k][2], families[k][1], order.index(k))
    )
    win_name = families[winner][0]
    for family, (name, _, _, cols) in families.items():
        parts = {p for _, p in cols}
        for i, part in cols:
            filled = any(v.strip() for v in columns[i])
            if family != winner:
                reason = f"the {win_name} address fills the address fields; {name} is kept aside"
                raw[i] = Suggestion(headers[i], CUSTOM if filled else SKIP, 0.8, reason)
            elif part and (allowed_targets is None or part in allowed_targets):
                raw[i] = Suggestion(headers[i], part, 0.95, f"part of the {name} address")
            elif norms[i].endswith("formatted") and len(parts) > 1:
                raw[i] = Suggestion(
                    headers[i], SKIP, 0.9, "repeats the address parts mapped beside it"
                )
            else:
                reason = "a further address line; the address fields hold the first"
                raw[i] = Suggestion(headers[i], CUSTOM if filled else SKIP, 0.6, reason)


def _header_guess(header: str) -> tuple[str | None, float, str]:
    norm = normalize_header(header)
    if not norm:
        return None, 0.0, "empty header"
    if norm in _EXACT:
        return _EXACT[norm], 0.97, "header matches a known export name"
    stripped = _strip_noise(norm)
    if stripped in _STRIPPED:
        return _STRIPPED[stripped], 0.9, "header matches a known name"
    found = process.extractOne(norm, _CHOICES, scorer=fuzz.token_sort_ratio, score_cutoff=80)
    if found:
        name, score, _ = found
        return _EXACT[name], round(0.55 + (score - 80) / 100, 2), f"header resembles “{name}”"
    return None, 0.0, "no known header matches"


# Names of a person, as opposed to the name of a lead or deal that some CRMs (Close, for
# one) export beside it and that is really the company's name.
_PERSON_NAME_HEADERS = {"primary contact name", "contact name", "person name", "full name"}
_LEAD_NAME_HEADERS = {"display name", "lead name", "name"}


# A numbered value column: Google's "Phone 2 - Value", Keap's bare "Phone 2".
_NUMBERED_VALUE_RE = re.compile(r"^(.+ \d+)(?: (?:value|number))?$")


def _typed_number(norms: list[str], index: int) -> bool:
    """Whether a numbered value column ("Phone 2 - Value", "Phone 2") has a type column
    beside it ("Phone 2 - Type", "Phone 2 Type")."""
    found = _NUMBERED_VALUE_RE.match(norms[index])
    return bool(found) and any(f"{found.group(1)} {w}" in norms for w in ("type", "label"))


def _do_not_modify(header: str, rest: str) -> Suggestion:
    """Dynamics 365's bookkeeping columns: the record's id is worth keeping as the
    external id (it finds the record again); its checksum and time stamp are not data."""
    if rest in ("row checksum", "modified on"):
        return Suggestion(header, SKIP, 0.9, "the old system's bookkeeping for its own re-import")
    return Suggestion(header, "external_id", 0.9, "the old system's id of the record")


def _constant_company_aside(raw: list, columns: list[list[str]]) -> None:
    """Two columns read as the company: one that holds the same value on every sampled row
    while another varies is the exporting business itself (Odoo's "Company" of a
    multi-company database), not each person's employer. It steps aside for the other."""
    company = [k for k, s in enumerate(raw) if s.target == "company"]
    if len(company) < 2:
        return

    def distinct(k: int) -> int:
        return len({v.strip().casefold() for v in columns[k] if v and v.strip()})

    def filled(k: int) -> int:
        return sum(1 for v in columns[k] if v and v.strip())

    varied = [k for k in company if distinct(k) > 1]
    if not varied:
        return
    for k in company:
        if distinct(k) == 1 and filled(k) >= 5:
            reason = "the same value on every row: the exporting business, not the employer"
            raw[k] = Suggestion(raw[k].column, CUSTOM, 0.6, reason)


def _person_over_lead_name(raw: list, norms: list[str], taken: dict) -> None:
    """When a person's name column and a lead's name column both read as a full name,
    the person's column holds the name and the lead's is the company (unless a company
    column is mapped already)."""
    lead = next((k for k, n in enumerate(norms) if n in _LEAD_NAME_HEADERS), None)
    person = next((k for k, n in enumerate(norms) if n in _PERSON_NAME_HEADERS), None)
    if lead is None or person is None or raw[lead].target != "full_name":
        return
    if raw[person].target not in ("full_name", CUSTOM):
        return
    raw[person] = Suggestion(raw[person].column, "full_name", 0.95, "the person's name")
    taken["full_name"] = person
    if "company" in taken:
        raw[lead] = Suggestion(raw[lead].column, CUSTOM, 0.6, "the lead's name; kept aside")
    else:
        reason = "the lead's name (the company) beside the person's own name column"
        raw[lead] = Suggestion(raw[lead].column, "company", 0.85, reason)
        taken["company"] = lead


def suggest_mapping(
    headers: list[str],
    sample_rows: list[list[str]] | None = None,
    *,
    allowed_targets: set[str] | None = None,
    custom_labels: dict[str, str] | None = None,
) -> list[Suggestion]:
    """One suggestion per column. `allowed_targets` limits targets (e.g. fields the member may
    edit); `custom_labels` maps "custom.<key>" → label of the org's custom fields so a column
    named like an existing custom field lands there."""
    sample_rows = sample_rows or []
    custom_norm = {normalize_header(label): key for key, label in (custom_labels or {}).items()}
    raw: list[Suggestion] = []
    for i, header in enumerate(headers):
        values = [row[i] for row in sample_rows[:200] if i < len(row)]
        norm = normalize_header(header)
        if norm in custom_norm:
            raw.append(Suggestion(header, custom_norm[norm], 0.95, "matches a custom field"))
            continue
        if _DESCRIBES_RE.match(norm):
            raw.append(Suggestion(header, SKIP, 0.9, "describes the column beside it, not data"))
            continue
        if norm in _MISLEADING:
            target, reason = _MISLEADING[norm]
            raw.append(Suggestion(header, target, 0.9, reason))
            continue
        if norm.startswith(_DO_NOT_MODIFY):
            raw.append(_do_not_modify(header, norm[len(_DO_NOT_MODIFY) :]))
            continue
        target, conf, reason = _header_guess(header)
        kind, share = sniff_values(values)
        if kind in {"email", "linkedin_url", "phone"} and share >= 0.8:
            if target is None or conf < 0.9:
                target, conf, reason = kind, 0.85, f"{int(share * 100)}% of values look like {kind}"
            elif target in {"email", "other_emails"} and kind == "email":
                conf = min(0.99, conf + 0.02)
            elif kind == "email" and target not in {"email", "other_emails", "owner"}:
                target, conf, reason = "email", 0.8, "values are email addresses"
        elif target == "email" and values and share < 0.3 and kind != "email":
            conf, reason = 0.5, reason + "; values don't look like emails"
        if target == "linkedin_url" and norm == "url" and kind != "linkedin_url":
            target, conf, reason = "company_website", 0.6, "a URL column"
        filled = [v.strip() for v in values if v and v.strip()]
        if target != "external_id" and _mostly(filled, _is_sfid):
            # An id of the old system is never a name, an email or an owner.
            target, conf = CUSTOM, 0.8
            reason = "values are Salesforce record ids (001…), not names; kept as a custom value"
        elif target in (None, "job_title") and _mostly(filled, _is_honorific):
            target, conf, reason = SKIP, 0.85, _HONORIFIC_REASON
        elif target == "status" and _mostly(filled, lambda v: normalize_header(v) in LEAD_STATUSES):
            target, conf, reason = CUSTOM, 0.8, _LEAD_STATUS_REASON
        elif target == "status" and not _mostly(
            filled, lambda v: normalize_header(v) in CONTACT_STATUS_WORDS, 0.5
        ):
            # A board's or pipeline's own status (Working on it, Done, Stuck): whatever it
            # tracks, it is not whether the contact is active.
            target, conf, reason = CUSTOM, 0.7, _OTHER_STATUS_REASON
        elif target == "street" and _mostly(filled, lambda v: len(v.split("  ")) >= 5):
            target, conf = "full_address", 0.9
            reason = "each cell holds a whole address (street, city, region, postal code, country)"
        elif target == "company" and _mostly(filled, _is_company_department):
            target, conf, reason = "company_department", 0.9, "cells read “Company;Department”"
        if target in (SKIP, CUSTOM):
            raw.append(Suggestion(header, target, conf, reason))
            continue
        if not any(v.strip() for v in values) and sample_rows and target is None:
            raw.append(Suggestion(header, SKIP, 0.9, "column is empty in the sample"))
            continue
        if allowed_targets is not None and target not in allowed_targets:
            target = None
        if target is None:
            raw.append(Suggestion(header, CUSTOM, 0.3, reason))
        else:
            raw.append(Suggestion(header, target, conf, reason))

    norms = [normalize_header(h) for h in headers]
    # Outlook's "Title" beside a "Job Title" is the honorific.
    if any(
        s.target == "job_title" and s.confidence >= 0.9 and norms[k] not in AMBIGUOUS_TITLE
        for k, s in enumerate(raw)
    ):
        for k, s in enumerate(raw):
            if norms[k] in AMBIGUOUS_TITLE and s.target == "job_title":
                raw[k] = Suggestion(s.column, SKIP, 0.85, _HONORIFIC_REASON)
    columns = [[row[i] for row in sample_rows[:200] if i < len(row)] for i in range(len(headers))]
    _pick_address_family(headers, norms, columns, raw, allowed_targets)
    _ip_geolocation_aside(raw, norms)
    _constant_company_aside(raw, columns)

    # Each single-valued target goes to its most confident column; a second email column
    # becomes "other emails", others fall back to custom fields.
    taken: dict[str, int] = {}
    order = sorted(range(len(raw)), key=lambda k: -raw[k].confidence)
    for idx in order:
        s = raw[idx]
        if (
            s.target in (SKIP, CUSTOM)
            or s.target in MULTI_TARGETS
            or s.target.startswith("custom.")
        ):
            continue
        if s.target in taken:
            if s.target == "email":
                raw[idx] = Suggestion(
                    s.column,
                    "other_emails",
                    s.confidence * 0.9,
                    "another email column is the primary",
                )
            elif s.target == "phone" and "mobile" not in taken and _typed_number(norms, idx):
                # Google's "Phone 2 - Value": each row's "- Type" says mobile or not.
                reason = "each row's type column says whether it is the mobile or the phone"
                raw[idx] = Suggestion(s.column, "mobile", s.confidence * 0.9, reason)
                taken["mobile"] = idx
            else:
                raw[idx] = Suggestion(
                    s.column, CUSTOM, 0.3, f"“{raw[taken[s.target]].column}” already maps there"
                )
            continue
        taken[s.target] = idx
    _person_over_lead_name(raw, norms, taken)
    # A full name column is only useful when first/last are not mapped.
    if "full_name" in taken and ("first_name" in taken or "last_name" in taken):
        idx = taken["full_name"]
        raw[idx] = Suggestion(raw[idx].column, CUSTOM, 0.3, "first and last name are mapped")
    return raw
