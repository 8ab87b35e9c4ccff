"""``chaosgate diagnose`` names the injected cause: the diagnosis runs during the fault window (the
run schedules it, harness/diagnose/scheduled.py, and journals what it named) and this
expectation judges that journal record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from harness.catalogue import HEALTHY, diagnosable
from harness.durations import Duration
from harness.expectations.base import Expectation, Target, Unjudgeable, Verdict
from harness.targets import resolve, split_target
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.scenario import Scenario


class Diagnosis(Expectation):
    """Diagnose walks ``target`` during the fault and must name ``cause`` (a cause of harness/catalogue.py that diagnose names, docs/diagnose.md)."""

    kind: Literal["diagnosis"]
    target: Target = Field(description="The one replica diagnosed, e.g. 'chat[0]'.")
    cause: str = Field(description="The cause diagnose must name (docs/diagnose.md), or 'healthy' for none.")
    after: Duration | None = Field(
        default=None, description="When the diagnosis runs, from the fault's start (default: half its duration).")

    @field_validator("cause")
    @classmethod
    def _known(cls, value: str) -> str:
        return diagnosable(value)

    @field_validator("target")
    @classmethod
    def _one_replica(cls, value: str) -> str:
        if split_target(value)[1] is None:
            raise ValueError(f"expected one replica such as 'chat[0]', got {value!r}")
        return value

    def describe(self) -> str:
        return f"chaosgate diagnose names {self.cause} for {self.target} during the fault"

    def bound_text(self) -> str:
        return self.cause

    def key(self, fault_label: str) -> str:
        """Ties the journalled diagnosis to this expectation."""
        return f"{self.target}|{self.cause}|{fault_label}|{self.after}"

    def schedule(self, scenario: Scenario) -> tuple[float, str, str] | None:
        """When (seconds after the load starts) and whom to diagnose, and the journal key (None: no fault
        to diagnose during; judging then says so)."""
        fault = next((f for f in scenario.faults if f.label == self.fault), None) if self.fault else None
        if fault is None:
            wanted = set(resolve(self.target, scenario.pools))
            fault = next((f for f in scenario.faults if wanted & set(resolve(f.target, scenario.pools))),
                         scenario.faults[0] if scenario.faults else None)
        if fault is None:
            return None
        after = self.after if self.after is not None else fault.duration / 2
        return fault.at + min(after, fault.duration), self.target, self.key(fault.label)

    def judge(self, timeline: Timeline) -> Verdict:
        fault = self.related_fault(timeline, self.target)
        key = self.key(fault.label)
        record = next((d for d in timeline.diagnoses if d.key == key), None)
        if record is None:
            raise Unjudgeable(f"no diagnosis of {self.target} was journalled during {fault.label}")
        if record.error is not None:
            return self.verdict(False, "error", f"diagnose could not run at {record.t:.1f}s: {record.error}")
        named = record.cause or HEALTHY
        passed = named == self.cause
        where = f" at the {record.layer} layer" if record.layer else ""
        return self.verdict(passed, named, f"at {record.t:.1f}s ({max(0.0, record.t - fault.start):.2f}s into "
                            f"{fault.label}) diagnose named {named}{where}: {record.evidence}")
