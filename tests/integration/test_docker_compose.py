"""compose.yaml: what the harness reads from it, that its config files are the harness's own
rendering, and that `docker compose up` with it gives a working stack a person can use."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from harness.processes import free_port
from harness.runtimes.docker_compose import (
    COMPOSE_CONFIG_DIR,
    COMPOSE_FILE,
    _interpolate,
    compose_duration_ns,
    load_definitions,
    render_compose_configs,
)
from harness.runtimes.docker_images import ENVOY_IMAGE, FAKES_IMAGE, TOXIPROXY_IMAGE
from harness.runtimes.local import FAKE_MODULES
from tests.missing import missing
from tests.waiting import wait_until

from .conftest import ROOT, wait_for
from .docker_helpers import docker_engine, health_states

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["docker_engine"]
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}
MCP_INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "compose-test", "version": "1"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream"}


def test_compose_config_files_are_the_harness_rendering() -> None:
    for name, text in render_compose_configs().items():
        assert (COMPOSE_CONFIG_DIR / name).read_text() == text, \
            f"{name} is stale: run `python -m harness.runtimes.docker_cli render-compose`"


def test_the_harness_reads_every_component_from_compose() -> None:
    definitions = load_definitions()
    assert definitions.gateway.image == ENVOY_IMAGE
    assert definitions.toxiproxy.image == TOXIPROXY_IMAGE
    assert definitions.dns.image == FAKES_IMAGE and definitions.dns.entrypoint is not None
    assert definitions.dns.entrypoint[:3] == ["python3", "-m", "fakes.dns"]
    assert set(definitions.replicas) == set(FAKE_MODULES), "a replica template for every upstream kind"
    for kind, module in FAKE_MODULES.items():
        template = definitions.replica(kind)
        assert template.image == FAKES_IMAGE
        assert template.entrypoint is not None and template.entrypoint[:3] == ["python3", "-m", module], \
            "the same fake as the local runtime runs"
    for definition in [*definitions.services.values(), *definitions.replicas.values()]:
        assert definition.healthcheck is not None, f"{definition.name} has a health check"
        assert definition.healthcheck["interval"] == 2_000_000_000
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in document["services"].items():
        assert "healthcheck" in service, f"service {name} has a health check"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on loopback only"


def test_compose_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSGATE_TEST_SET", "7")
    monkeypatch.delenv("CHAOSGATE_TEST_UNSET", raising=False)
    monkeypatch.setenv("CHAOSGATE_TEST_EMPTY", "")
    assert _interpolate(["${CHAOSGATE_TEST_SET:-1}", "${CHAOSGATE_TEST_UNSET:-1}", "${CHAOSGATE_TEST_EMPTY:-1}",
                         "${CHAOSGATE_TEST_EMPTY-1}", "a$$b", {"k": "${CHAOSGATE_TEST_SET}"}]) == \
        ["7", "1", "1", "", "a$b", {"k": "7"}]


def test_compose_durations() -> None:
    assert compose_duration_ns("2s") == 2_000_000_000
    assert compose_duration_ns("500ms") == 500_000_000
    assert compose_duration_ns("1m30s") == 90_000_000_000


def _compose_command() -> list[str] | None:
    """`docker compose` (v2) where the plugin is installed, else `docker-compose` (v1), else None."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 check=False).returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


@pytest.fixture
def compose(docker_engine: DockerClient, tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    command = _compose_command()
    if command is None:
        missing("neither `docker compose` nor `docker-compose` is installed (.ci/setup installs docker-compose)")
    project = f"chaosgate-test-{os.getpid()}"
    env = {**os.environ, "CHAOSGATE_GATEWAY_PORT": str(free_port()), "CHAOSGATE_ADMIN_PORT": str(free_port()),
           "CHAOSGATE_TOXIPROXY_PORT": str(free_port()), "CHAOSGATE_DNS_CONTROL_PORT": str(free_port())}
    base = [*command, "-f", str(COMPOSE_FILE), "-p", project]
    try:
        yield base, env
    finally:
        subprocess.run([*base, "down", "-v", "--timeout", "1"], cwd=ROOT, env=env, capture_output=True, check=False,
                       timeout=120)
        left = docker_engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}, ignore_removed=True)
        assert left == [], "docker compose down removed the stack"


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.integration
def test_compose_up_gives_a_working_stack(compose: tuple[list[str], dict[str, str]],
                                          docker_engine: DockerClient) -> None:
    base, env = compose
    started = subprocess.run([*base, "up", "-d"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    gateway = f"http://127.0.0.1:{env['CHAOSGATE_GATEWAY_PORT']}"
    admin = f"http://127.0.0.1:{env['CHAOSGATE_ADMIN_PORT']}"
    toxiproxy = f"http://127.0.0.1:{env['CHAOSGATE_TOXIPROXY_PORT']}"
    wait_for(lambda: _ok(f"{admin}/ready"), 60, "Envoy in compose to be ready")

    def all_healthy() -> bool:
        text = httpx.get(f"{admin}/clusters", timeout=1).text
        return text.count("health_flags::healthy") == 4

    wait_for(all_healthy, 30, "Envoy to see the three chat replicas and the MCP server healthy")
    project = f"com.docker.compose.project={base[base.index('-p') + 1]}"
    wait_for(lambda: set(health_states(docker_engine, project).values()) == {"healthy"}, 30,
             "every service's own health check to pass")
    assert len(health_states(docker_engine, project)) == 7
    # The fake DNS server answers the replicas' names (loopback, in Toxiproxy's namespace) and its control API.
    names = httpx.get(f"http://127.0.0.1:{env['CHAOSGATE_DNS_CONTROL_PORT']}/fault", timeout=2).json()["names"]
    assert {name: entry["addresses"] for name, entry in names.items()} == \
        {f"{replica}.chaosgate.test": ["127.0.0.1"] for replica in ("chat-0", "chat-1", "chat-2", "tools-0")}
    served = {httpx.post(f"{gateway}/v1/chat/completions", json=CHAT, timeout=5).headers["x-chaosgate-replica"]
              for _ in range(6)}
    assert served == {"chat[0]", "chat[1]", "chat[2]"}
    initialize = httpx.post(f"{gateway}/tools/mcp", json=MCP_INITIALIZE, timeout=5, headers=MCP_HEADERS)
    assert initialize.status_code == 200 and initialize.headers["x-chaosgate-replica"] == "tools[0]", initialize.text
    assert initialize.json()["result"]["serverInfo"]

    # Break chat[0] through Toxiproxy's API, as a person would; Envoy ejects it.
    toxic = httpx.post(f"{toxiproxy}/proxies/chat-0/toxics", timeout=2,
                       json={"type": "reset_peer", "attributes": {"timeout": 0}})
    assert toxic.status_code == 200, toxic.text
    wait_for(lambda: "failed_active_hc" in httpx.get(f"{admin}/clusters", timeout=1).text, 10,
             "Envoy to eject chat[0]")

    def served_by() -> set[str | None]:
        return {httpx.post(f"{gateway}/v1/chat/completions", json=CHAT, timeout=5).headers.get("x-chaosgate-replica")
                for _ in range(6)}

    # The admin view says ejected a moment before every worker's load balancer has it: poll, with a deadline.
    wait_until(lambda: served_by() == {"chat[1]", "chat[2]"}, 5, "six requests in a row served by chat[1] and chat[2]")
    assert served_by() == {"chat[1]", "chat[2]"}, "and it stays out"
