"""Conversion to the base currency with dated exchange rates, and the exchange-rate
settings: validation, audit, who may change them, and another organization's rates."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from crm.models import AuditEvent
from crm.permissions import Policy
from crm.services import Actor
from pipeline.forecast.rates import Converter, RateBook
from pipeline.models import ExchangeRate
from pipeline.services.forecast_settings import (
    exchange_rate_create,
    exchange_rate_delete,
    exchange_rate_update,
)
from tests.factories import ExchangeRateFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db

D = Decimal


def book(*rates, base="USD"):
    return RateBook(base, [(cur, D(rate), day) for cur, rate, day in rates])


def test_the_rate_in_effect_is_the_latest_on_or_before_the_day():
    rates = book(
        ("EUR", "1.10", dt.date(2026, 1, 1)),
        ("EUR", "1.20", dt.date(2026, 3, 1)),
        ("GBP", "1.30", dt.date(2026, 1, 15)),
    )
    assert rates.rate_on("EUR", dt.date(2025, 12, 31)) is None
    assert rates.rate_on("EUR", dt.date(2026, 1, 1)) == D("1.10")
    assert rates.rate_on("EUR", dt.date(2026, 2, 28)) == D("1.10")
    # A rate changed on a date applies from that very date.
    assert rates.rate_on("EUR", dt.date(2026, 3, 1)) == D("1.20")
    assert rates.rate_on("EUR", dt.date(2027, 1, 1)) == D("1.20")
    assert rates.rate_on("GBP", dt.date(2026, 1, 14)) is None


def test_the_base_currency_is_worth_one_on_every_day_whatever_the_rows_say():
    rates = book(("USD", "3.00", dt.date(2026, 1, 1)))
    assert rates.rate_on("USD", dt.date(1990, 1, 1)) == D(1)
    assert rates.rate_on("USD", dt.date(2026, 6, 1)) == D(1)


def test_converter_uses_dated_rates_exactly_and_remembers_them():
    converter = Converter(
        book(("EUR", "1.10", dt.date(2026, 1, 1)), ("EUR", "1.2345678901", dt.date(2026, 3, 1)))
    )
    assert converter.convert(D("100.00"), "EUR", dt.date(2026, 2, 1)) == D("110.0000")
    assert converter.convert(D("100.00"), "EUR", dt.date(2026, 3, 1)) == D("123.456789010000")
    assert converter.convert(D("5"), "USD", dt.date(2026, 3, 1)) == D("5")
    used = [(r.currency, r.rate, r.effective_date) for r in converter.rates_used()]
    assert used == [
        ("EUR", D("1.10"), dt.date(2026, 1, 1)),
        ("EUR", D("1.2345678901"), dt.date(2026, 3, 1)),
    ]
    assert converter.missing() == []


def test_a_currency_without_a_rate_is_reported_missing_never_counted_as_one():
    converter = Converter(book(("EUR", "1.10", dt.date(2026, 5, 1))))
    assert converter.convert(D("700.00"), "CHF", dt.date(2026, 3, 1), deals=2) is None
    assert converter.convert(D("300.00"), "CHF", dt.date(2026, 3, 1), deals=1) is None
    assert converter.convert(D("50.00"), "EUR", dt.date(2026, 3, 1), deals=1) is None
    missing = {m.currency: m for m in converter.missing()}
    assert missing["CHF"].deals == 3
    assert missing["CHF"].amount == D("1000.00")
    assert "no exchange rate for CHF" in missing["CHF"].message
    assert missing["EUR"].first_effective == dt.date(2026, 5, 1)
    assert "2026-05-01" in missing["EUR"].message


def test_rate_book_loads_only_its_own_organization(org, other_org):
    ExchangeRateFactory(org=org, currency="EUR", rate="1.1", effective_date=dt.date(2026, 1, 1))
    ExchangeRateFactory(
        org=other_org, currency="EUR", rate="9.9", effective_date=dt.date(2026, 2, 1)
    )
    assert RateBook.load(org).rate_on("EUR", dt.date(2026, 6, 1)) == D("1.1")


# The settings service --------------------------------------------------------------------


@pytest.fixture
def admin(org):
    return member(org, "admin")


def _create(org, who, **data):
    return exchange_rate_create(
        org=org,
        actor=Actor.for_user(who.user),
        data={"currency": "eur", "rate": "1.08", "effective_date": dt.date(2026, 1, 1), **data},
        policy=Policy(who),
    )


def test_admin_adds_a_rate_and_it_is_audited(org, admin):
    rate = _create(org, admin)
    assert (rate.currency, rate.rate, rate.created_by) == ("EUR", D("1.08"), admin.user)
    event = AuditEvent.objects.for_org(org).get(verb="exchange_rate.created")
    assert event.changes["rate"] == [None, "1.08"]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": "USD"}, "currency"),  # the base currency needs no rate
        ({"rate": "0"}, "rate"),
        ({"rate": "-1"}, "rate"),
        ({"rate": "abc"}, "rate"),
        ({"rate": "NaN"}, "rate"),
        ({"rate": "1.123456789012"}, "rate"),
        ({"effective_date": None}, "effective_date"),
        ({"effective_date": dt.date(1900, 1, 1)}, "effective_date"),
    ],
)
def test_bad_rates_are_refused_with_a_message_on_the_field(org, admin, data, field):
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, **data)
    assert field in caught.value.message_dict
    assert not ExchangeRate.objects.for_org(org).exists()


def test_two_rates_of_one_currency_on_one_day_are_refused(org, admin):
    _create(org, admin)
    with pytest.raises(ValidationError) as caught:
        _create(org, admin, rate="1.09")
    assert "edit that one" in caught.value.message_dict["effective_date"][0]


def test_update_and_delete_are_audited(org, admin):
    rate = _create(org, admin)
    exchange_rate_update(
        rate=rate,
        actor=Actor.for_user(admin.user),
        data={"currency": "EUR", "rate": "1.10", "effective_date": dt.date(2026, 2, 1)},
        policy=Policy(admin),
    )
    rate.refresh_from_db()
    assert (rate.rate, rate.effective_date) == (D("1.10"), dt.date(2026, 2, 1))
    exchange_rate_delete(rate=rate, actor=Actor.for_user(admin.user), policy=Policy(admin))
    assert not ExchangeRate.objects.for_org(org).exists()
    verbs = set(AuditEvent.objects.for_org(org).values_list("verb", flat=True))
    assert {"exchange_rate.updated", "exchange_rate.deleted"} <= verbs


@pytest.mark.parametrize("role", ["board", "director", "team", "viewer", "executive"])
def test_only_settings_admins_change_rates(org, role):
    with pytest.raises(PermissionDenied):
        _create(org, member(org, role))


# The pages ------------------------------------------------------------------------------


def test_admin_adds_edits_and_deletes_a_rate_through_the_pages(org, admin, client_as):
    client = client_as(admin)
    response = client.post(
        reverse("pipeline:rates"),
        {"currency": "gbp", "rate": "1.27", "effective_date": "2026-04-01"},
    )
    assert response.status_code == 302
    rate = ExchangeRate.objects.for_org(org).get()
    assert (rate.currency, rate.rate) == ("GBP", D("1.27"))
    page = client.get(reverse("pipeline:rates"))
    assert b"GBP" in page.content and b"1.27" in page.content
    response = client.post(
        reverse("pipeline:rate_edit", args=[rate.public_id]),
        {"currency": "GBP", "rate": "1.30", "effective_date": "2026-04-01"},
    )
    assert response.status_code == 302
    rate.refresh_from_db()
    assert rate.rate == D("1.30")
    response = client.post(reverse("pipeline:rate_delete", args=[rate.public_id]))
    assert response.status_code == 302
    assert not ExchangeRate.objects.for_org(org).exists()


def test_a_bad_rate_comes_back_as_form_errors(org, admin, client_as):
    response = client_as(admin).post(
        reverse("pipeline:rates"), {"currency": "ZZZ", "rate": "-2", "effective_date": "soon"}
    )
    assert response.status_code == 400
    assert b"ISO 4217" in response.content
    assert not ExchangeRate.objects.for_org(org).exists()


def test_board_member_reads_rates_but_cannot_change_them(org, client_as):
    rate = ExchangeRateFactory(org=org, currency="EUR", rate="1.08")
    client = client_as(member(org, "board"))
    page = client.get(reverse("pipeline:rates"))
    assert page.status_code == 200
    assert b"EUR" in page.content
    assert reverse("pipeline:rate_edit", args=[rate.public_id]).encode() not in page.content
    forged = {"currency": "GBP", "rate": "1.2", "effective_date": "2026-01-01"}
    assert client.post(reverse("pipeline:rates"), forged).status_code == 403
    assert client.post(reverse("pipeline:rate_delete", args=[rate.public_id])).status_code == 403
    assert ExchangeRate.objects.for_org(org).count() == 1


def test_support_member_without_pipeline_or_analytics_gets_403(org, client_as):
    assert client_as(member(org, "support")).get(reverse("pipeline:rates")).status_code == 403


def test_another_organizations_rate_is_a_404(org, client_as):
    other = OrganizationFactory()
    rate = ExchangeRateFactory(org=other, currency="EUR")
    client = client_as(member(org, "owner"))
    assert client.get(reverse("pipeline:rate_edit", args=[rate.public_id])).status_code == 404
    assert client.post(reverse("pipeline:rate_delete", args=[rate.public_id])).status_code == 404
    assert ExchangeRate.objects.for_org(other).count() == 1
