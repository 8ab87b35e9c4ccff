"""On the docker runtime too, a gateway that dies during a run is journalled (gateway.exited, from the
engine's die event for its container) and named in the run's error: the twin of test_gateway_exit.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.journal import read_journal
from harness.runtimes.docker_engine import LABEL_NAME, LABEL_RUN_DIR

from .conftest import CHAOSGATE, ROOT, wait_for
from .docker_helpers import docker_engine, leftovers
from .test_gateway_exit import SCENARIO

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

__all__ = ["docker_engine"]


def _gateway_container(client: DockerClient, run_dir: Path) -> Container | None:
    found = client.containers.list(filters={"label": [f"{LABEL_RUN_DIR}={run_dir.resolve()}", f"{LABEL_NAME}=envoy"]}, ignore_removed=True)
    return found[0] if found else None


@pytest.mark.integration
def test_a_killed_gateway_container_is_journalled_and_fails_the_run(tmp_path: Path,
                                                                    docker_engine: DockerClient) -> None:
    scenario = tmp_path / "gateway-dies.yaml"
    scenario.write_text(SCENARIO)
    run_dir = tmp_path / "out" / "gateway-dies"
    journal = run_dir / "journal.jsonl"
    harness = subprocess.Popen([*CHAOSGATE, "run", str(scenario), "--runtime", "docker", "--out", str(tmp_path / "out"),
                                "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: journal.exists() and '"load.started"' in journal.read_text(), 120, "the load to start")
        container = _gateway_container(docker_engine, run_dir)
        assert container is not None, "the run's Envoy container is running"
        pid = int(container.attrs["State"]["Pid"])
        container.kill()  # docker kill: SIGKILL from the engine
        _, stderr = harness.communicate(timeout=90)  # the load's 8s, its drain, the teardown
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.communicate(timeout=30)
    assert harness.returncode == 2, stderr
    assert f"the gateway (envoy, pid {pid}) was killed by SIGKILL during the run" in stderr, stderr
    assert "Traceback" not in stderr
    events = read_journal(journal)
    exited = [e for e in events if e["type"] == "gateway.exited"]
    assert len(exited) == 1, exited
    assert (exited[0]["gateway"], exited[0]["pid"], exited[0]["status"], exited[0]["signal"]) == \
        ("envoy", pid, -9, "SIGKILL")
    assert exited[0]["log"] == str((run_dir / "logs" / "envoy.log").resolve())
    load_started = next(e["ts"] for e in events if e["type"] == "load.started")
    assert exited[0]["ts"] >= load_started
    finished = events[-1]
    assert finished["type"] == "run.finished" and "was killed by SIGKILL" in finished["error"]
    assert (run_dir / "logs" / "envoy.log").exists(), "the gateway's output was saved at teardown"
    wait_for(lambda: leftovers(docker_engine, run_dir) == [], 30, "every container and network of the run to go")
