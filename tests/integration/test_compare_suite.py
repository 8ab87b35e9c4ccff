"""The comparison suite (scenarios/compare/): the same seven faults against all four real gateways.

Each file runs through `chaosgate compare` on Envoy, HAProxy, nginx and the LiteLLM proxy in turn.
Every gateway must pass the expectations that encode what it was measured to do (those scoped to
it with `gateways:` and the common ones), and every measured detection and recovery must lie inside
the window that gateway's own configuration promises (harness/promise/), a window that excludes
something (its earliest above 0, or its latest plus margin before the fault's end); a gateway that
promises never to notice the fault must indeed not notice it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from harness.promise.check import rows
from harness.scenario import load_scenario

from .conftest import (ROOT, chaosgate, changes_match_the_gateways_own_stamps, health_changes, processes_of_run,
                       require_components)

SUITE = sorted((ROOT / "scenarios" / "compare").glob("*.yaml"))
GATEWAYS = ["envoy", "haproxy", "nginx", "litellm"]
START_UP_ALLOWANCE = 60  # per gateway: the LiteLLM proxy alone takes 8-25 s to import on a busy machine
PARALLEL = 2  # runs at a time, beside the other xdist workers: they wait on timers more than they compute

# How each gateway words a replica it took out, in its own view (the journal's health flags).
OWN_WORDS = {"envoy": ("failed_active_health_check", "failed_outlier_check"), "haproxy": ("DOWN",),
             "nginx": ("temporarily disabled",), "litellm": ("health_check_failed", "cooldown")}


# -- what each gateway did, in its own words (from the journal of its run of one suite file) -----------

Events = list[dict[str, Any]]


def failures_during_the_fault(events: Events) -> Events:
    start = next(e["ts"] for e in events if e["type"] == "fault.started")
    end = next(e["ts"] for e in events if e["type"] == "fault.cleared")
    return [e for e in events if e["type"] == "request" and e["error"] and start <= e["ts"] < end]


def litellm_reset(events: Events, run_dir: Path) -> None:
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert ready["gateway_version"].startswith("1.108.")
    assert "background_health_checks: true" in ready["gateway_config"]
    assert "disable_cooldowns: true" in ready["gateway_config"]  # no outlier_detection in the suite
    assert health_changes(events, "chat[0]") == [(True, "healthy"), (False, "health_check_failed"), (True, "healthy")]
    failed = failures_during_the_fault(events)  # a reset reaches the client as LiteLLM's 500 (no retries)
    assert all(e["status"] == 500 and "Connection error." in e["body"] for e in failed), failed
    requests = [e for e in events if e["type"] == "request"]
    assert all(e["upstream"] for e in requests), "every answer, the failed ones too, names the deployment picked"
    assert {e["upstream"] for e in requests} == {r["gateway_address"] for r in ready["endpoints"]["replicas"].values()}
    assert all(e["replica"] for e in requests if e["status"] == 200)  # the replica's identity header, passed on
    # The proxy stamped its check rounds (harness/gateways/litellm_probe.py): each one's verdicts written after its
    # checks began, and the next round starting no sooner than health_check_interval after that write.
    (stamped,) = [e for e in events if e["type"] == "gateway.health_rounds"]
    rounds = [r for r in stamped["rounds"] if r["written"] is not None]
    assert len(rounds) >= 10 and all(r["written"] > r["started"] for r in rounds), stamped
    interval = load_scenario(ROOT / "scenarios" / "compare" / "reset.yaml", "litellm").gateway.health_check
    assert interval is not None
    assert all(b["started"] - a["written"] >= interval.interval - 0.01 for a, b in zip(rounds, rounds[1:])), rounds
    summary = json.loads((run_dir / "summary.json").read_text())
    promised = [v["promised"]["how"] for v in summary["expectations"] if v["kind"] == "upstream_unhealthy"]
    assert promised and "rounds the proxy ran from then on (its own stamps" in promised[0], promised


def litellm_all_down(events: Events, run_dir: Path) -> None:
    """Every deployment failed its check and cooldowns are off: LiteLLM bypasses its health filter."""
    failed = failures_during_the_fault(events)
    assert failed and all(e["status"] == 500 and "Connection error." in e["body"] for e in failed), failed
    for replica in ("chat[0]", "chat[1]", "chat[2]"):
        assert health_changes(events, replica)[1] == (False, "health_check_failed")


def litellm_blackhole(events: Events, run_dir: Path) -> None:
    """The router's own timeout (408) does not cool a deployment down; the failed check takes it out."""
    assert health_changes(events, "chat[0]") == [(True, "healthy"), (False, "health_check_failed"), (True, "healthy")]
    failed = failures_during_the_fault(events)
    assert all(e["status"] == 408 and "litellm.Timeout" in e["body"] for e in failed), failed


