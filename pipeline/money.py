"""Money: Decimal amounts in ISO 4217 currencies, line totals and deal values.

Amounts are rounded to cents half-up, the way an invoice is; nothing here uses floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.core.exceptions import ValidationError

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)
# The largest amount a money column holds (14 digits, 2 of them decimals).
MAX_AMOUNT = Decimal("999999999999.99")

# Active ISO 4217 currency codes (funds and precious metals left out).
_ISO_4217_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG
"""
ISO_4217 = frozenset(_ISO_4217_CODES.split())
CURRENCY_ERROR = "Use a three-letter ISO 4217 currency code such as USD, EUR or GBP."


def clean_currency(raw) -> str:
    code = str(raw or "").strip().upper()
    if code not in ISO_4217:
        raise ValidationError(CURRENCY_ERROR, code="currency")
    return code


def to_decimal(raw, label: str = "Amount", *, allow_negative: bool = False) -> Decimal:
    """A Decimal from user input ("1,250.50", 1250, Decimal) or a ValidationError."""
    if isinstance(raw, Decimal):
        value = raw
    else:
        text = str(raw if raw is not None else "").strip().replace(",", "").replace(" ", "")
        if not text:
            raise ValidationError(f"{label} is required.", code="required")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise ValidationError(f"{label} must be a number.", code="invalid") from None
    if not value.is_finite():
        raise ValidationError(f"{label} must be a number.", code="invalid")
    if value < 0 and not allow_negative:
        raise ValidationError(f"{label} cannot be negative.", code="negative")
    if abs(value) > MAX_AMOUNT:
        raise ValidationError(f"{label} is too large.", code="too_large")
    return value


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_total(
    quantity: Decimal, unit_price: Decimal, discount_kind: str, discount: Decimal
) -> Decimal:
    """quantity × unit price less the discount, in cents, never below zero.

    A percent discount is taken off the gross amount; a fixed one is an amount off the whole
    line (not per unit). A discount larger than the line makes the line zero."""
    gross = quantity * unit_price
    if discount_kind == "percent":
        net = gross - gross * discount / HUNDRED
    elif discount_kind == "fixed":
        net = gross - discount
    else:
        net = gross
    return max(cents(net), ZERO)


def weighted(value: Decimal, probability: int) -> Decimal:
    return cents(value * Decimal(probability) / HUNDRED)
