"""What the charts draw, computed from a Timeline: per-bucket rates and percentiles on one
time axis, one health lane per replica, and the moments the gateway detected and got over
each fault. Pure data; svg.py draws it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from harness.report.data import FaultOutcome
from harness.report.error_body import gist
from harness.timeline import Request, Timeline, percentile

# Colour-blind-safe palette (Okabe & Ito) for replicas; greys and reds for the rest.
REPLICA_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
NOT_SERVED_COLOR = "#9a9a9a"
ERROR_COLORS = ("#c0392b", "#7d3c98", "#e67e22", "#2c3e50", "#b7950b", "#16a085")
OTHER_COLOR = "#bdbdbd"
MAX_ERROR_KINDS = len(ERROR_COLORS)
BUCKET_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0)
MAX_BUCKETS = 100

# How gateways word their own error replies, turned into short labels (Envoy's local replies).
_RESET = re.compile(r"^upstream connect error or disconnect/reset before headers\..*?reset reason: ([^,]+)", re.S)
_KNOWN_BODIES = (("no healthy upstream", "no healthy upstream"), ("upstream request timeout", "upstream request timeout"))


@dataclass(frozen=True)
class Axis:
    """The time axis every chart shares: ``[0, end)`` seconds since the load started, in buckets."""

    end: float
    step: float

    @property
    def buckets(self) -> int:
        return max(1, math.ceil(self.end / self.step))

    def index(self, t: float) -> int:
        return min(max(int(t // self.step), 0), self.buckets - 1)


@dataclass(frozen=True)
class Series:
    """One line or one stacked band of a chart: a value per bucket (None: nothing to show)."""

    label: str
    values: tuple[float | None, ...]
    color: str
    dashed: bool = False

    @property
    def total(self) -> float:
        return sum(v for v in self.values if v is not None)


State = Literal["healthy", "unhealthy", "unknown"]


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    state: State
    flags: str = ""


@dataclass(frozen=True)
class Lane:
    """How the gateway saw one replica over the run."""

    replica: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Moment:
    """A vertical marker: the gateway detected a fault, or took its replicas back."""

    t: float
    kind: Literal["detected", "recovered"]
    fault: str
    after: float  # seconds since the fault began (detected) or ended (recovered)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.after:.2f}s"

    @property
    def sentence(self) -> str:
        since = "began" if self.kind == "detected" else "ended"
        return f"{self.fault}: {self.kind} at {self.t:.2f}s, {self.after:.3f}s after the fault {since}"


def axis_for(timeline: Timeline) -> Axis:
    """An axis over the whole run with at most MAX_BUCKETS buckets."""
    end = max(timeline.end, max((r.t for r in timeline.requests), default=0.0), 0.001)
    step = next((s for s in BUCKET_STEPS if end / s <= MAX_BUCKETS), BUCKET_STEPS[-1])
    return Axis(end=end, step=step)


def _rates(requests: list[Request], axis: Axis) -> tuple[float, ...]:
    counts = [0] * axis.buckets
    for r in requests:
        counts[axis.index(r.t)] += 1
    return tuple(c / axis.step for c in counts)


def served_rate(timeline: Timeline, axis: Axis) -> list[Series]:
    """Requests per second by the replica that served them, plus those no replica served."""
    series = []
    for i, replica in enumerate(timeline.replicas):
        served = [r for r in timeline.requests if r.replica == replica]
        series.append(Series(replica, _rates(served, axis), REPLICA_COLORS[i % len(REPLICA_COLORS)]))
    known = set(timeline.replicas)
    unserved = [r for r in timeline.requests if r.replica not in known]
    if unserved:
        series.append(Series("no replica (failed)", _rates(unserved, axis), NOT_SERVED_COLOR))
    return series


def error_label(request: Request) -> str:
    """A short name for how a request failed: the error kind, or the status and the gist of the body (a JSON
    error's type and message, an HTML page's text, trimmed: harness/report/error_body.py)."""
    if request.status is None or request.error not in ("http_5xx", "http_4xx"):
        return str(request.error)
    body = (request.body or "").strip()
    if match := _RESET.match(body):
        return f"{request.status} upstream reset: {match.group(1).strip()}"
    for phrase, label in _KNOWN_BODIES:
        if phrase in body:
            return f"{request.status} {label}"
    text = gist(body)
    text = text.removeprefix(f"{request.status} ")  # an HTML page's title repeats the status
    return f"{request.status} {text}".strip()


def error_rate_by_kind(timeline: Timeline, axis: Axis) -> list[Series]:
    """Failed requests per second by how they failed; the rarest kinds are folded into 'other'."""
    failed = [r for r in timeline.requests if not r.ok]
    labels = {id(r): error_label(r) for r in failed}
    ranked = [label for label, _ in Counter(labels.values()).most_common()]
    shown = ranked if len(ranked) <= MAX_ERROR_KINDS else ranked[:MAX_ERROR_KINDS - 1]
    series = [Series(label, _rates([r for r in failed if labels[id(r)] == label], axis), ERROR_COLORS[i])
              for i, label in enumerate(shown)]
    rest = [r for r in failed if labels[id(r)] not in shown]
    if rest:
        series.append(Series("other", _rates(rest, axis), OTHER_COLOR))
    return series


def _percentiles(values_by_bucket: list[list[float]], pct: float) -> tuple[float | None, ...]:
    return tuple(percentile(values, pct) if values else None for values in values_by_bucket)


def latency(timeline: Timeline, axis: Axis) -> list[Series]:
    """p50/p95/p99 latency of successful requests per bucket, and TTFT p50/p95 of streams."""
    full: list[list[float]] = [[] for _ in range(axis.buckets)]
    ttft: list[list[float]] = [[] for _ in range(axis.buckets)]
    for r in timeline.requests:
        if r.ok:
            full[axis.index(r.t)].append(r.latency)
            if r.ttft is not None:
                ttft[axis.index(r.t)].append(r.ttft)
    series = [Series("p50", _percentiles(full, 50), "#0072B2"),
              Series("p95", _percentiles(full, 95), "#E69F00"),
              Series("p99", _percentiles(full, 99), "#D55E00")]
    if any(ttft):
        series += [Series("stream TTFT p50", _percentiles(ttft, 50), "#009E73", dashed=True),
                   Series("stream TTFT p95", _percentiles(ttft, 95), "#CC79A7", dashed=True)]
    return series


def health_lanes(timeline: Timeline, axis: Axis) -> list[Lane]:
    """One lane per replica: segments of the gateway's view, 'unknown' before its first sample."""
    lanes = []
    for replica in timeline.replicas:
        segments: list[Segment] = []
        t, flags = 0.0, ""
        state: State = "unknown"
        for change in timeline.health.get(replica, []):
            at = min(max(change.t, 0.0), axis.end)
            if at > t:
                segments.append(Segment(t, at, state, flags))
                t = at
            state = "healthy" if change.healthy else "unhealthy"
            flags = change.flags
        segments.append(Segment(t, axis.end, state, flags))
        lanes.append(Lane(replica, tuple(s for s in segments if s.end > s.start)))
    return lanes


def moments(faults: list[FaultOutcome]) -> list[Moment]:
    """The detection and recovery moment of every fault that has them."""
    found = []
    for f in faults:
        if f.detected is not None and f.detected_after is not None:
            found.append(Moment(f.detected, "detected", f.window.label, f.detected_after))
        if f.recovered is not None and f.recovered_after is not None:
            found.append(Moment(f.recovered, "recovered", f.window.label, f.recovered_after))
    return sorted(found, key=lambda m: m.t)
