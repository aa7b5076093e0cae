"""The forecast pages' tables as CSV: each returns (header, rows) for
`crm.csvutils.csv_response`, which streams them and neutralizes any cell a spreadsheet
would run as a formula (a pipeline or rep named "=SUM(...)")."""

from __future__ import annotations

from .figures import Bucket, Forecast, QuotaTable

BREAKDOWNS = {
    "summary": "Total",
    "month": "Month of expected close",
    "stage": "Stage",
    "owner": "Rep",
    "team": "Team",
    "pipeline": "Pipeline",
}


def _figures_header(first: str, currency: str, extra=()) -> list[str]:
    return [
        first,
        *extra,
        "Open deals",
        f"Open pipeline ({currency})",
        f"Weighted pipeline ({currency})",
        f"Commit ({currency})",
        f"Best case ({currency})",
        "Won deals",
        f"Closed won ({currency})",
    ]


def _figures(bucket: Bucket) -> list:
    return [
        bucket.open_count,
        bucket.open_value,
        bucket.weighted,
        bucket.commit,
        bucket.best_case,
        bucket.won_count,
        bucket.won,
    ]


def forecast_table(forecast: Forecast, table: str):
    """(header, rows) of one table of the forecast page; None for an unknown table."""
    currency = forecast.base_currency
    if table == "summary":
        header = _figures_header("Period", currency, ["From", "To"])
        period = forecast.period
        return header, [[period.label, period.start, period.end, *_figures(forecast.summary)]]
    if table == "month":
        rows = [[b.key, *_figures(b)] for b in forecast.by_month]
        return _figures_header("Month", currency), rows
    if table == "stage":
        rows = [[b.label, b.detail, *_figures(b)] for b in forecast.by_stage]
        return _figures_header("Stage", currency, ["Pipeline"]), rows
    if table == "owner":
        quota = [f"Quota ({currency})", "Attainment (%)"]
        header = [*_figures_header("Rep", currency, ["Team"]), *quota]
        rows = [[b.label, b.detail, *_figures(b), b.quota, b.attainment] for b in forecast.by_owner]
        return header, rows
    if table == "team":
        header = [*_figures_header("Team", currency), f"Quota ({currency})", "Attainment (%)"]
        rows = [[b.label, *_figures(b), b.quota, b.attainment] for b in forecast.by_team]
        return header, rows
    if table == "pipeline":
        rows = [[b.label, *_figures(b)] for b in forecast.by_pipeline]
        return _figures_header("Pipeline", currency), rows
    return None


def quota_table(table: QuotaTable):
    currency = table.base_currency
    header = [
        "Rep",
        "Team",
        "Period",
        "From",
        "To",
        f"Quota ({currency})",
        "Won deals",
        f"Closed won ({currency})",
        "Attainment (%)",
        f"Gap ({currency})",
    ]
    rows = [
        [
            row.rep,
            row.team,
            row.period_label,
            row.quota.period_start,
            row.period_end,
            row.amount,
            row.won_count,
            row.won,
            row.attainment,
            row.gap,
        ]
        for row in table.rows
    ]
    return header, rows


def changes_tables(comparison, table: str):
    currency = comparison.base_currency
    if table == "summary":
        header = [
            "Change",
            "Deals",
            f"Effect on commit ({currency})",
            f"Effect on weighted ({currency})",
        ]
        rows = [[k.label, k.count, k.commit, k.weighted] for k in comparison.kinds]
        other = comparison.other
        rows.append([other.label, "", other.commit, other.weighted])
        rows.append(["Total change", "", comparison.commit_delta, comparison.weighted_delta])
        return header, rows
    if table == "deals":
        header = [
            "Change",
            "Deal",
            "Owner",
            "Status before",
            "Status after",
            "Close date before",
            "Close date after",
            "Category before",
            "Category after",
            f"Value before ({currency})",
            f"Value after ({currency})",
            f"Effect on commit ({currency})",
            f"Effect on weighted ({currency})",
        ]
        rows = []
        for change in comparison.changes:
            a, b = change.before, change.after
            rows.append(
                [
                    change.label + (f" ({', '.join(change.also)})" if change.also else ""),
                    change.title,
                    change.owner,
                    a.status if a else "",
                    b.status if b else "",
                    a.close if a else None,
                    b.close if b else None,
                    a.category if a else "",
                    b.category if b else "",
                    a.value if a else None,
                    b.value if b else None,
                    change.commit_delta,
                    change.weighted_delta,
                ]
            )
        return header, rows
    return None


def report_table(reports):
    header = [
        "Pipeline",
        "Stage",
        "Deals entered",
        "Went on",
        "Conversion (%)",
        "Won later",
        "Win rate (%)",
        "Moves out",
        "Median days in stage",
    ]
    rows = [
        [
            report.pipeline.name,
            row.stage.name,
            row.entered,
            row.advanced,
            row.conversion,
            row.won,
            row.win_rate,
            row.exits,
            row.median_days,
        ]
        for report in reports
        for row in report.stages
    ]
    return header, rows


def rates_table(rates, base_currency: str):
    header = ["Currency", f"Rate (in {base_currency})", "In effect from"]
    return header, [[r.currency, r.rate, r.effective_date] for r in rates]
