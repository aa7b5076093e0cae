"""Money rules: Decimal parsing, ISO 4217 codes, line totals that are never negative."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from pipeline.money import clean_currency, line_total, to_decimal, weighted


@pytest.mark.parametrize(
    ("qty", "price", "kind", "discount", "expected"),
    [
        ("2", "19.99", "none", "0", "39.98"),
        ("3", "10.00", "percent", "10", "27.00"),
        ("1", "0.05", "percent", "50", "0.03"),  # 0.025 rounds half-up
        ("1", "100", "fixed", "30", "70.00"),
        ("1", "100", "fixed", "130", "0.00"),  # a discount above the line stops at zero
        ("1.5", "9.99", "percent", "100", "0.00"),
        ("0.333", "3", "none", "0", "1.00"),
    ],
)
def test_line_total(qty, price, kind, discount, expected):
    total = line_total(Decimal(qty), Decimal(price), kind, Decimal(discount))
    assert total == Decimal(expected)
    assert isinstance(total, Decimal)


@pytest.mark.parametrize("raw", ["abc", "NaN", "Infinity", "", "1e400", "-1"])
def test_bad_amounts_are_refused(raw):
    with pytest.raises(ValidationError):
        to_decimal(raw)


def test_amounts_read_thousands_separators():
    assert to_decimal("1,250.50") == Decimal("1250.50")


@pytest.mark.parametrize("raw", ["usd", " EUR ", "GBP"])
def test_currency_codes_are_normalised(raw):
    assert clean_currency(raw) == raw.strip().upper()


@pytest.mark.parametrize("raw", ["EURO", "XXX", "", "€", "US"])
def test_unknown_currencies_are_refused(raw):
    with pytest.raises(ValidationError):
        clean_currency(raw)


def test_weighted_value_rounds_to_cents():
    assert weighted(Decimal("333.33"), 33) == Decimal("110.00")
