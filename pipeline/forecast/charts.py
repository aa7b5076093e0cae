"""Server-rendered SVG bar charts: no script, no style attribute (the CSP forbids inline
styles), only SVG presentation attributes. Every chart is drawn from the rows of a table
that the page shows beside it, so the chart adds nothing the table does not say; it is an
image with a title for screen readers, who read the table instead.

Bars are horizontal, one group per row and one bar per series, with a zero line so negative
values (a drop in "what changed") extend to the left.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

# Colours that read on the light and the dark themes alike.
PALETTE = ("#6366f1", "#22c55e", "#f59e0b", "#06b6d4", "#ec4899")
NEGATIVE = "#ef4444"

# The chart stretches to its card's width; this wide a drawing keeps its 12-unit text near
# 12 pixels on a desktop card.
WIDTH = 960
LABEL_WIDTH = 200
VALUE_WIDTH = 130
BAR_HEIGHT = 12
BAR_GAP = 3
ROW_GAP = 12
LEGEND_HEIGHT = 26
MAX_LABEL = 30
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    color: str = ""


def _short(text: str) -> str:
    text = str(text)
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _n(number: float) -> str:
    return f"{number:.1f}"


def _amount(value: Decimal) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def bar_chart(
    title: str, rows: list[tuple[str, list]], series: list[Series], *, unit: str = ""
) -> SafeString:
    """An SVG of `rows` — (label, [one value per series]) — with a legend of `series`.
    Empty rows give no chart at all (the page shows its empty state instead)."""
    if not rows:
        return mark_safe("")
    values = [Decimal(v or 0) for _, vals in rows for v in vals]
    low, high = min([Decimal(0), *values]), max([Decimal(0), *values])
    span = (high - low) or Decimal(1)
    plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    zero_x = LABEL_WIDTH + float((0 - low) / span) * plot
    group = len(series) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP
    top = LEGEND_HEIGHT if len(series) > 1 else 4
    height = top + len(rows) * (group + ROW_GAP) + 4
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    chart_id = f"chart-{next(_ids)}"

    parts = [
        format_html(
            '<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
            'width="100%" role="img" aria-labelledby="{}" font-size="12" fill="currentColor">'
            '<title id="{}">{}</title>',
            WIDTH,
            height,
            chart_id,
            chart_id,
            f"{title} (the table beside this chart has the same figures)",
        )
    ]
    if len(series) > 1:
        x = LABEL_WIDTH
        for s, color in zip(series, colors, strict=True):
            parts.append(
                format_html(
                    '<rect x="{}" y="6" width="10" height="10" rx="2" fill="{}"></rect>'
                    '<text x="{}" y="15">{}</text>',
                    x,
                    color,
                    x + 14,
                    s.name,
                )
            )
            x += 24 + 7 * len(s.name)
    y = top
    for label, vals in rows:
        parts.append(
            format_html(
                '<g><title>{}</title><text x="{}" y="{}" text-anchor="end">{}</text>',
                label,
                LABEL_WIDTH - 8,
                _n(y + group / 2 + 4),
                _short(label),
            )
        )
        for index, value in enumerate(vals):
            value = Decimal(value or 0)
            length = float(abs(value) / span) * plot
            bar_x = zero_x - length if value < 0 else zero_x
            color = NEGATIVE if value < 0 and len(series) == 1 else colors[index]
            bar_y = y + index * (BAR_HEIGHT + BAR_GAP)
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" rx="2" fill="{}">'
                    "<title>{}: {} {}</title></rect>",
                    _n(bar_x),
                    bar_y,
                    _n(max(length, 0.5 if value else 0)),
                    BAR_HEIGHT,
                    color,
                    series[index].name,
                    _amount(value),
                    unit,
                )
            )
            parts.append(
                format_html(
                    '<text x="{}" y="{}" fill-opacity="0.8">{}</text>',
                    WIDTH - VALUE_WIDTH + 8,
                    bar_y + BAR_HEIGHT - 2,
                    _amount(value),
                )
            )
        parts.append(mark_safe("</g>"))
        y += group + ROW_GAP
    parts.append(
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" '
            'stroke-opacity="0.35"></line></svg>',
            _n(zero_x),
            _n(zero_x),
            top - 2,
            height - 2,
        )
    )
    return mark_safe("".join(parts))  # every piece above went through format_html


def figures_chart(title: str, buckets, *, unit: str, include_won: bool = True) -> SafeString:
    """The forecast breakdowns' chart: open, weighted and (optionally) won per row."""
    series = [Series("Open pipeline"), Series("Weighted")]
    if include_won:
        series.append(Series("Closed won"))
    rows = []
    for bucket in buckets:
        vals = [bucket.open_value, bucket.weighted]
        if include_won:
            vals.append(bucket.won)
        rows.append((bucket.label, vals))
    return bar_chart(title, rows, series, unit=unit)
