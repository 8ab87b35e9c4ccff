"""Promised windows: from a gateway's configuration (the scenario's gateway block as rendered for
that gateway), the earliest and latest time it can detect a fault and readmit the replica.

One module per gateway, one line in ``FORMULAS`` per module. Each module has
``detection_window(scenario, fault, facts) -> Promise`` (from the fault's start) and
``recovery_window(scenario, fault, facts, after) -> Promise`` (from the fault's end, or from the
restarted process being ready). ``facts`` are the run's facts (``LoadFacts``: the pool's first
request, its request rate, how long before the load the gateway was up): measured from the journal
in a run, or nominal from the scenario when there is no run (validate, lint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from harness.faults import ControlFault, Fault
from harness.faults.cert import Cert
from harness.own_config import for_pool, pool_block
from harness.promise import envoy, haproxy, litellm, nginx, portkey
from harness.promise.effects import MODELLED_KINDS
from harness.promise.load import LoadFacts, measured_facts, nominal_facts
from harness.promise.window import CONTROL_API_MARGIN, Never, Promise, Unknown, Window
from harness.scenario import Scenario
from harness.targets import resolve, split_target
from harness.timeline import FaultWindow, Timeline

DetectionFormula = Callable[[Scenario, Fault, "LoadFacts | None"], Promise]
RecoveryFormula = Callable[[Scenario, Fault, "LoadFacts | None", str], Promise]


@dataclass(frozen=True)
class Formulas:
    detection: DetectionFormula
    recovery: RecoveryFormula


FORMULAS: dict[str, Formulas] = {
    "envoy": Formulas(envoy.detection_window, envoy.recovery_window),
    "haproxy": Formulas(haproxy.detection_window, haproxy.recovery_window),
    "nginx": Formulas(nginx.detection_window, nginx.recovery_window),
    "litellm": Formulas(litellm.detection_window, litellm.recovery_window),
    "portkey": Formulas(portkey.detection_window, portkey.recovery_window),
}


def _formulas(scenario: Scenario) -> Formulas | None:
    return FORMULAS.get(scenario.gateway.kind)


def _with_injection(fault: Fault, promise: Promise) -> Promise:
    """A fault made through a fake's control API acts when the fake has handled the call: more margin."""
    if isinstance(promise, Window) and isinstance(fault, ControlFault | Cert):
        return replace(promise, margin=promise.margin + CONTROL_API_MARGIN,
                       how=f"{promise.how}; +{CONTROL_API_MARGIN:g}s margin: the fault is made through the "
                           "replica's control API, which acts when the fake has handled the call")
    return promise


def _own_file(scenario: Scenario, fault: Fault, promise: Callable[[Scenario], Promise]) -> Promise:
    """The promise from the settings of the user's own file (``gateway.config``) for the fault's pool, with
    where each came from; Unknown, naming them, when the block has settings the formulas do not model."""
    pool = split_target(fault.target)[0]
    block = pool_block(scenario, pool)
    if block is None:
        return promise(scenario)
    hit = frozenset(split_target(name)[1] or 0 for name in resolve(fault.target, scenario.pools))
    if unmodelled := [u for u in block.unmodelled if u.matters(hit)]:
        return Unknown("; ".join(f"{u.source}: {u.why}" for u in unmodelled))
    result = promise(for_pool(scenario, pool))
    read = ", ".join(f"{source.setting} at {'line ' if source.file == block.source.file else source.file + ':'}"
                     f"{source.line}" for source in dict.fromkeys(block.where.values()))
    origin = f" [from {block.source.file}: {block.source.setting} at line {block.source.line}; {read or 'its defaults'}]"
    if isinstance(result, Window):
        return replace(result, how=result.how + origin)
    if isinstance(result, Never):
        return replace(result, why=result.why + origin)
    return result


def detection_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    """Fault start → the gateway shows every replica of the fault unhealthy."""
    formulas = _formulas(scenario)
    if formulas is None:
        return Unknown(f"no promise formulas for gateway {scenario.gateway.kind!r}")
    if fault.kind not in MODELLED_KINDS:
        return Unknown(f"what {fault.kind} faults do to health checks and requests is not modelled")
    promise = _own_file(scenario, fault, lambda own: formulas.detection(own, fault, facts))
    if isinstance(promise, Window) and promise.earliest > fault.duration:  # detection counts only during the fault
        return Never(f"the fault ends after {fault.duration:g}s, before the earliest detection: {promise.how}")
    return _with_injection(fault, promise)


def recovery_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None,
                    after: str = "fault_end") -> Promise:
    """Fault end (or restart ready) → the gateway shows every replica of the fault healthy again."""
    formulas = _formulas(scenario)
    if formulas is None:
        return Unknown(f"no promise formulas for gateway {scenario.gateway.kind!r}")
    if fault.kind not in MODELLED_KINDS:
        return Unknown(f"what {fault.kind} faults do to health checks and requests is not modelled")
    return _with_injection(fault, _own_file(scenario, fault, lambda own: formulas.recovery(own, fault, facts, after)))


def fault_named(scenario: Scenario, label: str) -> Fault | None:
    return next((f for f in scenario.faults if f.label == label), None)


def run_facts(scenario: Scenario, fault: Fault, timeline: Timeline) -> LoadFacts:
    """The load as a run measured it, for the pool the fault targets, and when the fault began."""
    facts = measured_facts(scenario, split_target(fault.target)[0], timeline)
    began = next((w.start for w in timeline.faults if w.label == fault.label), None)
    return replace(facts, fault_start=began)


def fault_promises(scenario: Scenario, window: FaultWindow, timeline: Timeline) -> tuple[Promise, Promise] | None:
    """The promised detection and recovery (from the fault's end) of one fault of a run."""
    fault = fault_named(scenario, window.label)
    if fault is None:
        return None
    facts = run_facts(scenario, fault, timeline)
    return detection_window(scenario, fault, facts), recovery_window(scenario, fault, facts)


__all__ = ["FORMULAS", "Formulas", "LoadFacts", "Never", "Promise", "Unknown", "Window", "detection_window",
           "fault_named", "fault_promises", "measured_facts", "nominal_facts", "recovery_window", "run_facts"]
