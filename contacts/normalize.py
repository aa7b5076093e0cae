"""One way to clean the values people type: emails, phone numbers and company domains.

Every writer (forms, services, import, API) goes through these functions, so "Jo@Acme.COM "
and "jo@acme.com" are the same contact and "+44 20 7946 0958" is stored once as E.164.
Each function raises django's ValidationError with a message fit to show next to the field.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import urlsplit

import idna
import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .validators import WEB_SCHEMES


def _region_names() -> dict[str, dict[str, str]]:
    """phonenumbers' names of regions ({"DE": {"en": "Germany", ...}}).

    The usual import (phonenumbers.geodata.locale) first runs the geodata package, which loads
    the geocoder's prefix tables: about 100 MB in every process, web and import workers alike,
    for a 2 MB table of names. The module needs only phonenumbers.util, so it is loaded on its
    own; should a release move it, the usual import still works."""
    path = Path(phonenumbers.__file__).parent / "geodata" / "locale.py"
    try:
        spec = importlib.util.spec_from_file_location("crm_phonenumbers_regions", path)
        module = importlib.util.module_from_spec(spec)
        module.__package__ = "phonenumbers.geodata"  # for its `from ..util import u`
        spec.loader.exec_module(module)
        return module.LOCALE_DATA
    except (OSError, ImportError, AttributeError):
        from phonenumbers.geodata.locale import LOCALE_DATA

        return LOCALE_DATA


LOCALE_DATA = _region_names()

# Emails -----------------------------------------------------------------------------------


# The common shape of an address (dot-atom local part, ASCII host names): a strict subset of
# what Django's validator accepts, checked by one regex. Anything else (quoted local parts,
# IDN hosts, odd lengths) goes through the full validator. Imports check millions of these.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
EMAIL_MAX_LENGTH = 254  # the column's length, and RFC 5321's limit for a path


def normalize_email(value) -> str:
    """The address stripped and lower-cased; "" stays "" (the field is optional)."""
    text = (value or "").strip().lower()
    if not text:
        return ""
    if len(text) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"An email address has at most {EMAIL_MAX_LENGTH} characters.", code="invalid_email"
        )
    if _PLAIN_EMAIL.fullmatch(text):
        return text
    try:
        validate_email(text)
    except ValidationError:
        raise ValidationError(
            f"“{text}” is not a valid email address.", code="invalid_email"
        ) from None
    return text


def normalize_email_list(values) -> list[str]:
    """Several addresses (a list, or text separated by commas, semicolons or new lines),
    each normalized, duplicates dropped, order kept."""
    if isinstance(values, str):
        values = re.split(r"[,;\s]+", values)
    out: list[str] = []
    for value in values or ():
        email = normalize_email(value)
        if email and email not in out:
            out.append(email)
    return out


# Phones -----------------------------------------------------------------------------------

SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


def region_code(value) -> str | None:
    """An ISO 3166-1 alpha-2 code that phonenumbers knows, upper-cased, or None."""
    code = (value or "").strip().upper()
    return code if code in SUPPORTED_REGIONS else None


def org_region(org) -> str | None:
    """The country part of the organization's locale ("en-us" → "US"), if it names one."""
    locale = (getattr(org, "locale", "") or "").replace("_", "-")
    _, _, country = locale.partition("-")
    return region_code(country)


def phone_region(*, country: str = "", org=None) -> str | None:
    """Where a number without a "+" is read: the contact's country, else the org's locale."""
    return region_code(country) or (org_region(org) if org is not None else None)


