"""Small server-rendered SVG charts (no script, no inline style: the CSP allows neither).

Each chart has a viewBox and scales to its container, so it reads on a 390 px phone; its title
and a <desc> carry the numbers for screen readers, and the page prints them as a table too.
"""

from __future__ import annotations

from html import escape

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 24, 36


def _label_every(n: int) -> int:
    return max(1, -(-n // 10))  # at most about 10 labels on the axis


def bars(
    title: str,
    labels: list[str],
    values: list[float | None],
    *,
    percent: bool = False,
    css: str = "bar",
    chart_id: str,
) -> str:
    """A vertical bar chart; None values are gaps (no data that day)."""
    known = [v for v in values if v is not None]
    top = max(known, default=0.0)
    if percent:
        top = max(top, 0.01)
    top = top or 1.0
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(len(values), 1)
    step = plot_w / n
    width = max(step * 0.7, 1.0)

    def fmt(v: float) -> str:
        return f"{v:.0%}" if percent else f"{v:g}"

    desc = "; ".join(
        f"{lab}: {fmt(v) if v is not None else 'no data'}" for lab, v in zip(labels, values)
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" class="chart" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" id="{chart_id}">',
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>',
        f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{W - RIGHT}" y2="{TOP + plot_h}" class="axis"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" class="tick" text-anchor="end">{escape(fmt(top))}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" class="tick" text-anchor="end">{escape(fmt(0))}</text>',
    ]
    every = _label_every(len(labels))
    for i, (label, value) in enumerate(zip(labels, values)):
        x = LEFT + i * step + (step - width) / 2
        if value is not None:
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
                f'class="{css}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + width / 2:.1f}" y="{H - BOTTOM + 14}" class="tick" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
