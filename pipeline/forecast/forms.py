"""The forecast pages' forms: the period and filter pickers, exchange rates and quotas.

Pickers are GET forms whose every field is optional: a value that does not validate is
reported beside the figures ("not applied") and the rest of the page still works."""

from __future__ import annotations

import datetime as dt
from typing import cast

from django import forms
from django.utils import timezone

from crm.models import Team, User

from ..models import ForecastSnapshot, Pipeline, Quota
from . import access
from .changes import GRANULARITIES
from .periods import (
    DEFAULT_PERIOD,
    MAX_CUSTOM_DAYS,
    PERIOD_CHOICES,
    add_months,
    custom_period,
    named_period,
    quota_period_label,
)
from .report import DEFAULT_WINDOW, WINDOWS

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
VIEWS = [("rep", "Rep view"), ("manager", "Manager view")]


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.display_name


class FilterFields(forms.Form):
    """Pipeline, owner and team: the filters every forecast page shares."""

    pipeline = forms.ModelChoiceField(
        queryset=Pipeline.objects.for_org(None),
        required=False,
        to_field_name="public_id",
        empty_label="All pipelines",
    )
    owner = UserChoiceField(
        queryset=User.objects.none(),
        required=False,
        to_field_name="public_id",
        label="Owner",
        empty_label="Everyone",
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.for_org(None),
        required=False,
        to_field_name="public_id",
        empty_label="All teams",
    )

    def __init__(self, *args, org, policy, **kwargs):
        super().__init__(*args, **kwargs)
        self.org = org
        self.fields["pipeline"].queryset = Pipeline.objects.for_org(org).order_by("position", "id")
        self.fields["owner"].queryset = access.scoped_users(org, policy)
        self.fields["team"].queryset = Team.objects.for_org(org).order_by("name")

    def value_of(self, name):
        """The field's clean value, or None when it was left empty or did not validate."""
        if not self.is_bound:
            return None
        self.is_valid()
        return self.cleaned_data.get(name)

    def deal_filters(self) -> access.DealFilters:
        return access.DealFilters(
            pipeline=self.value_of("pipeline"),
            owner=self.value_of("owner"),
            team=self.value_of("team"),
        )

    @property
    def problems(self) -> list[str]:
        """Each invalid field's message, said as "not applied"."""
        if not self.is_bound or self.is_valid():
            return []
        out: list[str] = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            for error in errors:
                out.append(f"{label}: {error}" if label else str(error))
        return out


