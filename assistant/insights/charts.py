"""Small charts as plain geometry for a template to draw as inline SVG.

No script and no style attribute: the template writes ``<rect>``/``<polyline>`` with numeric
attributes and classes (colours live in static/css/insights.css), so the strict CSP holds and
nothing a person typed ever reaches the markup except as an escaped ``<title>`` text. Nothing
here touches Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 180
PAD_LEFT = 44
PAD_BOTTOM = 22
PAD_TOP = 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bar's tooltip: "2026-11-03: 14"


@dataclass(frozen=True)
class Line:
    points: str  # "x,y x,y ..." for <polyline points>
    css: str  # a class: the series' colour
    name: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    lines: list[Line]
    ticks: list[Tick]
    first_label: str
    last_label: str
    empty: bool
    baseline: float
    left: int


def _nice_max(value: float) -> float:
    """A round top for the axis (1, 2, 5 x 10^n) at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _ticks(top: float, plot_height: float) -> list[Tick]:
    return [
        Tick(y=PAD_TOP + plot_height * (1 - share), label=_number(top * share))
        for share in (0, 0.5, 1)
    ]


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    zero_is_data: bool = False,
    top: float | None = None,
) -> Chart:
    """``zero_is_data``: a 0 is a figure (0% helpful), not a day without any; only ``None``
    then means nothing to show. ``top``: a fixed axis top (100 for a percentage)."""
    plot_width = WIDTH - PAD_LEFT
    plot_height = HEIGHT - PAD_TOP - PAD_BOTTOM
    numbers = [v or 0 for v in values]
    top = top or _nice_max(max(numbers, default=0))
    slot = plot_width / max(len(numbers), 1)
    gap = min(2.0, slot * 0.2)
    bars = []
    for i, (label, value) in enumerate(zip(labels, numbers, strict=True)):
        height = plot_height * value / top
        bars.append(
            Bar(
                x=round(PAD_LEFT + i * slot + gap / 2, 2),
                y=round(PAD_TOP + plot_height - height, 2),
                width=round(max(slot - gap, 0.5), 2),
                height=round(height, 2),
                label=f"{label}: {_number(value)}",
            )
        )
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        lines=[],
        ticks=_ticks(top, plot_height),
        first_label=labels[0] if labels else "",
        last_label=labels[-1] if labels else "",
        empty=all(v is None for v in values) if zero_is_data else not any(numbers),
        baseline=PAD_TOP + plot_height,
        left=PAD_LEFT,
    )


def line_chart(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]]
) -> Chart:
    """``series``: (name, css class, values); a missing value (no answers that day) breaks
    nothing: the line joins the days that have one."""
    plot_width = WIDTH - PAD_LEFT
    plot_height = HEIGHT - PAD_TOP - PAD_BOTTOM
    known = [v for _, _, values in series for v in values if v is not None]
    top = _nice_max(max(known, default=0))
    step = plot_width / max(len(labels) - 1, 1)
    lines = []
    for name, css, values in series:
        points = " ".join(
            f"{PAD_LEFT + i * step:.1f},{PAD_TOP + plot_height * (1 - v / top):.1f}"
            for i, v in enumerate(values)
            if v is not None
        )
        lines.append(Line(points=points, css=css, name=name))
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        bars=[],
        lines=lines,
        ticks=_ticks(top, plot_height),
        first_label=labels[0] if labels else "",
        last_label=labels[-1] if labels else "",
        empty=not known,
        baseline=PAD_TOP + plot_height,
        left=PAD_LEFT,
    )
