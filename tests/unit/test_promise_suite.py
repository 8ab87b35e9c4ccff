"""Every promised window of the comparison suite can say no.

For every file of scenarios/compare/, every gateway, and every detection or recovery judged
``within: promised``, a journal of a run (built as the harness writes one: run.started with the
file's text, stack.ready, the observer's health samples, the load's requests, fault.started and
fault.cleared) is judged with the detection (or recovery) moved just outside its promised window on
each side, and just inside it. Outside must fail, inside must pass. Each journal comes twice: without
and with the gateway's own words that windows are built from when a journal has them (HAProxy's check
status per server in ``hosts`` events, LiteLLM's stamped check rounds in ``gateway.health_rounds``). A window whose earliest bound is
0 has no early side; then its latest bound must end before the fault does (detection) or before the
load does (recovery), so a late detection, or none, still fails.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from harness.judge import judge_events
from harness.promise import nominal_facts
from harness.promise.verdicts import promise_for
from harness.report.data import RunData
from harness.report.html import render_run
from harness.promise.window import Window
from harness.scenario import Scenario, parse_scenario
from harness.targets import resolve, split_target
from harness.timeline import build_timeline

SUITE = sorted((Path(__file__).parents[2] / "scenarios" / "compare").glob("*.yaml"))
GATEWAYS = ("envoy", "haproxy", "nginx", "litellm")
T0 = 1_700_000_000.0
STEP = 0.05      # how far outside (or inside) the window each moved time lies
GATEWAY_UP = 1.0  # the observer's first sample, this long before the load started
FIRST_CHECK = 0.5  # with its own words: HAProxy's first checks were seen passed this long before the load
ROUND, FAULTY_ROUND, LATE = 0.1, 0.6, 0.05  # with its own words: LiteLLM's rounds (faulty: a check timed out)


def own_words(gateway: str, scenario: Scenario, replicas: list[str]) -> list[dict[str, Any]]:
    """What the gateway itself said in such a run: HAProxy's servers UP 1/2 INI, then UP L7OK; LiteLLM's
    rounds, stamped, each starting interval + LATE after the previous one's write."""
    addresses = {r: f"127.0.0.1:{31000 + i}" for i, r in enumerate(replicas)}
    if gateway == "haproxy":
        return [{"type": "hosts", "ts": T0 - when, "hosts": {a: flags for a in addresses.values()}}
                for when, flags in ((GATEWAY_UP, "UP 1/2 INI"), (FIRST_CHECK, "UP L7OK"))]
    if gateway != "litellm" or scenario.gateway.health_check is None:
        return []
    (fault,) = scenario.faults
    rounds, t = [], T0 - 3.0
    while t < T0 + scenario.load.duration:
        faulty = fault.at - 1 <= t - T0 <= fault.at + fault.duration
        written = t + (FAULTY_ROUND if faulty else ROUND)
        rounds.append({"round": len(rounds) + 1, "started": t, "written": written})
        t = written + scenario.gateway.health_check.interval + LATE
    return [{"type": "gateway.health_rounds", "ts": T0 + scenario.load.duration, "gateway": gateway,
             "rounds": rounds}]


def journal(text: str, file: str, gateway: str, scenario: Scenario, detected: float | None,
            recovered: float | None, words: bool = False) -> list[dict[str, Any]]:
    """A run of ``scenario`` whose gateway marks the fault's replicas unhealthy ``detected`` s after the
    fault's start and healthy again ``recovered`` s after its end (None: never); ``words``: with the
    gateway's own words (``own_words``)."""
    (fault,) = scenario.faults
    replicas = [f"chat[{i}]" for i in range(scenario.pools["chat"])]
    broken = resolve(fault.target, scenario.pools)
    start, end = T0 + fault.at, T0 + fault.at + fault.duration
    out: list[dict[str, Any]] = [
        {"type": "run.started", "ts": T0 - 3, "scenario": scenario.name, "file": file, "text": text, "seed": 7,
         "replicas": replicas, "gateway": gateway, "runtime": "local", "chaosgate": "0",
         "python": "3.11", "command": "chaosgate run"},
        {"type": "stack.ready", "ts": T0 - 2, "endpoints": {"replicas": {
            r: {"proxy_url": f"http://127.0.0.1:{31000 + i}"} for i, r in enumerate(replicas)}}},
        *({"type": "health", "ts": T0 - GATEWAY_UP, "replica": r, "healthy": True, "flags": ""} for r in replicas),
        {"type": "load.started", "ts": T0},
        *(own_words(gateway, scenario, replicas) if words else []),
    ]
    rate = nominal_facts(scenario, split_target(fault.target)[0]).rate
    count = int(scenario.load.duration * rate)
    out += [{"type": "request", "ts": T0 + i / rate, "kind": "chat", "latency": 0.03, "status": 200, "error": None,
             "replica": replicas[i % len(replicas)]} for i in range(count)]
    fields = {"fault": fault.label, "kind": fault.kind, "target": fault.target, "replicas": broken, "params": {}}
    out += [{"type": "fault.started", "ts": start, **fields}, {"type": "fault.cleared", "ts": end, **fields}]
    if detected is not None:
        out += [{"type": "health", "ts": start + detected, "replica": r, "healthy": False, "flags": "down"}
                for r in broken]
        if recovered is not None:
            out += [{"type": "health", "ts": end + recovered, "replica": r, "healthy": True, "flags": ""}
                    for r in broken]
    out += [{"type": "load.finished", "ts": T0 + scenario.load.duration},
            {"type": "run.finished", "ts": T0 + scenario.load.duration + 1, "outcome": "complete"}]
    return sorted(out, key=lambda e: e["ts"])


