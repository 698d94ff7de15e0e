"""What a chart shows, as plain picklable values: the worker process gets only these.

Specs are frozen and hashable, so two requests that would draw the same picture compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Level:
    """A labelled horizontal line (support, resistance, a moving average, zero)."""

    label: str
    value: float


@dataclass(frozen=True, slots=True)
class LineChart:
    """A value over time: a profit curve or a price history. Times are epoch seconds (UTC)."""

    title: str
    subtitle: str
    times: tuple[float, ...]
    values: tuple[float, ...]
    unit: str = "$"
    levels: tuple[Level, ...] = ()
    fill_to: float | None = None  # shade above/below this value in green/red (profit: 0)


@dataclass(frozen=True, slots=True)
class BarChart:
    """One horizontal bar per item (PnL per position), green for gains and red for losses."""

    title: str
    subtitle: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    unit: str = "$"


ChartSpec = LineChart | BarChart
