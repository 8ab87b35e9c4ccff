"""Every shipped scenario (scenarios/*.yaml) and trap (scenarios/traps/) is designed so that its promised
windows can say no, on the gateway it runs on (its own ``gateway.kind``).

From the nominal load (harness/promise/preview.py, what ``chaosgate validate`` prints):

* no promised window of a detection or recovery expectation (judged ``within: promised``, or shown
  beside a fixed bound such as ``within: 3s``) spans its whole fault (a detection window, from 0 to the fault's
  duration) or the whole time the load runs after the fault (a recovery window): a detection or
  recovery at any moment the run can observe would pass;
* no ``promise.unobservable`` warning fires (a fault shorter than its promised detection, a load
  that ends before its promised recovery);
* a window whose earliest bound is 0 (it cannot fail early) is one listed below with the reason the
  configuration cannot raise it.

The comparison suite (scenarios/compare/, on every gateway) has its own test of its windows
(test_promise_suite.py); here, only that no promise.unobservable warning fires on any gateway.
The allow-lists are explicit: a scenario added to them says why in its own comment and in docs/lint.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.lint import lint_file
from harness.promise.preview import FaultPromise, expectation_promise, planned_promises
from harness.promise.window import Window
from harness.scenario import Scenario, load_scenario

ROOT = Path(__file__).parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted((ROOT / "scenarios" / "traps").glob("*.yaml"))

# (file stem, expectation kind): windows that span their whole fault (or unobservable warnings) by design.
SPANS_BY_DESIGN = {
    # The trap is the start-up case itself: the replica is broken from the load's first moment, before
    # HAProxy's first check (inter 24s), so the promised detection runs from 0 to past the fault's end
    # (one check at most 24s away, or fall 3 checks fastinter apart if the first one had passed). A
    # fault long enough to see a steady-state detection (72s) would no longer show the start-up state;
    # the bite check (tests/integration/test_traps.py) asserts the detection came after one failed check.
    ("haproxy-startup-state", "upstream_unhealthy"),
}
UNOBSERVABLE_BY_DESIGN = {
    "haproxy-startup-state",   # the same window as above (its detection allows up to 72s)
}
# (file stem, expectation kind): windows whose earliest bound is 0 because nothing in the configuration
# can raise it; each reason is in the scenario's comment and in docs/lint.md.
NO_EARLY_SIDE_BY_DESIGN = {
    # Envoy ejects a host whose /health answers 503 on the first failed check, whatever
    # unhealthy_threshold says; that check can come at any moment after the fault's start.
    ("envoy-merge-window", "upstream_unhealthy"),
    # Outlier detection ejects at the third 5xx in a row, which at ~30 requests/s to the replica
    # comes a tenth of a second after the fault (requests in flight may fail at once); the readmission
    # is the next passing active check after the fault's end, at any moment of the interval.
    ("envoy-uneject-flapping", "upstream_unhealthy"),
    ("envoy-uneject-flapping", "upstream_healthy"),
    # The start-up case (above): one failed check marks the replica DOWN, at any moment; rise 1 readmits
    # at the first passing check (downinter 1s); rise 2 would wait fastinter (24s) for the second.
    ("haproxy-startup-state", "upstream_unhealthy"),
    ("haproxy-startup-state", "upstream_healthy"),
    # LiteLLM's background check round under way when the fault begins (or ends) may write its verdict
    # at once (harness/promise/litellm.py): its windows have no earliest bound above 0.
    ("litellm-health-filter-bypass", "upstream_unhealthy"),
    ("litellm-health-filter-bypass", "upstream_healthy"),
    # Passive detection: the requests in flight when the replica starts refusing fail at once; the
    # readmission comes fail_timeout after each worker's last failure, which may lie before the fault's end.
    ("nginx-worker-state", "upstream_unhealthy"),
    ("nginx-worker-state", "upstream_healthy"),
}


def promised_windows(scenario: Scenario) -> list[tuple[str, FaultPromise, Window]]:
    """(expectation kind, fault, window) of every detection or recovery expectation with a promised window:
    judged against it (``within: promised``) or shown beside a fixed bound (``within: 3s``)."""
    planned = planned_promises(scenario)
    out = []
    for expectation in scenario.expect:
        if getattr(expectation, "within", None) == "never":
            continue
        found = expectation_promise(scenario, expectation, planned)
        if found is not None and isinstance(found[1], Window):
            out.append((expectation.kind, found[0], found[1]))
    return out


def observable_span(kind: str, scenario: Scenario, fault: FaultPromise) -> float:
    """The time a run can observe the gateway act: the fault's duration for a detection, from the fault's
    end to the load's end for a recovery."""
    if kind == "upstream_unhealthy":
        return fault.fault.duration
    return scenario.load.duration - fault.fault.at - fault.fault.duration


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_no_promised_window_spans_what_the_run_observes(path: Path) -> None:
    scenario = load_scenario(path)
    for kind, fault, window in promised_windows(scenario):
        span = observable_span(kind, scenario, fault)
        if (path.stem, kind) in SPANS_BY_DESIGN:
            continue
        assert not window.says_nothing_within(span), (
            f"{path.name}: {kind} of {fault.fault.label} promised {window.text()} (accepts "
            f"{window.lower:.3f}s to {window.upper:.3f}s) spans all {span:.3f}s the run observes")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_no_unobservable_promise(path: Path) -> None:
    found = [f for f in lint_file(path, load_scenario(path)) if f.trap == "promise.unobservable"]
    if path.stem in UNOBSERVABLE_BY_DESIGN:
        assert found, f"{path.name} is allowed an unobservable promise it no longer has: drop it from the list"
        return
    assert not found, [f.message for f in found]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_promised_windows_have_an_early_side_unless_listed(path: Path) -> None:
    scenario = load_scenario(path)
    for kind, fault, window in promised_windows(scenario):
        if (path.stem, kind) in NO_EARLY_SIDE_BY_DESIGN:
            continue
        assert window.lower > 0.0, (
            f"{path.name}: {kind} of {fault.fault.label} promised {window.text()} cannot fail early; raise its "
            "earliest bound (e.g. a threshold of 2) or list it here with the reason")


def test_the_allow_lists_name_shipped_scenarios_with_such_windows() -> None:
    """An allow-list entry that no longer applies is dropped, so the lists stay the exceptions they claim."""
    stems = {p.stem: p for p in SHIPPED}
    for stem, kind in SPANS_BY_DESIGN | NO_EARLY_SIDE_BY_DESIGN:
        scenario = load_scenario(stems[stem])
        windows = [(f, w) for k, f, w in promised_windows(scenario) if k == kind]
        assert windows, (stem, kind)
        if (stem, kind) in SPANS_BY_DESIGN:
            assert any(w.says_nothing_within(observable_span(kind, scenario, f)) for f, w in windows), (stem, kind)
        if (stem, kind) in NO_EARLY_SIDE_BY_DESIGN:
            assert any(w.lower == 0.0 for _, w in windows), (stem, kind)


SUITE = sorted((ROOT / "scenarios" / "compare").glob("*.yaml"))
GATEWAYS = ("envoy", "haproxy", "nginx", "litellm")


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize("path", SUITE, ids=[p.stem for p in SUITE])
def test_no_unobservable_promise_in_the_comparison_suite(path: Path, gateway: str) -> None:
    found = [f for f in lint_file(path, load_scenario(path, gateway)) if f.trap == "promise.unobservable"]
    assert not found, [f.message for f in found]
