"""The gateway takes a replica back within a bound of the fault's end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness.durations import DurationOrPromised, format_duration
from harness.expectations.base import PromisedExpectation, Target, Unjudgeable, Verdict, replicas_of, seconds
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.promise.window import Promise


class UpstreamHealthy(PromisedExpectation):
    """Recovery time: fault end (or, with ``after: restart_ready``, the moment the supervisor's
    restarted process answered again) → the gateway reports every targeted replica healthy again.
    A replica the gateway never marked unhealthy has nothing to recover from: that fails."""

    kind: Literal["upstream_healthy"]
    target: Target = Field(description="The replica(s) that must be readmitted.")
    within: DurationOrPromised = Field(
        description="Longest allowed time from the anchor (see 'after'), or 'promised': inside the window the "
                    "gateway's own configuration promises (docs/lint.md, harness/promise/).")
    after: Literal["fault_end", "restart_ready"] = Field(
        default="fault_end", description="The anchor: the fault's end, or 'restart_ready': when the replica's "
                                         "restarted process was ready (process faults, OOM kills).")

    def describe(self) -> str:
        anchor = "the fault ending" if self.after == "fault_end" else "its restarted process being ready"
        bound = "the window its configuration promises" if self.within == "promised" else format_duration(self.within)
        return f"the gateway marks {self.target} healthy again within {bound} of {anchor}"

    def bound_text(self) -> str:
        return "in the promised window" if self.within == "promised" else f"≤ {format_duration(self.within)}"

    def judge_promised(self, timeline: Timeline, promise: Promise | None) -> Verdict:
        from harness.promise.verdicts import verdict_for
        from harness.promise.window import Never

        anchor_text = "the fault" if self.after == "fault_end" else "its restarted process was ready"
        fault = self.related_fault(timeline, self.target)
        missing: list[str] = []
        worst = 0.0
        anchors: list[float] = []
        for replica in replicas_of(self.target, timeline):
            ejected = timeline.first_unhealthy(replica, fault.start)
            if ejected is None:
                if self.within == "promised" and isinstance(promise, Never):  # fails: promised never, see verdict_for
                    return verdict_for(self, self.within, None, f"{replica} was never marked unhealthy after "
                                       f"{fault.label} began", promise)
                raise Unjudgeable(f"{replica} was never marked unhealthy after {fault.label} began, "
                                  "so there was no readmission to measure")
            anchor = fault.end
            if self.after == "restart_ready":
                ready = timeline.first_process_event(replica, "process.ready", fault.start)
                if ready is None:
                    raise Unjudgeable(f"{replica} was never restarted and ready after {fault.label} began")
                anchor = ready.t
            anchors.append(anchor)
            seen = timeline.first_healthy(replica, max(anchor, ejected))
            if seen is None:
                missing.append(replica)
                continue
            worst = max(worst, seen - anchor)
        if missing:
            verb = "was" if len(missing) == 1 else "were"
            available = timeline.end - max(anchors)
            return verdict_for(self, self.within, None, f"{', '.join(missing)} {verb} still unhealthy when the run "
                               f"ended, {seconds(timeline.end - fault.end)} after {fault.label} ended", promise,
                               available, ("the load", anchor_text))
        ended = f"{fault.label} ended" if self.after == "fault_end" else "its restarted process was ready"
        detail = f"{self.target} was healthy again {seconds(worst)} after {ended}"
        if self.within != "promised" and worst > self.within:
            detail += f"; bound {format_duration(self.within)}"
        return verdict_for(self, self.within, worst, detail, promise, timeline.end - max(anchors, default=fault.end),
                           ("the load", anchor_text))
