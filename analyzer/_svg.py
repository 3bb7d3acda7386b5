"""Small server-side SVG charts for the HTML report: readable without JavaScript, no external
resources, every label escaped (label text comes from logs and configuration)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777",
           "#475569", "#ca8a04")
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _frame(title: str, width: int, height: int, body: list[str]) -> Markup:
    head = (f'<svg role="img" viewBox="0 0 {width} {height}" width="100%" '
            f'style="max-width:{width}px" {_FONT} font-size="11"><title>{escape(title)}</title>')
    return Markup(head + "".join(body) + "</svg>")


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], unit: str, *, width: int = 640) -> Markup:
    """Horizontal bars, one per label, with the value written at the end of each bar."""
    bar, gap, left, right = 18, 6, 200, 70
    height = 30 + len(labels) * (bar + gap) + 24
    top = _nice_max(max(values, default=0))
    span = width - left - right
    body = [f'<text x="{left}" y="14" font-weight="600">{escape(title)} ({escape(unit)})</text>']
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 26 + i * (bar + gap)
        w = span * value / top if top else 0
        short = label if len(label) <= 32 else label[:31] + "…"
        body.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(short)}</text>')
        body.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{PALETTE[0]}" rx="2">'
                    f'<title>{escape(label)}: {value:,.0f} {escape(unit)}</title></rect>')
        body.append(f'<text x="{left + w + 4:.1f}" y="{y + 13}">{value:,.0f}</text>')
    axis_y = 26 + len(labels) * (bar + gap) + 4
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + span}" y2="{axis_y}" stroke="#94a3b8"/>')
    for k in range(5):
        x = left + span * k / 4
        body.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#475569">'
                    f'{_fmt(top * k / 4)}</text>')
    return _frame(title, width, height + 6, body)


def stacked_area(title: str, times: Sequence[dt.datetime], series: dict[str, Sequence[float]], unit: str,
                 *, width: int = 900, height: int = 260) -> Markup:
    """Series stacked over time (one band per series), with time and value axes and a legend."""
    left, right, top_pad, bottom = 56, 16, 24, 58
    if len(times) == 1:
        # one time bucket: draw it as a band across the plot rather than an invisible sliver
        times = [times[0], times[0]]
        series = {name: [values[0], values[0]] for name, values in series.items()}
    n = len(times)
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(n)]
    top = _nice_max(max(totals, default=0))
    body = [f'<text x="{left}" y="14" font-weight="600">{escape(title)} ({escape(unit)})</text>']

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top_pad + plot_h - plot_h * v / top

    for k in range(5):
        v = top * k / 4
        body.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" stroke="#e2e8f0"/>')
        body.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#475569">{_fmt(v)}</text>')
    base = [0.0] * n
    for idx, (name, values) in enumerate(series.items()):
        upper = [base[i] + values[i] for i in range(n)]
        if n:
            points = [f"{x(i):.1f},{y(upper[i]):.1f}" for i in range(n)]
            points += [f"{x(i):.1f},{y(base[i]):.1f}" for i in reversed(range(n))]
            body.append(f'<polygon points="{" ".join(points)}" fill="{PALETTE[idx % len(PALETTE)]}" '
                        f'fill-opacity="0.75"><title>{escape(name)}</title></polygon>')
        base = upper
    body.append(f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" '
                f'stroke="#94a3b8"/>')
    if n:
        for k in range(min(n, 6)):
            i = round(k * (n - 1) / max(min(n, 6) - 1, 1))
            body.append(f'<text x="{x(i):.1f}" y="{top_pad + plot_h + 14}" text-anchor="middle" fill="#475569">'
                        f'{times[i]:%m-%d %H:%M}</text>')
    lx, ly = left, height - 22
    for idx, name in enumerate(series):
        short = name if len(name) <= 24 else name[:23] + "…"
        body.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{PALETTE[idx % len(PALETTE)]}"/>'
                    f'<text x="{lx + 14}" y="{ly + 9}">{escape(short)}</text>')
        lx += 24 + 7 * len(short)
        if lx > width - 120:
            lx, ly = left, ly + 14
    return _frame(title, width, height + 14, body)


def heat_map(title: str, rows: Sequence[str], columns: Sequence[dt.datetime], cells: dict[tuple[str, int], float],
             unit: str, *, width: int = 900) -> Markup:
    """Rows (source ranges) x columns (hours): darker is more; every cell carries its count."""
    left, top_pad, cell_h = 130, 30, 16
    n = max(len(columns), 1)
    cell_w = max((width - left - 10) / n, 1.0)
    height = top_pad + len(rows) * cell_h + 40
    peak = max(cells.values(), default=0) or 1
    body = [f'<text x="{left}" y="14" font-weight="600">{escape(title)} ({escape(unit)})</text>']
    for r, row in enumerate(rows):
        ry = top_pad + r * cell_h
        body.append(f'<text x="{left - 6}" y="{ry + 12}" text-anchor="end">{escape(row)}</text>')
        for c in range(len(columns)):
            value = cells.get((row, c), 0)
            if not value:
                continue
            shade = 0.15 + 0.85 * value / peak
            body.append(f'<rect x="{left + c * cell_w:.2f}" y="{ry}" width="{max(cell_w, 1):.2f}" height="{cell_h - 2}" '
                        f'fill="#dc2626" fill-opacity="{shade:.2f}"><title>{escape(row)} {columns[c]:%Y-%m-%d %H:00}: '
                        f'{value:,.0f} {escape(unit)}</title></rect>')
    axis_y = top_pad + len(rows) * cell_h + 12
    for k in range(min(len(columns), 6)):
        c = round(k * (len(columns) - 1) / max(min(len(columns), 6) - 1, 1))
        body.append(f'<text x="{left + c * cell_w:.1f}" y="{axis_y}" fill="#475569">{columns[c]:%m-%d %H:00}</text>')
    body.append(f'<text x="{left}" y="{axis_y + 16}" fill="#475569">darker = more deferrals (peak {peak:,.0f} '
                f'per hour); hover a cell for its count</text>')
    return _frame(title, width, height, body)


def spark(values: Sequence[float], *, width: int = 160, height: int = 28, title: str = "") -> Markup:
    """A tiny bar timeline (a hot spot's deferrals per window)."""
    peak = max(values, default=0) or 1
    n = max(len(values), 1)
    w = width / n
    body = [f'<rect x="{i * w:.2f}" y="{height - height * v / peak:.2f}" width="{max(w - 0.5, 0.5):.2f}" '
            f'height="{height * v / peak:.2f}" fill="#dc2626"/>' for i, v in enumerate(values) if v]
    return _frame(title or "timeline", width, height, body)
