"""Envoy's ``update_merge_window`` (1s by default; chaosgate renders 0s unless ``gateway.envoy`` sets
it) delays health changes on their way to the workers' load balancers: a change is applied at once
only if no other change of the cluster was applied in the last window; a later one waits until the
window after it expires (or until a change more than a window after the last delivery takes it
along). The admin API (so the journal) shows it at once. So when two health changes of one pool
come within the window of each other, clients keep reaching a replica the gateway already shows
as unhealthy (or miss a readmitted one) for up to the window.

Measured on Envoy 1.40 (docs/lint.md): health_fail on all 3 replicas, update_merge_window 1s,
checks every 1.5s: the first change reached the workers at once; the replicas whose change came
later got requests for another 0.85-0.91s after the admin API showed all three unhealthy, and
after the fault none for 0.94-1.03s after it showed them healthy. With 0s, no request reached
them after either. The start-up check results (before the load starts) opened no window: a fault
detected 2s after them, with a 4s window, was applied at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from harness.durations import format_duration
from harness.faults import Fault
from harness.lint.base import Hit, Trap
from harness.promise import detection_window, recovery_window
from harness.promise.window import Never, Promise, Window
from harness.scenario import Scenario
from harness.targets import resolve, split_target

PATH = ("gateway", "envoy", "update_merge_window")


@dataclass(frozen=True)
class HealthChange:
    """One replica's health changing because of one fault, somewhere in [earliest, latest] (seconds into the load)."""

    pool: str
    replica: str
    fault: Fault
    readmit: bool
    earliest: float
    latest: float

    @property
    def text(self) -> str:
        return (f"{self.replica} readmitted after {self.fault.label}" if self.readmit
                else f"{self.fault.label} marking {self.replica} unhealthy")


def _span(window: Promise, anchor: float, unknown: tuple[float, float]) -> tuple[float, float] | None:
    """When a change promised ``window`` after ``anchor`` can happen; ``unknown`` when not computed."""
    if isinstance(window, Never):
        return None
    if isinstance(window, Window):
        return anchor + window.earliest, anchor + window.upper
    return unknown


def health_changes(scenario: Scenario) -> list[HealthChange]:
    """Every health change the scenario's faults can cause, with when: the promised windows, margins
    included (a window the formulas do not cover: any time during the fault, or from its end to the
    load's end)."""
    changes: list[HealthChange] = []
    for fault in scenario.faults:
        pool, _ = split_target(fault.target)
        end = fault.at + fault.duration
        detect = _span(detection_window(scenario, fault), fault.at, (fault.at, end))
        if detect is None:
            continue
        readmit = _span(recovery_window(scenario, fault), end, (end, scenario.load.duration))
        for replica in resolve(fault.target, scenario.pools):
            changes.append(HealthChange(pool, replica, fault, False, *detect))
            if readmit is not None:
                changes.append(HealthChange(pool, replica, fault, True, *readmit))
    return sorted(changes, key=lambda c: (c.earliest, c.latest))


def close_changes(scenario: Scenario, window: float) -> tuple[HealthChange, HealthChange] | None:
    """The first two health changes of one pool that can come within ``window`` of each other."""
    for first, second in combinations(health_changes(scenario), 2):
        if first.pool == second.pool and max(first.earliest, second.earliest) - min(first.latest, second.latest) <= window:
            return first, second
    return None


def _describe(first: HealthChange, second: HealthChange) -> str:
    if first.fault is second.fault and first.readmit == second.readmit:
        verb = "readmits" if first.readmit else "marks"
        return (f"{first.fault.label} {verb} {first.replica} and {second.replica}{'' if first.readmit else ' unhealthy'} "
                f"at about the same time (between {first.earliest:.3g}s and {first.latest:.3g}s into the load)")
    return (f"{first.text} (between {first.earliest:.3g}s and {first.latest:.3g}s into the load) and {second.text} "
            f"(between {second.earliest:.3g}s and {second.latest:.3g}s) can come close together")


def check(scenario: Scenario) -> list[Hit]:
    window = scenario.gateway.envoy.update_merge_window
    if window <= 0:
        return []
    pair = close_changes(scenario, window)
    if pair is None:
        return []
    w = format_duration(window)
    return [Hit(PATH, f"is {w}: {_describe(*pair)}; Envoy's workers apply a health change of {pair[0].pool!r} at "
                f"once only if it is the first in a {w} window, a later one up to {w} after the admin API (and the "
                f"journal) shows it, so clients keep reaching a replica marked unhealthy (or miss a readmitted one) "
                f"for up to {w}; set update_merge_window: 0s")]


TRAP = Trap("envoy.merge-window", "envoy", "warning",
            "update_merge_window above 0 while two health changes of a pool can come within it: the later one "
            "reaches the load balancer up to that long after the admin API shows it", check)