class _InternationalNumbers:
    """The E.164 form of a valid number written "+<country code> <number>" with spaces, dots,
    dashes or brackets between the digits (the way exports write them), in a fifth of the
    time phonenumbers' parse + is_possible_number + is_valid_number + format_number take.

    It takes the same steps on the same metadata: the country code and the national prefix
    come off with phonenumbers' own helpers (private ones: the version is pinned, and
    tests/contacts/test_normalize.py compares both ways on every region's example numbers
    and variants of them), and the type descriptions a number must match are joined into
    one pattern per region and length instead of being tried one by one. It only ever
    answers for numbers phonenumbers calls valid; anything else is left to phonenumbers,
    which also words the error."""

    SHAPE = re.compile(r"\+[0-9][0-9 ().\-]{5,40}")
    SEPARATORS = str.maketrans("", "", " ().-")

    def __init__(self):
        from phonenumbers import phonenumberutil as util
        from phonenumbers.phonemetadata import PhoneMetadata

        self.util = util
        self.metadata = PhoneMetadata.metadata_for_region_or_calling_code
        self.region_metadata = PhoneMetadata.metadata_for_region
        self.regions = util.COUNTRY_CODE_TO_REGION_CODE
        self.results = util.ValidationResult
        self.patterns: dict = {}

    def e164(self, text: str) -> str | None:
        util = self.util
        if not self.SHAPE.fullmatch(text):
            return None
        digits = text[1:].translate(self.SEPARATORS)
        if len(digits) <= util._MIN_LENGTH_FOR_NSN:
            return None
        code, national = util._extract_country_code(digits)
        regions = self.regions.get(code)
        if not code or not regions or len(national) < util._MIN_LENGTH_FOR_NSN:
            return None
        main = self.metadata(code, util.region_code_for_country_code(code))
        if main is None:
            return None
        _, stripped, _ = util._maybe_strip_national_prefix_carrier_code(national, main)
        if util._test_number_length(stripped, main) not in (
            self.results.TOO_SHORT,
            self.results.IS_POSSIBLE_LOCAL_ONLY,
            self.results.INVALID_LENGTH,
        ):
            national = stripped
        if not util._MIN_LENGTH_FOR_NSN <= len(national) <= util._MAX_LENGTH_FOR_NSN:
            return None
        if national.strip("0") == "":
            return None  # all zeros: phonenumbers keeps a different count of leading zeros
        if util._test_number_length(national, main) not in (
            self.results.IS_POSSIBLE,
            self.results.IS_POSSIBLE_LOCAL_ONLY,
        ):
            return None
        region = regions[0] if len(regions) == 1 else self._region_of(national, regions)
        if region is None:
            return None
        metadata = self.metadata(code, region.upper())
        if metadata is None or not self._known_type(national, metadata):
            return None
        return f"+{code}{national}"

    def _region_of(self, national: str, regions) -> str | None:
        for region in regions:
            metadata = self.region_metadata(region.upper(), None)
            if metadata is None:
                continue
            if metadata.leading_digits is not None:
                if re.match(metadata.leading_digits, national):
                    return region
            elif self._known_type(national, metadata):
                return region
        return None

    def _known_type(self, national: str, metadata) -> bool:
        """number_type(...) != UNKNOWN: the general description matches, then any type's."""
        key = (id(metadata), len(national))
        found = self.patterns.get(key)
        if found is None:
            found = self.patterns[key] = self._compile(metadata, len(national))
        general, types = found
        return bool(general and general.fullmatch(national) and types and types.fullmatch(national))

    @staticmethod
    def _compile(metadata, length: int):
        def usable(desc):
            return (
                desc is not None
                and desc.national_number_pattern
                and (not desc.possible_length or length in desc.possible_length)
            )

        general = metadata.general_desc if usable(metadata.general_desc) else None
        descs = [
            metadata.premium_rate,
            metadata.toll_free,
            metadata.shared_cost,
            metadata.voip,
            metadata.personal_number,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
            metadata.fixed_line,
        ]
        if not metadata.same_mobile_and_fixed_line_pattern:
            descs.append(metadata.mobile)
        patterns = [f"(?:{d.national_number_pattern})" for d in descs if usable(d)]
        return (
            re.compile(general.national_number_pattern) if general else None,
            re.compile("|".join(patterns)) if patterns else None,
        )


_INTERNATIONAL = _InternationalNumbers()