def never_takes_it_out(events: Events, run_dir: Path) -> None:
    """The gateway never asks /health (nginx) or checks with a chat completion (LiteLLM): chat[0] serves on."""
    assert [healthy for healthy, _ in health_changes(events, "chat[0]")] in ([True], [])
    start = next(e["ts"] for e in events if e["type"] == "fault.started")
    end = next(e["ts"] for e in events if e["type"] == "fault.cleared")
    served = [e for e in events if e["type"] == "request" and start <= e["ts"] < end and e["replica"] == "chat[0]"]
    assert served and all(e["status"] == 200 for e in served)


def slow_but_served_until_detected(events: Events, run_dir: Path) -> None:
    """Before the check's timeout took chat[0] out, its requests were slow, not failed."""
    start = next(e["ts"] for e in events if e["type"] == "fault.started")
    detected = next(e["ts"] for e in events if e["type"] == "health" and not e["healthy"])
    latency = getattr(load_scenario(ROOT / "scenarios/compare/slow-replica.yaml").faults[0], "latency")
    slow = [e for e in events if e["type"] == "request" and start <= e["ts"] < detected and e["replica"] == "chat[0]"]
    assert all(e["status"] == 200 and e["latency"] >= latency for e in slow), slow


def haproxy_reset(events: Events, run_dir: Path) -> None:
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert ready["gateway_version"].startswith("2.6") and "option httpchk GET /health" in ready["gateway_config"]
    changes = health_changes(events, "chat[0]")  # its stats socket's words: DOWN while it resets, UP after
    assert [healthy for healthy, _ in changes] == [True, False, True] and changes[1][1].startswith("DOWN"), changes


def haproxy_all_down(events: Events, run_dir: Path) -> None:
    answers = {e.get("body", "") for e in failures_during_the_fault(events) if e["status"] == 503}
    assert answers and all("No server is available to handle this request." in body for body in answers)


def nginx_reset(events: Events, run_dir: Path) -> None:
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert ready["gateway_version"] == "1.22.1" and "max_fails=1 fail_timeout=2s" in ready["gateway_config"]
    changes = health_changes(events, "chat[0]")
    assert [healthy for healthy, _ in changes] == [True, False, True], changes
    assert changes[1][1].startswith("temporarily disabled (max_fails reached")  # from nginx's error log
    assert changes[2][1].startswith("answered again")                         # from its access log
    assert any("health_check: not applicable to nginx" in w for w in events[0]["warnings"])


def nginx_all_down(events: Events, run_dir: Path) -> None:
    answers = [e.get("body", "") for e in failures_during_the_fault(events) if e["status"] == 502]
    assert answers and all("<center><h1>502 Bad Gateway</h1></center>" in body for body in answers)
    assert "no live upstreams" in (run_dir / "nginx" / "error.log").read_text()


# HAProxy's httplog line: the server that answered, the status, and the retries field ("+1": retried once on
# another server, option redispatch).
HAPROXY_LOG_LINE = re.compile(r" chat/(chat-\d) \S+ (\d{3}) .* \d+/\d+/\d+/\d+/(\+?\d+) \d+/\d+ \"")


