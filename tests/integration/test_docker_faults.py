"""Every Toxiproxy fault kind works on the docker runtime as on local: injected through the
published Toxiproxy API into the proxy that Envoy, in its container, dials by service name;
seen by a client of the gateway; and gone once cleared."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from harness.faults import FAULTS, Fault, ToxicFault
from harness.runtimes.base import Stack
from harness.runtimes.docker import DockerRuntime
from harness.scenario import parse_scenario

from .docker_helpers import docker_engine, leftovers

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["docker_engine"]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}
MCP_INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "docker-test", "version": "1"}}}
# One replica of each kind, no health checking and no retries: every fault reaches the client as it is.
SCENARIO = """
name: docker-faults
gateway: {health_check: null, request_timeout: 1500ms, connect_timeout: 500ms}
upstreams: [{name: chat, replicas: 1}, {name: tools, kind: mcp, replicas: 1}]
load: {duration: 1s}
"""


@pytest.fixture(scope="module")
def stack(docker_engine: DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    runtime = DockerRuntime(log=lambda message: None)
    run_dir = tmp_path_factory.mktemp("docker-faults") / "docker-faults"
    try:
        yield runtime.up(parse_scenario(SCENARIO, "docker-faults.yaml"), run_dir)
    finally:
        runtime.down()
    assert leftovers(docker_engine, run_dir) == []


def _toxics(stack: Stack) -> list[dict[str, object]]:
    return list(httpx.get(f"{stack.toxiproxy_url}/proxies/chat-0/toxics", timeout=2).json())


def _chat(stack: Stack, timeout: float = 10.0) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = httpx.post(f"{stack.gateway.url}/v1/chat/completions", json=CHAT, timeout=timeout,
                          headers={"connection": "close"})
    return response, time.perf_counter() - began


def _fault(**fields: object) -> Fault:
    return FAULTS[str(fields["kind"])].model_validate({"target": "chat[0]", "at": 0, "for": 1, **fields})


@pytest.fixture
def inject(stack: Stack) -> Iterator[Callable[[Fault], Fault]]:
    """Inject a fault for one test; clear it afterwards and check service is back."""
    injected: list[Fault] = []

    def _inject(fault: Fault) -> Fault:
        fault.inject(stack, "chat[0]")
        injected.append(fault)
        return fault

    yield _inject
    for fault in injected:
        fault.clear(stack, "chat[0]")
    assert _toxics(stack) == []
    response, _ = _chat(stack)
    assert response.status_code == 200 and response.headers["x-chaosgate-replica"] == "chat[0]"


def test_every_toxiproxy_fault_kind_has_a_docker_test() -> None:
    tested = {name.removeprefix("test_docker_").removesuffix("_fault") for name in globals()
              if name.startswith("test_docker_") and name.endswith("_fault")}
    # Toxiproxy's faults: its toxics and taking a proxy down.
    assert tested == {kind for kind, fault in FAULTS.items() if issubclass(fault, ToxicFault) or kind == "down"}


@pytest.mark.integration
def test_control_faults_reach_the_fakes_in_their_containers(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    """The fakes' control API is published on the host's 127.0.0.1 only; a fault mode set
    through it is seen by clients of the gateway, and the gateway cannot reach it."""
    control = stack.control_url("chat[0]")
    assert control.startswith("http://127.0.0.1:")
    inject(_fault(kind="llm_fault", mode="error_status", status=503))
    assert httpx.get(f"{control}/fault", timeout=2).json()["mode"] == "error_status"
    response, _ = _chat(stack)
    assert response.status_code == 503 and response.json()["error"]["code"] == "server_is_overloaded"
    assert response.headers["x-chaosgate-replica"] == "chat[0]"
    assert httpx.get(f"{stack.gateway.url}/fault", timeout=2).status_code == 404


@pytest.mark.integration
def test_docker_latency_fault(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    _, before = _chat(stack)
    inject(_fault(kind="latency", latency="400ms"))
    response, after = _chat(stack)
    assert response.status_code == 200
    assert after >= before + 0.4 - 0.05


@pytest.mark.integration
def test_docker_bandwidth_fault(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    inject(_fault(kind="bandwidth", rate_kbps=1))
    response, elapsed = _chat(stack)
    assert response.status_code == 200
    assert elapsed >= len(response.content) / 1024 * 0.8


@pytest.mark.integration
def test_docker_timeout_fault(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    inject(_fault(kind="timeout", timeout=0))
    response, elapsed = _chat(stack)
    assert response.status_code == 504 and elapsed >= 1.5 - 0.05  # Envoy's route timeout


@pytest.mark.integration
def test_docker_reset_peer_fault(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    inject(_fault(kind="reset_peer"))
    response, _ = _chat(stack)
    assert response.status_code == 503 and "reset" in response.text


@pytest.mark.integration
def test_docker_slow_close_fault(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    inject(_fault(kind="slow_close", delay="300ms", direction="both"))
    assert sorted((t["type"], t["stream"], t["attributes"]["delay"]) for t in _toxics(stack)) == [  # type: ignore[index]
        ("slow_close", "downstream", 300), ("slow_close", "upstream", 300)]
    response, _ = _chat(stack)
    assert response.status_code == 200


@pytest.mark.integration
def test_docker_slicer_fault(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    inject(_fault(kind="slicer", average_size=8, size_variation=4, delay="2ms"))
    response, elapsed = _chat(stack)
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    assert elapsed >= len(response.content) / 12 * 0.002


@pytest.mark.integration
def test_docker_limit_data_fault(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    inject(_fault(kind="limit_data", bytes=150))
    response, _ = _chat(stack)
    # The replica's reply is cut off inside its headers: Envoy answers 502 (protocol error) or 503 (reset).
    assert response.status_code in (502, 503), response.text


@pytest.mark.integration
def test_docker_down_fault(stack: Stack, inject: Callable[[Fault], Fault]) -> None:
    inject(_fault(kind="down"))
    response, _ = _chat(stack)
    assert response.status_code == 503 and "upstream connect error" in response.text


@pytest.mark.integration
def test_docker_serves_every_upstream_kind(stack: Stack) -> None:
    response, _ = _chat(stack)
    assert response.status_code == 200 and response.headers["x-chaosgate-replica"] == "chat[0]"
    initialize = httpx.post(f"{stack.gateway.url}/tools/mcp", json=MCP_INITIALIZE, timeout=5,
                            headers={"accept": "application/json, text/event-stream"})
    assert initialize.status_code == 200 and initialize.headers["x-chaosgate-replica"] == "tools[0]", initialize.text
    assert stack.replicas["tools[0]"].kind == "mcp" and stack.replica_health()["tools[0]"].healthy


def test_scenario_is_valid() -> None:
    assert parse_scenario(SCENARIO, "docker-faults.yaml").replicas == ["chat[0]", "tools[0]"]

