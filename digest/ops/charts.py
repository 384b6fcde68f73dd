"""Small server-side SVG charts for the admin dashboard: line, bar and stacked bar.

No JavaScript and nothing from a CDN: each chart is one `<svg role="img">` with a `<title>` and a
`<desc>` that says in words what it shows, a `<title>` tooltip on every bar and point, and a
data table beside it for screen readers and for people who want the exact numbers.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator, slugify

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
WIDTH = 640
HEIGHT = 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 24, 40, 32
MAX_X_LABELS = 8
LEGEND_ROW = 18
LABEL_CHARS = 28  # of a horizontal bar's label, in the 210 px left of the bars
NO_DATA = "No data yet."


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: str = ""


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= value (an axis maximum people read)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{int(value):,}"


def _colored(series: Sequence[Series]) -> list[Series]:
    return [Series(s.name, list(s.values), s.color or PALETTE[i % len(PALETTE)]) for i, s in enumerate(series)]


def _label_every(count: int) -> int:
    return max(1, math.ceil(count / MAX_X_LABELS))


class _Canvas:
    """Plot-area geometry shared by the three chart kinds."""

    def __init__(self, width: int, height: int, top: float, legend_rows: int = 1):
        self.width, self.height = width, height
        self.left, self.right = PAD_LEFT, width - PAD_RIGHT
        self.top, self.bottom = PAD_TOP + LEGEND_ROW * (legend_rows - 1), height - PAD_BOTTOM
        self.max = nice_ceiling(top)

    def y(self, value: float) -> float:
        return round(self.bottom - (self.bottom - self.top) * value / self.max, 1)

    def grid(self) -> list[str]:
        parts = []
        for i in range(5):
            value = self.max * i / 4
            y = self.y(value)
            parts.append(
                f'<line x1="{self.left}" x2="{self.right}" y1="{y}" y2="{y}" stroke="#e5e7eb" stroke-width="1"/>'
                f'<text x="{self.left - 6}" y="{y + 4}" text-anchor="end" font-size="11" fill="#4b5563">'
                f"{_number(value)}</text>"
            )
        parts.append(
            f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" stroke="#9ca3af"/>'
        )
        return parts

    def x_labels(self, labels: Sequence[str], centers: Sequence[float]) -> list[str]:
        every = _label_every(len(labels))
        return [
            f'<text x="{round(x, 1)}" y="{self.bottom + 16}" text-anchor="middle" font-size="11" fill="#4b5563">'
            f"{escape(label)}</text>"
            for i, (label, x) in enumerate(zip(labels, centers, strict=True))
            if (len(labels) - 1 - i) % every == 0  # counted from the end: the latest is always labelled
        ]

    def no_data(self) -> str:
        return (
            f'<text x="{(self.left + self.right) / 2}" y="{(self.top + self.bottom) / 2}" text-anchor="middle" '
            f'font-size="14" fill="#6b7280">{NO_DATA}</text>'
        )


def _legend_rows(series: Sequence[Series], width: int) -> list[list[tuple[float, Series]]]:
    """Legend entries placed left to right, wrapping onto a new row when the width runs out."""
    rows: list[list[tuple[float, Series]]] = [[]]
    x = PAD_LEFT
    for s in series:
        entry = 30 + 7 * len(s.name)
        if rows[-1] and x + entry > width - PAD_RIGHT:
            rows.append([])
            x = PAD_LEFT
        rows[-1].append((x, s))
        x += entry
    return rows


def _legend(rows: list[list[tuple[float, Series]]]) -> list[str]:
    parts = []
    for row, entries in enumerate(rows):
        y = 10 + LEGEND_ROW * row
        for x, s in entries:
            parts.append(
                f'<rect x="{x}" y="{y}" width="12" height="12" rx="2" fill="{s.color}"/>'
                f'<text x="{x + 17}" y="{y + 10}" font-size="12" fill="#111827">{escape(s.name)}</text>'
            )
    return parts


def _table(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    head = "".join(f'<th scope="col">{escape(s.name)}</th>' for s in series)
    rows = "".join(
        f'<tr><th scope="row">{escape(label)}</th>'
        + "".join(f"<td>{_number(s.values[i])}</td>" for s in series)
        + "</tr>"
        for i, label in enumerate(labels)
    )
    return (
        f'<details class="chart-data"><summary>Data: {escape(title)}</summary>'
        f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _figure(
    title: str, desc: str, width: int, height: int, body: Sequence[str], table: str, chart_id: str
) -> SafeString:
    chart_id = chart_id or "chart-" + slugify(title)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" class="chart" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" font-family="system-ui, sans-serif">'
        f'<title id="{chart_id}-title">{escape(title)}</title><desc id="{chart_id}-desc">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )
    # S308: every text in the SVG and the table was escaped where it was put together.
    return mark_safe(f'<figure class="chart-figure" id="{chart_id}">{svg}{table}</figure>')  # noqa: S308


def _is_empty(series: Sequence[Series]) -> bool:
    return not any(v for s in series for v in s.values)


def _check_lengths(labels: Sequence[str], series: Sequence[Series]) -> None:
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    chart_id: str = "",
) -> SafeString:
    """One line per series over the labels (e.g. days)."""
    _check_lengths(labels, series)
    series = _colored(series)
    legend = _legend_rows(series, width)
    canvas = _Canvas(width, height, max((v for s in series for v in s.values), default=0), len(legend))
    count = len(labels)
    step = (canvas.right - canvas.left) / max(count - 1, 1)
    xs = [canvas.left + step * i if count > 1 else (canvas.left + canvas.right) / 2 for i in range(count)]
    body = canvas.grid() + _legend(legend) + canvas.x_labels(labels, xs)
    if _is_empty(series):
        body.append(canvas.no_data())
        desc = NO_DATA
    else:
        for s in series:
            points = " ".join(f"{round(x, 1)},{canvas.y(v)}" for x, v in zip(xs, s.values, strict=True))
            body.append(f'<polyline points="{points}" fill="none" stroke="{s.color}" stroke-width="2"/>')
            body.extend(
                format_html(
                    '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}, {}: {}</title></circle>',
                    round(x, 1),
                    canvas.y(v),
                    s.color,
                    label,
                    s.name,
                    _number(v),
                )
                for x, v, label in zip(xs, s.values, labels, strict=True)
            )
        latest = ", ".join(f"{s.name} {_number(s.values[-1])}" for s in series)
        desc = f"{count} points from {labels[0]} to {labels[-1]}. Latest ({labels[-1]}): {latest}."
    return _figure(title, desc, width, height, body, _table(title, labels, series), chart_id)


def stacked_bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    chart_id: str = "",
) -> SafeString:
    """One bar per label, its series stacked bottom to top in the order given."""
    _check_lengths(labels, series)
    series = _colored(series)
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    legend = _legend_rows(series, width)
    canvas = _Canvas(width, height, max(totals, default=0), len(legend))
    slot = (canvas.right - canvas.left) / max(len(labels), 1)
    bar = max(1.0, slot * 0.7)
    centers = [canvas.left + slot * (i + 0.5) for i in range(len(labels))]
    body = canvas.grid() + _legend(legend) + canvas.x_labels(labels, centers)
    if _is_empty(series):
        body.append(canvas.no_data())
        desc = NO_DATA
    else:
        for i, label in enumerate(labels):
            base = 0.0
            for s in series:
                value = s.values[i]
                if not value:
                    continue
                y_top, y_base = canvas.y(base + value), canvas.y(base)
                body.append(
                    format_html(
                        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}, {}: {}</title></rect>',
                        round(centers[i] - bar / 2, 1),
                        y_top,
                        round(bar, 1),
                        round(y_base - y_top, 1),
                        s.color,
                        label,
                        s.name,
                        _number(value),
                    )
                )
                base += value
        sums = ", ".join(f"{s.name} {_number(sum(s.values))}" for s in series)
        desc = f"{len(labels)} bars from {labels[0]} to {labels[-1]}. Totals: {sums}."
    return _figure(title, desc, width, height, body, _table(title, labels, series), chart_id)


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    name: str = "count",
    width: int = WIDTH,
    chart_id: str = "",
) -> SafeString:
    """Horizontal bars, one per label, longest first as given (e.g. the most followed topics)."""
    row, label_width = 26, 210
    height = PAD_TOP + row * max(len(labels), 1) + 8
    series = _colored([Series(name, list(values))])
    top = nice_ceiling(max(values, default=0))
    left, right = label_width, width - 56
    body = [f'<line x1="{left}" x2="{left}" y1="{PAD_TOP - 6}" y2="{height - 8}" stroke="#9ca3af"/>']
    if not any(values):
        body.append(
            f'<text x="{width / 2}" y="{PAD_TOP + row / 2}" text-anchor="middle" font-size="14" fill="#6b7280">'
            f"{NO_DATA}</text>"
        )
        desc = NO_DATA
    else:
        for i, (label, value) in enumerate(zip(labels, values, strict=True)):
            y = PAD_TOP + row * i
            length = round((right - left) * value / top, 1)
            body.append(
                format_html(
                    '<text x="{}" y="{}" text-anchor="end" font-size="12" fill="#111827">{}</text>'
                    '<rect x="{}" y="{}" width="{}" height="{}" rx="2" fill="{}"><title>{}: {}</title></rect>'
                    '<text x="{}" y="{}" font-size="12" fill="#111827">{}</text>',
                    left - 8,
                    y + 16,
                    Truncator(label).chars(LABEL_CHARS),
                    left,
                    y + 4,
                    length,
                    row - 8,
                    series[0].color,
                    label,
                    _number(value),
                    left + length + 6,
                    y + 16,
                    _number(value),
                )
            )
        desc = "; ".join(f"{label}: {_number(value)}" for label, value in zip(labels, values, strict=True)) + "."
    return _figure(title, desc, width, height, body, _table(title, labels, series), chart_id)
