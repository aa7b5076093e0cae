"""The rules for one cell of an import: how each kind of column is read, checked and
normalized, with a message saying why when a cell can't be taken.

A `RowConverter` is built once per import (it knows the mapping, the org's members, custom
fields and choice tables) and answers for single cells without touching the database;
convert/ applies it to whole chunks, column by column.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo

from django.core.exceptions import ValidationError

from ..custom_fields import coerce_custom_value
from ..fields import CUSTOM_PREFIX, catalog_by_key, contact_field_catalog
from ..models import Contact
from ..normalize import LOCALE_DATA, normalize_domain, normalize_email, region_code
from ..validators import clean_timezone, clean_twitter_handle, clean_url
from .mapper import COMBINED_TARGETS, CUSTOM, SKIP

ADDRESS_FIELDS = COMBINED_TARGETS["full_address"]
_REGION_WITH_COUNTRY = re.compile(r"^(.*\S)\s*\(([A-Z]{2})\)$")
_ESCAPED_LEADS = {"=", "+", "-", "@", "\t", "\r"}
# In a job's value_map (the "match values" step, matching.py): an owner value that becomes
# the import's default owner.
DEFAULT_OWNER = "__default__"
TAG_MAX = 60  # characters of a tag name
# Several values in one cell: ";" (Outlook), "," or newlines (most), "|", and " ::: " (Google).
_SPLIT_MULTI = re.compile(r"\s*(?:[;,|\n]|:::)\s*")
_SPLIT_TAGS = re.compile(r"\s*[;,|\n]\s*|\s*:::\s*")  # ":::" is Google Contacts' separator
_TRUE = {
    "yes",
    "y",
    "true",
    "t",
    "1",
    "x",
    "opted in",
    "opt in",
    "subscribed",
    "granted",
    "ja",
    "oui",
    "si",
    "sí",
    "on",
    "checked",
}
_FALSE = {
    "no",
    "n",
    "false",
    "f",
    "0",
    "opted out",
    "opt out",
    "unsubscribed",
    "denied",
    "nein",
    "non",
    "off",
    "unchecked",
}
# Headers whose yes means the person said no ("HasOptedOutOfEmail", "Do Not Call").
_INVERTED_HEADER = re.compile(r"opt(ed)?\s*out|do\s*not|unsubscribed", re.IGNORECASE)

# How other products name the values of our choice fields (normalized to lower-case words).
CHOICE_ALIASES: dict[str, dict[str, str]] = {
    "lifecycle_stage": {
        "subscriber": "lead",
        "lead": "lead",
        "new": "stage",
        "stage": "stage",
        "marketing qualified lead": "qualified",
        "marketingqualifiedlead": "qualified",
        "mql": "qualified",
        "sales qualified lead": "qualified",
        "salesqualifiedlead": "qualified",
        "sql": "qualified",
        "qualified": "qualified",
        "opportunity": "opportunity",
        "customer": "customer",
        "evangelist": "advocate",
        "advocate": "advocate",
        "churned": "churned",
        "former customer": "churned",
        "prospect": "lead",
        "potential customer": "lead",  # Copper's contact types
        "current customer": "customer",
        "past customer": "churned",
    },
    "status": {
        # A lead status (New, Open, In progress, Unqualified, ...) is none of these: the
        # match-values step leaves it out (matching.suggest_choice).
        "active": "active",
        "inactive": "inactive",
        "unsubscribed": "unsubscribed",
        "bounced": "bounced",
        "cleaned": "bounced",
    },
    "consent_status": {
        "opted in": "opted_in",
        "opt in": "opted_in",
        "subscribed": "opted_in",
        "yes": "opted_in",
        "granted": "opted_in",
        "opted out": "opted_out",
        "opt out": "opted_out",
        "unsubscribed": "opted_out",
        "no": "opted_out",
        "pending": "pending",
        "unknown": "unknown",
        "non subscribed": "unknown",
        "not subscribed": "unknown",  # Freshsales: never subscribed, not a refusal
    },
}

# Country names and common aliases → ISO codes, from the phone library's English names.
_COUNTRY_ALIASES = {
    "usa": "US",
    "u s a": "US",
    "us": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "deutschland": "DE",
    "allemagne": "DE",
    "españa": "ES",
    "espana": "ES",
    "france": "FR",
    "italia": "IT",
    "nederland": "NL",
    "holland": "NL",
    "schweiz": "CH",
    "suisse": "CH",
    "österreich": "AT",
    "osterreich": "AT",
    "brasil": "BR",
    "méxico": "MX",
    "south korea": "KR",
    "korea": "KR",
    "russia": "RU",
    "czech republic": "CZ",
    "uae": "AE",
}


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


# Files name countries in English first, then in the languages of our other header synonyms.
_COUNTRY_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt")


def _country_table() -> dict[str, str]:
    """Country names → ISO codes. The phone library's table points a language at another
    one's spelling with "*xx" (English is usually "*aa", the name every language shares)."""
    table = {}
    for language in _COUNTRY_LANGUAGES:
        for code, names in LOCALE_DATA.items():
            name = names.get(language, "")
            if name.startswith("*"):
                name = names.get(name[1:], "")
            if name and not name.startswith("*") and len(code) == 2:
                table.setdefault(_words(name), code)
    table.update({_words(k): v for k, v in _COUNTRY_ALIASES.items()})
    return table