def during_the_fault(events: Events) -> tuple[float, float]:
    return (next(e["ts"] for e in events if e["type"] == "fault.started"),
            next(e["ts"] for e in events if e["type"] == "fault.cleared"))


def haproxy_never_hears_of_retried_500s(events: Events, run_dir: Path) -> None:
    """HAProxy 2.6 reports only a request's last try to observe: chat[0]'s 500s were all retried on another
    server (redispatch), none reached a client, and observe never marked chat[0] DOWN."""
    ready = next(e for e in events if e["type"] == "stack.ready")
    config = ready["gateway_config"]
    assert ready["gateway_version"].startswith("2.6")
    assert "observe layer7 error-limit 3 on-error mark-down" in config and "option redispatch 1" in config
    assert re.search(r"retry-on .*\b500\b", config), config
    assert [healthy for healthy, _ in health_changes(events, "chat[0]")] == [True]
    assert not failures_during_the_fault(events)
    log = (run_dir / "logs" / "haproxy.log").read_text()
    retried = [m.groups() for m in HAPROXY_LOG_LINE.finditer(log) if m.group(3) == "+1"]
    assert len(retried) >= 20, "chat[0]'s 500s were retried on another server"  # a third of ~150 tries
    assert {server for server, _, _ in retried} <= {"chat-1", "chat-2"} and {s for _, s, _ in retried} == {"200"}
    assert "consecutive errors" not in log  # observe's own words when it acts


def envoy_ejects_and_readmits(events: Events, run_dir: Path) -> None:
    """Every retried 500 counts: outlier detection ejects chat[0], the next passing check readmits it (it flaps:
    the envoy.uneject-flapping lint), and the retries keep every client answer a 200."""
    start, end = during_the_fault(events)
    ejections = [e for e in events if e["type"] == "health" and e["replica"] == "chat[0]" and not e["healthy"]
                 and start <= e["ts"] <= end]
    assert len(ejections) >= 2 and all("failed_outlier_check" in e["flags"] for e in ejections), ejections
    assert not failures_during_the_fault(events)


def nginx_counts_what_it_retries(events: Events, run_dir: Path) -> None:
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert "http_500" in ready["gateway_config"] and "max_fails=3 fail_timeout=2s" in ready["gateway_config"]
    changes = health_changes(events, "chat[0]")
    assert [healthy for healthy, _ in changes] == [True, False, True], changes
    assert changes[1][1].startswith("temporarily disabled (max_fails reached")
    assert not failures_during_the_fault(events)


OWN_CHECKS: dict[tuple[str, str], Callable[[Events, Path], None]] = {
    ("reset", "haproxy"): haproxy_reset,
    ("reset", "nginx"): nginx_reset,
    ("reset", "litellm"): litellm_reset,
    ("all-down", "haproxy"): haproxy_all_down,
    ("all-down", "nginx"): nginx_all_down,
    ("all-down", "litellm"): litellm_all_down,
    ("blackhole", "litellm"): litellm_blackhole,
    ("health-503", "nginx"): never_takes_it_out,
    ("health-503", "litellm"): never_takes_it_out,
    ("slow-replica", "litellm"): slow_but_served_until_detected,
    ("slow-replica", "envoy"): slow_but_served_until_detected,
    ("passive-retries", "haproxy"): haproxy_never_hears_of_retried_500s,
    ("passive-retries", "envoy"): envoy_ejects_and_readmits,
    ("passive-retries", "nginx"): nginx_counts_what_it_retries,
}


