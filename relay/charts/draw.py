"""Draws a `ChartSpec` into PNG bytes with matplotlib's Agg canvas (headless: no display needed).

Runs in a worker process (see `relay.charts.renderer`), so it only ever sees plain values. It
uses the object API (`Figure`), never pyplot, so no global figure state is kept between charts.
Sized and styled for a phone: 1200x675 px, large type, a dark background that reads the same in
light and dark chat themes, green for gains and red for losses.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from typing import Any

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from relay.charts.specs import BarChart, ChartSpec, LineChart

WIDTH_IN, HEIGHT_IN, DPI = 12.0, 6.75, 100
BACKGROUND = "#0f172a"
PANEL = "#111c33"
TEXT = "#e2e8f0"
MUTED = "#94a3b8"
GRID = "#334155"
LINE = "#60a5fa"
GAIN = "#22c55e"
LOSS = "#ef4444"
LEVEL_COLOURS = ("#facc15", "#c084fc", "#f97316", "#2dd4bf")
BASE_FONT = 18


def draw(spec: ChartSpec) -> bytes:
    """The chart as PNG bytes."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    # Bar labels sit left of the axis: room for the longest (service keeps them short).
    longest = max((len(line) for label in getattr(spec, "labels", ()) for line in label.split("\n")), default=0)
    _style(fig, ax, spec.title, spec.subtitle, left=min(0.4, max(0.12, 0.012 * longest + 0.04)))
    if isinstance(spec, LineChart):
        _line(ax, spec)
    else:
        _bars(ax, spec)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor=BACKGROUND, dpi=DPI)
    return buffer.getvalue()


def money(value: float, unit: str = "$") -> str:
    """Compact signed-aware amounts for axes and labels: $1.2k, -$3.4M, $0.57."""
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v < 0.005:
        return f"{unit}0"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if v >= limit:
            return f"{sign}{unit}{v / limit:.1f}{suffix}"
    return f"{sign}{unit}{v:.2f}" if v < 10 else f"{sign}{unit}{v:.0f}"


def _style(fig: Figure, ax: Any, title: str, subtitle: str, *, left: float = 0.12) -> None:
    fig.subplots_adjust(left=left, right=0.97, top=0.83, bottom=0.13)
    fig.text(0.02, 0.95, title, color=TEXT, fontsize=BASE_FONT + 10, fontweight="bold", va="top")
    if subtitle:
        fig.text(0.02, 0.885, subtitle, color=MUTED, fontsize=BASE_FONT, va="top")
    ax.set_facecolor(PANEL)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    ax.tick_params(colors=TEXT, labelsize=BASE_FONT - 2, length=0, pad=8)
    ax.grid(True, color=GRID, linewidth=1, alpha=0.6)
    ax.set_axisbelow(True)


def _line(ax: Any, spec: LineChart) -> None:
    when = [datetime.fromtimestamp(t, UTC) for t in spec.times]
    values = list(spec.values)
    rising = len(values) < 2 or values[-1] >= values[0]
    colour = LINE if spec.fill_to is None else (GAIN if rising else LOSS)
    ax.plot(when, values, color=colour, linewidth=3.5, solid_capstyle="round")
    if values:
        ax.scatter([when[-1]], [values[-1]], color=colour, s=120, zorder=5)
    if spec.fill_to is not None and len(values) > 1:
        base = spec.fill_to
        ax.fill_between(when, values, base, where=[v >= base for v in values], color=GAIN, alpha=0.18, interpolate=True)
        ax.fill_between(when, values, base, where=[v < base for v in values], color=LOSS, alpha=0.18, interpolate=True)
        ax.axhline(base, color=MUTED, linewidth=1.5, linestyle="--")
    for i, level in enumerate(spec.levels):
        c = LEVEL_COLOURS[i % len(LEVEL_COLOURS)]
        ax.axhline(level.value, color=c, linewidth=2, linestyle=":", alpha=0.9)
        ax.annotate(
            f"{level.label} {money(level.value, spec.unit)}",
            xy=(1.0, level.value),
            xycoords=("axes fraction", "data"),
            xytext=(-6, 4),
            textcoords="offset points",
            ha="right",
            color=c,
            fontsize=BASE_FONT - 4,
        )
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    ax.xaxis.get_offset_text().set_color(MUTED)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: money(v, spec.unit)))
    low = min([*values, *(lv.value for lv in spec.levels)] or [0.0])
    high = max([*values, *(lv.value for lv in spec.levels)] or [1.0])
    pad = (high - low) * 0.08 or max(abs(high) * 0.05, 1.0)
    ax.set_ylim(low - pad, high + pad)


def _bars(ax: Any, spec: BarChart) -> None:
    n = len(spec.values)
    positions = list(range(n))[::-1]  # the first item on top
    colours = [GAIN if v >= 0 else LOSS for v in spec.values]
    ax.barh(positions, list(spec.values), color=colours, height=0.65)
    ax.set_yticks(positions, list(spec.labels))
    ax.axvline(0, color=MUTED, linewidth=1.5)
    ax.grid(True, axis="x", color=GRID, alpha=0.6)
    ax.grid(False, axis="y")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: money(v, spec.unit)))
    span = max((abs(v) for v in spec.values), default=1.0) or 1.0
    for y, v in zip(positions, spec.values, strict=True):
        ax.annotate(
            money(v, spec.unit),
            xy=(v, y),
            xytext=(8 if v >= 0 else -8, 0),
            textcoords="offset points",
            ha="left" if v >= 0 else "right",
            va="center",
            color=TEXT,
            fontsize=BASE_FONT - 3,
        )
    lo = min(0.0, *spec.values) if spec.values else 0.0
    hi = max(0.0, *spec.values) if spec.values else 1.0
    margin = span * 0.3
    ax.set_xlim(lo - (margin if lo < 0 else 0), hi + (margin if hi > 0 else 0) or 1.0)
    if n > 8:
        ax.tick_params(axis="y", labelsize=max(11, BASE_FONT - 2 - math.ceil((n - 8) / 2)))
