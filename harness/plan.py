"""The plan: a scenario's faults turned into an ordered list of timed actions."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from harness.expectations.diagnosis import Diagnosis
from harness.faults import Fault
from harness.scenario import Scenario
from harness.targets import resolve


@dataclass(frozen=True)
class FaultAction:
    """Start or clear one fault on its replicas at ``t`` seconds after the load starts."""

    t: float
    start: bool
    fault: Fault
    replicas: tuple[str, ...]


@dataclass(frozen=True)
class DiagnosisAction:
    """Run ``chaosgate diagnose`` on one replica at ``t`` (a ``diagnosis`` expectation asked, under ``key``)."""

    t: float
    replica: str
    key: str


@dataclass(frozen=True)
class Plan:
    """Everything that happens on a schedule during a run."""

    duration: float
    actions: tuple[FaultAction, ...]
    diagnoses: tuple[DiagnosisAction, ...] = ()

    def phase_at(self, t: float) -> str:
        """``baseline`` before the first fault, ``fault`` while one is active, else ``recovery``."""
        starts = [a.t for a in self.actions if a.start]
        if not starts or t < min(starts):
            return "baseline"
        active = sum(1 if a.start else -1 for a in self.actions if a.t <= t)
        return "fault" if active > 0 else "recovery"


def make_plan(scenario: Scenario) -> Plan:
    """Order every fault start and end in time; at equal times, clears come first."""
    actions: list[FaultAction] = []
    for fault in scenario.faults:
        replicas = tuple(resolve(fault.target, scenario.pools))
        actions.append(FaultAction(fault.at, True, fault, replicas))
        actions.append(FaultAction(fault.at + fault.duration, False, fault, replicas))
    actions.sort(key=lambda a: (a.t, a.start))
    scheduled = [e.schedule(scenario) for e in scenario.expect if isinstance(e, Diagnosis)]
    diagnoses = sorted((DiagnosisAction(*when) for when in scheduled if when is not None), key=lambda d: d.t)
    return Plan(duration=scenario.load.duration, actions=tuple(actions), diagnoses=tuple(diagnoses))


def together(actions: Sequence[FaultAction]) -> list[tuple[FaultAction, ...]]:
    """``actions`` (in plan order) in batches due at the same moment, to be applied at once; at one
    moment the clears are one batch and the starts the next, so a replica is freed before it is broken
    again."""
    return [tuple(batch) for _, batch in itertools.groupby(actions, key=lambda a: (a.t, a.start))]