def test_the_suite_has_the_faults_the_issue_names() -> None:
    kinds = {load_scenario(path).faults[0].kind for path in SUITE}
    assert {"reset_peer", "timeout", "down", "llm_fault", "latency"} <= kinds
    assert any(load_scenario(path).faults[0].target == "chat[*]" for path in SUITE), "an all-down scenario"
    passive = [load_scenario(path) for path in SUITE if path.stem == "passive-retries"]
    assert passive and passive[0].gateway.outlier_detection and passive[0].gateway.retries, \
        "passive detection with retries, on every gateway"


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The whole suite compared once on every gateway, PARALLEL runs at a time (``compare --parallel``); each test
    below judges one scenario's table and runs."""
    require_components(*GATEWAYS)
    out = tmp_path_factory.mktemp("compare-suite")
    loads = sum(load_scenario(path).load.duration + START_UP_ALLOWANCE for path in SUITE) * len(GATEWAYS)
    result = chaosgate("compare", str(ROOT / "scenarios" / "compare"), "--gateways", ",".join(GATEWAYS),
                       "--out", str(out), "--parallel", str(PARALLEL), "-q", timeout=loads / PARALLEL + 120)
    return out, result


@pytest.mark.integration
def test_the_suite_index_has_every_scenario_and_gateway(compared: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, result = compared
    assert result.returncode == 0, result.stdout + result.stderr
    index = json.loads((out / "index.json").read_text())
    assert [row["scenario"] for row in index["scenarios"]] == [load_scenario(path).name for path in SUITE], index
    assert index["gateways"] == GATEWAYS and not index["interrupted"]


@pytest.mark.integration
@pytest.mark.parametrize("path", SUITE, ids=[p.stem for p in SUITE])
def test_every_gateway_passes_the_suite_inside_its_promised_windows(
        path: Path, compared: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    scenario = load_scenario(path)
    tmp_path = compared[0] / scenario.name
    table = json.loads((tmp_path / "compare.json").read_text())
    by_gateway = {row["gateway"]: row for row in table["gateways"]}
    assert list(by_gateway) == GATEWAYS
    failed = {g: [v for v in row["expectations"] if not v["passed"]] or row["reason"]
              for g, row in by_gateway.items() if row["status"] != "PASSED"}
    assert not failed, failed

    for gateway, row in by_gateway.items():
        run_dir = tmp_path / gateway / scenario.name
        summary = json.loads((run_dir / "summary.json").read_text())
        outside = [r for r in rows(summary) if r[-1] == "NO"]
        assert not outside, (gateway, outside)
        # Each gateway judged exactly the expectations scoped to it.
        judged = [v["kind"] for v in summary["expectations"]]
        assert judged == [e.kind for e in load_scenario(path, gateway).expect], gateway
        [fault] = row["faults"]
        for which in ("detection", "recovery"):  # every window excludes something: it can say no
            window = fault[f"promised_{which}"]
            if window and "earliest" in window:
                assert window["earliest"] > 0.02 or window["latest"] + window["margin"] < fault["duration"], \
                    (gateway, which, window, fault["duration"])
        promised = fault["promised_detection"]
        if promised and not promised.get("never") and not promised.get("unknown"):
            assert fault["detected_after"] is not None, (gateway, "promised to detect, never did")
            assert fault["detection_kept"] is True and fault["recovery_kept"] is True, (gateway, fault)
            events = read_journal(run_dir / "journal.jsonl")
            words = [e["flags"] for e in events if e["type"] == "health" and not e["healthy"]]
            assert words and all(any(own in w for own in OWN_WORDS[gateway]) for w in words), (gateway, words)
        if (check := OWN_CHECKS.get((path.stem, gateway))) is not None:
            check(read_journal(run_dir / "journal.jsonl"), run_dir)
        if gateway in ("envoy", "haproxy", "nginx", "litellm"):
            changes_match_the_gateways_own_stamps(gateway, run_dir)
        assert processes_of_run(run_dir) == [], f"{gateway}: the stack was torn down"
    page = (tmp_path / "compare.html").read_text()
    assert all(f'data-gateway="{g}"' in page for g in GATEWAYS)