class ForecastForm(FilterFields):
    period = forms.ChoiceField(choices=PERIOD_CHOICES, required=False, initial=DEFAULT_PERIOD)
    start = forms.DateField(required=False, widget=DATE_INPUT, label="From")
    end = forms.DateField(required=False, widget=DATE_INPUT, label="To")
    view = forms.ChoiceField(choices=VIEWS, required=False, label="Reps")

    field_order = ["period", "start", "end", "pipeline", "owner", "team"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("period") != "custom":
            return cleaned
        start, end = cleaned.get("start"), cleaned.get("end")
        if start is None or end is None:
            if "start" not in self.errors and "end" not in self.errors:
                self.add_error("start", "A custom range needs both dates.")
        elif start > end:
            self.add_error("end", "The end date comes before the start date.")
        elif (end - start).days + 1 > MAX_CUSTOM_DAYS:
            self.add_error("end", "A custom range covers at most two years.")
        return cleaned

    def chosen_period(self, today: dt.date):
        key = self.value_of("period") or DEFAULT_PERIOD
        if key == "custom":
            start, end = self.value_of("start"), self.value_of("end")
            if start and end and self.is_valid():
                return custom_period(start, end)
            key = DEFAULT_PERIOD
        return named_period(key, today)

    @property
    def manager_view(self) -> bool:
        return self.value_of("view") == "manager"


class ChangesForm(FilterFields):
    base = forms.ModelChoiceField(
        queryset=ForecastSnapshot.objects.for_org(None),
        required=False,
        to_field_name="public_id",
        label="Compare the snapshot of",
        empty_label="About a week ago",
    )
    target = forms.ChoiceField(required=False, label="With")
    granularity = forms.ChoiceField(
        choices=GRANULARITIES, required=False, label="Periods", initial="quarter"
    )

    field_order = ["base", "target", "granularity", "pipeline", "owner", "team"]

    def __init__(self, *args, org, policy, snapshots, **kwargs):
        super().__init__(*args, org=org, policy=policy, **kwargs)
        self.snapshots = list(snapshots)
        self.fields["base"].queryset = ForecastSnapshot.objects.for_org(org)
        self.fields["base"].label_from_instance = _snapshot_label
        self.fields["target"].choices = [("now", "Now")] + [
            (str(s.public_id), _snapshot_label(s)) for s in self.snapshots
        ]
        self.fields["base"].choices = [("", "About a week ago")] + [
            (str(s.public_id), _snapshot_label(s)) for s in self.snapshots
        ]

    def target_snapshot(self):
        value = self.value_of("target")
        if not value or value == "now":
            return None
        return ForecastSnapshot.objects.for_org(self.org).filter(public_id=value).first()


def _snapshot_label(snapshot) -> str:
    moment = timezone.localtime(snapshot.taken_at)
    return f"{moment:%a %b} {moment.day}, {moment:%Y %H:%M}"


class ReportForm(forms.Form):
    window = forms.ChoiceField(choices=WINDOWS, required=False, initial=DEFAULT_WINDOW)
    pipeline = forms.ModelChoiceField(
        queryset=Pipeline.objects.for_org(None),
        required=False,
        to_field_name="public_id",
        empty_label="All pipelines",
    )

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pipeline"].queryset = Pipeline.objects.for_org(org).order_by("position", "id")

    def value_of(self, name):
        self.is_valid()
        return self.cleaned_data.get(name)

    @property
    def days(self) -> int:
        return int(self.value_of("window") or DEFAULT_WINDOW)


class ExchangeRateForm(forms.Form):
    currency = forms.CharField(
        max_length=3,
        help_text="The ISO 4217 code, such as EUR or GBP.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 4}),
    )
    rate = forms.DecimalField(
        max_digits=20,
        decimal_places=10,
        help_text="What one unit of this currency is worth in the base currency.",
    )
    effective_date = forms.DateField(
        widget=DATE_INPUT,
        label="In effect from",
        help_text="It applies from this day until the next rate of the same currency.",
    )

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()


def quota_period_choices(today: dt.date, extra: Quota | None = None):
    """Quarters and months from last year to next year, as ("quarter:2026-01-01", label)."""
    quarters, months = [], []
    first = dt.date(today.year - 1, 1, 1)
    for index in range(36):
        start = add_months(first, index)
        months.append((f"month:{start:%Y-%m-%d}", quota_period_label("month", start)))
        if index % 3 == 0:
            quarters.append((f"quarter:{start:%Y-%m-%d}", quota_period_label("quarter", start)))
    if extra is not None:
        value = f"{extra.period}:{extra.period_start:%Y-%m-%d}"
        if value not in dict(quarters + months):
            group = quarters if extra.period == "quarter" else months
            group.insert(0, (value, quota_period_label(extra.period, extra.period_start)))
    return [("Quarters", quarters), ("Months", months)]


class QuotaForm(forms.Form):
    user = UserChoiceField(queryset=User.objects.none(), to_field_name="public_id", label="Rep")
    period_choice = forms.ChoiceField(label="Period")
    amount = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=0,
        label="Quota",
        help_text="Closed-won value to reach, in the base currency.",
    )

    def __init__(self, *args, org, policy, today: dt.date, quota: Quota | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        user_field = cast(forms.ModelChoiceField, self.fields["user"])
        user_field.queryset = access.scoped_users(org, policy)
        period_field = cast(forms.ChoiceField, self.fields["period_choice"])
        period_field.choices = quota_period_choices(today, quota)

    def clean(self):
        cleaned = super().clean()
        choice = cleaned.get("period_choice") or ""
        kind, _, start = choice.partition(":")
        try:
            cleaned["period"] = kind
            cleaned["period_start"] = dt.date.fromisoformat(start)
        except ValueError:
            self.add_error("period_choice", "Choose a month or a quarter from the list.")
        return cleaned

    @staticmethod
    def initial_for(quota: Quota) -> dict:
        return {
            "user": quota.user.public_id,
            "period_choice": f"{quota.period}:{quota.period_start:%Y-%m-%d}",
            "amount": quota.amount,
        }
