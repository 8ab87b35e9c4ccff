"""Distributed load on the real stack: a Locust master and its workers (docs/distributed.md).

The shipped replica-reset scenario gives the same verdicts with four local workers as with one load
process; a worker killed mid-run fails the run naming it; a `chaosgate worker` started as a process of its
own (standing in for another machine) joins a run and its requests are in the run's journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import StackError
from harness.journal import JournalWriter, read_journal
from harness.load.clock import offset_bound
from harness.load.config import LoadConfig
from harness.load.generator import LoadGenerator
from harness.processes import free_port
from harness.scenario import load_scenario
from tests.integration.conftest import CHAOSGATE, ROOT, ShippedRun, chaosgate
from tests.waiting import wait_until

REPLICA_RESET = ROOT / "scenarios" / "replica-reset.yaml"
WORKERS = 4  # on the 2-core machine too: Envoy, Toxiproxy, three fakes, the master and four workers share it

# A small scenario of our own for the failure and remote tests: no fault, every request must pass.
SMALL = """\
name: distributed-small
seed: 3
gateway:
  health_check: {interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}
upstreams:
  - {name: chat, replicas: 2}
load: {users: 4, spawn_rate: 4, duration: %s, wait: 50ms}
expect:
  - {kind: error_rate, window: run, max: 0.0}
