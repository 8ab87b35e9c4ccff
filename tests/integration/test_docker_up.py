"""`chaosgate up --runtime docker`: the stack in containers serves the official openai client
through the published gateway port, a fault through the printed Toxiproxy API is seen by
the gateway, and Ctrl-C removes every container and the network."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import openai
import pytest

from harness.runtimes.docker_engine import LABEL_RUN_DIR

from .conftest import CHAOSGATE, ROOT, wait_for
from .docker_helpers import docker_engine, health_states, leftovers, run_resources

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["docker_engine"]


@pytest.mark.integration
def test_up_on_docker_serves_openai_clients_until_interrupted(tmp_path: Path, docker_engine: DockerClient) -> None:
    stderr_file = tmp_path / "up.stderr"  # read while `up` runs: a file, not a pipe nobody drains
    with stderr_file.open("w") as stderr_out:
        up = subprocess.Popen([*CHAOSGATE, "up", str(ROOT / "scenarios" / "replica-reset.yaml"), "--runtime", "docker",
                               "--out", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr_out, text=True)
    run_dir = tmp_path / "replica-reset"
    try:
        assert up.stdout is not None
        text = ""
        for line in up.stdout:
            text += line
            if line.startswith("}"):
                break
        endpoints = json.loads(text)
        assert len(leftovers(docker_engine, run_dir)) == run_resources(3), "the run's containers and network"
        label = f"{LABEL_RUN_DIR}={run_dir.resolve()}"
        wait_for(lambda: set(health_states(docker_engine, label).values()) == {"healthy"}, 30,
                 "the health check compose.yaml gives each container to pass")

        client = openai.OpenAI(base_url=f"{endpoints['gateway']}/v1", api_key="unused", max_retries=0, timeout=10)
        served = set()
        for _ in range(6):
            raw = client.chat.completions.with_raw_response.create(
                model="fake-model", messages=[{"role": "user", "content": "hello"}])
            assert raw.parse().choices[0].finish_reason == "stop"
            served.add(raw.headers["x-chaosgate-replica"])
        assert served == set(endpoints["replicas"]), "round robin over every replica container"

        toxic = httpx.post(f"{endpoints['toxiproxy']}/proxies/chat-0/toxics", timeout=2,
                           json={"type": "reset_peer", "attributes": {"timeout": 0}})
        assert toxic.status_code == 200, toxic.text
        wait_for(lambda: "failed_active_hc" in httpx.get(f"{endpoints['gateway_admin']}/clusters", timeout=1).text,
                 10, "the gateway to eject chat[0]")
        # `up` reports the gateway's view of health as it changes (it polls every 0.2 s).
        wait_for(lambda: "chat[0] UNHEALTHY" in stderr_file.read_text(), 5, "`up` to report chat[0] unhealthy")

        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    stderr = stderr_file.read_text()
    assert up.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert leftovers(docker_engine, run_dir) == []
