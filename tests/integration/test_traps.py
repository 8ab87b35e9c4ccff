"""Each shipped trap scenario (scenarios/traps/) runs on the real stack: the lint names its trap
before the stack starts, the trap really bites (checked from the journal), the scenario's
expectations (which encode the bitten behaviour) hold, and every measured detection and recovery
lies inside the window the gateway's configuration promises."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from harness.promise.check import rows
from harness.promise.window import OBSERVER_MARGIN, SCHEDULING_MARGIN
from harness.scenario import load_scenario
from harness.timeline import Timeline, build_timeline

from .conftest import ROOT, chaosgate, processes_of_run, require_components

TRAP_SCENARIOS = sorted((ROOT / "scenarios" / "traps").glob("*.yaml"))


def trap_of(path: Path) -> str:
    return path.read_text().split("\n", 1)[0].removeprefix("# TRAP ").split(":")[0]


def transitions_to_unhealthy(timeline: Timeline, replica: str, start: float, end: float) -> int:
    return sum(1 for c in timeline.health.get(replica, []) if start <= c.t <= end and not c.healthy)


# -- how each trap bites, from the journal ------------------------------------------------------------

def bites_no_traffic_interval(timeline: Timeline, summary: dict[str, Any]) -> None:
    """Detection came after the interval-only window ((T-1)·I, T·I] plus margin: the no-traffic timer held it."""
    scenario = load_scenario(ROOT / "scenarios/traps/envoy-no-traffic-interval.yaml")
    hc = scenario.gateway.health_check
    assert hc is not None
    (fault,) = summary["faults"]
    naive_latest = hc.unhealthy_threshold * hc.interval + fault["promised_detection"]["margin"]
    assert fault["detected_after"] > naive_latest, fault
    window = timeline.faults[0]
    broken = [r for r in timeline.requests_between(window.start, window.start + fault["detected_after"])
              if r.reached({"chat[0]"}) and not r.ok]
    assert broken, "clients paid for the late detection: requests to chat[0] failed until it came"


def bites_panic_threshold(timeline: Timeline, summary: dict[str, Any]) -> None:
    """After Envoy marked both broken replicas unhealthy it kept routing to them (panic mode)."""
    detected = max(f["start"] + f["detected_after"] for f in summary["faults"])
    end = min(f["end"] for f in summary["faults"])
    after = timeline.requests_between(detected + 0.5, end)
    to_broken = [r for r in after if r.reached({"chat[0]", "chat[1]"})]
    assert len(to_broken) > len(after) / 3, (len(to_broken), len(after))
    assert not any("no healthy upstream" in (r.body or "") for r in after)


def bites_max_ejection_percent(timeline: Timeline, summary: dict[str, Any]) -> None:
    """Outlier detection never ejected the resetting replica: it kept getting (failing) requests."""
    window = timeline.faults[0]
    assert transitions_to_unhealthy(timeline, "chat[0]", 0, timeline.end) == 0
    late = [r for r in timeline.requests_between(window.start + 3, window.end - 0.5) if r.reached({"chat[0]"})]
    assert late and not any(r.ok for r in late)


def bites_uneject_flapping(timeline: Timeline, summary: dict[str, Any]) -> None:
    """The replica was ejected and readmitted over and over during the fault, although
    base_ejection_time alone would have kept it out for the whole fault after one ejection."""
    window = timeline.faults[0]
    assert transitions_to_unhealthy(timeline, "chat[0]", window.start, window.end) >= 3
    failed = [r for r in timeline.requests_between(window.start + 3, window.end) if r.reached({"chat[0]"}) and not r.ok]
    assert failed, "clients kept getting the replica's errors after the first ejection"


def bites_merge_window(timeline: Timeline, summary: dict[str, Any]) -> None:
    """After the admin API showed every replica unhealthy, clients were still served by some of them,
    for about update_merge_window and no longer; after the fault, a replica the admin API showed
    healthy again got its first request about one window later."""
    scenario = load_scenario(ROOT / "scenarios/traps/envoy-merge-window.yaml")
    merge = scenario.gateway.envoy.update_merge_window
    margin = OBSERVER_MARGIN + SCHEDULING_MARGIN
    (fault,) = summary["faults"]
    window = timeline.faults[0]
    detected = window.start + fault["detected_after"]
    hidden = [r for r in timeline.requests_between(detected + margin, window.end)
              if r.ok and r.replica in window.replicas]
    assert hidden, "clients were still served by replicas the admin API already showed unhealthy"
    assert max(r.t for r in hidden) < detected + merge + 2 * margin, "only for about one merge window"
    waits = []
    for replica in window.replicas:
        healthy = timeline.first_healthy(replica, window.end)
        assert healthy is not None
        first = min((r.t for r in timeline.requests_between(healthy, timeline.end) if r.reached({replica})), default=None)
        assert first is not None, f"{replica} got traffic again"
        waits.append(first - healthy)
    assert max(waits) >= merge - margin, ("a readmitted replica got no request for about one merge window", waits)


def bites_haproxy_startup_state(timeline: Timeline, summary: dict[str, Any]) -> None:
    """Detected after one failed check: before the steady-state earliest, (fall - 1) failed checks
    fastinter apart."""
    scenario = load_scenario(ROOT / "scenarios/traps/haproxy-startup-state.yaml")
    hc = scenario.gateway.health_check
    assert hc is not None
    fastinter = scenario.gateway.haproxy.fastinter or hc.interval
    (fault,) = summary["faults"]
    assert fault["detected_after"] is not None and fault["detected_after"] < (hc.unhealthy_threshold - 1) * fastinter
    before = [r for r in timeline.requests_between(0, fault["detected_after"]) if r.reached({"chat[2]"})]
    assert before and not any(r.ok for r in before), "routed to blindly until the first check"


def bites_haproxy_observe_retries(timeline: Timeline, summary: dict[str, Any]) -> None:
    """observe never marked chat[0] DOWN, and no client saw its 500s (HAProxy's log shows why: below)."""
    assert transitions_to_unhealthy(timeline, "chat[0]", 0, timeline.end) == 0
    (fault,) = summary["faults"]
    assert fault["detected_after"] is None
    window = timeline.faults[0]
    during = timeline.requests_between(window.start, window.end)
    assert during and all(r.ok for r in during)


def retried_in_haproxys_log(run_dir: Path) -> None:
    """chat[0]'s 500s reached HAProxy all through the fault: requests retried on another server (the log's
    retries field "+1"), all answered 200 by chat-1 or chat-2; and observe never acted."""
    log = (run_dir / "logs" / "haproxy.log").read_text()
    line = re.compile(r" chat/(chat-\d) \S+ (\d{3}) .* \d+/\d+/\d+/\d+/(\+?\d+) \d+/\d+ \"")
    retried = [m.groups()[:2] for m in line.finditer(log) if m.group(3) == "+1"]
    assert len(retried) >= 20 and {server for server, _ in retried} <= {"chat-1", "chat-2"}, retried
    assert {status for _, status in retried} == {"200"}
    assert "consecutive errors" not in log


def bites_nginx_single_server(timeline: Timeline, summary: dict[str, Any]) -> None:
    """nginx never disabled the only server: requests went on reaching it and failing, long into the fault."""
    window = timeline.faults[0]
    assert transitions_to_unhealthy(timeline, "chat[0]", 0, timeline.end) == 0
    late = [r for r in timeline.requests_between(window.start + 2, window.end - 0.5) if r.reached({"chat[0]"})]
    assert late and not any(r.ok for r in late)


def bites_nginx_worker_state(timeline: Timeline, summary: dict[str, Any]) -> None:
    """The first worker's disabling (the view's "unhealthy") did not stop the other workers: requests kept
    reaching chat[0] and failing after it, and more than max_fails failed (each worker needed its own)."""
    options = load_scenario(ROOT / "scenarios/traps/nginx-worker-state.yaml").gateway.nginx
    assert options.max_fails is not None and options.fail_timeout is not None
    window = timeline.faults[0]
    # fail_timeout outlasts the fault: a worker that disabled chat[0] sends it nothing more during the fault
    assert options.fail_timeout > window.end - window.start
    detected = timeline.first_unhealthy("chat[0]", window.start)
    assert detected is not None and detected < window.end
    # requests that began after the view saw the first worker's [warn] line (+ the observer's sampling margin)
    after = [r for r in timeline.requests_between(detected + OBSERVER_MARGIN, window.end)
             if r.reached({"chat[0]"}) and not r.ok]
    assert after, "other workers kept sending chat[0] requests after the first one disabled it"
    failed = [r for r in timeline.requests_between(window.start, window.end) if r.reached({"chat[0]"}) and not r.ok]
    assert len(failed) > options.max_fails, len(failed)


def bites_litellm_health_endpoint(timeline: Timeline, summary: dict[str, Any]) -> None:
    """LiteLLM never took the replica out: it went on serving requests to the end of the fault."""
    window = timeline.faults[0]
    assert transitions_to_unhealthy(timeline, "chat[0]", 0, timeline.end) == 0
    # after two rounds of background checks (every 2s) it is still served
    served = [r for r in timeline.requests_between(window.start + 5, window.end - 0.5) if r.replica == "chat[0]"]
    assert served and all(r.ok for r in served)


def bites_litellm_health_filter_bypass(timeline: Timeline, summary: dict[str, Any]) -> None:
    """After LiteLLM marked the last deployment unhealthy, it went on routing requests to them (500s from
    the dead replicas), and never answered its own 429 all-down response."""
    (fault,) = summary["faults"]
    all_marked = fault["start"] + fault["detected_after"]
    after = timeline.requests_between(all_marked + 0.5, fault["end"] - 0.5)  # a request just before the end may succeed
    routed = [r for r in after if r.routed_to in {"chat[0]", "chat[1]", "chat[2]"}]
    assert after and len(routed) == len(after), (len(routed), len(after))
    assert all(r.status == 500 and "Connection error" in (r.body or "") for r in routed)
    assert not any(r.status == 429 for r in timeline.requests)


def bites_litellm_no_health(timeline: Timeline, summary: dict[str, Any]) -> None:
    """LiteLLM never took chat[0] out: requests kept reaching it, and failing, until the fault's last second."""
    window = timeline.faults[0]
    assert transitions_to_unhealthy(timeline, "chat[0]", 0, timeline.end) == 0
    # (a request started in the fault's last half second can reach chat[0] after it healed: left out)
    late = [r for r in timeline.requests_between(window.end - 2.0, window.end - 0.5) if r.routed_to == "chat[0]"]
    assert late and not any(r.ok for r in late), [r for r in late if r.ok]


def _ended_on_chat0_in_fault(timeline: Timeline, outlives: float = 0.5) -> list[Any]:
    """The requests Portkey's x-portkey-last-used-option-index says ended on chat[0], started in the fault (less its
    last ``outlives`` seconds: a request started then, or its retry, can outlive it)."""
    window = timeline.faults[0]
    return [r for r in timeline.requests_between(window.start, window.end - outlives) if r.routed_to == "chat[0]"]


def bites_portkey_no_health(timeline: Timeline, summary: dict[str, Any]) -> None:
    """Portkey kept sending chat[0] its share until the fault's last second, and every one of those failed."""
    window = timeline.faults[0]
    on_dead = _ended_on_chat0_in_fault(timeline)
    assert on_dead and not any(r.ok for r in on_dead), [r for r in on_dead if r.ok]
    assert any(r.t >= window.end - 1.5 for r in on_dead), "chat[0] was still picked in the fault's last seconds"
    assert all(r.status == 500 and "ECONNREFUSED" in (r.body or "") for r in on_dead), {r.body for r in on_dead}


def bites_portkey_retry_same_target(timeline: Timeline, summary: dict[str, Any]) -> None:
    """The requests on chat[0] failed after Portkey's 1s backoff and the retry on chat[0] itself (refused too)."""
    on_dead = _ended_on_chat0_in_fault(timeline, outlives=1.5)  # a retry 1s later may find chat[0] back
    assert on_dead and not any(r.ok for r in on_dead)
    assert all(r.latency >= 1.0 for r in on_dead), sorted(r.latency for r in on_dead)[:3]
    ids = {r.id for r in on_dead}
    assert not [a for a in timeline.attempts if a.request_id in ids], "the retry reached another replica"


def bites_portkey_timeout_not_retried(timeline: Timeline, summary: dict[str, Any]) -> None:
    """The requests on chat[0] got Portkey's own 408 after one 1s try: the 2 retries did nothing."""
    on_dead = _ended_on_chat0_in_fault(timeline)
    assert on_dead and all(r.status == 408 for r in on_dead), {r.status for r in on_dead}
    assert all(1.0 <= r.latency < 2.0 for r in on_dead), sorted(r.latency for r in on_dead)
    tries = {r.id: sum(1 for a in timeline.attempts if a.request_id == r.id and not a.health) for r in on_dead}
    assert set(tries.values()) == {1}, tries


BITES = {
    "envoy.no-traffic-interval": bites_no_traffic_interval,
    "envoy.panic-threshold": bites_panic_threshold,
    "envoy.max-ejection-percent": bites_max_ejection_percent,
    "envoy.uneject-flapping": bites_uneject_flapping,
    "envoy.merge-window": bites_merge_window,
    "haproxy.startup-state": bites_haproxy_startup_state,
    "haproxy.observe-retries": bites_haproxy_observe_retries,
    "nginx.single-server": bites_nginx_single_server,
    "nginx.worker-state": bites_nginx_worker_state,
    "litellm.health-endpoint": bites_litellm_health_endpoint,
    "litellm.health-filter-bypass": bites_litellm_health_filter_bypass,
    "litellm.no-health": bites_litellm_no_health,
    "litellm.check-routing-off": bites_litellm_no_health,  # the same bite: its checks failed, and took nothing out
    "portkey.no-health": bites_portkey_no_health,
    "portkey.retry-same-target": bites_portkey_retry_same_target,
    "portkey.timeout-not-retried": bites_portkey_timeout_not_retried,
}


# Bites that only the gateway's own log shows (its run folder).
LOG_BITES = {"haproxy.observe-retries": retried_in_haproxys_log}


def test_every_trap_scenario_has_a_bite_check() -> None:
    assert {trap_of(p) for p in TRAP_SCENARIOS} <= set(BITES)


@pytest.mark.integration
@pytest.mark.parametrize("scenario_file", TRAP_SCENARIOS, ids=[p.stem for p in TRAP_SCENARIOS])
def test_trap_scenario_bites_and_passes(scenario_file: Path) -> None:
    require_components(load_scenario(scenario_file).gateway.kind)
    # A short folder: HAProxy's stats socket lives in the run folder, and a unix socket path is at most ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="cg-trap-", dir="/tmp") as out:
        check_trap_scenario(scenario_file, Path(out))


def check_trap_scenario(scenario_file: Path, tmp_path: Path) -> None:
    scenario = load_scenario(scenario_file)
    trap = trap_of(scenario_file)
    lint = chaosgate("lint", str(scenario_file), timeout=60)
    assert f"[{trap}]" in lint.stdout, lint.stdout + lint.stderr

    result = chaosgate("run", str(scenario_file), "--out", str(tmp_path), timeout=scenario.load.duration + 90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{scenario.name}: PASSED" in result.stdout
    # The lint named the trap before the stack started.
    named = result.stderr.find(f"[{trap}]")
    assert 0 <= named < result.stderr.find("starting the stack"), result.stderr

    run_dir = tmp_path / scenario.name
    events = read_journal(run_dir / "journal.jsonl")
    assert trap in events[0]["traps"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"] and any(trap in w for w in summary["warnings"])
    outside = [row for row in rows(summary) if row[-1] == "NO"]  # the configuration's promise held in this run
    assert not outside, outside
    BITES[trap](build_timeline(events), summary)
    if (log_bite := LOG_BITES.get(trap)) is not None:
        log_bite(run_dir)
    assert processes_of_run(run_dir) == [], "the stack was torn down"
