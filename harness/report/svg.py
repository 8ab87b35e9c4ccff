"""Inline SVG charts drawn on the server: no script, no network, and they print as drawn.

Every chart shares the run's time axis (seconds since the load started), shades each fault
window, and marks the moments the gateway detected a fault and took its replicas back.
Hovering a chart shows the values of the bucket under the pointer (SVG <title>s).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from harness.report.series import Axis, Lane, Moment, Series
from harness.timeline import FaultWindow

WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 34, 34
LANE_HEIGHT, LANE_GAP = 20, 8
STATE_COLORS = {"healthy": "#2e9d58", "unhealthy": "#d64541", "unknown": "#d0d0d0"}
MOMENT_COLORS = {"detected": "#c0392b", "recovered": "#1e8449"}
FAULT_FILL, FAULT_TEXT = "#f2b705", "#7a5c00"
GRID = "#e3e3e3"
TIME_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800)

Format = Callable[[float], str]


@dataclass(frozen=True)
class Overlay:
    """What every chart draws over its data: fault windows and detection/recovery moments."""

    faults: Sequence[FaultWindow]
    moments: Sequence[Moment]


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s" if value >= 100 or value == int(value) else f"{value:.3g}/s"


def fmt_seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.3g}ms"
    return f"{value:.3g}s"


class _Frame:
    """Maps seconds and values to pixels inside the plot area."""

    def __init__(self, axis: Axis, height: int, ymax: float, ymin: float = 0.0, log: bool = False) -> None:
        self.axis, self.height, self.ymin, self.ymax, self.log = axis, height, ymin, ymax, log
        self.plot_w = WIDTH - LEFT - RIGHT
        self.plot_h = height - TOP - BOTTOM

    def x(self, t: float) -> float:
        return LEFT + min(max(t / self.axis.end, 0.0), 1.0) * self.plot_w

    def y(self, value: float) -> float:
        if self.log:
            low, high = math.log10(self.ymin), math.log10(self.ymax)
            share = (math.log10(max(value, self.ymin)) - low) / (high - low)
        else:
            share = value / self.ymax
        return TOP + (1 - min(max(share, 0.0), 1.0)) * self.plot_h


def _svg(name: str, height: int, title: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" '
        f'font-size="11" xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>')


def _nice_ticks(value: float) -> list[float]:
    """0 up to at least ``value`` in four or five round steps (1, 2, 2.5 or 5 × 10^k)."""
    if value <= 0:
        return [0.0, 1.0]
    raw = value / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)
    return [i * step for i in range(math.ceil(value / step - 1e-9) + 1)]


def _time_axis(frame: _Frame) -> list[str]:
    end = frame.axis.end
    step = next((s for s in TIME_STEPS if end / s <= 10), TIME_STEPS[-1])
    out = []
    base = frame.height - BOTTOM
    for i in range(int(end // step) + 1):
        t = i * step
        x = frame.x(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{base}" stroke="{GRID}"/>'
                   f'<text x="{x:.1f}" y="{base + 14}" text-anchor="middle" fill="#555">{t:g}s</text>')
    out.append(f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#888"/>')
    out.append(f'<text x="{WIDTH - RIGHT}" y="{frame.height - 4}" text-anchor="end" fill="#777">'
               'seconds since the load started</text>')
    return out


def _value_axis(frame: _Frame, ticks: list[float], fmt: Format) -> list[str]:
    out = []
    for value in ticks:
        y = frame.y(value)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{GRID}"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{escape(fmt(value))}</text>')
    return out


def label_width(text: str) -> float:
    """A generous estimate of a label's width in pixels at the charts' font size (11px system-ui: about
    6 px a character in Chromium for labels like 'reset_peer@chat[0]'; 7 leaves room for wide glyphs)."""
    return 7.0 * len(text)


def stack_rows(spans: Sequence[tuple[float, float]], gap: float = 6.0) -> list[int]:
    """The row of each label spanning ``(left, right)`` pixels, in order: the first row whose last
    label ends ``gap`` before this one starts, else a new row. Labels in one row never overlap."""
    ends: list[float] = []
    rows = []
    for left, right in spans:
        row = next((i for i, end in enumerate(ends) if end + gap <= left), len(ends))
        if row == len(ends):
            ends.append(right)
        else:
            ends[row] = right
        rows.append(row)
    return rows


def _overlay(frame: _Frame, overlay: Overlay) -> list[str]:
    out = []
    base = frame.height - BOTTOM
    faults = sorted(overlay.faults, key=lambda f: f.start)
    spans = []
    for fault in faults:  # a label runs right from its window's start, or ends at the plot's right edge
        left = frame.x(fault.start) + 4
        left = min(left, WIDTH - RIGHT - label_width(fault.label))
        spans.append((left, left + label_width(fault.label)))
    label_rows = stack_rows(spans)
    for fault, (left, _), row in zip(faults, spans, label_rows, strict=True):
        x0, x1 = frame.x(fault.start), frame.x(fault.end)
        out.append(f'<g class="fault" data-fault="{escape(fault.label)}">'
                   f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1):.1f}" height="{base - TOP}" '
                   f'fill="{FAULT_FILL}" fill-opacity="0.16" stroke="{FAULT_FILL}" stroke-opacity="0.6"/>'
                   f'<text x="{max(left, LEFT + 2):.1f}" y="{TOP + 12 + 13 * row}" fill="{FAULT_TEXT}">'
                   f'{escape(fault.label)}</text>'
                   f'<title>{escape(fault.label)}: {fault.start:.2f}s to {fault.end:.2f}s</title></g>')
    rows: list[float] = [-1e9, -1e9]  # right edge of the last label in each row, to avoid overlaps
    for moment in overlay.moments:
        x = frame.x(moment.t)
        color = MOMENT_COLORS[moment.kind]
        row = 0 if x > rows[0] else 1
        anchor, tx = ("end", x - 3) if x > WIDTH - RIGHT - 110 else ("start", x + 3)
        rows[row] = x + 110
        out.append(f'<g class="moment" data-kind="{moment.kind}">'
                   f'<line x1="{x:.1f}" y1="{TOP - 4 - 12 * row}" x2="{x:.1f}" y2="{base}" stroke="{color}" '
                   f'stroke-width="1.5" stroke-dasharray="4 3"/>'
                   f'<text x="{tx:.1f}" y="{TOP - 7 - 12 * row}" text-anchor="{anchor}" fill="{color}" '
                   f'font-weight="600">{escape(moment.label)}</text><title>{escape(moment.sentence)}</title></g>')
    return out


def _hover(frame: _Frame, series: Sequence[Series], overlay: Overlay, fmt: Format) -> list[str]:
    axis, out = frame.axis, []
    width = frame.x(axis.step) - frame.x(0)
    for i in range(axis.buckets):
        start = i * axis.step
        parts = [f"{s.label} {fmt(v)}" for s in series if (v := s.values[i]) is not None]
        parts += [f"fault {f.label}" for f in overlay.faults if f.start < start + axis.step and f.end > start]
        text = f"{start:g}–{start + axis.step:g}s: " + ("; ".join(parts) or "nothing")
        out.append(f'<rect class="bucket" x="{frame.x(start):.1f}" y="{TOP}" width="{width:.1f}" '
                   f'height="{frame.plot_h}" fill="transparent"><title>{escape(text)}</title></rect>')
    return out


def _empty(frame: _Frame, text: str) -> str:
    return (f'<text class="empty" x="{LEFT + frame.plot_w / 2:.1f}" y="{TOP + frame.plot_h / 2:.1f}" '
            f'text-anchor="middle" fill="#777" font-size="13">{escape(text)}</text>')


def stacked_chart(name: str, title: str, series: Sequence[Series], axis: Axis, overlay: Overlay,
                  fmt: Format = fmt_rate, empty: str = "nothing to show", height: int = 220) -> Markup:
    """Bands stacked on each other, one step per bucket (e.g. requests per second by replica)."""
    totals = [sum(s.values[i] or 0.0 for s in series) for i in range(axis.buckets)]
    ticks = _nice_ticks(max(totals, default=0.0))
    frame = _Frame(axis, height, ticks[-1])
    body = _value_axis(frame, ticks, fmt) + _time_axis(frame)
    if not any(totals):
        body.append(_empty(frame, empty))
    lower = [0.0] * axis.buckets
    for s in series:
        upper = [low + (v or 0.0) for low, v in zip(lower, s.values, strict=True)]
        top = [p for i, u in enumerate(upper) for p in ((i * axis.step, u), ((i + 1) * axis.step, u))]
        bottom = [p for i, low in enumerate(lower) for p in ((i * axis.step, low), ((i + 1) * axis.step, low))]
        points = " L".join(f"{frame.x(t):.1f},{frame.y(v):.1f}" for t, v in top + bottom[::-1])
        body.append(f'<path class="series" data-series="{escape(s.label)}" d="M{points}Z" fill="{s.color}" '
                    f'fill-opacity="0.85"><title>{escape(s.label)}</title></path>')
        lower = upper
    body += _overlay(frame, overlay) + _hover(frame, series, overlay, fmt)
    return _svg(name, height, title, body)


SMALLEST = 1e-9  # a nanosecond: the log axis starts no lower (a hand-edited 5e-324 s would make it start at 0)


def _log_range(values: list[float]) -> tuple[float, float]:
    low = 10 ** math.floor(math.log10(max(min(values), SMALLEST)))
    high = 10 ** math.ceil(math.log10(max(values)))
    return low, (high * 10 if high <= low else high)


def line_chart(name: str, title: str, series: Sequence[Series], axis: Axis, overlay: Overlay,
               fmt: Format = fmt_seconds, empty: str = "nothing to show", height: int = 220) -> Markup:
    """Lines on a logarithmic value axis (e.g. latency percentiles); gaps where a bucket has no value."""
    values = [v for s in series for v in s.values if v is not None and v > 0]
    low, high = _log_range(values) if values else (0.001, 1.0)
    frame = _Frame(axis, height, high, low, log=True)
    decades = round(math.log10(high / low))
    ticks = [low * 10 ** k * m for k in range(decades + 1) for m in ((1, 2, 5) if decades <= 2 else (1,))]
    body = _value_axis(frame, [t for t in ticks if t <= high * 1.0001], fmt) + _time_axis(frame)
    if not values:
        body.append(_empty(frame, empty))
    for s in series:
        commands, pen_down = [], False
        for i, v in enumerate(s.values):
            if v is None or v <= 0:
                pen_down = False
                continue
            x, y = frame.x((i + 0.5) * axis.step), frame.y(v)
            commands.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}" + ("" if pen_down else " l0.01,0"))
            pen_down = True
        if commands:
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            body.append(f'<path class="series" data-series="{escape(s.label)}" d="{" ".join(commands)}" fill="none" '
                        f'stroke="{s.color}" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"{dash}>'
                        f'<title>{escape(s.label)}</title></path>')
    body += _overlay(frame, overlay) + _hover(frame, series, overlay, fmt)
    return _svg(name, height, title, body)


def health_chart(name: str, title: str, lanes: Sequence[Lane], axis: Axis, overlay: Overlay) -> Markup:
    """One lane per replica, coloured by the gateway's view of it over time."""
    height = TOP + max(len(lanes), 1) * (LANE_HEIGHT + LANE_GAP) + BOTTOM
    frame = _Frame(axis, height, 1.0)
    body = _time_axis(frame)
    for row, lane in enumerate(lanes):
        y = TOP + LANE_GAP / 2 + row * (LANE_HEIGHT + LANE_GAP)
        body.append(f'<text x="{LEFT - 6}" y="{y + LANE_HEIGHT / 2 + 4:.1f}" text-anchor="end" fill="#333">'
                    f'{escape(lane.replica)}</text>')
        for seg in lane.segments:
            x0, x1 = frame.x(seg.start), frame.x(seg.end)
            why = f" ({seg.flags})" if seg.flags and seg.state == "unhealthy" else ""
            body.append(f'<rect class="lane {seg.state}" data-replica="{escape(lane.replica)}" x="{x0:.1f}" '
                        f'y="{y:.1f}" width="{max(x1 - x0, 0.5):.1f}" height="{LANE_HEIGHT}" '
                        f'fill="{STATE_COLORS[seg.state]}"><title>{escape(lane.replica)}: {seg.state} from '
                        f'{seg.start:.2f}s to {seg.end:.2f}s{escape(why)}</title></rect>')
    if not lanes:
        body.append(_empty(frame, "no replicas"))
    body += _overlay(frame, overlay)
    return _svg(name, height, title, body)
