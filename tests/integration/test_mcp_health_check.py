"""Health checks of an MCP pool on real Envoy in front of a real fake MCP replica: which schema-drift
modes of the fake's catalogue each detects (the replica is ejected), and which it cannot see (the
replica stays in while the official mcp client, through the gateway, fails). Three checks: the MCP
health check (gateway.health_check.mcp: POST initialize, body matched), a GET of the fake's own
/health/deep (which runs initialize, tools/list and tools/call inside the server), and the shallow
GET /health (the process answers).

Every mode is really injected: a detected mode makes the client fail against the replica itself,
an undetected one against the gateway. Bounds come from the health-check settings below.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fakes.mcp_modes import MCP_MODE_MODELS
from harness.gateways.base import UpstreamAddress
from harness.gateways.envoy import EnvoyGateway
from harness.mcp_check import check_mcp_server
from harness.processes import ProcessGroup, answers, free_port
from harness.scenario import Gateway, HealthCheck, McpHealthCheck

from .conftest import wait_for

HEALTH = HealthCheck(interval=0.5, timeout=0.25, unhealthy_threshold=2, healthy_threshold=1,
                     no_traffic_interval=0.5, mcp=McpHealthCheck())
CHECKS = {"mcp_initialize": HEALTH, "deep_health": HEALTH.model_copy(update={"path": "/health/deep", "mcp": None}),
          "shallow_health": HEALTH.model_copy(update={"path": "/health", "mcp": None})}
# A body mismatch is a non-retriable failure: Envoy ejects at the first one, whatever unhealthy_threshold
# says, so the worst case is the next check (one interval of phase + the check's timeout).
DETECT_BOUND = HEALTH.interval + HEALTH.timeout
READMIT_BOUND = (HEALTH.healthy_threshold + 1) * HEALTH.interval + HEALTH.timeout
MARGIN = 3.0  # the machine is shared; the bounds above are what Envoy's config promises
INITIALIZE_MODES = {"unsupported_protocol_version", "missing_capabilities", "missing_server_info"}
DETECTED = {"mcp_initialize": INITIALIZE_MODES,
            "deep_health": INITIALIZE_MODES | {"input_schema_not_object", "tools_disappear", "result_without_content",
                                               "structured_content_mismatch"},
            "shallow_health": set()}
MODES = [model.model_fields["mode"].annotation.__args__[0] for model in MCP_MODE_MODELS]  # type: ignore[union-attr]
# The step at which the official client, in a session, meets each mode.
FAILS_AT = {"unsupported_protocol_version": "initialize", "missing_capabilities": "initialize",
            "missing_server_info": "initialize", "input_schema_not_object": "tools/list",
            "tools_disappear": "tools/list", "wrong_jsonrpc_id": "tools/list", "wrong_content_type": "tools/list",
            "session_expiry": "tools/list", "result_without_content": "tools/call",
            "structured_content_mismatch": "tools/call"}


@dataclass
class McpBehindEnvoy:
    check: str
    gateway: EnvoyGateway
    replica_url: str
    control_url: str

    @property
    def through_gateway(self) -> str:
        return f"{self.gateway.url}/tools/mcp"

    def healthy(self) -> bool:
        return all(h.healthy for h in self.gateway.host_health().values())

    def checks(self) -> int:
        stats = httpx.get(f"{self.gateway.admin_url}/stats", params={"filter": "cluster.tools.health_check.attempt"},
                          timeout=2).text
        return int(stats.split(":")[-1])

    def set_mode(self, mode: str | None) -> None:
        if mode is None:
            httpx.delete(f"{self.control_url}/fault", timeout=2).raise_for_status()
        else:
            httpx.put(f"{self.control_url}/fault", json={"mode": mode}, timeout=2).raise_for_status()


@pytest.fixture(scope="module", params=sorted(CHECKS))
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpBehindEnvoy]:
    check: str = request.param
    run_dir: Path = tmp_path_factory.mktemp(f"mcp-hc-{check}")
    processes = ProcessGroup(run_dir / "logs")
    try:
        port, control = free_port(), free_port()
        replica = processes.start("tools[0]", [sys.executable, "-m", "fakes.mcp", "--name", "tools[0]",
                                               "--port", str(port), "--control-port", str(control), "--seed", "3"])
        control_url = f"http://127.0.0.1:{control}"
        processes.wait_ready(replica, lambda: answers(f"{control_url}/stats"), 20)
        gateway = EnvoyGateway(Gateway(health_check=CHECKS[check], panic_threshold=0), free_port(), free_port(), "tools")
        config = gateway.write_config([UpstreamAddress("tools", "tools[0]", "127.0.0.1", port, "mcp")], run_dir)
        envoy = processes.start("envoy", gateway.argv(config))
        processes.wait_ready(envoy, gateway.is_ready, 20)
        behind = McpBehindEnvoy(check, gateway, f"http://127.0.0.1:{port}/mcp", control_url)
        wait_for(behind.healthy, 10, "the replica to pass its first MCP health checks")
        yield behind
    finally:
        processes.stop_all()



def test_what_the_check_sends(stack: McpBehindEnvoy) -> None:
    """The MCP health check reaches the replica as an MCP initialize (counted by the fake); the deep
    check is a GET whose MCP work happens inside the server (no initialize on the wire)."""
    before = httpx.get(f"{stack.control_url}/stats", timeout=2).json()["methods"].get("initialize", 0)
    checks = stack.checks()
    wait_for(lambda: stack.checks() >= checks + 2, 10, "two more health checks")
    after = httpx.get(f"{stack.control_url}/stats", timeout=2).json()["methods"].get("initialize", 0)
    if stack.check == "mcp_initialize":
        assert after >= before + 2
    else:
        assert after == before
    steps = check_mcp_server(stack.through_gateway, timeout=2.0)
    assert [s.step for s in steps] == ["initialize", "tools/list", "tools/call"] and all(s.ok for s in steps), steps
    assert {s.replica for s in steps} == {"tools[0]"}


@pytest.mark.parametrize("mode", MODES)
def test_drift_mode_detection(stack: McpBehindEnvoy, mode: str) -> None:
    assert set(FAILS_AT) == set(MODES), "a new mode of the catalogue needs its row here and in docs/faults.md"
    wait_for(stack.healthy, READMIT_BOUND + MARGIN, "the replica to be healthy before the test")
    stack.set_mode(mode)
    began = time.monotonic()
    try:
        if mode in DETECTED[stack.check]:
            wait_for(lambda: not stack.healthy(), DETECT_BOUND + MARGIN, f"Envoy to eject the replica under {mode}")
            detected_after = time.monotonic() - began
            print(f"{stack.check} {mode}: ejected {detected_after:.2f}s after the drift began")  # the figure in docs/faults.md
            steps = check_mcp_server(stack.replica_url, timeout=2.0)  # the drift is real: a client sees it
            assert steps[-1].step == FAILS_AT[mode] and steps[-1].error == "schema", steps
        else:
            checks = stack.checks()
            wait_for(lambda: stack.checks() >= checks + HEALTH.unhealthy_threshold + 2, 10 * HEALTH.interval + MARGIN,
                     "more health checks than the unhealthy threshold")
            assert stack.healthy(), f"{mode} is not supposed to be visible to the {stack.check} check"
            steps = check_mcp_server(stack.through_gateway, timeout=1.0)  # yet clients through the gateway fail
            assert steps[-1].step == FAILS_AT[mode] and not steps[-1].ok, steps
            assert steps[-1].replica == "tools[0]"
    finally:
        stack.set_mode(None)
    wait_for(stack.healthy, READMIT_BOUND + MARGIN, f"the replica to be readmitted after {mode} ended")
