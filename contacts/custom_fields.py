"""Custom fields: checking an admin's definition, and checking and converting the values
people enter against it.

Values live in the record's `custom` JSON under the definition's key, in a form that sorts
and compares correctly in Postgres (jsonb):

    text, link   → string
    number       → JSON number (int when whole)
    currency     → JSON number rounded to 2 decimals (the currency is on the definition)
    percent      → JSON number, 0–100
    date         → "YYYY-MM-DD" (ISO strings sort as dates)
    list         → one of the definition's choices, spelled as defined
    checkbox     → true / false

An empty value means "not set": the key is removed rather than stored as "" or null.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from .fields import COMPANY_FIELD_KEYS, CONTACT_FIELD_KEYS
from .models import Company, Contact, CustomFieldDefinition
from .validators import clean_url, pattern_matches, pattern_problem

FieldType = CustomFieldDefinition.FieldType

MAX_TEXT_LENGTH = 1000
MAX_CHOICES = 200
MAX_CHOICE_LENGTH = 100
DEFAULT_REGEX_MESSAGE = "This value does not have the required format."
REGEX_TYPES = {FieldType.TEXT, FieldType.LINK}

_TRUE = {"true", "yes", "y", "1", "on", "checked", "x"}
_FALSE = {"false", "no", "n", "0", "off", ""}
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _decimal(raw, label: str) -> Decimal:
    if isinstance(raw, bool):
        raise ValidationError(f"{label} needs a number.", code="invalid_number")
    if isinstance(raw, Decimal | int | float):
        number = Decimal(str(raw))
    else:
        # People paste "1,250.50", "$ 99" or "15 %": keep the digits, sign and decimal point.
        text = re.sub(r"[\s,$€£¥%]", "", str(raw))
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValidationError(f"“{raw}” is not a number.", code="invalid_number") from None
    if not number.is_finite():
        raise ValidationError(f"“{raw}” is not a number.", code="invalid_number")
    return number


def _json_number(number: Decimal):
    """A Decimal as the JSON number it stands for: an int when whole, else a float."""
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def _check_regex(definition, text: str) -> None:
    if not definition.regex:
        return
    # RE2 (linear time), never Python's re: an admin's pattern must not hang a worker.
    # None: a pattern RE2 cannot run (saved before patterns were checked) is not applied.
    if pattern_matches(definition.regex, text) is False:
        raise ValidationError(
            definition.regex_message or DEFAULT_REGEX_MESSAGE, code="regex_mismatch"
        )


def coerce_custom_value(definition: CustomFieldDefinition, raw):
    """The value to store for `raw` under `definition`, or None for "not set".

    Raises ValidationError with a message for the person who typed it (the admin's own
    message when a regex does not match)."""
    field_type = definition.field_type
    label = definition.label

    if field_type == FieldType.CHECKBOX:
        if isinstance(raw, bool):
            return raw
        if raw is None:
            return None
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValidationError(f"{label} must be yes or no.", code="invalid_checkbox")

    if _is_empty(raw):
        return None

    if field_type == FieldType.TEXT:
        text = str(raw).strip()
        if len(text) > MAX_TEXT_LENGTH:
            raise ValidationError(
                f"{label} can hold at most {MAX_TEXT_LENGTH} characters.", code="too_long"
            )
        _check_regex(definition, text)
        return text

    if field_type == FieldType.LINK:
        text = clean_url(raw, max_length=MAX_TEXT_LENGTH)
        _check_regex(definition, text)
        return text

    if field_type in (FieldType.NUMBER, FieldType.CURRENCY, FieldType.PERCENT):
        number = _decimal(raw, label)
        if field_type == FieldType.CURRENCY:
            number = number.quantize(Decimal("0.01"))
        if field_type == FieldType.PERCENT and not (0 <= number <= 100):
            raise ValidationError(f"{label} must be between 0 and 100.", code="out_of_range")
        if abs(number) >= Decimal("1e15"):
            raise ValidationError(f"{label} is too large.", code="out_of_range")
        return _json_number(number)

    if field_type == FieldType.DATE:
        if isinstance(raw, dt.datetime):
            return raw.date().isoformat()
        if isinstance(raw, dt.date):
            return raw.isoformat()
        text = str(raw).strip()
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValidationError(
                f"“{text}” is not a date; use YYYY-MM-DD.", code="invalid_date"
            ) from None

    if field_type == FieldType.LIST:
        text = str(raw).strip()
        for choice in definition.choices or ():
            if choice.casefold() == text.casefold():
                return choice
        allowed = ", ".join(definition.choices or ()) or "none defined"
        raise ValidationError(
            f"“{text}” is not one of the choices for {label} ({allowed}).", code="invalid_choice"
        )

    raise ValidationError(f"{label} has an unknown type.", code="unknown_type")


def apply_custom_values(current: dict, definitions_by_key: dict, values: dict) -> dict:
    """`current` custom JSON with `values` ({key: raw}) checked and merged in.

    Keys without an active definition are refused; a ValidationError maps each bad key to
    its message. Stored values of other keys (even of deactivated fields) are kept."""
    merged = dict(current or {})
    errors = {}
    for key, raw in values.items():
        definition = definitions_by_key.get(key)
        if definition is None:
            errors[key] = ValidationError(f"There is no custom field “{key}”.", code="unknown")
            continue
        try:
            value = coerce_custom_value(definition, raw)
        except ValidationError as exc:
            errors[key] = exc
            continue
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if errors:
        raise ValidationError(errors)
    return merged


def display_custom_value(definition: CustomFieldDefinition, value) -> str:
    """A stored value as text for the detail page and lists."""
    if value is None or value == "":
        return ""
    if definition.field_type == FieldType.CHECKBOX:
        return "Yes" if value else "No"
    if definition.field_type == FieldType.CURRENCY:
        try:
            amount = Decimal(str(value)).quantize(Decimal("0.01"))
        except InvalidOperation:
            return str(value)
        return f"{amount:,} {definition.currency}".strip()
    if definition.field_type == FieldType.PERCENT:
        return f"{value}%"
    if definition.field_type == FieldType.NUMBER and isinstance(value, int | float):
        return f"{value:,}"
    return str(value)


# Definitions ------------------------------------------------------------------------------

# Keys a custom field may never take: every standard field of contacts and companies, and
# every column name of the two models, so exports, filters and the API stay unambiguous.
RESERVED_KEYS = frozenset(
    CONTACT_FIELD_KEYS
    | COMPANY_FIELD_KEYS
    | {f.name for f in Contact._meta.get_fields()}
    | {f.name for f in Company._meta.get_fields()}
    | {"id", "pk", "custom", "full_name", "name"}
)


def parse_choices(raw) -> list[str]:
    """Choices from a list or from text with one choice per line (commas also split when
    there is a single line), stripped, blanks dropped, duplicates (ignoring case) dropped."""
    if isinstance(raw, str):
        lines = raw.splitlines()
        items = lines if len(lines) > 1 else raw.split(",")
    else:
        items = list(raw or ())
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        text = str(item).strip()
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    return out


def clean_definition(
    *,
    org,
    entity: str,
    key: str,
    label: str,
    field_type: str,
    choices=(),
    regex: str = "",
    regex_message: str = "",
    currency: str = "",
    help_text: str = "",
    instance: CustomFieldDefinition | None = None,
) -> dict:
    """The checked attributes of a definition, or a ValidationError keyed by attribute.

    Once created, a field's key and type are fixed: stored values, saved filters, exports
    and API clients all refer to them."""
    errors: dict[str, str] = {}
    key = (key or "").strip().lower()
    label = (label or "").strip()
    regex = (regex or "").strip()
    regex_message = (regex_message or "").strip()
    currency = (currency or "").strip().upper()

    if entity not in CustomFieldDefinition.Entity.values:
        errors["entity"] = "Choose what the field belongs to."
    if field_type not in FieldType.values:
        errors["field_type"] = "Choose a field type."
    if not label:
        errors["label"] = "Give the field a label."

    if instance is not None:
        if key and key != instance.key:
            errors["key"] = "A field's key cannot change once it exists."
        if field_type != instance.field_type:
            errors["field_type"] = "A field's type cannot change once it exists."
        key = instance.key
        entity = instance.entity
    elif not key:
        errors["key"] = "Give the field a key, for example contract_value."
    elif len(key) > 60 or not _KEY.match(key) or "__" in key:
        errors["key"] = (
            "Use lower-case letters, digits and single underscores, starting with a letter "
            "(at most 60 characters)."
        )
    elif key in RESERVED_KEYS:
        errors["key"] = f"“{key}” is a standard field. Choose another key."
    elif CustomFieldDefinition.objects.for_org(org).filter(entity=entity, key=key).exists():
        errors["key"] = f"There is already a field with the key “{key}”."

    parsed_choices = parse_choices(choices)
    if field_type == FieldType.LIST:
        if not parsed_choices:
            errors["choices"] = "A list field needs at least one choice."
        elif len(parsed_choices) > MAX_CHOICES:
            errors["choices"] = f"A list field can have at most {MAX_CHOICES} choices."
        elif any(len(choice) > MAX_CHOICE_LENGTH for choice in parsed_choices):
            errors["choices"] = f"Each choice can be at most {MAX_CHOICE_LENGTH} characters."
    else:
        parsed_choices = []

    if regex:
        if field_type not in REGEX_TYPES:
            errors["regex"] = "Pattern checks apply to Text and Link fields only."
        else:
            problem = pattern_problem(regex)
            if problem:
                errors["regex"] = problem
    else:
        regex_message = ""

    if field_type == FieldType.CURRENCY:
        currency = currency or getattr(org, "base_currency", "") or "USD"
        if not re.fullmatch(r"[A-Z]{3}", currency):
            errors["currency"] = "Use a three-letter ISO 4217 code such as USD or EUR."
    else:
        currency = ""

    if errors:
        raise ValidationError(errors)
    return {
        "entity": entity,
        "key": key,
        "label": label,
        "field_type": field_type,
        "choices": parsed_choices,
        "regex": regex,
        "regex_message": regex_message,
        "currency": currency,
        "help_text": (help_text or "").strip(),
    }