def cases() -> list[Any]:
    out = []
    for path in SUITE:
        for gateway in GATEWAYS:
            scenario = parse_scenario(path.read_text(), str(path), gateway)
            for i, expectation in enumerate(scenario.expect):
                if expectation.kind in ("upstream_unhealthy", "upstream_healthy") and \
                        getattr(expectation, "within", None) == "promised":
                    for words in (False, True):
                        out.append(pytest.param(path, gateway, i, words, id=f"{path.stem}-{gateway}-"
                                                f"{expectation.kind}" + ("-own-words" if words else "")))
    return out


@cache
def loaded(path: Path, gateway: str) -> tuple[str, Scenario]:
    text = path.read_text()
    return text, parse_scenario(text, str(path), gateway)


def judged(path: Path, gateway: str, index: int, detected: float | None, recovered: float | None,
           words: bool = False) -> tuple[bool, Any]:
    """The verdict of expectation ``index`` on the journal, as the judge gives it (judge_all), and its promise."""
    text, scenario = loaded(path, gateway)
    timeline = build_timeline(journal(text, str(path), gateway, scenario, detected, recovered, words))
    expectation = scenario.expect[index]
    promise = promise_for(scenario, expectation, timeline)
    return expectation.evaluate_promised(timeline, promise).passed, promise


def test_judged_is_what_the_judge_says() -> None:
    path = SUITE[0]
    text, scenario = loaded(path, "envoy")
    judgement = judge_events(journal(text, str(path), "envoy", scenario, 1.5, 1.5))
    for i, verdict in enumerate(judgement.verdicts):
        if scenario.expect[i].kind in ("upstream_unhealthy", "upstream_healthy"):
            assert judged(path, "envoy", i, 1.5, 1.5) == (verdict.passed, (judgement.promises or [])[i])


def windows(path: Path, gateway: str, words: bool = False) -> tuple[Scenario, Window, Window]:
    """The promised detection and recovery windows of a run of the file on the gateway."""
    text, scenario = loaded(path, gateway)
    judgement = judge_events(journal(text, str(path), gateway, scenario, 1.0, 1.0, words))
    kinds = [e.kind for e in scenario.expect]
    promises = judgement.promises or []
    detection, recovery = promises[kinds.index("upstream_unhealthy")], promises[kinds.index("upstream_healthy")]
    assert isinstance(detection, Window) and isinstance(recovery, Window), (detection, recovery)
    return scenario, detection, recovery


def middle(window: Window) -> float:
    return (window.lower + window.upper) / 2


@pytest.mark.parametrize(("path", "gateway", "index", "words"), cases())
def test_the_window_fails_just_outside_and_passes_just_inside(path: Path, gateway: str, index: int,
                                                              words: bool) -> None:
    scenario, detection, recovery = windows(path, gateway, words)
    (fault,) = scenario.faults
    detecting = scenario.expect[index].kind == "upstream_unhealthy"
    window = detection if detecting else recovery
    # Where the measured time can lie: during the fault (detection), or until the load ends (recovery).
    available = fault.duration if detecting else scenario.load.duration - fault.at - fault.duration

    def passed(t: float) -> bool:
        ok, promise = judged(path, gateway, index, t if detecting else middle(detection),
                             middle(recovery) if detecting else t, words)
        assert promise == window  # the same journal facts, the same window
        return bool(ok)

    assert not window.says_nothing_within(available), f"{window.text()} spans all {available:g}s"
    assert window.upper + STEP < available  # a late detection (or recovery) can happen, and fails
    assert not passed(window.upper + STEP)
    assert passed(window.upper - STEP) and passed(middle(window))
    if window.lower > 0:  # an early detection (or recovery) fails too
        assert not passed(window.lower - STEP)
        assert passed(window.lower + STEP)
    else:  # 0 is allowed by the configuration: say why the earliest cannot be later
        assert window.earliest <= STEP or window.lower == 0.0


@pytest.mark.parametrize(("path", "gateway", "index", "words"), [c for c in cases() if "unhealthy" in c.id])
def test_never_detecting_fails(path: Path, gateway: str, index: int, words: bool) -> None:
    assert judged(path, gateway, index, None, None, words)[0] is False


def test_litellm_windows_from_its_own_rounds_are_narrower() -> None:
    """With the proxy's stamps, a round is the longest the run saw (FAULTY_ROUND), not the nominal 1.1s."""
    path = next(p for p in SUITE if p.stem == "reset")
    scenario, nominal, _ = windows(path, "litellm")
    _, stamped, recovery = windows(path, "litellm", words=True)
    assert scenario.gateway.health_check is not None
    span = FAULTY_ROUND + scenario.gateway.health_check.interval + LATE + FAULTY_ROUND
    assert (stamped.earliest, stamped.latest) == pytest.approx((0.0, span))
    assert recovery.latest == pytest.approx(span) and stamped.latest < nominal.latest
    assert "the longest of the" in stamped.how and "its own stamps" in stamped.how


@pytest.mark.parametrize("gateway", ["envoy", "haproxy"])
def test_active_checks_give_an_early_side_after_start_up(gateway: str) -> None:
    """The suite's faults start after HAProxy's first checks: fall failed checks are needed, not one."""
    path = next(p for p in SUITE if p.stem == "reset")
    _, detection, recovery = windows(path, gateway)
    assert detection.earliest == pytest.approx(1.0) and recovery.earliest == pytest.approx(1.0)


def test_the_run_report_shows_each_window_width_beside_the_faults_duration() -> None:
    path = next(p for p in SUITE if p.stem == "reset")
    text, scenario = loaded(path, "litellm")
    page = render_run(RunData.from_events(journal(text, str(path), "litellm", scenario, 1.0, 1.0)))
    assert page.count('<span class="muted width">(width 6.4s of a 7s fault)</span>') == 2
