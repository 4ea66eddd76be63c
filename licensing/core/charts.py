"""Charts as inline SVG: pure functions from plain numbers to markup, for the status page.

No JavaScript and no external reference (the page's CSP is ``default-src 'none'``): colours are presentation
attributes, every text from data is escaped, and each chart names itself (``role="img"``, ``aria-label``, a
``<title>``) and carries axis labels and a legend. Hooks for tests and scripts: ``data-chart`` on the ``<svg>``,
``data-series`` / ``data-label`` / ``data-value`` on every bar segment (``rect.bar``) and point (``circle.point``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
PLOT_HEIGHT = 180
LEFT, RIGHT, TOP = 56, 36, 12  # room for the y ticks and rotated y label, and half of the newest x label
X_AXIS = 44  # below the plot: tick labels, then the x label
LEGEND_ROW = 18
MAX_X_LABELS = 8
MAX_BAR = 36  # two runs should not look like two walls
PALETTE = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
CHAR_WIDTH = 7  # a rough width of one 11px character, to lay the legend out without measuring text


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of numbers, one value per x label; None where nothing was recorded (a gap, not a zero)."""

    name: str
    values: tuple[int | None, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """What a chart shows: ``chart_id`` names it in the page (data-chart and the id of its title)."""

    chart_id: str
    title: str
    x_label: str
    y_label: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    empty: str = "No data yet"  # said in the middle of a chart with nothing to draw


def stacked_bars(chart: Chart, *, colours: Mapping[str, str] | None = None) -> str:
    """One bar per x label, a segment per series with a value above zero, stacked in series order."""
    totals = [sum(s.values[i] or 0 for s in chart.series if i < len(s.values)) for i in range(len(chart.labels))]
    top = nice_top(max(totals, default=0))
    slot = _slot(chart)
    width = min(slot * 0.7, MAX_BAR)
    palette = _colours(chart.series, colours)
    marks: list[str] = []
    for i, label in enumerate(chart.labels):
        base = 0
        for s in chart.series:
            value = s.values[i] if i < len(s.values) else None
            if not value or value <= 0:
                continue
            y0, y1 = _y(base, top), _y(base + value, top)
            base += value
            marks.append(
                f'<rect class="bar"{_hooks(s.name, label, value)} x="{_x(i, slot) - width / 2:.1f}" '
                f'y="{y1:.1f}" width="{width:.1f}" height="{y0 - y1:.1f}" fill="{palette[s.name]}">'
                f"<title>{_text(f'{label} {s.name}: {value}')}</title></rect>"
            )
    empty = not any(totals)
    return _frame(chart, top, marks, palette, empty=empty)


def line_chart(chart: Chart, *, ceilings: Mapping[str, int] | None = None) -> str:
    """A line per series through its recorded points (a marker on each, so one point shows); a series' ceiling,
    when given, is a dashed horizontal line of the same colour."""
    ceilings = ceilings or {}
    recorded = [v for s in chart.series for v in s.values if v is not None]
    top = nice_top(max([*recorded, *ceilings.values()], default=0))
    slot = _slot(chart)
    palette = _colours(chart.series, None)
    marks: list[str] = []
    for s in chart.series:
        points = [(i, v) for i, v in enumerate(s.values[: len(chart.labels)]) if v is not None]
        colour = palette[s.name]
        if s.name in ceilings:
            y = _y(ceilings[s.name], top)
            marks.append(
                f'<line class="ceiling" data-series="{_attr(s.name)}" data-value="{ceilings[s.name]}" x1="{LEFT}" '
                f'y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{colour}" stroke-dasharray="6 4">'
                f"<title>{_text(f'{s.name}: {ceilings[s.name]} seats enabled')}</title></line>"
            )
        if len(points) > 1:
            path = " ".join(f"{_x(i, slot):.1f},{_y(v, top):.1f}" for i, v in points)
            marks.append(
                f'<polyline class="line" data-series="{_attr(s.name)}" points="{path}" fill="none" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        marks.extend(
            f'<circle class="point"{_hooks(s.name, chart.labels[i], v)} cx="{_x(i, slot):.1f}" '
            f'cy="{_y(v, top):.1f}" r="3" fill="{colour}"><title>{_text(f"{chart.labels[i]} {s.name}: {v}")}</title>'
            "</circle>"
            for i, v in points
        )
    return _frame(chart, top, marks, palette, empty=not recorded)


def nice_top(value: int) -> int:
    """The y axis' top: the smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 1:
        return 1
    power: int = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def ticks(top: int) -> tuple[int, ...]:
    """Whole-number ticks from 0 to ``top``, at most six of them."""
    step = max(1, top // 5) if top % 5 == 0 else max(1, top // 4) if top % 4 == 0 else max(1, top // 2)
    return tuple(range(0, top + 1, step))


def legend_rows(names: Sequence[str]) -> list[list[tuple[str, float]]]:
    """The legend laid out in rows that fit the width: each name with its x offset."""
    rows: list[list[tuple[str, float]]] = [[]]
    x = float(LEFT)
    for name in names:
        width = 22 + CHAR_WIDTH * len(name) + 14
        if rows[-1] and x + width > WIDTH - RIGHT:
            rows.append([])
            x = float(LEFT)
        rows[-1].append((name, x))
        x += width
    return rows if rows[-1] else []


def _frame(chart: Chart, top: int, marks: Iterable[str], palette: Mapping[str, str], *, empty: bool) -> str:
    rows = legend_rows([s.name for s in chart.series])
    legend_top = TOP + PLOT_HEIGHT + X_AXIS
    height = legend_top + LEGEND_ROW * len(rows) + 6
    bottom = TOP + PLOT_HEIGHT
    title_id = f"{chart.chart_id}-title"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{_attr(chart.chart_id)}" role="img" '
        f'aria-labelledby="{_attr(title_id)}" aria-label="{_attr(chart.title)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" font-family="system-ui, sans-serif" font-size="11">',
        f'<title id="{_attr(title_id)}">{_text(chart.title)}</title>',
    ]
    for tick in ticks(top):
        y = _y(tick, top)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text class="y-tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#5f6368"/>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#5f6368"/>')
    slot = _slot(chart)
    widest = max((len(label) for label in chart.labels), default=0) * CHAR_WIDTH + 12
    every = max(1, math.ceil(len(chart.labels) / MAX_X_LABELS), math.ceil(widest / slot))
    for i, label in enumerate(chart.labels):
        if (len(chart.labels) - 1 - i) % every == 0:  # counted from the newest, which is always labelled
            x = _x(i, slot)
            parts.append(
                f'<text class="x-tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_text(label)}</text>'
            )
    parts.append(
        f'<text class="x-label" x="{LEFT + (WIDTH - LEFT - RIGHT) / 2:.1f}" y="{bottom + 34}" text-anchor="middle" '
        f'font-weight="600">{_text(chart.x_label)}</text>'
    )
    middle = TOP + PLOT_HEIGHT / 2
    parts.append(
        f'<text class="y-label" x="14" y="{middle:.1f}" text-anchor="middle" font-weight="600" '
        f'transform="rotate(-90 14 {middle:.1f})">{_text(chart.y_label)}</text>'
    )
    parts.extend(marks)
    if empty:
        parts.append(
            f'<text class="empty" x="{LEFT + (WIDTH - LEFT - RIGHT) / 2:.1f}" y="{middle:.1f}" text-anchor="middle" '
            f'fill="#5f6368">{_text(chart.empty)}</text>'
        )
    parts.append('<g class="legend">')
    for n, row in enumerate(rows):
        y = legend_top + LEGEND_ROW * n
        for name, x in row:
            parts.append(
                f'<rect class="key" data-series="{_attr(name)}" x="{x:.1f}" y="{y:.1f}" width="14" height="10" '
                f'fill="{palette[name]}"/><text x="{x + 20:.1f}" y="{y + 9:.1f}">{_text(name)}</text>'
            )
    parts.append("</g></svg>")
    return "".join(parts)


def _colours(series: Sequence[Series], given: Mapping[str, str] | None) -> dict[str, str]:
    return {s.name: (given or {}).get(s.name) or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}


def _slot(chart: Chart) -> float:
    return (WIDTH - LEFT - RIGHT) / max(len(chart.labels), 1)


def _x(index: int, slot: float) -> float:
    return LEFT + slot * (index + 0.5)


def _y(value: int, top: int) -> float:
    return TOP + PLOT_HEIGHT - PLOT_HEIGHT * value / max(top, 1)


def _hooks(series: str, label: str, value: int) -> str:
    return f' data-series="{_attr(series)}" data-label="{_attr(label)}" data-value="{value}"'


def _text(value: str) -> str:
    return escape(value, quote=False)


def _attr(value: str) -> str:
    return escape(value, quote=True)