def normalize_phone(value, *, region: str | None = None) -> str:
    """The number in E.164 ("+442079460958"); "" stays "".

    Without a default `region` a number must start with "+" and its country code, since
    guessing the country would store a wrong number that looks right."""
    text = (value or "").strip()
    if not text:
        return ""
    if region is None and text.startswith("00"):
        text = "+" + text[2:]  # the international call prefix most of the world dials
    if not text.startswith("+") and region is None:
        raise ValidationError(
            f"“{text}” has no country code. Start it with + and the country code "
            "(for example +1 415 555 0100), or set the contact's country first.",
            code="phone_needs_country",
        )
    fast = _INTERNATIONAL.e164(text)
    if fast is not None:
        return fast
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValidationError(
            f"“{text}” is not a phone number we can read. Use digits with an optional "
            "leading + and country code, for example +44 20 7946 0958.",
            code="invalid_phone",
        ) from None
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        # The number's own country code says where it was meant to be, not the default.
        main = phonenumbers.region_code_for_country_code(number.country_code)
        hint = f" for {country_name(main)} (+{number.country_code})" if main != "ZZ" else ""
        raise ValidationError(
            f"“{text}” is not a valid phone number{hint}. Check the digits and the country code.",
            code="invalid_phone",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(value) -> str:
    """A stored E.164 number in the international format people read ("+44 20 7946 0958").
    Anything that does not parse is returned as it is, never hidden."""
    text = (value or "").strip()
    if not text:
        return ""
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def country_name(code: str | None) -> str:
    """The English name of a region code ("DE" → "Germany"), or the code itself."""
    if not code:
        return ""
    names = LOCALE_DATA.get(code.upper()) or {}
    name = names.get("en", "")
    if name.startswith("*"):  # the data points at another language's entry for the same name
        name = names.get(name[1:], "")
    return name or code.upper()


def country_choices() -> list[tuple[str, str]]:
    """Every region phonenumbers knows, as (code, name) sorted by name, for country selects."""
    regions = (code for code in SUPPORTED_REGIONS if code != "001")
    pairs = [(code, country_name(code)) for code in regions]
    # Regions without an English name in the data (their name is the code) go last.
    return sorted(pairs, key=lambda pair: (pair[1] == pair[0], pair[1]))


# Company domains --------------------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(value) -> str:
    """The bare, lower-case, ASCII (punycode) host of a domain or URL; "" stays "".

    "https://www.Acme.com/pricing" → "acme.com", "Bücher.de" → "xn--bcher-kva.de". One
    spelling per company keeps the per-org uniqueness meaningful and email matching simple."""
    text = (value or "").strip()
    if not text:
        return ""
    not_a_domain = ValidationError(f"“{text}” is not a domain.", code="invalid_domain")
    if "@" in text and "://" not in text:
        text = text.rsplit("@", 1)[1]  # an email address: its domain
    if "://" in text and text.split("://", 1)[0].lower() not in WEB_SCHEMES:
        # A pasted web address gives its host, but only a web one ("ftp://", "javascript://"
        # are refused as they are everywhere else).
        raise not_a_domain
    try:
        host = (urlsplit(text if "://" in text else f"//{text}").hostname or "").strip()
    except ValueError:  # "[…]" that is no IPv6 address, an unclosed "["
        raise not_a_domain from None
    host = host.rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if not host:
        raise not_a_domain
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii").lower()
    except idna.IDNAError:
        raise ValidationError(
            f"“{host}” is not a valid domain name.", code="invalid_domain"
        ) from None
    labels = ascii_host.split(".")
    if (
        len(labels) < 2
        or len(ascii_host) > 253
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValidationError(
            f"“{host}” is not a valid domain name; use something like acme.com.",
            code="invalid_domain",
        )
    return ascii_host


def display_domain(value) -> str:
    """A stored (punycode) domain as people write it ("xn--bcher-kva.de" → "bücher.de")."""
    text = (value or "").strip()
    if not text:
        return ""
    try:
        return idna.decode(text)
    except idna.IDNAError:
        return text
