"""The overview's two charts, drawn by the server as SVG (no chart library, no script):
the geometry is computed here, the markup is the template's (templates/_charts.html), so
that every label goes through the same escaping as the rest of the page."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from service.queries.console import MinuteOfDeliveries, MinuteOfPayments

# The drawing area of each chart, in SVG user units (the page scales it to its width).
WIDTH = 720.0
HEIGHT = 180.0
LEFT = 48.0  # room for the y-axis labels
BOTTOM = 20.0  # room for the x-axis labels
PLOT_WIDTH = WIDTH - LEFT - 8.0
PLOT_HEIGHT = HEIGHT - BOTTOM - 8.0
TOP = 8.0
MINUTES = 60


class Bar(NamedTuple):
    x: float
    y: float
    width: float
    height: float
    status: str
    payments: int
    minute: datetime


class Line(NamedTuple):
    """One series of the lag chart: its pieces (a minute without deliveries breaks it)."""

    name: str
    pieces: list[str]  # SVG polyline points, "x,y x,y ..."
    dots: list[tuple[float, float, float, datetime]]  # x, y, seconds, minute


class Tick(NamedTuple):
    position: float
    label: str


class Chart(NamedTuple):
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    bars: list[Bar]
    lines: list[Line]
    empty: bool
    # Every chart's drawing area.
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    top: float = TOP
    plot_width: float = PLOT_WIDTH
    plot_height: float = PLOT_HEIGHT


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above `value` (an axis' top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 5, 10) if step * power >= value))


def _x_ticks(minutes: Sequence[datetime], slot: float) -> list[Tick]:
    # A label every 15 minutes, at the minute's slot: times in UTC, as the tables show them.
    return [
        Tick(LEFT + index * slot, minute.strftime("%H:%M"))
        for index, minute in enumerate(minutes)
        if minute.minute % 15 == 0
    ]


def payments_chart(per_minute: Sequence[MinuteOfPayments], statuses: Sequence[str]) -> Chart:
    """Payments created per minute over the last hour, a bar per minute stacked by status."""
    slot = PLOT_WIDTH / max(len(per_minute), MINUTES)
    top = nice_ceiling(max((sum(m.by_status.values()) for m in per_minute), default=0))
    bars: list[Bar] = []
    for index, minute in enumerate(per_minute):
        base = TOP + PLOT_HEIGHT
        for status in statuses:
            count = minute.by_status.get(status, 0)
            if not count:
                continue
            height = PLOT_HEIGHT * count / top
            base -= height
            bars.append(
                Bar(LEFT + index * slot + 1, base, slot - 2, height, status, count, minute.minute)
            )
    return Chart(
        y_ticks=[Tick(TOP, f"{top:g}"), Tick(TOP + PLOT_HEIGHT / 2, f"{top / 2:g}")],
        x_ticks=_x_ticks([m.minute for m in per_minute], slot),
        bars=bars,
        lines=[],
        empty=not bars,
    )


def _duration(value: float) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"


def delivery_lag_chart(per_minute: Sequence[MinuteOfDeliveries]) -> Chart:
    """Order webhooks' delivery lag per minute over the last hour: p50 and p99 lines."""
    minutes = [m.minute for m in per_minute]
    slot = PLOT_WIDTH / max(len(per_minute), MINUTES)
    top = nice_ceiling(max((m.p99_seconds or 0.0 for m in per_minute), default=0.0))
    lines = []
    for name in ("p50", "p99"):
        pieces: list[list[str]] = [[]]
        dots = []
        for index, minute in enumerate(per_minute):
            value = getattr(minute, f"{name}_seconds")
            if value is None:
                pieces.append([])
                continue
            x = LEFT + index * slot + slot / 2
            y = TOP + PLOT_HEIGHT - PLOT_HEIGHT * value / top
            pieces[-1].append(f"{x:.1f},{y:.1f}")
            dots.append((x, y, value, minute.minute))
        lines.append(Line(name, [" ".join(piece) for piece in pieces if len(piece) > 1], dots))
    return Chart(
        y_ticks=[Tick(TOP, _duration(top)), Tick(TOP + PLOT_HEIGHT / 2, _duration(top / 2))],
        x_ticks=_x_ticks(minutes, slot),
        bars=[],
        lines=lines,
        empty=not any(line.dots for line in lines),
    )
