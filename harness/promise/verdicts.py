"""Detection and recovery verdicts next to the promised window, and ``within: promised``.

``upstream_unhealthy`` and ``upstream_healthy`` measure a time (or find the gateway never acted);
``verdict_for`` turns it into a verdict against their ``within`` (a duration, or ``promised``:
the window the gateway's own configuration promises; then the detail says where it lies).
``promise_for`` finds the promise of an expectation in a run.
"""

from __future__ import annotations

from dataclasses import replace

from harness.expectations.base import Expectation, Unjudgeable, Verdict, seconds
from harness.promise import detection_window, fault_named, recovery_window, run_facts
from harness.promise.window import Never, Promise, Unknown, Window
from harness.scenario import Scenario
from harness.timeline import Timeline

PROMISED = "promised"
DETECTION, RECOVERY = "upstream_unhealthy", "upstream_healthy"


def promise_for(scenario: Scenario, expectation: Expectation, timeline: Timeline) -> Promise | None:
    """The promised window of a detection or recovery expectation in a run (None for other kinds,
    or when its fault never started)."""
    if expectation.kind not in (DETECTION, RECOVERY):
        return None
    try:
        window = expectation.related_fault(timeline, getattr(expectation, "target", None))
    except Unjudgeable:
        return None
    fault = fault_named(scenario, window.label)
    if fault is None:
        return None
    facts = run_facts(scenario, fault, timeline)
    if expectation.kind == DETECTION:
        return detection_window(scenario, fault, facts)
    return recovery_window(scenario, fault, facts, str(getattr(expectation, "after", "fault_end")))


def judge_all(scenario: Scenario, timeline: Timeline) -> tuple[list[Verdict], list[Promise | None]]:
    """Every expectation's verdict, and the promise of each (None where none applies)."""
    verdicts: list[Verdict] = []
    promises: list[Promise | None] = []
    for expectation in scenario.expect:
        promise = promise_for(scenario, expectation, timeline)
        evaluate_promised = getattr(expectation, "evaluate_promised", None)
        verdicts.append(evaluate_promised(timeline, promise) if evaluate_promised is not None
                        else expectation.evaluate(timeline))
        promises.append(promise)
    return verdicts, promises


def _relation(promise: Promise, measured: float | None) -> str:
    if isinstance(promise, Unknown):
        return f"promised window not computed: {promise.why}"
    if isinstance(promise, Never):
        verdict = "and it never did" if measured is None else "yet it did"
        return f"its configuration promises it never acts ({promise.why}), {verdict}"
    if measured is None:
        return f"its configuration promised {promise.text()}, and it never did"
    where = "inside" if promise.contains(measured) else (
        "earlier than" if measured < promise.earliest else "later than")
    return f"its configuration promised {promise.text()}: {where} it"


def verdict_for(expectation: Expectation, within: float | str, measured: float | None, detail: str,
                promise: Promise | None) -> Verdict:
    """A verdict for a measured time (None: the gateway never acted) against ``within``."""
    measured_text = "never" if measured is None else seconds(measured)
    if within == PROMISED:
        if promise is None or isinstance(promise, Unknown):
            why = promise.why if isinstance(promise, Unknown) else "no promise applies to this run"
            raise Unjudgeable(f"within: promised, but the promised window is not known: {why}")
        passed = promise.contains(measured) if isinstance(promise, Never) else \
            measured is not None and promise.contains(measured)
        bound_value = promise.upper if isinstance(promise, Window) else None
        verdict = expectation.verdict(passed, measured_text, f"{detail}; {_relation(promise, measured)}",
                                      bound_value=bound_value, measured_value=measured)
        return replace(verdict, bound=f"in {promise.text()}")
    assert isinstance(within, float)
    passed = measured is not None and measured <= within
    # The promise goes beside this verdict in summary.json and the report (Judgement.promises).
    return expectation.verdict(passed, measured_text, detail, bound_value=within, measured_value=measured)
