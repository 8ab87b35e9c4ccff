"""Detection and recovery verdicts next to the promised window, and ``within: promised``.

``upstream_unhealthy`` and ``upstream_healthy`` measure a time (or find the gateway never acted);
``verdict_for`` turns it into a verdict against their ``within`` (a duration; ``promised``: inside
the window the gateway's own configuration promises, and the detail says where it lies; or, for
``upstream_unhealthy``, ``never``: the gateway must not mark the target unhealthy at all).
``promise_for`` finds the promise of an expectation in a run.
"""

from __future__ import annotations

from dataclasses import replace

from harness.expectations.base import Expectation, PromisedExpectation, Unjudgeable, Verdict, seconds
from harness.promise import detection_window, fault_named, recovery_window, run_facts
from harness.promise.window import Never, Placement, Promise, Unknown, Window, place
from harness.scenario import Scenario
from harness.timeline import Timeline

PROMISED, NEVER = "promised", "never"
DETECTION, RECOVERY, FALLBACK, STALL = "upstream_unhealthy", "upstream_healthy", "fallback_within", "stall_detected"


def promise_for(scenario: Scenario, expectation: Expectation, timeline: Timeline) -> Promise | None:
    """The promised window of a detection, recovery, fallback or stall expectation in a run (None for other kinds,
    or when its fault never started)."""
    if not isinstance(expectation, PromisedExpectation):
        return None
    try:  # a fallback_within's target is the fallback pool, not the faulty one: its fault is the first (or named)
        target = None if expectation.kind == FALLBACK else getattr(expectation, "target", None)
        window = expectation.related_fault(timeline, target)
    except Unjudgeable:
        return None
    fault = fault_named(scenario, window.label)
    if fault is None:
        return None
    if expectation.kind == STALL:
        from harness.promise.stall import stall_window

        return stall_window(scenario, fault)
    facts = run_facts(scenario, fault, timeline)
    if expectation.kind == DETECTION:
        return detection_window(scenario, fault, facts)
    if expectation.kind == FALLBACK:
        from harness.promise.fallback import fallback_window

        return fallback_window(scenario, fault, facts)
    return recovery_window(scenario, fault, facts, str(getattr(expectation, "after", "fault_end")))


def judge_all(scenario: Scenario, timeline: Timeline) -> tuple[list[Verdict], list[Promise | None]]:
    """Every expectation's verdict, and the promise of each (None where none applies)."""
    verdicts: list[Verdict] = []
    promises: list[Promise | None] = []
    for expectation in scenario.expect:
        promise = promise_for(scenario, expectation, timeline)
        verdicts.append(expectation.evaluate_promised(timeline, promise) if isinstance(expectation, PromisedExpectation)
                        else expectation.evaluate(timeline))
        promises.append(promise)
    return verdicts, promises


def _relation(promise: Promise, measured: float | None, placement: Placement, ended: tuple[str, str]) -> str:
    if isinstance(promise, Unknown):
        return f"promised window not computed: {promise.why}"
    if isinstance(promise, Never):
        verdict = "and it never did" if measured is None else "yet it did"
        return f"its configuration promises it never acts ({promise.why}), {verdict}"
    if placement.where == "not observed":
        return f"its configuration promised {promise.text()}; {placement.not_observed(*ended)}"
    if measured is None:
        return f"its configuration promised {promise.text()}, and it never did"
    where = {"inside": "inside", "early": "earlier than", "late": "later than"}[placement.where]
    return f"its configuration promised {promise.text()}: {where} it"


NEVER_UNDER_PROMISED = ("within: promised expects the gateway to act inside a promised window, and this configuration "
                        "promises it never acts; to expect no detection, write upstream_unhealthy with within: never "
                        "(and no upstream_healthy: there is nothing to readmit)")


def verdict_for(expectation: Expectation, within: float | str, measured: float | None, detail: str,
                promise: Promise | None, available: float | None = None,
                ended: tuple[str, str] = ("the load", "the fault")) -> Verdict:
    """A verdict for a measured time (None: the gateway never acted) against ``within``: a duration,
    ``never`` (passes only if it never acted) or ``promised`` (passes only if it acted inside the promised
    window: a ``never`` promise fails). ``available``: the time the run gave the gateway (the fault's
    duration for detection, from the anchor to the load's end for recovery), which tells a window missed
    from a run too short to tell; ``ended``: how a detail names that end (harness/promise/window.place)."""
    measured_text = "never" if measured is None else seconds(measured)
    if within == PROMISED:
        if promise is None or isinstance(promise, Unknown):
            why = promise.why if isinstance(promise, Unknown) else "no promise applies to this run"
            raise Unjudgeable(f"within: promised, but the promised window is not known: {why}")
        placement = place(promise, measured, available)
        passed = isinstance(promise, Window) and placement.held is True
        relation = _relation(promise, measured, placement, ended)
        if isinstance(promise, Never):
            relation += f"; {NEVER_UNDER_PROMISED}"
        bound_value = promise.upper if isinstance(promise, Window) else None
        verdict = expectation.verdict(passed, measured_text, f"{detail}; {relation}",
                                      bound_value=bound_value, measured_value=measured)
        return replace(verdict, bound=f"in {promise.text()}")
    if within == NEVER:
        return expectation.verdict(measured is None, measured_text, detail, measured_value=measured)
    assert isinstance(within, float)
    passed = measured is not None and measured <= within
    # The promise goes beside this verdict in summary.json and the report (Judgement.promises).
    return expectation.verdict(passed, measured_text, detail, bound_value=within, measured_value=measured)