_COUNTRIES = _country_table()


def parse_country(text: str) -> str:
    code = region_code(text)
    if code:
        return code
    found = _COUNTRIES.get(_words(text))
    if found:
        return found
    raise ValidationError(f"“{text}” is not a country we know; use a name or a code like DE.")


_DATE_FORMATS_DMY = ["%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y", "%d.%m.%y"]
_DATE_FORMATS_MDY = ["%m/%d/%Y", "%m-%d-%Y", "%m/%d/%y"]
_TIME_SUFFIXES = ["", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p"]


def parse_datetime(text: str, *, tz: dt.tzinfo, day_first: bool) -> dt.datetime:
    """A moment from the ways spreadsheets write one; naive values are in the org's zone."""
    value = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        formats = (
            (_DATE_FORMATS_DMY + _DATE_FORMATS_MDY)
            if day_first
            else (_DATE_FORMATS_MDY + _DATE_FORMATS_DMY)
        )
        for fmt in formats:
            for suffix in _TIME_SUFFIXES:
                try:
                    parsed = dt.datetime.strptime(value, fmt + suffix)
                    break
                except ValueError:
                    continue
            if parsed:
                break
        if parsed is None:
            raise ValidationError(
                f"“{value}” is not a date we can read; use YYYY-MM-DD (optionally with a time)."
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(dt.UTC)


def parse_bool(text: str, *, inverted: bool) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        value = True
    elif word in _FALSE:
        value = False
    else:
        raise ValidationError(f"“{text}” is not yes or no.")
    return (not value) if inverted else value


def split_full_name(text: str) -> tuple[str, str]:
    name = " ".join(text.split())
    if "," in name:  # "Smith, Jane"
        last, _, first = name.partition(",")
        return first.strip(), last.strip()
    parts = name.split(" ")
    if len(parts) == 1:
        return parts[0], ""
    return parts[0], " ".join(parts[1:])


def split_address(text: str) -> tuple[str, str, str, str, str]:
    """(street, city, region, postal code, country code) of a whole address in one cell.
    Mailchimp writes its address fields joined by two spaces: street, second line, city,
    state, postal code, country; any other shape stays whole in the street."""
    parts = [p.strip() for p in text.split("  ")]
    if len(parts) == 6:
        street, line2, city, region, postal, country = parts
        street = ", ".join(p for p in (street, line2) if p)
    else:
        return text, "", "", "", ""
    try:
        country = parse_country(country) if country else ""
    except ValidationError:
        country = ""
    return street, city, region, postal, country


def tag_names(raw: str, limit: int | None = TAG_MAX) -> tuple[str, ...]:
    """The tags of a labels cell. Google Contacts writes its own groups with a "* " lead:
    "* myContacts" is on every contact and says nothing, "* starred" becomes "starred".
    Mailchimp quotes each tag ('"Customers","VIP"'); the quotes are not part of the name."""
    names = []
    for name in _SPLIT_TAGS.split(raw):
        if len(name) > 1 and name[0] == name[-1] == '"':
            name = name[1:-1].strip()
        if name.startswith("*"):
            name = name[1:].strip()
            if name.lower() == "mycontacts":
                continue
        if name:
            names.append(name[:limit])
    return tuple(names)


class RowConverter:
    """Converts cells to contact values for one import. `mapping` is column → target."""

    CHOICE_FIELDS = {
        "status",
        "lifecycle_stage",
        "deal_role",
        "consent_status",
        "consent_type",
        "gdpr_basis",
    }
    BOOL_FIELDS = {
        "consent_email",
        "consent_sms",
        "consent_phone",
        "consent_whatsapp",
        "consent_data_processing",
    }
    TEXT_FIELDS = {
        "first_name",
        "last_name",
        "job_title",
        "department",
        "source",
        "street",
        "city",
        "region",
        "postal_code",
        "language",
        "consent_source",
    }

    def __init__(
        self,
        *,
        org,
        headers: list[str],
        mapping: dict,
        members_by_email: dict,
        day_first: bool | None = None,
        custom_keys_for_columns: dict | None = None,
        value_map: dict | None = None,
        default_owner_id: int | None = None,
    ):
        """`value_map`: the job's matched values, {header: {value: what to store}}
        (matching.py); they come before the rules below."""
        self.org = org
        self.headers = headers
        self.tz = zoneinfo.ZoneInfo(org.timezone or "UTC")
        self.day_first = (
            day_first if day_first is not None else not (org.locale or "").lower().endswith("us")
        )
        self.members_by_email = {k.lower(): v for k, v in members_by_email.items()}
        self._member_ids = set(self.members_by_email.values())
        self.catalog = catalog_by_key(contact_field_catalog(org))
        self.definitions = {
            spec.key[len(CUSTOM_PREFIX) :]: spec.definition
            for spec in self.catalog.values()
            if spec.is_custom
        }
        custom_keys_for_columns = custom_keys_for_columns or {}
        self.plan: list[tuple[int, str, str]] = []  # (column index, target, header)
        for index, header in enumerate(headers):
            target = mapping.get(header, SKIP)
            if target == SKIP:
                continue
            if target == CUSTOM:
                target = CUSTOM_PREFIX + custom_keys_for_columns[header]
            self.plan.append((index, target, header))
        self.mapped_fields = {t for _, t, _ in self.plan}
        self.inverted = {
            h for _, t, h in self.plan if t in self.BOOL_FIELDS and _INVERTED_HEADER.search(h)
        }
        self.region_column = next((i for i, t, _ in self.plan if t == "country"), None)
        self.value_map = {h: m for h, m in (value_map or {}).items() if isinstance(m, dict)}
        self.default_owner_id = default_owner_id
        self._custom_matches = {
            t[len(CUSTOM_PREFIX) :]: self.value_map[h]
            for _, t, h in self.plan
            if t.startswith(CUSTOM_PREFIX) and h in self.value_map
        }
        self._choice_tables = {}
        for name in self.CHOICE_FIELDS:
            field = Contact._meta.get_field(name)
            table = {_words(str(label)): value for value, label in field.choices}
            table.update({_words(value): value for value, _ in field.choices})
            table.update(CHOICE_ALIASES.get(name, {}))
            self._choice_tables[name] = table

    def _matched_choice(self, name: str, text: str, stored) -> str | None:
        """A value matched on the match-values step: "" leaves the field empty."""
        if stored in ("", DEFAULT_OWNER):
            return None
        if stored not in {value for value, _ in Contact._meta.get_field(name).choices}:
            raise ValidationError(
                f"“{text}” was matched to “{stored}”, which is no longer a choice."
            )
        return stored

    def _matched_owner(self, text: str, stored) -> int | None:
        """An owner matched on the match-values step: DEFAULT_OWNER (or "") leaves the owner
        to the import's default (written as that member, so an update that clears blanks gives
        the contact the default owner, not none); a member must still be one the import may
        give contacts to."""
        if stored in ("", DEFAULT_OWNER):
            return self.default_owner_id
        user_id = int(stored) if str(stored).isdigit() else None
        if user_id is None or user_id not in self._member_ids:
            raise ValidationError(
                f"“{text}” was matched to a member you may no longer give contacts to."
            )
        return user_id

    def _choice(self, name: str, text: str) -> str:
        found = self._choice_tables[name].get(_words(text))
        if found is None:
            field = Contact._meta.get_field(name)
            allowed = ", ".join(str(label) for _, label in field.choices)
            raise ValidationError(f"“{text}” is not a {field.verbose_name} ({allowed}).")
        return found

    def cell_value(self, target: str, header: str, raw: str):
        """The value of one non-blank cell (stripped) for `target`. Emails come back as
        (primary, extra addresses), names as (first, last), tags as a tuple; raises
        ValidationError (or ValueError for a bad number) for a cell that can't be taken.
        Phone numbers depend on the row's country too: convert/ reads them."""
        if target == "email":
            parts = [p for p in _SPLIT_MULTI.split(raw) if p]
            if not parts:
                return None
            return normalize_email(parts[0]), tuple(normalize_email(p) for p in parts[1:])
        if target == "other_emails":
            return tuple(normalize_email(p) for p in _SPLIT_MULTI.split(raw) if p)
        if target == "full_name":
            return split_full_name(raw)
        if target == "full_address":
            return tuple(
                value[: Contact._meta.get_field(name).max_length]
                for name, value in zip(ADDRESS_FIELDS, split_address(raw), strict=True)
            )
        if target == "company_department":
            company, _, department = raw.partition(";")
            return company.strip()[:200], department.strip()[:120]
        if target == "region":
            found = _REGION_WITH_COUNTRY.match(raw)  # Odoo writes "TX (US)"
            if found and region_code(found.group(2)):
                raw = found.group(1)
        if target in self.TEXT_FIELDS:
            return raw[: Contact._meta.get_field(target).max_length]
        # The rest are checked by the validators the form and the services use.
        if target == "linkedin_url":
            return clean_url(raw)
        if target == "timezone":
            return clean_timezone(raw)
        if target == "twitter_handle":
            return clean_twitter_handle(raw)[: Contact._meta.get_field(target).max_length]
        if target in self.CHOICE_FIELDS:
            matched = self.value_map.get(header)
            if matched and raw in matched:
                return self._matched_choice(target, raw, matched[raw])
            return self._choice(target, raw)
        if target in self.BOOL_FIELDS:
            return parse_bool(raw, inverted=header in self.inverted)
        if target == "country":
            return parse_country(raw)
        if target == "lead_score":
            score = int(float(raw.replace(",", ".")))
            if not 0 <= score <= 100:
                raise ValidationError(f"Lead score {score} is outside 0–100.")
            return score
        if target == "consent_date":
            return parse_datetime(raw, tz=self.tz, day_first=self.day_first)
        if target == "owner":
            matched = self.value_map.get(header)
            if matched and raw in matched:
                return self._matched_owner(raw, matched[raw])
            user_id = self.members_by_email.get(raw.lower())
            if user_id is None:
                raise ValidationError(f"No member you may give contacts to has the email “{raw}”.")
            return user_id
        if target == "tags":
            return tag_names(raw)
        if target in ("company", "company_name", "external_id"):
            return raw[:200]
        if target == "company_website":
            return normalize_domain(clean_url(raw))
        if target == "company_domain":
            return normalize_domain(raw)
        if target == "note":
            return raw
        raise ValidationError(f"“{target}” cannot be imported.")

    def custom_value(self, key: str, raw: str):
        """The stored value of a custom field's cell (stripped), None when blank."""
        definition = self.definitions[key]
        if not raw:
            return None
        matched = self._custom_matches.get(key)
        if matched and raw in matched and definition.field_type == "list":
            raw = matched[raw]
            if raw in ("", DEFAULT_OWNER):
                return None  # matched to "leave empty"
        if definition.field_type == "date":
            raw = (
                parse_datetime(raw, tz=self.tz, day_first=self.day_first).astimezone(self.tz).date()
            )
        return coerce_custom_value(definition, raw)


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
