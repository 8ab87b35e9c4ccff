"""One run as the report sees it: the judgement plus the facts only the journal's events hold.

``RunData.from_events`` is the single place that reads events for a report; everything the
report, the summary, the suite index and JUnit show comes from it, so all of them are pure
functions of the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.expectations.base import detection_time
from harness.judge import Judgement, judge_events
from harness.phases import STACK_PHASES
from harness.promise import fault_promises
from harness.promise.window import (
    NOT_OBSERVED_DETECTION, NOT_OBSERVED_RECOVERY, Placement, Promise, place, width_text,
)
from harness.timeline import FaultWindow, Timeline

OUTCOME_WORDS = {
    "complete": "the run finished",
    "interrupted": "the run was interrupted (Ctrl-C or SIGTERM) and the stack was torn down",
    "failed": "the run stopped on an error",
    "killed": "the journal ends without a run.finished event: the harness was killed or crashed",
}


@dataclass(frozen=True)
class FaultOutcome:
    """A fault as it happened, and when the gateway noticed it and got over it."""

    window: FaultWindow
    params: dict[str, Any]
    detected: float | None    # when every replica of the fault was marked unhealthy (None: never)
    recovered: float | None   # when every one was healthy again after the fault ended (None: never)
    promised_detection: Promise | None = None  # what the gateway's configuration promises (harness/promise/)
    promised_recovery: Promise | None = None
    run_end: float = 0.0      # when the run ended (seconds since the load started): the time recovery had

    @property
    def detected_after(self) -> float | None:
        return None if self.detected is None else self.detected - self.window.start

    @property
    def recovered_after(self) -> float | None:
        return None if self.recovered is None else self.recovered - self.window.end

    def promise_widths(self) -> tuple[str, str]:
        """Each promised window's width beside the fault's duration ("" where the promise is no window)."""
        duration = self.window.end - self.window.start
        return width_text(self.promised_detection, duration), width_text(self.promised_recovery, duration)

    def promise_held(self) -> tuple[str, str]:
        """Whether detection and recovery lay inside the promised windows: 'yes', 'NO' or '-'."""
        words = {True: "yes", False: "NO", None: "-"}
        detection, recovery = self.placements()
        return words[detection.held], words[recovery.held]

    def not_observed(self) -> tuple[str, str]:
        """For a detection (recovery) the gateway never made while the fault (the load) ended before the
        promised window did: 'not observed: the fault ended N s after it began, the promise allows up to
        M s' ('not observed: the load ended N s after the fault, ...'), as ``chaosgate compare`` says it
        (harness/compare/render.kept_text); "" otherwise."""
        detection, recovery = self.placements()
        return (detection.not_observed(*NOT_OBSERVED_DETECTION) if detection.where == "not observed" else "",
                recovery.not_observed(*NOT_OBSERVED_RECOVERY) if recovery.where == "not observed" else "")

    def placements(self) -> tuple[Placement, Placement]:
        """Where detection and recovery lay against the promised windows (harness/promise/window.place)."""
        w = self.window
        return (place(self.promised_detection, self.detected_after, w.end - w.start),
                place(self.promised_recovery, self.recovered_after,
                      None if self.detected is None else self.run_end - w.end))

    def to_json(self) -> dict[str, Any]:
        w = self.window
        return {"fault": w.label, "kind": w.kind, "target": w.target, "replicas": list(w.replicas),
                "start": round(w.start, 3), "end": round(w.end, 3), "params": self.params,
                "detected_after": _round(self.detected_after), "recovered_after": _round(self.recovered_after),
                "promised_detection": None if self.promised_detection is None else self.promised_detection.to_json(),
                "promised_recovery": None if self.promised_recovery is None else self.promised_recovery.to_json(),
                "promise_held": dict(zip(("detection", "recovery"), self.promise_held(), strict=True)),
                "not_observed": {which: text for which, text in zip(("detection", "recovery"), self.not_observed(),
                                                                      strict=True) if text}}


@dataclass(frozen=True)
class RunData:
    """Everything a report of one run shows."""

    judgement: Judgement
    events: int
    outcome: str                        # complete, interrupted, failed or killed
    error: str | None                   # why a failed run stopped, when the journal says
    gateway_version: str | None
    gateway_config: str | None
    startup_seconds: float | None
    warnings: list[str]
    faults: list[FaultOutcome] = field(default_factory=list)
    # where the run's time went (harness/phases.py): the stack's moments since start-up began, then the load's
    # start-up, its drain after the declared end, and the teardown, each in seconds (absent: not journalled)
    phases: dict[str, float] = field(default_factory=dict)
    own_config_file: str | None = None     # the user's own gateway file (gateway.config), when the run used one
    own_config_diff: str | None = None     # the file as it ran against the user's (what chaosgate changed)

    @classmethod
    def from_events(cls, events: list[dict[str, Any]]) -> RunData:
        judgement = judge_events(events)
        stack = next((e for e in events if e["type"] == "stack.ready"), {})
        finished = next((e for e in events if e["type"] == "run.finished"), None)
        warnings = list(events[0].get("warnings", []))
        warnings += [str(e.get("message", "")) for e in events if e["type"] == "warning"]
        params = {e["fault"]: e.get("params", {}) for e in events if e["type"] == "fault.started"}
        timeline = judgement.timeline
        faults = []
        for w in timeline.faults:
            detect, recover = fault_promises(judgement.scenario, w, timeline) or (None, None)
            faults.append(FaultOutcome(w, params.get(w.label, {}), detection_time(timeline, w),
                                       recovery_time(timeline, w), detect, recover, timeline.end))
        return cls(judgement=judgement, events=len(events),
                   outcome=str(finished.get("outcome", "failed")) if finished else "killed",
                   error=finished.get("error") if finished else None,
                   gateway_version=stack.get("gateway_version"), gateway_config=stack.get("gateway_config"),
                   startup_seconds=stack.get("startup_seconds"), warnings=warnings, faults=faults,
                   own_config_file=own.get("file") if isinstance(own := events[0].get("gateway_config"), dict) else None,
                   own_config_diff=stack.get("gateway_config_diff"), phases=_phases(events, stack, finished))

    @property
    def phases_text(self) -> str:
        """Where the run's time went, in one line: 'stack: toxiproxy ready 0.04s, ...; load ready in 1.31s; ...'."""
        stack = [f"{name.replace('_', ' ')} {seconds:.2f}s" for name, seconds in self.phases.items() if name in STACK_PHASES]
        rest = [f"{words} {self.phases[name]:.2f}s" for name, words in (
            ("load_startup", "load ready in"), ("drain", "load drained in"), ("teardown", "teardown"))
            if name in self.phases]
        return "; ".join(([f"stack: {', '.join(stack)}"] if stack else []) + rest)

    # -- plain facts for the header ---------------------------------------------------
    @property
    def header(self) -> dict[str, Any]:
        return self.judgement.header

    @property
    def timeline(self) -> Timeline:
        return self.judgement.timeline

    @property
    def status(self) -> str:
        """PASSED, FAILED or INCOMPLETE."""
        if not self.timeline.complete:
            return "INCOMPLETE"
        return "PASSED" if self.judgement.passed else "FAILED"

    @property
    def outcome_words(self) -> str:
        words = OUTCOME_WORDS.get(self.outcome, f"the run ended with outcome {self.outcome!r}")
        return f"{words}: {self.error}" if self.error else words

    @property
    def started(self) -> str:
        return utc(self.header["ts"])

    @property
    def failed_requests(self) -> int:
        return sum(not r.ok for r in self.timeline.requests)

    def summary(self) -> dict[str, Any]:
        """The machine-readable outcome of the run (summary.json)."""
        judgement, header, timeline = self.judgement, self.header, self.timeline
        return {
            "scenario": judgement.scenario.name,
            "description": judgement.scenario.description,
            "passed": judgement.passed,
            "complete": timeline.complete,
            "outcome": self.outcome,
            "error": self.error,
            "file": header.get("file"),
            "seed": judgement.scenario.seed,
            "runtime": header.get("runtime"),
            "gateway": judgement.scenario.gateway.kind,
            "gateway_version": self.gateway_version,
            "started": header.get("ts"),
            "phases": self.phases,  # where the run's time went, in seconds (harness/phases.py)
            "duration": round(timeline.end, 3),
            "requests": len(timeline.requests),
            "failed_requests": self.failed_requests,
            "command": header.get("command"),
            "warnings": self.warnings,
            "faults": [f.to_json() for f in self.faults],
            "expectations": [_with_promise(v.to_json(), p)
                             for v, p in zip(judgement.verdicts, judgement.promises or [None] * len(judgement.verdicts))],
        }


