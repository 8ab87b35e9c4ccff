"""A distributed worker's clock against the master's, measured at connect, and the bound it must keep.

Every request record carries the wall-clock time its worker read when the request began; faults and
windows are placed on the master's (the harness's) clock. A worker whose clock is off by ``d`` seconds
shifts every one of its requests by ``d`` against the faults, so a request could land in the wrong window.

The offset is measured as NTP does, from round trips: the master notes ``sent``, the worker answers with
its own time ``worker``, the master notes ``received``; then ``offset = worker - (sent + received) / 2``,
accurate to within ``rtt / 2`` (``rtt = received - sent``). Of several round trips the one with the
shortest ``rtt`` is kept (the least queueing, the tightest figure).

The bound: a tenth of the scenario's tightest window (the shortest of every expectation's numeric
``within``, every explicit window's width and every fault's ``for``; the load's duration when none is
shorter), so a worker's clock can move its requests by at most a tenth of the shortest span a verdict
depends on. |offset| above it fails the run with the figure, instead of giving verdicts that could be wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the load processes import this module; the scenario model costs 0.3 s to import
    from harness.scenario import Scenario

BOUND_SHARE = 0.1  # of the tightest window
ROUNDS = 5         # round trips per worker at connect


@dataclass(frozen=True)
class ClockSample:
    """One round trip: the master's send and receive times around the worker's reading of its clock."""

    sent: float
    worker: float
    received: float

    @property
    def rtt(self) -> float:
        return self.received - self.sent

    @property
    def offset(self) -> float:
        """The worker's clock minus the master's (seconds), within ±rtt/2."""
        return self.worker - (self.sent + self.received) / 2


def best(samples: Sequence[ClockSample]) -> ClockSample:
    """The round trip with the shortest rtt (ValueError when there is none)."""
    if not samples:
        raise ValueError("no round trip to measure the clock offset from")
    return min(samples, key=lambda sample: sample.rtt)


def tightest_window(scenario: Scenario) -> float:
    """The shortest span (seconds) a verdict of ``scenario`` depends on: every expectation's numeric ``within``,
    every explicit window's width, every fault's duration, and the load's duration."""
    spans = [float(scenario.load.duration)]
    for expectation in scenario.expect:
        within = getattr(expectation, "within", None)
        if isinstance(within, int | float) and within > 0:
            spans.append(float(within))
        window = getattr(expectation, "window", None)
        if window is not None and not isinstance(window, str) and window.end > window.start:
            spans.append(float(window.end - window.start))
    spans += [float(fault.duration) for fault in scenario.faults if fault.duration > 0]
    return min(spans)


def offset_bound(scenario: Scenario) -> float:
    """The largest |clock offset| (seconds) a worker may have in a run of ``scenario``."""
    return round(BOUND_SHARE * tightest_window(scenario), 6)


def offset_problem(worker: str, sample: ClockSample, bound: float) -> str | None:
    """Why a worker's clock fails the run, or None when it keeps the bound."""
    if abs(sample.offset) <= bound:
        return None
    return (f"worker {worker}'s clock is {sample.offset * 1000:+.1f} ms off the master's (round trip "
            f"{sample.rtt * 1000:.1f} ms), more than the {bound * 1000:.0f} ms this scenario allows (a tenth of its "
            f"tightest window); synchronise its clock (NTP) and run again")
