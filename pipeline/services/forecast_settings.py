"""Exchange rates and quotas: the forecast's settings, changed by settings admins only.

A rate says what one unit of a currency is worth in the organization's base currency from
its effective date on; a quota is a rep's target of closed-won value in the base currency
for one month or quarter. Each write validates its input (a ValidationError keyed by field),
runs in one transaction, audits and emits its event. `policy=None` is system work (the demo
seed), which may do anything.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from crm.models import Membership
from crm.services import Actor, audit, diff, emit_event

from ..forecast.periods import quarter_start, quota_period_label
from ..forecast.rates import plain_rate
from ..models import ExchangeRate, Quota
from ..money import MAX_AMOUNT, clean_currency

# A rate is stored with 10 decimals and at most 10 digits before the point.
MAX_RATE = Decimal("9999999999")
MIN_RATE = Decimal("0.0000000001")
EARLIEST_DAY = dt.date(1970, 1, 1)
LATEST_DAY = dt.date(2100, 12, 31)


def require_manage(policy) -> None:
    if policy is not None and not policy.is_settings_admin():
        raise PermissionDenied("Only settings admins may change exchange rates and quotas.")


def _user_of(actor: Actor):
    user = getattr(actor, "user", None)
    return user if user is not None and getattr(user, "pk", None) else None


# Exchange rates ----------------------------------------------------------------------------


def _rate_state(rate: ExchangeRate) -> dict:
    return {
        "currency": rate.currency,
        "rate": plain_rate(rate.rate),
        "effective_date": rate.effective_date.isoformat(),
    }


def _clean_rate(org, data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    values: dict = {}
    try:
        currency = clean_currency(data.get("currency"))
        if currency == org.base_currency:
            errors["currency"] = [
                f"{currency} is the base currency: it is always worth 1 and needs no rate."
            ]
        values["currency"] = currency
    except ValidationError as exc:
        errors["currency"] = exc.messages
    raw = data.get("rate")
    try:
        rate = raw if isinstance(raw, Decimal) else Decimal(str(raw or "").strip())
        if not rate.is_finite():
            raise InvalidOperation
        if rate < MIN_RATE:
            errors["rate"] = ["A rate is a positive number, such as 1.08."]
        elif rate > MAX_RATE:
            errors["rate"] = ["This rate is too large."]
        elif rate != rate.quantize(MIN_RATE):
            errors["rate"] = ["A rate has at most 10 decimal places."]
        values["rate"] = rate
    except (InvalidOperation, ValueError):
        errors["rate"] = ["Enter the rate as a number, such as 1.08."]
    day = data.get("effective_date")
    if not isinstance(day, dt.date):
        errors["effective_date"] = ["Enter the date the rate takes effect."]
    elif not EARLIEST_DAY <= day <= LATEST_DAY:
        errors["effective_date"] = ["Enter a date between 1970 and 2100."]
    else:
        values["effective_date"] = day
    if errors:
        raise ValidationError(errors)
    return values


def _check_rate_free(org, values: dict, exclude_pk=None) -> None:
    taken = ExchangeRate.objects.for_org(org).filter(
        currency=values["currency"], effective_date=values["effective_date"]
    )
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError(
            {
                "effective_date": [
                    f"There is already a {values['currency']} rate taking effect on "
                    f"{values['effective_date']:%Y-%m-%d}: edit that one instead."
                ]
            }
        )


def exchange_rate_create(*, org, actor: Actor, data: dict, policy=None) -> ExchangeRate:
    require_manage(policy)
    values = _clean_rate(org, data)
    with transaction.atomic():
        _check_rate_free(org, values)
        try:
            with transaction.atomic():
                rate = ExchangeRate.objects.for_org(org).create(
                    org=org, created_by=_user_of(actor), **values
                )
        except IntegrityError:  # the same rate added at the same moment by someone else
            _check_rate_free(org, values)
            raise
        audit(
            org=org,
            actor=actor,
            verb="exchange_rate.created",
            obj=rate,
            changes=diff({}, _rate_state(rate)),
        )
        emit_event(
            org=org,
            event_type="exchange_rate.created",
            payload={"exchange_rate": rate.public_id, **_rate_state(rate)},
        )
    return rate


def exchange_rate_update(*, rate: ExchangeRate, actor: Actor, data: dict, policy=None):
    require_manage(policy)
    org = rate.org
    values = _clean_rate(org, data)
    with transaction.atomic():
        rate = ExchangeRate.objects.for_org(org).select_for_update().get(pk=rate.pk)
        before = _rate_state(rate)
        _check_rate_free(org, values, exclude_pk=rate.pk)
        for name, value in values.items():
            setattr(rate, name, value)
        rate.save()
        changes = diff(before, _rate_state(rate))
        if changes:
            audit(org=org, actor=actor, verb="exchange_rate.updated", obj=rate, changes=changes)
            emit_event(
                org=org,
                event_type="exchange_rate.updated",
                payload={"exchange_rate": rate.public_id, **_rate_state(rate)},
            )
    return rate


def exchange_rate_delete(*, rate: ExchangeRate, actor: Actor, policy=None) -> None:
    require_manage(policy)
    org = rate.org
    with transaction.atomic():
        state = _rate_state(rate)
        public_id = rate.public_id
        audit(
            org=org,
            actor=actor,
            verb="exchange_rate.deleted",
            obj=rate,
            changes=diff(state, {}),
        )
        ExchangeRate.objects.for_org(org).filter(pk=rate.pk).delete()
        emit_event(
            org=org,
            event_type="exchange_rate.deleted",
            payload={"exchange_rate": public_id, **state},
        )


# Quotas ------------------------------------------------------------------------------------


def _quota_state(quota: Quota) -> dict:
    return {
        "user": quota.user.email,
        "period": quota.period,
        "period_start": quota.period_start.isoformat(),
        "amount": str(Decimal(quota.amount).quantize(Decimal("0.01"))),
    }


def _clean_quota(org, data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    values: dict = {}
    user = data.get("user")
    if user is None or not getattr(user, "pk", None):
        errors["user"] = ["Choose the rep."]
    elif not Membership.objects.for_org(org).active().filter(user_id=user.pk).exists():
        errors["user"] = ["Choose an active member of this organization."]
    else:
        values["user"] = user
    period = data.get("period")
    if period not in Quota.Period.values:
        errors["period"] = ["Choose a month or a quarter."]
    else:
        values["period"] = period
    start = data.get("period_start")
    if not isinstance(start, dt.date):
        errors["period_start"] = ["Choose the period."]
    elif not EARLIEST_DAY <= start <= LATEST_DAY:
        errors["period_start"] = ["Choose a period between 1970 and 2100."]
    elif period == Quota.Period.MONTH and start.day != 1:
        errors["period_start"] = ["A month's quota starts on the first day of the month."]
    elif period == Quota.Period.QUARTER and start != quarter_start(start):
        errors["period_start"] = [
            "A quarter's quota starts on the first day of a quarter (Jan 1, Apr 1, Jul 1 or Oct 1)."
        ]
    else:
        values["period_start"] = start
    raw = data.get("amount")
    try:
        amount = (
            raw if isinstance(raw, Decimal) else Decimal(str(raw or "").strip().replace(",", ""))
        )
        if not amount.is_finite():
            raise InvalidOperation
        if amount < 0:
            errors["amount"] = ["A quota cannot be negative."]
        elif amount > MAX_AMOUNT:
            errors["amount"] = ["This amount is too large."]
        elif amount != amount.quantize(Decimal("0.01")):
            errors["amount"] = ["Use at most two decimal places."]
        values["amount"] = amount
    except (InvalidOperation, ValueError):
        errors["amount"] = ["Enter the quota as an amount, such as 50000."]
    if errors:
        raise ValidationError(errors)
    return values


def quota_set(*, org, actor: Actor, data: dict, policy=None) -> tuple[Quota, bool]:
    """The rep's quota for the period: created, or its amount changed when one exists.
    Returns (quota, created)."""
    require_manage(policy)
    values = _clean_quota(org, data)
    with transaction.atomic():
        quota = (
            Quota.objects.for_org(org)
            .select_for_update()
            .filter(
                user=values["user"], period=values["period"], period_start=values["period_start"]
            )
            .first()
        )
        created = quota is None
        if created:
            quota = Quota.objects.for_org(org).create(org=org, **values)
            changes = diff({}, _quota_state(quota))
        else:
            before = _quota_state(quota)
            quota.amount = values["amount"]
            quota.save(update_fields=["amount"])
            changes = diff(before, _quota_state(quota))
            if not changes:
                return quota, False
        verb = "quota.created" if created else "quota.updated"
        label = quota_period_label(quota.period, quota.period_start)
        audit(
            org=org,
            actor=actor,
            verb=verb,
            obj=quota,
            object_repr=f"Quota of {quota.user.display_name}, {label}",
            changes=changes,
        )
        emit_event(
            org=org, event_type=verb, payload={"quota": quota.public_id, **_quota_state(quota)}
        )
    return quota, created


def quota_update(*, quota: Quota, actor: Actor, data: dict, policy=None) -> Quota:
    """Change a quota's rep, period or amount (refused when that rep already has a quota
    for the new period)."""
    require_manage(policy)
    org = quota.org
    values = _clean_quota(org, data)
    with transaction.atomic():
        quota = (
            Quota.objects.for_org(org).select_for_update().select_related("user").get(pk=quota.pk)
        )
        clash = (
            Quota.objects.for_org(org)
            .filter(
                user=values["user"], period=values["period"], period_start=values["period_start"]
            )
            .exclude(pk=quota.pk)
            .exists()
        )
        if clash:
            raise ValidationError(
                {"period_start": ["This rep already has a quota for that period: edit it instead."]}
            )
        before = _quota_state(quota)
        for name, value in values.items():
            setattr(quota, name, value)
        quota.save()
        changes = diff(before, _quota_state(quota))
        if changes:
            label = quota_period_label(quota.period, quota.period_start)
            audit(
                org=org,
                actor=actor,
                verb="quota.updated",
                obj=quota,
                object_repr=f"Quota of {quota.user.display_name}, {label}",
                changes=changes,
            )
            emit_event(
                org=org,
                event_type="quota.updated",
                payload={"quota": quota.public_id, **_quota_state(quota)},
            )
    return quota


def quota_delete(*, quota: Quota, actor: Actor, policy=None) -> None:
    require_manage(policy)
    org = quota.org
    with transaction.atomic():
        state = _quota_state(quota)
        label = quota_period_label(quota.period, quota.period_start)
        public_id = quota.public_id
        audit(
            org=org,
            actor=actor,
            verb="quota.deleted",
            obj=quota,
            object_repr=f"Quota of {quota.user.display_name}, {label}",
            changes=diff(state, {}),
        )
        Quota.objects.for_org(org).filter(pk=quota.pk).delete()
        emit_event(org=org, event_type="quota.deleted", payload={"quota": public_id, **state})