"""
STARTUP_S = 120.0  # the stack's start and the workers' joining, on a busy machine


def _events(journal: Path, kind: str) -> list[dict[str, Any]]:
    """The events of ``kind`` written so far (a run still writing: a cut last line is skipped)."""
    if not journal.exists():
        return []
    found = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("type") == kind:
            found.append(event)
    return found


def _summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


@pytest.mark.integration
def test_replica_reset_with_four_workers_gives_the_verdicts_of_one_process(shipped_run: ShippedRun,
                                                                           tmp_path: Path) -> None:
    scenario = load_scenario(REPLICA_RESET)
    single = shipped_run(REPLICA_RESET, "local")
    result = chaosgate("run", str(REPLICA_RESET), "--workers", str(WORKERS), "--out", str(tmp_path), "--quiet",
                       timeout=scenario.load.duration + STARTUP_S)
    run_dir = tmp_path / scenario.name
    assert result.returncode == 0, result.stdout + result.stderr
    assert single.result.returncode == 0, single.result.stdout + single.result.stderr
    one, many = _summary(single.run_dir), _summary(run_dir)
    assert [(v["kind"], v["passed"]) for v in many["expectations"]] == \
           [(v["kind"], v["passed"]) for v in one["expectations"]]
    assert many["passed"] and many["complete"]
    events = read_journal(run_dir / "journal.jsonl")
    workers = [e for e in events if e["type"] == "load.worker"]
    assert sorted(w["id"] for w in workers) == [f"worker-{i}" for i in range(WORKERS)]
    bound = offset_bound(scenario)
    assert all(w["local"] and abs(w["offset"]) <= bound for w in workers), workers
    requests = [e for e in events if e["type"] == "request"]
    # every worker's users sent requests (8 users over 4 workers), each journalled with its worker
    assert {r["worker"] for r in requests} == {w["id"] for w in workers}
    assert all(r["replica"] or r["error"] for r in requests)


@pytest.mark.integration
def test_a_worker_killed_mid_run_fails_the_run_naming_it(tmp_path: Path) -> None:
    duration = 15.0
    scenario_file = tmp_path / "small.yaml"
    scenario_file.write_text(SMALL % f"{duration:g}s", encoding="utf-8")
    out = tmp_path / "out"
    journal = out / "distributed-small" / "journal.jsonl"
    run = subprocess.Popen([*CHAOSGATE, "run", str(scenario_file), "--workers", "2", "--out", str(out), "--quiet"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _events(journal, "load.started"), STARTUP_S, "the load to start")
        victim = next(w for w in _events(journal, "load.worker") if w["id"] == "worker-1")
        # a few requests through first: the kill lands mid-run, not at the start
        wait_until(lambda: len(_events(journal, "request")) > 0, duration, "the first requests")
        os.kill(victim["pid"], signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=duration + 60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 2, stdout + stderr
    assert f"worker worker-1 (pid {victim['pid']}" in stderr and "exited with status -9" in stderr, stderr
    lost = _events(journal, "load.worker_lost")
    assert [(e["id"], e["pid"]) for e in lost] == [("worker-1", victim["pid"])]
    finished = _events(journal, "run.finished")[-1]
    assert finished["outcome"] == "failed" and "worker-1" in finished["error"]
    load_started = _events(journal, "load.started")[0]["ts"]
    assert lost[0]["at"] - load_started < duration  # the load ended early, when the worker died
    assert not _summary(out / "distributed-small")["complete"]


@pytest.mark.integration
def test_a_chaosgate_worker_process_joins_a_run_and_its_requests_are_journalled(tmp_path: Path) -> None:
    scenario_file = tmp_path / "small.yaml"
    scenario_file.write_text(SMALL % "6s", encoding="utf-8")
    out = tmp_path / "out"
    journal = out / "distributed-small" / "journal.jsonl"
    run = subprocess.Popen([*CHAOSGATE, "run", str(scenario_file), "--workers", "1", "--remote-workers", "1",
                            "--join-timeout", str(STARTUP_S), "--out", str(out), "--quiet"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker: subprocess.Popen[str] | None = None
    try:
        master = wait_until(lambda: _events(journal, "load.master"), STARTUP_S, "the master's address")[0]
        assert master["host"] == "127.0.0.1"  # loopback unless --master-bind says otherwise
        worker = subprocess.Popen([*CHAOSGATE, "worker", "--master", f"127.0.0.1:{master['port']}"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        stdout, stderr = run.communicate(timeout=STARTUP_S + 60)
        worker_output = worker.communicate(timeout=30)[0]
    finally:
        for process in (run, worker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert run.returncode == 0, stdout + stderr
    assert f"127.0.0.1:{master['port']}" in stderr  # the address is printed for remote workers, --quiet or not
    assert worker.returncode == 0, worker_output
    events = read_journal(journal)
    joined = {e["pid"]: e for e in events if e["type"] == "load.worker"}
    remote = joined[worker.pid]  # `chaosgate worker` runs the worker in its own process (exec)
    assert not remote["local"] and len(joined) == 2
    requests = [e for e in events if e["type"] == "request"]
    theirs = [r for r in requests if r["worker"] == remote["id"]]
    assert theirs and all(r["status"] == 200 and r["replica"] for r in theirs)
    assert {r["worker"] for r in requests} == {e["id"] for e in joined.values()}


def _load(tmp_path: Path, **distribution: Any) -> tuple[LoadGenerator, JournalWriter]:
    """A distributed load aimed at a port where nothing listens (it never gets as far as sending)."""
    config = LoadConfig(host=f"http://127.0.0.1:{free_port()}", base_path="", users=2, spawn_rate=10.0, duration=2.0,
                        mix={"chat": 1.0}, wait=0.1, max_tokens=4, request_timeout=1.0, seed=1, **distribution)
    journal = JournalWriter(tmp_path / "journal.jsonl")
    return LoadGenerator(config, journal, tmp_path / "logs"), journal


@pytest.mark.integration
def test_the_load_waits_for_every_worker_and_fails_saying_how_many_came(tmp_path: Path) -> None:
    join_timeout = 3.0
    load, journal = _load(tmp_path, workers=1, remote_workers=1, join_timeout=join_timeout)
    started = time.monotonic()
    try:
        with pytest.raises(StackError, match=r"only 1 of 2 load workers joined the master within 3s "
                                             r"\(1 of 1 local, 0 of 1 remote\)"):
            load.start()
    finally:
        load.stop()
        journal.close()
    assert time.monotonic() - started >= join_timeout
    assert [e["id"] for e in _events(journal.path, "load.worker")] == ["worker-0"]
    assert not _events(journal.path, "request")


@pytest.mark.integration
def test_a_worker_clock_beyond_the_bound_fails_before_the_load_with_the_figure(tmp_path: Path) -> None:
    # a bound below any measurable offset: the local worker's few microseconds exceed it
    load, journal = _load(tmp_path, workers=1, max_clock_offset=1e-9)
    try:
        with pytest.raises(StackError, match=r"worker worker-0's clock is [+-]\d+\.\d ms off the master's \(round "
                                             r"trip \d+\.\d ms\), more than the 0 ms this scenario allows"):
            load.start()
    finally:
        load.stop()
        journal.close()
    (worker,) = _events(journal.path, "load.worker")
    assert worker["offset"] != 0 and worker["rtt"] > 0
