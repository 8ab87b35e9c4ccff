"""A promised window: the earliest and latest moment a gateway's configuration lets it act.

Times are seconds from an anchor (the fault's start for detection; its end, or the restarted
process being ready, for recovery). ``earliest``/``latest`` are what the formulas give;
``margin`` is added after ``latest`` (and ``EARLY_SLACK`` allowed before ``earliest``) for what
the formulas cannot know: the observer samples the gateway 20 times a second, checks and
timers run late on a busy machine, and a fault on several replicas is injected one by one.
Every part is stated in ``how`` so that a report can show where the numbers come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.durations import format_duration

# The observer journals a change up to one sampling period after it happened (harness/observer.py
# samples at 20 Hz; a unit test keeps the two equal).
OBSERVER_MARGIN = 0.05
# Timers firing late and processes waiting for a CPU on a shared 2-core machine, and the
# one-by-one injection of a fault on several replicas (each a Toxiproxy or control API call).
SCHEDULING_MARGIN = 0.15
# A fault injected (or cleared) through a fake's control API acts once the fake has handled the
# call; on a loaded 2-core machine that took up to 0.85s (journal: the fault's start is when the
# call began). Toxiproxy and signals act within milliseconds.
CONTROL_API_MARGIN = 1.0
# The observer stamps a sample before it asks the gateway, and Envoy's timers have 1 ms
# granularity: a change can be journalled a few milliseconds before the formula's earliest.
EARLY_SLACK = 0.02


@dataclass(frozen=True)
class Window:
    """The gateway can act no earlier than ``earliest`` and no later than ``latest + margin``."""

    earliest: float
    latest: float
    how: str                    # the formula with the scenario's numbers, in words
    margin: float = OBSERVER_MARGIN + SCHEDULING_MARGIN

    @property
    def upper(self) -> float:
        return self.latest + self.margin

    def contains(self, measured: float) -> bool:
        return self.earliest - EARLY_SLACK <= measured <= self.upper

    def text(self) -> str:
        return (f"[{format_duration(round(self.earliest, 3))}, {format_duration(round(self.latest, 3))}]"
                f" +{format_duration(round(self.margin, 3))} margin")

    def to_json(self) -> dict[str, Any]:
        return {"earliest": round(self.earliest, 3), "latest": round(self.latest, 3),
                "margin": round(self.margin, 3), "text": self.text(), "how": self.how}


@dataclass(frozen=True)
class Never:
    """The configuration promises the gateway will not act at all (e.g. it can eject nothing)."""

    why: str

    def contains(self, measured: float | None) -> bool:
        return measured is None

    def text(self) -> str:
        return "never"

    def to_json(self) -> dict[str, Any]:
        return {"never": True, "text": "never", "how": self.why}


@dataclass(frozen=True)
class Unknown:
    """The formulas do not cover this fault or configuration; ``why`` says what is missing."""

    why: str

    def text(self) -> str:
        return "not computed"

    def to_json(self) -> dict[str, Any]:
        return {"unknown": True, "text": "not computed", "how": self.why}


Promise = Window | Never | Unknown


def earliest_of(windows: list[Promise]) -> Promise:
    """The moment the *first* of several independent mechanisms acts (e.g. active checks and
    outlier detection): if t = min(t1, t2), then t lies in [min of earliests, min of latests]."""
    acting = [w for w in windows if isinstance(w, Window)]
    if not acting:
        unknown = [w for w in windows if isinstance(w, Unknown)]
        if unknown:
            return unknown[0]
        return Never("; ".join(w.why for w in windows if isinstance(w, Never)) or "nothing detects this")
    if any(isinstance(w, Unknown) for w in windows):  # an uncomputed mechanism might act earlier
        first = min(acting, key=lambda w: w.earliest)
        unknown_why = next(w.why for w in windows if isinstance(w, Unknown))
        return Window(0.0, min(w.latest for w in acting), f"{first.how}; and possibly earlier: {unknown_why}",
                      max(w.margin for w in acting))
    if len(acting) == 1:
        return acting[0]
    return Window(min(w.earliest for w in acting), min(w.latest for w in acting),
                  " | whichever acts first: ".join(w.how for w in acting), max(w.margin for w in acting))
