"""The mcp persona of the load: the official mcp client in harness.load.mcp_worker, driven by the
LoadGenerator like the Locust process, every session step journalled as a request."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.journal import JournalWriter, read_journal
from harness.load.config import LoadConfig
from harness.load.generator import LoadGenerator
from harness.load.mcp_worker import MCP_TOOL_CALLS
from harness.processes import ProcessGroup, answers, free_port

from .conftest import chaosgate


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One fake MCP replica: (its base URL, its control URL)."""
    processes = ProcessGroup(tmp_path_factory.mktemp("mcp-load") / "logs")
    try:
        port, control = free_port(), free_port()
        child = processes.start("tools[0]", [sys.executable, "-m", "fakes.mcp", "--name", "tools[0]",
                                             "--port", str(port), "--control-port", str(control)])
        control_url = f"http://127.0.0.1:{control}"
        processes.wait_ready(child, lambda: answers(f"{control_url}/stats"), 20)
        yield f"http://127.0.0.1:{port}", control_url
    finally:
        processes.stop_all()



def _run(base_url: str, tmp_path: Path, duration: float = 2.0) -> tuple[list[dict[str, object]], float]:
    config = LoadConfig(host=base_url, base_path="", users=0, spawn_rate=10, duration=duration, mix={"mcp": 1.0},
                        wait=0.05, max_tokens=4, request_timeout=1.0, seed=3, mcp_users=2, mcp_path="/mcp")
    journal = JournalWriter(tmp_path / "journal.jsonl")
    journal.write("run.started", replicas=["tools[0]"], text="", file="t.yaml")
    load = LoadGenerator(config, journal, tmp_path / "logs")
    load.start()
    began = time.monotonic()
    load.go()
    finished = load.wait(timeout=duration + config.request_timeout + 10)
    took = time.monotonic() - began
    journal.close()
    assert finished, (tmp_path / "logs" / "mcp-load.log").read_text()
    assert not (tmp_path / "logs" / "locust.log").exists(), "no Locust process without chat users"
    assert load.summary["requests"] == load.requests
    return [e for e in read_journal(tmp_path / "journal.jsonl") if e["type"] == "request"], took


def test_sessions_are_journalled_step_by_step(fake: tuple[str, str], tmp_path: Path) -> None:
    requests, took = _run(fake[0], tmp_path)
    kinds = Counter(str(r["kind"]) for r in requests)
    assert set(kinds) == {"mcp_initialize", "mcp_tools_list", "mcp_tools_call"}
    # A session's steps are reported when it ends (a session cut at the end reports nothing), so every
    # connect comes with its list and its calls; each of the 2 users ran at least one session.
    assert kinds["mcp_initialize"] >= 2
    assert kinds["mcp_tools_list"] == kinds["mcp_initialize"]
    assert kinds["mcp_tools_call"] == MCP_TOOL_CALLS * kinds["mcp_initialize"]
    assert all(r["error"] is None and r["status"] == 200 and r["replica"] == "tools[0]" for r in requests)
    assert took < 2.0 + 1.0 + 5  # duration + one request timeout of grace + process start/stop


def test_a_drifted_server_shows_as_schema_errors(fake: tuple[str, str], tmp_path: Path) -> None:
    base_url, control_url = fake
    httpx.put(f"{control_url}/fault", json={"mode": "structured_content_mismatch"}, timeout=2).raise_for_status()
    try:
        requests, _ = _run(base_url, tmp_path, duration=1.5)
    finally:
        httpx.delete(f"{control_url}/fault", timeout=2).raise_for_status()
    calls = [r for r in requests if r["kind"] == "mcp_tools_call"]
    assert calls and all(r["error"] == "schema" for r in calls)
    assert all("Invalid structured content" in str(r["body"]) for r in calls)
    assert all(r["error"] is None for r in requests if r["kind"] != "mcp_tools_call")


MIXED = """\
name: mixed-personas
seed: 3
gateway:
  health_check: {interval: 1s, timeout: 500ms, no_traffic_interval: 1s, mcp: true}
upstreams:
  - {name: chat, kind: openai, replicas: 1}
  - {name: tools, kind: mcp, replicas: 2}
load: {users: 4, spawn_rate: 10, duration: 8s, wait: 50ms, mix: {chat: 1, mcp: 1}, request_timeout: 2s}
expect:
  - {kind: error_rate, window: run, max: 0.0}
"""


def test_both_personas_run_through_envoy(tmp_path: Path) -> None:
    scenario = tmp_path / "mixed.yaml"
    scenario.write_text(MIXED)
    result = chaosgate("run", str(scenario), "--out", str(tmp_path), "--quiet", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "mixed-personas"
    requests = [e for e in read_journal(run_dir / "journal.jsonl") if e["type"] == "request"]
    by_kind = Counter(str(r["kind"]) for r in requests)
    assert by_kind["chat"] > 0 and by_kind["mcp_initialize"] > 0 and by_kind["mcp_tools_call"] > 0
    assert {r["replica"] for r in requests if str(r["kind"]).startswith("mcp_")} == {"tools[0]", "tools[1]"}
    assert {r["replica"] for r in requests if r["kind"] == "chat"} == {"chat[0]"}
    assert (run_dir / "logs" / "locust.log").exists() and (run_dir / "logs" / "mcp-load.log").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"]
