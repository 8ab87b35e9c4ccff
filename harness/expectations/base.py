"""The expectation seam: each kind is a pydantic model with a pure ``evaluate(timeline)``.

An expectation relates to one fault: the one named in its ``fault`` field, else the
first fault whose replicas overlap its target, else the first fault of the scenario.
Windows (``baseline``, ``fault``, ``after_detection``, ``recovery``, ``run`` or explicit
``{from, to}``) are resolved against that fault's real start and end from the journal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.durations import Duration, format_duration
from harness.targets import Target, split_target
from harness.timeline import FaultWindow, Request, Timeline

if TYPE_CHECKING:
    from harness.promise.window import Promise


class ExplicitWindow(BaseModel):
    """Seconds since the load started: requests that start in [from, to) count."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: Duration = Field(alias="from")
    end: Duration = Field(alias="to")


NamedWindow = Literal["baseline", "fault", "after_detection", "recovery", "run"]
WindowSpec = NamedWindow | ExplicitWindow


@dataclass(frozen=True)
class Verdict:
    """The outcome of one expectation: its bound next to what was measured."""

    kind: str
    description: str
    params: dict[str, Any]
    bound: str
    measured: str
    passed: bool
    detail: str
    bound_value: float | None = None
    measured_value: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Unjudgeable(Exception):
    """The journal lacks what the expectation needs (no fault, never detected, no requests)."""


class Expectation(BaseModel):
    """Fields every expectation has; subclasses add ``kind`` and their parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: str
    fault: str | None = Field(default=None, description="The fault this refers to (its name or '<kind>@<target>'); default: the first fault on the same target.")
    gateways: list[str] | None = Field(
        default=None, min_length=1,
        description="Judge this expectation only when the run's gateway is one of these (default: every gateway). "
                    "One scenario then encodes what each gateway was measured to do (scenarios/compare/).")

    def applies_to(self, gateway: str) -> bool:
        """Whether a run on ``gateway`` judges this expectation."""
        return self.gateways is None or gateway in self.gateways

    def describe(self) -> str:
        """The expectation in plain words."""
        raise NotImplementedError

    def bound_text(self) -> str:
        """The bound, as shown next to the measured value."""
        raise NotImplementedError

    def judge(self, timeline: Timeline) -> Verdict:
        """Judge the expectation; may raise Unjudgeable. Subclasses implement this."""
        raise NotImplementedError

    def evaluate(self, timeline: Timeline) -> Verdict:
        """Judge the expectation on a run: a pure function of the timeline, never raises."""
        try:
            return self.judge(timeline)
        except Unjudgeable as why:
            return self.verdict(False, "n/a", str(why))

    def params(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude={"kind"}, exclude_none=True)

    def verdict(self, passed: bool, measured: str, detail: str,
                bound_value: float | None = None, measured_value: float | None = None) -> Verdict:
        return Verdict(kind=self.kind, description=self.describe(), params=self.params(),
                       bound=self.bound_text(), measured=measured, passed=passed, detail=detail,
                       bound_value=bound_value, measured_value=measured_value)

    # -- helpers for subclasses ------------------------------------------------
    def related_fault(self, timeline: Timeline, target: str | None = None) -> FaultWindow:
        """The fault this expectation is about (see the module docstring)."""
        if self.fault is not None:
            for window in timeline.faults:
                if window.label == self.fault:
                    return window
            raise Unjudgeable(f"fault {self.fault!r} never started in this run")
        if target is not None:
            wanted = set(replicas_of(target, timeline))
            for window in timeline.faults:
                if wanted & set(window.replicas):
                    return window
        if timeline.faults:
            return timeline.faults[0]
        raise Unjudgeable("no fault started in this run")

    def window_bounds(self, spec: WindowSpec, timeline: Timeline, target: str | None = None) -> tuple[float, float]:
        """The [start, end) of a window in seconds since the load started."""
        if isinstance(spec, ExplicitWindow):
            return spec.start, spec.end
        if spec == "run":
            return 0.0, timeline.end
        if spec == "baseline":
            return 0.0, baseline_end(timeline)
        fault = self.related_fault(timeline, target)
        if spec == "fault":
            return fault.start, fault.end
        if spec == "recovery":
            return fault.end, timeline.end
        detected = detection_time(timeline, fault)
        if detected is None:
            raise Unjudgeable(f"the gateway never marked {', '.join(fault.replicas)} unhealthy during {fault.label}, "
                              "so there is no after_detection window")
        return detected, fault.end


def baseline_end(timeline: Timeline) -> float:
    """When the first fault began (or the run ended, if there was none)."""
    return min((f.start for f in timeline.faults), default=timeline.end)


def requests_in(timeline: Timeline, spec: WindowSpec, start: float, end: float) -> list[Request]:
    """Requests that started in [start, end); in the baseline, only those that also ended
    before the first fault began (a request in flight when a fault starts is not baseline)."""
    requests = timeline.requests_between(start, end)
    if spec == "baseline":
        requests = [r for r in requests if r.t + r.latency <= end]
    return requests


class PromisedExpectation(Expectation):
    """An expectation that can be judged against the window the gateway's configuration promises
    (``within: promised``; harness/promise/verdicts.py passes the promise in). Subclasses implement
    ``judge_promised``; judged on its own (``judge``) there is no promise."""

    def judge(self, timeline: Timeline) -> Verdict:
        return self.judge_promised(timeline, None)

    def evaluate_promised(self, timeline: Timeline, promise: Promise | None) -> Verdict:
        """Judge next to the promised window (never raises)."""
        try:
            return self.judge_promised(timeline, promise)
        except Unjudgeable as why:
            return self.verdict(False, "n/a", str(why))

    def judge_promised(self, timeline: Timeline, promise: Promise | None) -> Verdict:
        """Judge the expectation, against ``promise`` when there is one; may raise Unjudgeable."""
        raise NotImplementedError


def replicas_of(target: str, timeline: Timeline) -> list[str]:
    """The replicas of the run that a target names."""
    pool, index = split_target(target)
    if index is not None:
        return [f"{pool}[{index}]"]
    return [r for r in timeline.replicas if r.startswith(f"{pool}[")]


def detection_time(timeline: Timeline, fault: FaultWindow) -> float | None:
    """When the gateway had marked every replica of the fault unhealthy (None if never)."""
    times = [timeline.first_unhealthy(r, fault.start) for r in fault.replicas]
    if any(t is None or t > fault.end for t in times):
        return None
    return max(t for t in times if t is not None)


def describe_window(spec: WindowSpec) -> str:
    if isinstance(spec, ExplicitWindow):
        return f"between {format_duration(spec.start)} and {format_duration(spec.end)}"
    return {
        "baseline": "before any fault",
        "fault": "while the fault is active",
        "after_detection": "from the moment the gateway detected the fault until it ended",
        "recovery": "after the fault ended",
        "run": "over the whole run",
    }[spec]


def seconds(value: float) -> str:
    return f"{value:.3f}s"


__all__ = ["Expectation", "ExplicitWindow", "Target", "Unjudgeable", "Verdict", "WindowSpec"]
