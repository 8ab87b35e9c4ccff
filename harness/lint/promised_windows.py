"""Expectations and loads that the promised windows (harness/promise/) say cannot work, before a run.

* ``within: promised`` where the configuration promises ``never``: the verdict fails whatever
  happens (``within: promised`` means "detected, inside the window"); to expect no detection,
  write ``within: never``.
* ``within: never`` where the configuration promises a window: the gateway is expected to act.
* a fault shorter than its promised detection window, or a load that ends before the promised
  recovery window does: a detection or readmission after that is not observed.

Windows are computed from the nominal load (harness/promise/preview.py), for the scenario's gateway
(``--gateway``).
"""

from __future__ import annotations

from pydantic import ValidationError

from harness.durations import format_duration
from harness.expectations import Expectation
from harness.lint.base import Check, Hit
from harness.promise.preview import FaultPromise, expectation_promise, planned_promises
from harness.promise.window import Never, Window
from harness.scenario import Scenario
from harness.yaml_source import YamlDocument


def _seconds(value: float) -> str:
    return format_duration(round(value, 3))


def written_expectations(scenario: Scenario, doc: YamlDocument | None) -> list[tuple[int, Expectation]]:
    """The scenario's expectations with their index in the file (a run drops those scoped to other gateways)."""
    if doc is None:
        return list(enumerate(scenario.expect))
    try:
        written = Scenario.model_validate(doc.data).expect
    except ValidationError:
        return list(enumerate(scenario.expect))
    return [(i, e) for i, e in enumerate(written) if e.applies_to(scenario.gateway.kind)]


def _never_under_promised(scenario: Scenario, doc: YamlDocument | None) -> list[Hit]:
    planned = planned_promises(scenario)
    hits = []
    for i, expectation in written_expectations(scenario, doc):
        found = expectation_promise(scenario, expectation, planned)
        if found is None or getattr(expectation, "within", None) != "promised" or not isinstance(found[1], Never):
            continue
        fault, never = found[0], found[1].why
        if expectation.kind == "stall_detected":
            hits.append(Hit(("expect", i, "within"), f"is 'promised', but {scenario.gateway.kind}'s configuration "
                            f"promises nothing ends a stalled stream of {fault.fault.label} ({never}), so this verdict "
                            "fails whatever happens; set a stream timeout, or a duration"))
            continue
        if expectation.kind == "fallback_within":
            hits.append(Hit(("expect", i, "within"), f"is 'promised', but {scenario.gateway.kind}'s configuration "
                            f"promises no fallback for {fault.fault.label} ({never}), so this verdict fails whatever "
                            "happens; give the faulty pool a fallback (upstreams[].fallback), or a duration"))
            continue
        hits.append(Hit(("expect", i, "within"), f"is 'promised', but {scenario.gateway.kind}'s configuration promises "
                        f"it never {'detects' if expectation.kind == 'upstream_unhealthy' else 'readmits'} "
                        f"{fault.fault.label} ({never}), so this verdict fails whatever happens: within: "
                        "promised means detected inside the promised window. To expect no detection, write "
                        "upstream_unhealthy with within: never (and no upstream_healthy); or scope the "
                        f"expectation to the gateways that detect it (gateways: [...])"))
    return hits


def _never_against_a_window(scenario: Scenario, doc: YamlDocument | None) -> list[Hit]:
    planned = planned_promises(scenario)
    hits = []
    for i, expectation in written_expectations(scenario, doc):
        found = expectation_promise(scenario, expectation, planned)
        if found is None or getattr(expectation, "within", None) != "never" or not isinstance(found[1], Window):
            continue
        fault, promise = found[0], found[1]
        hits.append(Hit(("expect", i, "within"), f"is 'never', but {scenario.gateway.kind}'s configuration promises to "
                        f"detect {fault.fault.label} in {promise.text()} ({promise.how})"))
    return hits


def _unobservable(scenario: Scenario, doc: YamlDocument | None) -> list[Hit]:
    hits = []
    for planned in planned_promises(scenario):
        hits += _fault_unobservable(scenario, planned)
    return hits


def _fault_unobservable(scenario: Scenario, planned: FaultPromise) -> list[Hit]:
    fault, hits = planned.fault, []
    detection, recovery = planned.detection, planned.recovery
    if isinstance(detection, Window) and detection.upper > fault.duration:
        hits.append(Hit(("faults", planned.index, "for"), f"{fault.label} lasts {_seconds(fault.duration)}, but its "
                        f"promised detection {detection.text()} allows up to {_seconds(detection.upper)} after it "
                        "begins: a detection after the fault's end is not observed (a detection counts only while "
                        f"the fault lasts); make it last at least {_seconds(detection.upper)}"))
    left = scenario.load.duration - fault.at - fault.duration
    if isinstance(recovery, Window) and recovery.upper > left:
        hits.append(Hit(("load", "duration"), f"the load ends {_seconds(left)} after {fault.label} ends, but its "
                        f"promised recovery {recovery.text()} allows up to {_seconds(recovery.upper)}: a readmission "
                        "after the load's end is not observed; set load.duration to at least "
                        f"{_seconds(fault.at + fault.duration + recovery.upper)}"))
    return hits


NEVER_UNDER_PROMISED = Check(
    "promise.never-under-promised", "error",
    "`within: promised` where the configuration promises never: the verdict fails whatever happens "
    "(write `within: never` to expect no detection)", _never_under_promised)
NEVER_AGAINST_A_WINDOW = Check(
    "promise.never-against-a-window", "warning",
    "`within: never` where the configuration promises to detect the fault in a window", _never_against_a_window)
UNOBSERVABLE = Check(
    "promise.unobservable", "warning",
    "a fault shorter than its promised detection window, or a load that ends before its promised recovery "
    "window does: an action then is not observed", _unobservable)