def utc(ts: float) -> str:
    """A Unix time as people read it in a report."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def recovery_time(timeline: Timeline, fault: FaultWindow) -> float | None:
    """When the gateway saw every replica of the fault healthy again after the fault ended
    (None if one never was, or was never marked unhealthy in the first place)."""
    moments: list[float] = []
    for replica in fault.replicas:
        ejected = timeline.first_unhealthy(replica, fault.start)
        back = None if ejected is None else timeline.first_healthy(replica, max(fault.end, ejected))
        if back is None:
            return None
        moments.append(back)
    return max(moments, default=None)


def _with_promise(verdict: dict[str, Any], promise: Promise | None) -> dict[str, Any]:
    """A detection or recovery verdict carries the window the gateway's configuration promised."""
    return verdict if promise is None else {**verdict, "promised": promise.to_json()}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _phases(events: list[dict[str, Any]], stack: dict[str, Any], finished: dict[str, Any] | None) -> dict[str, float]:
    """The journal's phase timings (harness/phases.py), by name; a value that is not a number is left out."""
    started = next((e for e in events if e["type"] == "load.started"), {})
    ended = next((e for e in events if e["type"] == "load.finished"), {})
    stack_phases = stack.get("phases")
    found: dict[str, Any] = {**(stack_phases if isinstance(stack_phases, dict) else {}),
                             "load_startup": started.get("startup_seconds"), "drain": ended.get("drain_seconds"),
                             "teardown": (finished or {}).get("teardown_seconds")}
    return {name: float(value) for name, value in found.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0}
