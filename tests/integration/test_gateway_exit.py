"""A gateway that dies during a run is journalled (gateway.exited) and named in the run's error."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.journal import read_journal

from .conftest import CHAOSGATE, ROOT, processes_of_run, wait_for

SCENARIO = """\
name: gateway-dies
seed: 3
gateway:
  health_check: {interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}
upstreams:
  - {name: chat, replicas: 2}
load: {users: 2, spawn_rate: 2, duration: 8s}
expect:
  - {kind: error_rate, window: run, max: 0.0}
"""


def _envoy_of(run_dir: Path) -> int | None:
    """The pid of the run's Envoy (the gateway process the local runtime started)."""
    for pid in processes_of_run(run_dir):
        try:
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode()).name == "envoy":
            return pid
    return None


@pytest.mark.integration
def test_a_killed_gateway_is_journalled_and_fails_the_run(tmp_path: Path) -> None:
    scenario = tmp_path / "gateway-dies.yaml"
    scenario.write_text(SCENARIO)
    run_dir = tmp_path / "out" / "gateway-dies"
    journal = run_dir / "journal.jsonl"
    harness = subprocess.Popen([*CHAOSGATE, "run", str(scenario), "--out", str(tmp_path / "out"), "--quiet"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: journal.exists() and '"load.started"' in journal.read_text(), 60, "the load to start")
        pid = _envoy_of(run_dir)
        assert pid is not None, "the run's Envoy is running"
        os.kill(pid, signal.SIGKILL)
        _, stderr = harness.communicate(timeout=60)  # the load's 8s, its drain, the teardown
    finally:
        if harness.poll() is None:
            harness.kill()
    assert harness.returncode == 2, stderr
    assert f"the gateway (envoy, pid {pid}) was killed by SIGKILL during the run" in stderr
    assert "Traceback" not in stderr
    events = read_journal(journal)
    exited = [e for e in events if e["type"] == "gateway.exited"]
    assert len(exited) == 1, exited
    assert (exited[0]["gateway"], exited[0]["pid"], exited[0]["status"], exited[0]["signal"]) == \
        ("envoy", pid, -9, "SIGKILL")
    load_started = next(e["ts"] for e in events if e["type"] == "load.started")
    assert exited[0]["ts"] >= load_started
    finished = events[-1]
    assert finished["type"] == "run.finished" and "was killed by SIGKILL" in finished["error"]
    wait_for(lambda: not processes_of_run(run_dir), 10, "every process of the stack to end")
