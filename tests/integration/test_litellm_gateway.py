"""The LiteLLM proxy (PyPI litellm[proxy]) started through the harness in front of the fake replicas.

Its column of the comparison suite (tests/integration/test_compare_suite.py) pins what it does with
background health checks only (no outlier_detection: cooldowns off), in its own words. Here: with
outlier_detection, deployments cool down and clients get LiteLLM's own 429 "No deployments
available"; and the proxy talks only to loopback, and runs with the garbage-collection workaround
that keeps CPython 3.11's contextvars crash away (harness/gateways/litellm_probe.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.journal import read_journal
from harness.runtimes.local import LocalRuntime
from harness.scenario import load_scenario

from .conftest import (ROOT, chaosgate, changes_match_the_gateways_own_stamps, health_changes, processes_of_run,
                       require_components, wait_for)

COMPARE = ROOT / "scenarios" / "compare"
STARTUP = 90.0  # LiteLLM's proxy imports for 8-25 s on a busy 2-core machine (LitellmGateway.startup_timeout)


def run_passes(scenario_file: Path, out: Path) -> list[dict[str, Any]]:
    """Run ``scenario_file`` on LiteLLM (--gateway litellm); it must pass every expectation."""
    scenario = load_scenario(scenario_file, "litellm")
    result = chaosgate("run", str(scenario_file), "--gateway", "litellm", "--out", str(out), "--quiet",
                       timeout=scenario.load.duration + STARTUP + 60)
    run_dir = out / scenario.name
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"] and summary["complete"], summary
    assert summary["gateway"] == "litellm"
    assert processes_of_run(run_dir) == [], "the stack was torn down"
    return read_journal(run_dir / "journal.jsonl")


def failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "request" and e["error"]]


@pytest.mark.integration
def test_litellm_all_down_with_cooldowns_answers_429(tmp_path: Path) -> None:
    """With outlier_detection, each deployment cools down (a refused call counts in 1.108.7) and, once all
    are cooled down, the router answers its own 429 until the cooldowns (longer than the fault) run out."""
    require_components("litellm")
    document = yaml.safe_load((COMPARE / "all-down.yaml").read_text())
    document["name"] = "all-down-cooldown"
    document["gateway"]["outlier_detection"] = {"consecutive_5xx": 2, "base_ejection_time": "10s"}
    document["load"]["duration"] = "24s"
    document["faults"][0]["for"] = "8s"
    document["expect"] = [
        {"kind": "upstream_unhealthy", "target": "chat[*]", "within": "promised"},
        {"kind": "all_down_response", "status": 429, "body_contains": "No deployments available for selected model",
         "within": "6s", "min_share": 0.9},
        {"kind": "upstream_healthy", "target": "chat[*]", "within": "promised"},
    ]
    scenario_file = tmp_path / "all-down-cooldown.yaml"
    scenario_file.write_text(yaml.safe_dump(document, sort_keys=False))
    events = run_passes(scenario_file, tmp_path / "out")
    answers = [e for e in events if e["type"] == "request" and e["status"] == 429]
    assert answers
    for answer in answers:  # the journal keeps the first 300 characters of a failed answer's body
        assert answer["body"].startswith('{"error":{"message":"No deployments available for selected model, '
                                         'Try again in 10.0 seconds. All deployments for selected model are in '
                                         'cooldown. Passed model=fake-model.'), answer["body"]
    # Before every deployment cooled down, clients got the upstream's failure as LiteLLM's 500 (a request
    # counts when it ended after the fault began: one in flight then fails too)
    fault_start = next(e["ts"] for e in events if e["type"] == "fault.started")
    first_429 = min(e["ts"] for e in answers)
    before = [e for e in failures(events) if e["ts"] + e["latency"] >= fault_start and e["ts"] < first_429]
    assert before and all(e["status"] == 500 and "Connection error." in e["body"] for e in before), before
    # the journal names the cooldown (a replica a failed health check took out first keeps those words: the
    # cooldown that follows is no change of its health)
    assert any("cooldown" in flags for replica in ("chat[0]", "chat[1]", "chat[2]")
               for healthy, flags in health_changes(events, replica) if not healthy)
    # each cooldown's start and end is the router's own stamp of it (the probe's litellm-health.jsonl)
    changes_match_the_gateways_own_stamps("litellm", tmp_path / "out" / "all-down-cooldown")


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/{tcp,udp}[6] (little-endian 32-bit words) as an IP address."""
    raw = bytes.fromhex(hex_address.split(":")[0])
    return ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))


def remote_addresses(pid: int) -> set[str]:
    """The peer addresses of every TCP and UDP socket process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    peers = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                peers.add(str(_address(fields[2])))
    return peers


@pytest.mark.integration
def test_litellm_only_talks_to_loopback_and_collects_garbage_between_updates(tmp_path: Path) -> None:
    """While it serves, health-checks and retries, every socket of the proxy has a loopback peer (or none);
    automatic garbage collection is off in the proxy and the probe's thread collects instead."""
    require_components("litellm")
    scenario = load_scenario(COMPARE / "reset.yaml", "litellm")
    runtime = LocalRuntime()
    try:
        stack = runtime.up(scenario, tmp_path / scenario.name)
        pid = next(p for p in processes_of_run(tmp_path / scenario.name)
                   if any(arg.endswith(b"/litellm") for arg in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")))
        peers: set[str] = set()
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        with httpx.Client(base_url=stack.gateway.url, timeout=30) as client:
            for _ in range(12):
                assert client.post("/v1/chat/completions", json=body).status_code == 200
                peers |= remote_addresses(pid)
        loopback_or_none = {"127.0.0.1", "0.0.0.0", "::", "::1", "::ffff:127.0.0.1"}
        assert peers and peers <= loopback_or_none, peers
        # (the probe runs inside the proxy; importing it here would turn the test process's collector off)
        first = httpx.get(stack.gateway.admin_url, timeout=10).json()["gc"]
        assert first["automatic"] is False
        wait_for(lambda: httpx.get(stack.gateway.admin_url, timeout=10).json()["gc"]["collections"]
                 > first["collections"], timeout=10.0, what="the probe's thread to collect garbage")
    finally:
        runtime.down()
