"""Pipeline → Forecast: the figures of a period, what changed since last week, the pipeline
report, and the exchange rates and quotas behind them.

Every page needs the pipeline module's view right or the analytics module's, and shows the
deals within the member's record scope. Every table exports to CSV (`?format=csv&table=…`)
with the export right of either module; each export is audited. Exchange rates and quotas
are read by everyone who sees the forecast and changed by settings admins only.
"""

from __future__ import annotations

import datetime as dt
from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from crm.csvutils import csv_response
from crm.decorators import member_required
from crm.form_errors import add_errors
from crm.permissions import policy_for
from crm.selectors import org_timezone, start_of_day
from crm.services import Actor, audit

from ..forecast import access, export
from ..forecast.changes import KINDS, compare, default_base
from ..forecast.charts import Series, bar_chart, figures_chart
from ..forecast.figures import (
    compact_amount,
    compute_forecast,
    quota_attainment,
    quotas_overlapping,
)
from ..forecast.forms import ChangesForm, ExchangeRateForm, ForecastForm, QuotaForm, ReportForm
from ..forecast.periods import DEFAULT_PERIOD, quarter_start
from ..forecast.rates import RateBook, plain_rate
from ..forecast.report import DEFAULT_WINDOW, pipeline_report
from ..forecast.snapshot import latest_snapshots, take_snapshot
from ..models import Deal, ExchangeRate, Quota
from ..services import forecast_settings as services

CHANGES_SHOWN = 200  # deals listed per heading on the page; the CSV has them all


def forecast_view(view):
    """A signed-in member who may see the forecast (pipeline or analytics view)."""

    @member_required()
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        access.require_view(policy_for(request))
        return view(request, *args, **kwargs)

    return wrapped


def _today(request) -> dt.date:
    return timezone.now().astimezone(org_timezone(request.org)).date()


def _wants_csv(request) -> bool:
    return request.GET.get("format") == "csv"


