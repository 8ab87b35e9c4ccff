"""The promised windows of a scenario before it runs (``chaosgate validate``, the lint).

A run computes its windows from the load it measured and what the gateway said in it
(harness/promise/load.measured_facts: HAProxy's first passed checks, LiteLLM's stamped check rounds);
before a run only the scenario is known, so these use the nominal load (``nominal_facts``): the
load's users, wait and max_tokens and the replicas' speed, and the nominal bounds (LiteLLM's round:
check timeout + ROUND_OVERHEAD; HAProxy's first checks: within inter(1+s) + a check's time limit). Each expectation is related to its fault as a
run relates it (harness/expectations/base.Expectation.related_fault), from the scenario alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.durations import format_duration
from harness.expectations import Expectation
from harness.expectations.base import PromisedExpectation
from harness.faults import Fault
from harness.promise import detection_window, nominal_facts, recovery_window
from harness.promise.fallback import fallback_window
from harness.promise.load import LoadFacts
from harness.promise.window import Promise, Window
from harness.scenario import Scenario
from harness.targets import resolve, split_target

DETECTION, RECOVERY, FALLBACK, STALL = "upstream_unhealthy", "upstream_healthy", "fallback_within", "stall_detected"


@dataclass(frozen=True)
class FaultPromise:
    """What the scenario's gateway promises for one fault, with the nominal load it assumed."""

    index: int                   # the fault's position in ``faults``
    fault: Fault
    facts: LoadFacts
    detection: Promise           # from the fault's start
    recovery: Promise            # from the fault's end
    after_restart: Promise | None  # from the restarted process being ready, when an expectation asks for it


def planned_promises(scenario: Scenario) -> list[FaultPromise]:
    """Every fault's promised detection and recovery, from the scenario alone."""
    out = []
    restart_faults = {index for e in scenario.expect if e.kind == RECOVERY and getattr(e, "after", "") == "restart_ready"
                      for index in [related_fault_index(scenario, e)] if index is not None}
    for index, fault in enumerate(scenario.faults):
        facts = nominal_facts(scenario, split_target(fault.target)[0])
        out.append(FaultPromise(index, fault, facts, detection_window(scenario, fault, facts),
                                recovery_window(scenario, fault, facts),
                                recovery_window(scenario, fault, facts, "restart_ready") if index in restart_faults
                                else None))
    return out


def related_fault_index(scenario: Scenario, expectation: Expectation) -> int | None:
    """The fault an expectation is about, as a run finds it: the one it names, else the first whose
    replicas overlap its target, else the first (None: the scenario has no such fault)."""
    if expectation.fault is not None:
        return next((i for i, f in enumerate(scenario.faults) if f.label == expectation.fault), None)
    target = getattr(expectation, "target", None)
    if target is not None:
        wanted = set(_replicas(target, scenario))
        overlapping = (i for i, f in enumerate(scenario.faults) if wanted & set(_replicas(f.target, scenario)))
        found = next(overlapping, None)
        if found is not None:
            return found
    return 0 if scenario.faults else None


def expectation_promise(scenario: Scenario, expectation: Expectation,
                        planned: list[FaultPromise] | None = None) -> tuple[FaultPromise, Promise] | None:
    """The fault and the promise a detection, recovery or fallback expectation will be judged against (None for
    other kinds, or when it relates to no fault)."""
    if not isinstance(expectation, PromisedExpectation):
        return None
    if expectation.kind == FALLBACK:  # its target is the fallback pool: its fault is the named one, else the first
        index = (related_fault_index(scenario, expectation) if expectation.fault is not None
                 else 0 if scenario.faults else None)
    else:
        index = related_fault_index(scenario, expectation)
    if index is None:
        return None
    fault = (planned or planned_promises(scenario))[index]
    if expectation.kind == FALLBACK:
        return fault, fallback_window(scenario, fault.fault, fault.facts)
    if expectation.kind == STALL:
        from harness.promise.stall import stall_window

        return fault, stall_window(scenario, fault.fault)
    if expectation.kind == DETECTION:
        return fault, fault.detection
    if getattr(expectation, "after", "fault_end") == "restart_ready":
        return fault, fault.after_restart or recovery_window(scenario, fault.fault, fault.facts, "restart_ready")
    return fault, fault.recovery


def _replicas(target: str, scenario: Scenario) -> list[str]:
    try:
        return resolve(target, scenario.pools)
    except ValueError:
        return []


def _promise_line(what: str, anchor: str, promise: Promise) -> str:
    if isinstance(promise, Window):
        return f"{what} {promise.text()} after {anchor}: {promise.how}"
    return f"{what} {promise.text()}: {promise.to_json()['how']}"


def describe(scenario: Scenario) -> list[str]:
    """Per fault, the promised detection and recovery windows and how each was derived, for
    ``chaosgate validate`` (indented lines, without the file); for a fault on a pool with a fallback pool, also
    the window to the fallback's first answer (harness/promise/fallback.py)."""
    lines = [f"promised windows ({scenario.gateway.kind}; from the nominal load, before a run: a run uses the load "
             "it measured):"]
    pools = {u.name: u for u in scenario.upstreams}
    for planned in planned_promises(scenario):
        fault = planned.fault
        lines.append(f"  {fault.label} (at {format_duration(fault.at)} for {format_duration(fault.duration)}; "
                     f"load: {planned.facts.text()})")
        lines.append("    " + _promise_line("detect ", "the fault's start", planned.detection))
        lines.append("    " + _promise_line("recover", "the fault's end", planned.recovery))
        if planned.after_restart is not None:
            lines.append("    " + _promise_line("recover", "the restarted process is ready", planned.after_restart))
        if pools[split_target(fault.target)[0]].fallback is not None and scenario.gateway.config is None:
            lines.append("    " + _promise_line("fallback", "the fault's start",  # its first answer to a client
                                                fallback_window(scenario, fault, planned.facts)))
    if len(lines) == 1:
        lines.append("  no faults")
    return lines
