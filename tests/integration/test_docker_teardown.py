"""Teardown on the docker runtime: Ctrl-C and SIGTERM remove every container and network of
the run; what a SIGKILLed harness leaves is removed by the next run, by label, and runs of
live harnesses are never touched."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.journal import read_journal
from harness.runtimes.docker import DockerRuntime, new_run_id
from harness.runtimes.docker_engine import (
    LABEL_OWNER,
    LABEL_RUN,
    LABEL_RUN_DIR,
    owner_alive,
    owner_token,
    reap_orphans,
)
from harness.scenario import parse_scenario

from .conftest import CHAOSGATE, ROOT, wait_for
from .docker_helpers import docker_engine, leftovers, run_ids, run_resources

if TYPE_CHECKING:
    from docker import DockerClient

SCENARIO = ROOT / "scenarios" / "replica-reset.yaml"
__all__ = ["docker_engine"]


def _start_run(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*CHAOSGATE, "run", str(SCENARIO), "--runtime", "docker", "--out", str(out), "--quiet"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_fault(journal: Path) -> None:
    wait_for(lambda: journal.exists() and '"fault.started"' in journal.read_text(), 90, "the fault to start")


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_removes_every_container_and_network(sig: signal.Signals, tmp_path: Path,
                                                         docker_engine: DockerClient) -> None:
    run_dir = tmp_path / "replica-reset"
    harness = _start_run(tmp_path)
    try:
        _wait_for_fault(run_dir / "journal.jsonl")
        assert len(leftovers(docker_engine, run_dir)) == run_resources(3), "the run's containers and network"
        harness.send_signal(sig)
        _, stderr = harness.communicate(timeout=60)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert harness.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert leftovers(docker_engine, run_dir) == [], "nothing of the run is left once the harness has exited"
    events = read_journal(run_dir / "journal.jsonl")
    assert events[-1]["type"] == "run.finished" and events[-1]["outcome"] == "interrupted"
    assert any(e["type"] == "fault.cleared" for e in events), "the active fault was cleared"
    assert json.loads((run_dir / "summary.json").read_text())["complete"] is False
    assert (run_dir / "logs" / "envoy.log").exists(), "the containers' output was saved before removal"


@pytest.mark.integration
def test_the_next_run_removes_what_a_killed_harness_left(tmp_path: Path, docker_engine: DockerClient) -> None:
    killed_dir = tmp_path / "killed" / "replica-reset"
    harness = _start_run(tmp_path / "killed")
    try:
        _wait_for_fault(killed_dir / "journal.jsonl")
    finally:
        harness.kill()  # SIGKILL: no teardown at all
        harness.communicate(timeout=30)
    left = leftovers(docker_engine, killed_dir)
    assert len(left) == run_resources(3), left
    (killed_run,) = run_ids(docker_engine, killed_dir)

    scenario = parse_scenario(SCENARIO.read_text(), str(SCENARIO))
    runtime = DockerRuntime(log=lambda message: None)
    try:
        runtime.up(scenario, tmp_path / "next" / "replica-reset")
        assert leftovers(docker_engine, killed_dir) == [], f"the next run removed what run {killed_run} left"
        assert run_ids(docker_engine, tmp_path / "next" / "replica-reset") == {runtime.run_id}
    finally:
        runtime.down()
    assert leftovers(docker_engine, tmp_path / "next" / "replica-reset") == []


def test_owner_tokens_tell_live_harnesses_from_gone_ones() -> None:
    assert owner_alive(owner_token())
    host, pid, start = owner_token().rsplit(":", 2)
    assert not owner_alive(f"{host}:{pid}:{int(start) + 1}"), "a reused pid is another process"
    assert owner_alive(f"another-host:{pid}:{start}"), "runs of other hosts are not ours to judge"
    assert owner_alive("not a token")
    assert new_run_id("Replica Reset!").startswith("replica-reset-")
    assert new_run_id("x") != new_run_id("x")


@pytest.mark.integration
def test_reaping_spares_runs_of_live_harnesses(tmp_path: Path, docker_engine: DockerClient) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = {LABEL_RUN: "reap-test-live", LABEL_OWNER: owner_token(), LABEL_RUN_DIR: str(tmp_path / "live")}
    gone = {LABEL_RUN: "reap-test-dead", LABEL_OWNER: f"{owner_token().rsplit(':', 2)[0]}:{dead.pid}:1",
            LABEL_RUN_DIR: str(tmp_path / "dead")}
    live_net = docker_engine.networks.create("chaosgate-reap-test-live", labels=mine)
    dead_net = docker_engine.networks.create("chaosgate-reap-test-dead", labels=gone)
    try:
        reaped = reap_orphans(docker_engine)
        assert "reap-test-dead" in reaped and "reap-test-live" not in reaped
        names = {n.name for n in docker_engine.networks.list(filters={"label": LABEL_RUN})}
        assert "chaosgate-reap-test-live" in names and "chaosgate-reap-test-dead" not in names
    finally:
        for network in (live_net, dead_net):
            try:
                network.remove()
            except Exception:  # noqa: BLE001 - already removed by the reaper
                pass