def _csv(request, name: str, table, details: dict):
    """The table as a CSV download, after checking the export right and auditing it."""
    policy = policy_for(request)
    access.require_export(policy)
    if table is None:
        return HttpResponse(
            "There is no such table to export.", status=404, content_type="text/plain"
        )
    header, rows = table
    audit(
        org=request.org,
        actor=Actor.from_request(request),
        verb="forecast.exported",
        object_type="forecast",
        object_repr=f"Forecast: {name} (CSV)",
        changes={"table": name, **details},
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return csv_response(rows, header, f"{name}-{request.org.slug}-{stamp}.csv")


def _common(request, **extra) -> dict:
    policy = policy_for(request)
    return {
        "can_export": access.may_export(policy),
        "can_manage": access.may_manage(policy),
        **extra,
    }


def _filter_details(filters) -> dict:
    return {
        "pipeline": filters.pipeline.name if filters.pipeline else "",
        "owner": filters.owner.email if filters.owner else "",
        "team": filters.team.name if filters.team else "",
    }


def _card(amount, label: str, detail: str) -> dict:
    return {"short": compact_amount(amount), "amount": amount, "label": label, "detail": detail}


def _quotas(request, filters):
    """The quotas of the reps the member may see, narrowed by the owner and team filters."""
    policy = policy_for(request)
    return (
        Quota.objects.for_org(request.org)
        .filter(access.scope_filter(policy, owner_field="user"))
        .filter(filters.user_q(request.org))
    )


# The forecast ------------------------------------------------------------------------------


@require_http_methods(["GET"])
@forecast_view
def forecast(request):
    policy = policy_for(request)
    org, today, tz = request.org, _today(request), org_timezone(request.org)
    data = request.GET.copy()
    data.setdefault("period", DEFAULT_PERIOD)
    data.setdefault("view", "rep")
    form = ForecastForm(data, org=org, policy=policy)
    period, filters = form.chosen_period(today), form.deal_filters()
    deals = access.forecast_deals(org, policy, filters)
    quotas = _quotas(request, filters)
    book = RateBook.load(org)
    result = compute_forecast(org, deals, period, today=today, tz=tz, book=book, quotas=quotas)
    quota_rows = quota_attainment(
        org, quotas_overlapping(quotas, period.start, period.end), deals, tz=tz, book=book
    )
    if _wants_csv(request):
        name = request.GET.get("table", "")
        table = (
            export.quota_table(quota_rows)
            if name == "quotas"
            else export.forecast_table(result, name)
        )
        details = {"period": f"{period.start}..{period.end}", **_filter_details(filters)}
        return _csv(request, f"forecast-{name}", table, details)
    unit = result.base_currency
    summary = result.summary
    context = _common(
        request,
        cards=[
            _card(summary.open_value, "Open pipeline", f"{summary.open_count} open deals"),
            _card(summary.weighted, "Weighted pipeline", "At each deal's probability"),
            _card(summary.commit, "Commit", "Won plus open deals in commit"),
            _card(summary.best_case, "Best case", "Commit plus open deals in best case"),
            _card(summary.won, "Closed won", f"{summary.won_count} deals won"),
        ],
        form=form,
        problems=form.problems,
        forecast=result,
        filters=filters,
        manager_view=form.manager_view,
        stage_detail="Pipeline" if any(b.detail for b in result.by_stage) else "",
        quota_rows=quota_rows,
        month_chart=figures_chart("Forecast by month", result.by_month, unit=unit),
        stage_chart=figures_chart(
            "Forecast by stage",
            [b for b in result.by_stage if b.key != "won"],
            unit=unit,
            include_won=False,
        ),
        owner_chart=figures_chart(
            "Forecast by team" if form.manager_view else "Forecast by rep",
            result.by_team if form.manager_view else result.by_owner,
            unit=unit,
        ),
        pipeline_chart=figures_chart("Forecast by pipeline", result.by_pipeline, unit=unit),
        quota_chart=bar_chart(
            "Quota attainment",
            [(f"{r.rep} · {r.period_label}", [r.amount, r.won]) for r in quota_rows.rows],
            [Series("Quota"), Series("Closed won")],
            unit=unit,
        ),
    )
    template = "pipeline/forecast.html#results" if request.htmx else "pipeline/forecast.html"
    return render(request, template, context)


# What changed ------------------------------------------------------------------------------


@require_http_methods(["GET"])
@forecast_view
def forecast_changes(request):
    policy = policy_for(request)
    org = request.org
    snapshots = list(latest_snapshots(org, limit=30))
    form = ChangesForm(request.GET, org=org, policy=policy, snapshots=snapshots)
    filters = form.deal_filters()
    target = form.target_snapshot()
    now = timezone.now()
    target_time = target.taken_at if target is not None else now
    base = form.value_of("base") or default_base(org, target_time)
    problems = form.problems
    if base is not None and base.taken_at >= target_time:
        problems.append("The snapshot to compare with must be older than the other side.")
        base = None
    comparison = None
    if base is not None:
        comparison = compare(
            org,
            policy,
            filters,
            base=base,
            target=target,
            now=now,
            granularity=form.value_of("granularity") or "quarter",
        )
    if _wants_csv(request):
        name = request.GET.get("table", "")
        table = export.changes_tables(comparison, name) if comparison is not None else None
        details = {"base": str(base.public_id) if base else "", **_filter_details(filters)}
        return _csv(request, f"forecast-changes-{name}", table, details)
    sections = []
    chart = ""
    if comparison is not None:
        grouped = {kind: comparison.changes_of(kind) for kind, _ in KINDS}
        for total in comparison.kinds:
            items = grouped[total.kind]
            sections.append(
                {
                    "total": total,
                    "items": items[:CHANGES_SHOWN],
                    "hidden": len(items) - CHANGES_SHOWN,
                }
            )
        other = comparison.other
        chart = bar_chart(
            "Effect of each change on commit and weighted",
            [
                *((k.label, [k.commit, k.weighted]) for k in comparison.kinds),
                ("Other changes", [other.commit, other.weighted]),
            ],
            [Series("Commit"), Series("Weighted")],
            unit=comparison.base_currency,
        )
    context = _common(
        request,
        form=form,
        problems=problems,
        comparison=comparison,
        sections=sections,
        chart=chart,
        commit_short=compact_amount(comparison.commit_delta) if comparison else "",
        weighted_short=compact_amount(comparison.weighted_delta) if comparison else "",
        has_snapshots=bool(snapshots),
        shown_limit=CHANGES_SHOWN,
    )
    template = (
        "pipeline/forecast_changes.html#results"
        if request.htmx
        else "pipeline/forecast_changes.html"
    )
    return render(request, template, context)


@require_POST
@forecast_view
def forecast_snapshot_take(request):
    """Take a snapshot now (settings admins), e.g. before the first Monday comes."""
    policy = policy_for(request)
    if not access.may_manage(policy):
        raise PermissionDenied("Only settings admins may take a forecast snapshot by hand.")
    snapshot = take_snapshot(request.org)
    audit(
        org=request.org,
        actor=Actor.from_request(request),
        verb="forecast_snapshot.taken",
        obj=snapshot,
        changes={"lines": snapshot.totals.get("lines", 0)},
    )
    messages.success(request, "Snapshot taken: changes from now on are compared with it.")
    return redirect("pipeline:forecast_changes")


# The pipeline report -----------------------------------------------------------------------


@require_http_methods(["GET"])
@forecast_view
def report(request):
    policy = policy_for(request)
    org = request.org
    data = request.GET.copy()
    data.setdefault("window", DEFAULT_WINDOW)
    form = ReportForm(data, org=org)
    tz = org_timezone(org)
    today = _today(request)
    until = start_of_day(today + dt.timedelta(days=1), tz)
    since = start_of_day(today - dt.timedelta(days=form.days), tz)
    # The history of every deal in scope, archived ones too: their moves happened.
    scope = access.scope_filter(policy)
    deals = None if scope == Q() else Deal.objects.for_org(org).filter(scope)
    reports = pipeline_report(
        org, deals, since=since, until=until, pipeline=form.value_of("pipeline")
    )
    if _wants_csv(request):
        name = request.GET.get("table", "stages")
        table = export.report_table(reports) if name == "stages" else None
        return _csv(request, "pipeline-report", table, {"days": form.days})
    for item in reports:
        item.conversion_chart = bar_chart(
            f"Conversion by stage, {item.pipeline.name}",
            [(row.stage.name, [row.conversion or 0]) for row in item.stages],
            [Series("Went on (%)")],
            unit="%",
        )
        item.time_chart = bar_chart(
            f"Median days in stage, {item.pipeline.name}",
            [(row.stage.name, [row.median_days or 0]) for row in item.stages],
            [Series("Median days", "#06b6d4")],
            unit="days",
        )
    context = _common(request, form=form, reports=reports, problems=_problems(form))
    return render(request, "pipeline/forecast_report.html", context)


def _problems(form) -> list[str]:
    if form.is_valid():
        return []
    return [
        f"{form.fields[name].label or name}: {' '.join(errors)}"
        for name, errors in form.errors.items()
    ]


# Exchange rates ----------------------------------------------------------------------------


def _rates_page(request, form, *, editing=None, status=200):
    rates = list(ExchangeRate.objects.for_org(request.org).order_by("currency", "-effective_date"))
    today = _today(request)
    book = RateBook(
        request.org.base_currency, [(r.currency, r.rate, r.effective_date) for r in rates]
    )
    for rate in rates:
        entry = book.entry_on(rate.currency, today)
        rate.in_effect = entry is not None and entry[0] == rate.effective_date
        rate.is_future = rate.effective_date > today
        rate.plain = plain_rate(rate.rate)
    context = _common(request, rates=rates, form=form, editing=editing, today=today)
    return render(request, "pipeline/forecast_rates.html", context, status=status)


@require_http_methods(["GET", "POST"])
@forecast_view
def rates(request):
    if _wants_csv(request):
        rows = ExchangeRate.objects.for_org(request.org).order_by("currency", "-effective_date")
        return _csv(
            request, "exchange-rates", export.rates_table(rows, request.org.base_currency), {}
        )
    if request.method == "POST":
        policy = policy_for(request)
        if not access.may_manage(policy):
            raise PermissionDenied("Only settings admins may change exchange rates.")
        form = ExchangeRateForm(request.POST)
        if form.is_valid():
            try:
                rate = services.exchange_rate_create(
                    org=request.org,
                    actor=Actor.from_request(request),
                    data=form.cleaned_data,
                    policy=policy,
                )
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                messages.success(
                    request, f"{rate.currency} rate added, in effect from {rate.effective_date}."
                )
                return redirect("pipeline:rates")
        return _rates_page(request, form, status=400)
    return _rates_page(request, ExchangeRateForm())


@require_http_methods(["GET", "POST"])
@forecast_view
def rate_edit(request, public_id):
    rate = get_object_or_404(ExchangeRate.objects.for_org(request.org), public_id=public_id)
    policy = policy_for(request)
    if not access.may_manage(policy):
        raise PermissionDenied("Only settings admins may change exchange rates.")
    if request.method == "POST":
        form = ExchangeRateForm(request.POST)
        if form.is_valid():
            try:
                services.exchange_rate_update(
                    rate=rate,
                    actor=Actor.from_request(request),
                    data=form.cleaned_data,
                    policy=policy,
                )
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                messages.success(request, f"{rate.currency} rate saved.")
                return redirect("pipeline:rates")
        return _rates_page(request, form, editing=rate, status=400)
    form = ExchangeRateForm(
        initial={
            "currency": rate.currency,
            "rate": rate.rate,
            "effective_date": rate.effective_date,
        }
    )
    return _rates_page(request, form, editing=rate)


@require_POST
@forecast_view
def rate_delete(request, public_id):
    rate = get_object_or_404(ExchangeRate.objects.for_org(request.org), public_id=public_id)
    policy = policy_for(request)
    if not access.may_manage(policy):
        raise PermissionDenied("Only settings admins may change exchange rates.")
    label = f"{rate.currency} rate of {rate.effective_date}"
    services.exchange_rate_delete(rate=rate, actor=Actor.from_request(request), policy=policy)
    messages.success(request, f"The {label} was deleted.")
    return redirect("pipeline:rates")


# Quotas ------------------------------------------------------------------------------------


def _quota_year(request, today: dt.date) -> int:
    raw = request.GET.get("year", "")
    if raw.isdigit() and 1970 <= int(raw) <= 2100:
        return int(raw)
    return today.year


def _quotas_page(request, form, *, editing=None, status=200):
    policy = policy_for(request)
    today = _today(request)
    year = _quota_year(request, today)
    filters = access.DealFilters()
    quotas = _quotas(request, filters).filter(period_start__year=year)
    deals = access.forecast_deals(request.org, policy)
    table = quota_attainment(request.org, quotas, deals, tz=org_timezone(request.org))
    if _wants_csv(request):
        return _csv(request, f"quotas-{year}", export.quota_table(table), {"year": year})
    chart = bar_chart(
        "Quota attainment",
        [(f"{r.rep} · {r.period_label}", [r.amount, r.won]) for r in table.rows],
        [Series("Quota"), Series("Closed won")],
        unit=table.base_currency,
    )
    context = _common(
        request,
        table=table,
        form=form,
        editing=editing,
        year=year,
        years=[year - 1, year, year + 1],
        chart=chart,
    )
    return render(request, "pipeline/forecast_quotas.html", context, status=status)


def _quota_data(form) -> dict:
    return {
        "user": form.cleaned_data["user"],
        "period": form.cleaned_data["period"],
        "period_start": form.cleaned_data["period_start"],
        "amount": form.cleaned_data["amount"],
    }


@require_http_methods(["GET", "POST"])
@forecast_view
def quotas(request):
    today = _today(request)
    if request.method == "POST":
        policy = policy_for(request)
        if not access.may_manage(policy):
            raise PermissionDenied("Only settings admins may set quotas.")
        form = QuotaForm(request.POST, org=request.org, policy=policy, today=today)
        if form.is_valid():
            try:
                quota, created = services.quota_set(
                    org=request.org,
                    actor=Actor.from_request(request),
                    data=_quota_data(form),
                    policy=policy,
                )
            except ValidationError as exc:
                add_errors(form, exc, default_field="period_choice")
            else:
                verb = "set" if created else "updated"
                messages.success(request, f"Quota {verb} for {quota.user.display_name}.")
                return redirect(f"{_quotas_url()}?year={quota.period_start.year}")
        return _quotas_page(request, form, status=400)
    current = f"quarter:{quarter_start(today):%Y-%m-%d}"
    form = QuotaForm(
        org=request.org, policy=policy_for(request), today=today, initial={"period_choice": current}
    )
    return _quotas_page(request, form)


def _quota_for(request, public_id) -> Quota:
    """The quota on the page: another organization's, or a rep's outside the member's
    record scope, is not found."""
    policy = policy_for(request)
    quotas = (
        Quota.objects.for_org(request.org)
        .filter(access.scope_filter(policy, owner_field="user"))
        .select_related("user")
    )
    return get_object_or_404(quotas, public_id=public_id)


def _quotas_url() -> str:
    return reverse("pipeline:quotas")


@require_http_methods(["GET", "POST"])
@forecast_view
def quota_edit(request, public_id):
    quota = _quota_for(request, public_id)
    policy = policy_for(request)
    if not access.may_manage(policy):
        raise PermissionDenied("Only settings admins may change quotas.")
    today = _today(request)
    if request.method == "POST":
        form = QuotaForm(request.POST, org=request.org, policy=policy, today=today, quota=quota)
        if form.is_valid():
            try:
                quota = services.quota_update(
                    quota=quota,
                    actor=Actor.from_request(request),
                    data=_quota_data(form),
                    policy=policy,
                )
            except ValidationError as exc:
                add_errors(form, exc, default_field="period_choice")
            else:
                messages.success(request, f"Quota saved for {quota.user.display_name}.")
                return redirect(f"{_quotas_url()}?year={quota.period_start.year}")
        return _quotas_page(request, form, editing=quota, status=400)
    form = QuotaForm(
        org=request.org,
        policy=policy,
        today=today,
        quota=quota,
        initial=QuotaForm.initial_for(quota),
    )
    return _quotas_page(request, form, editing=quota)


@require_POST
@forecast_view
def quota_delete(request, public_id):
    quota = _quota_for(request, public_id)
    policy = policy_for(request)
    if not access.may_manage(policy):
        raise PermissionDenied("Only settings admins may change quotas.")
    name, year = quota.user.display_name, quota.period_start.year
    services.quota_delete(quota=quota, actor=Actor.from_request(request), policy=policy)
    messages.success(request, f"Quota of {name} deleted.")
    return redirect(f"{_quotas_url()}?year={year}")
