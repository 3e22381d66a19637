"""Inline SVG charts for the report, drawn by hand: grouped bars with interval whiskers, no dependencies."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bar", "grouped_bars"]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass(frozen=True, slots=True)
class Bar:
    value: float | None  # None: no measurement for this group in this series
    low: float | None = None
    high: float | None = None


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def grouped_bars(
    title: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[Bar]]],
    *,
    maximum: float = 1.0,
    percent: bool = True,
    references: Sequence[tuple[str, int, float]] = (),
) -> str:
    """One group of bars per label, one bar per series; whiskers for intervals; dashed reference ticks.

    `references` are (label, group index, value): a dashed line across that group at the value.
    """
    maximum = maximum or 1.0
    left, top, plot_h, bar_w, gap = 48, 28, 180, 16, 18
    per_group = max(1, len(series)) * bar_w + gap
    legend_w = left + 24 + 7 * max((len(name) for name, _ in series), default=0)
    width = max(left + max(1, len(groups)) * per_group + 20, legend_w, len(title) * 8 + left)
    legend_h = 18 * len(series)
    height = top + plot_h + 70 + legend_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="chart"><title>{html.escape(title)}</title>',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]

    def y(value: float) -> float:
        return top + plot_h - plot_h * max(0.0, min(value, maximum)) / maximum

    for tick in range(5):
        value = maximum * tick / 4
        label = f"{value * 100:.0f}%" if percent else f"{value:g}"
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{_fmt(y(value))}" y2="{_fmt(y(value))}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{_fmt(y(value) + 4)}" font-size="10" text-anchor="end">{label}</text>'
        )
    for g, group in enumerate(groups):
        x0 = left + g * per_group + gap / 2
        for s, (_, bars) in enumerate(series):
            bar = bars[g] if g < len(bars) else Bar(None)
            x = x0 + s * bar_w
            color = PALETTE[s % len(PALETTE)]
            if bar.value is None:
                parts.append(
                    f'<text x="{_fmt(x + bar_w / 2)}" y="{top + plot_h - 3}" font-size="9" text-anchor="middle">–</text>'
                )
                continue
            shown = f"{bar.value * 100:.1f}%" if percent else f"{bar.value:g}"
            parts.append(
                f'<rect x="{_fmt(x + 1)}" y="{_fmt(y(bar.value))}" width="{bar_w - 2}" '
                f'height="{_fmt(top + plot_h - y(bar.value))}" fill="{color}"><title>{html.escape(shown)}</title></rect>'
            )
            if bar.low is not None and bar.high is not None:
                cx = _fmt(x + bar_w / 2)
                parts.append(
                    f'<line x1="{cx}" x2="{cx}" y1="{_fmt(y(bar.low))}" y2="{_fmt(y(bar.high))}" stroke="#000"/>'
                    f'<line x1="{_fmt(x + 4)}" x2="{_fmt(x + bar_w - 4)}" y1="{_fmt(y(bar.low))}" y2="{_fmt(y(bar.low))}" stroke="#000"/>'
                    f'<line x1="{_fmt(x + 4)}" x2="{_fmt(x + bar_w - 4)}" y1="{_fmt(y(bar.high))}" y2="{_fmt(y(bar.high))}" stroke="#000"/>'
                )
        label_x = _fmt(x0 + len(series) * bar_w / 2)
        parts.append(
            f'<text x="{label_x}" y="{top + plot_h + 12}" font-size="10" text-anchor="end" '
            f'transform="rotate(-30 {label_x} {top + plot_h + 12})">{html.escape(group[:28])}</text>'
        )
    for label, g, value in references:
        x0 = left + g * per_group + gap / 2
        parts.append(
            f'<line x1="{_fmt(x0 - 4)}" x2="{_fmt(x0 + len(series) * bar_w + 4)}" y1="{_fmt(y(value))}" '
            f'y2="{_fmt(y(value))}" stroke="#444" stroke-dasharray="4 2"><title>{html.escape(label)}</title></line>'
        )
    for s, (name, _) in enumerate(series):
        ly = top + plot_h + 62 + 18 * s
        parts.append(
            f'<rect x="{left}" y="{ly - 10}" width="12" height="12" fill="{PALETTE[s % len(PALETTE)]}"/>'
            f'<text x="{left + 18}" y="{ly}" font-size="11">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
