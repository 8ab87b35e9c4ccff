"""A promised window: the earliest and latest moment a gateway's configuration lets it act.

Times are seconds from an anchor (the fault's start for detection; its end, or the restarted
process being ready, for recovery). ``earliest``/``latest`` are what the formulas give;
``margin`` is added after ``latest`` (and ``EARLY_SLACK`` allowed before ``earliest``) for what
the formulas cannot know: the observer samples the gateway 20 times a second, checks and
timers run late on a busy machine, and a fault on several replicas is injected one by one.
Every part is stated in ``how`` so that a report can show where the numbers come from.

``place(promise, measured, available)`` is the one answer to "is this time inside the window" that
verdicts, ``chaosgate compare``, the report and ``python -m harness.promise.check`` all use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness.durations import format_duration

# Covers: the observer journals a change up to one sampling period after it happened. Not measured:
# harness/observer.py samples at 20 Hz (a unit test keeps the two equal).
OBSERVER_MARGIN = 0.05
# Covers: timers firing late, processes waiting for a CPU, and the one-by-one injection of a fault
# on several replicas (a Toxiproxy call each). Measured: the suite's Envoy and HAProxy detections and
# recoveries all lay before the formulas' latest at load average 2-6 on 2 cores (docs/gateways.md); the
# 0.15s is room for a heavier load, chosen, not measured.
SCHEDULING_MARGIN = 0.15
# Covers: a fault made through a fake's control API (llm_fault, cert) acts once the fake has handled
# the call, and the journal stamps the fault when the call began. Measured: up to 0.85s per call on a
# loaded 2-core machine (health-503 runs); Toxiproxy and signals act within milliseconds.
CONTROL_API_MARGIN = 1.0
# Covers: the observer stamps a sample before it asks the gateway, and Envoy's timers have 1 ms
# granularity, so a change can be journalled a few milliseconds before the formula's earliest.
# Chosen, not measured: a few timer ticks.
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

    @property
    def lower(self) -> float:
        """The earliest measurement the window accepts."""
        return max(0.0, self.earliest - EARLY_SLACK)

    @property
    def width(self) -> float:
        """How long the window accepts a measurement: from ``lower`` to ``upper``."""
        return self.upper - self.lower

    def contains(self, measured: float) -> bool:
        """Whether a measured time lies inside the window (``place`` says where, and about "never")."""
        return place(self, measured, None).held is True

    def says_nothing_within(self, duration: float) -> bool:
        """True when the window accepts every moment from 0 to ``duration`` (e.g. a detection window that
        spans the whole fault): no time inside that span could fail it."""
        return self.lower <= 0.0 and self.upper >= duration

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

Where = Literal["inside", "early", "late", "missed", "not observed", "never, as promised", "acted, though never",
                "nothing to measure", "no promise"]


# How ``Placement.not_observed`` names the end that came first: (what ended, after what).
NOT_OBSERVED_DETECTION = ("the fault", "it began")
NOT_OBSERVED_RECOVERY = ("the load", "the fault")


@dataclass(frozen=True)
class Placement:
    """Where a measured time lies against a promise. ``held``: True inside (or never acted, as a ``never``
    promise says), False outside (early, late, acted though promised never, or never acted although the
    run gave the gateway the whole window), None when there is nothing to hold it to (no promise, none
    computed, nothing to measure, or never acted in a run too short to tell)."""

    held: bool | None
    where: Where
    available: float | None = None   # the time the run gave the gateway, as given to ``place``
    allowed: float | None = None     # the window's upper bound (latest + margin), for a Window

    def not_observed(self, what: str, after: str) -> str:
        """'not observed: WHAT ended N s after AFTER, the promise allows up to M s', e.g. ("the load",
        "the fault") for a recovery, ("the fault", "it began") for a detection."""
        available = format_duration(round(self.available or 0.0, 3))
        allowed = format_duration(round(self.allowed or 0.0, 3))
        return f"not observed: {what} ended {available} after {after}, the promise allows up to {allowed}"


def place(promise: Promise | None, measured: float | None, available: float | None) -> Placement:
    """Is this time inside the window: the one answer (verdicts, compare, report, check).

    ``measured``: seconds from the anchor (the fault's start for detection, its end or the restart
    for recovery); None: the gateway never acted in the time the run gave it. ``available``: that
    time (the fault's duration for detection, from the anchor to the load's end for recovery);
    None: the gateway had nothing to act on (nothing was ejected, so nothing to readmit).

    "Never measured" means: against ``never``, the promise held; against a window that fitted in
    the time available, it was missed (held False); against a window that did not fit (the fault
    or the load ended before its upper bound), the run was too short to tell (held None,
    "not observed")."""
    if promise is None or isinstance(promise, Unknown):
        return Placement(None, "no promise", available)
    if isinstance(promise, Never):
        return Placement(measured is None, "never, as promised" if measured is None else "acted, though never",
                         available)
    if measured is not None:
        if measured < promise.earliest - EARLY_SLACK:
            return Placement(False, "early", available, promise.upper)
        if measured > promise.upper:
            return Placement(False, "late", available, promise.upper)
        return Placement(True, "inside", available, promise.upper)
    if available is None:
        return Placement(None, "nothing to measure", available, promise.upper)
    if available < promise.upper:
        return Placement(None, "not observed", available, promise.upper)
    return Placement(False, "missed", available, promise.upper)


def promise_from_json(data: dict[str, Any] | None) -> Promise | None:
    """A promise as ``to_json`` wrote it (summary.json), back."""
    if data is None:
        return None
    if data.get("unknown"):
        return Unknown(str(data.get("how", "")))
    if data.get("never"):
        return Never(str(data.get("how", "")))
    return Window(float(data["earliest"]), float(data["latest"]), str(data.get("how", "")), float(data["margin"]))


def width_text(promise: Promise | None, duration: float) -> str:
    """A window's width beside the fault's duration ("width 1.24s of a 7s fault"), so that a reader sees at
    once when a promise says nothing; "" for a promise that is not a window."""
    if not isinstance(promise, Window):
        return ""
    text = f"width {format_duration(round(promise.width, 3))} of a {format_duration(round(duration, 2))} fault"
    return text + (": spans it all" if promise.says_nothing_within(duration) else "")


def earliest_of(windows: list[Promise]) -> Promise:
    """The moment the *first* of several independent mechanisms acts (e.g. active checks and
    outlier detection): if t = min(t1, t2), then t lies in [min of earliests, min of latests].

    A mechanism whose window is Unknown might act at any moment, so the first to act has no earliest
    bound: a window [0, latest] would accept any early detection and could not fail on that side. The
    whole promise is then Unknown, naming the mechanism that was not computed (``within: promised``
    says it cannot judge; a fixed ``within`` still can)."""
    acting = [w for w in windows if isinstance(w, Window)]
    unknown = [w for w in windows if isinstance(w, Unknown)]
    if unknown:
        if acting:
            return Unknown(f"{unknown[0].why}; that mechanism might act before the others' earliest "
                           f"({' | '.join(w.how for w in acting)})")
        return unknown[0]
    if not acting:
        return Never("; ".join(w.why for w in windows if isinstance(w, Never)) or "nothing detects this")
    if len(acting) == 1:
        return acting[0]
    return Window(min(w.earliest for w in acting), min(w.latest for w in acting),
                  " | whichever acts first: ".join(w.how for w in acting), max(w.margin for w in acting))
