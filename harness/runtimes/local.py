"""The local runtime: every component is a process on 127.0.0.1 (no Docker needed)."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from harness.errors import ComponentMissing
from harness.gateways import GATEWAYS, UpstreamAddress
from harness.processes import ProcessGroup, check_port_free, free_port
from harness.runtimes.base import RUN_MARKER, Replica, Stack, wait_all_healthy
from harness.scenario import Scenario, Upstream
from harness.toxiproxy import ToxiproxyControl

PROJECT_TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "bin"
READY_TIMEOUT = 20.0


def toxiproxy_binary() -> str:
    """$CHAOSGATE_TOXIPROXY, else toxiproxy-server from the project's tool folder (built by
    .ci/setup), else from PATH."""
    if override := os.environ.get("CHAOSGATE_TOXIPROXY"):
        if not os.access(override, os.X_OK):
            raise ComponentMissing(f"CHAOSGATE_TOXIPROXY={override} is not an executable file")
        return override
    local = PROJECT_TOOLS / "toxiproxy-server"
    found = str(local) if local.exists() else shutil.which("toxiproxy-server")
    if not found:
        raise ComponentMissing("toxiproxy-server is not installed: run `bash .ci/setup` "
                               "(it builds it with go install into .tools/bin)")
    return found


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _both_answer(health: str, control: str) -> bool:
    return _answers(health) and _answers(control)


# The fake server each upstream kind runs, and the options it gets from the scenario.
FAKE_MODULES = {"openai": "fakes.llm", "mcp": "fakes.mcp"}
FAKE_OPTIONS: dict[str, Callable[[Upstream, Scenario], list[str]]] = {
    "openai": lambda pool, scenario: ["--ttft-ms", f"{pool.ttft * 1000:g}", "--tokens-per-s", f"{pool.tokens_per_s:g}",
                                      "--max-tokens", str(scenario.load.max_tokens)],
    "mcp": lambda pool, scenario: ["--tool-latency-ms", f"{pool.ttft * 1000:g}"],
}


class LocalRuntime:
    """Toxiproxy, the fake replicas and the gateway as child processes of the harness."""

    name = "local"

    def __init__(self) -> None:
        self._processes: ProcessGroup | None = None

    def up(self, scenario: Scenario, run_dir: Path, gateway_port: int | None = None) -> Stack:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Every process of the stack carries CHAOSGATE_RUN_DIR, so leftovers can be found by it.
        processes = self._processes = ProcessGroup(run_dir / "logs", env={RUN_MARKER: str(run_dir.resolve())})
        if gateway_port is not None:
            check_port_free(gateway_port, "the gateway")
        toxiproxy_bin = toxiproxy_binary()
        gateway = GATEWAYS[scenario.gateway.kind](
            scenario.gateway, listen_port=gateway_port or free_port(), admin_port=free_port(),
            load_pool=scenario.load_pool)

        toxiproxy_port = free_port()
        toxiproxy_url = f"http://127.0.0.1:{toxiproxy_port}"
        toxiproxy_child = processes.start("toxiproxy", [toxiproxy_bin, "-host", "127.0.0.1", "-port", str(toxiproxy_port)])

        replica_children = []
        replica_ports: dict[str, tuple[int, int]] = {}
        for pool in scenario.upstreams:
            for index in range(pool.replicas):
                name = f"{pool.name}[{index}]"
                port, control_port = free_port(), free_port()
                while control_port == port:  # two ports that were free a moment ago: make sure they differ
                    control_port = free_port()
                replica_ports[name] = port, control_port
                argv = [sys.executable, "-m", FAKE_MODULES[pool.kind], "--name", name, "--host", "127.0.0.1",
                        "--port", str(port), "--control-port", str(control_port),
                        "--seed", str(scenario.seed * 1000 + index), *FAKE_OPTIONS[pool.kind](pool, scenario)]
                replica_children.append((port, control_port, processes.start(name, argv)))

        processes.wait_ready(toxiproxy_child, lambda: _answers(f"{toxiproxy_url}/version"), READY_TIMEOUT)
        for port, control_port, child in replica_children:
            processes.wait_ready(child, functools.partial(_both_answer, f"http://127.0.0.1:{port}/health",
                                                          f"http://127.0.0.1:{control_port}/fault"), READY_TIMEOUT)

        toxiproxy = ToxiproxyControl("127.0.0.1", toxiproxy_port)
        replicas: dict[str, Replica] = {}
        for pool in scenario.upstreams:
            for index in range(pool.replicas):
                name = f"{pool.name}[{index}]"
                proxy_name = f"{pool.name}-{index}"
                port, control_port = replica_ports[name]
                proxy_port = toxiproxy.create_proxy(proxy_name, f"127.0.0.1:{port}")
                replicas[name] = Replica(name, pool.name, port, proxy_name, proxy_port, control_port, pool.kind)

        upstreams = [UpstreamAddress(r.pool, r.name, "127.0.0.1", r.proxy_port, r.kind) for r in replicas.values()]
        config = gateway.write_config(upstreams, run_dir)
        gateway_child = processes.start(gateway.kind, gateway.argv(config))
        processes.wait_ready(gateway_child, gateway.is_ready, READY_TIMEOUT)
        stack = Stack(gateway=gateway, toxiproxy=toxiproxy, toxiproxy_url=toxiproxy_url, replicas=replicas,
                      run_dir=run_dir, gateway_version=gateway.version())
        wait_all_healthy(stack, scenario, f"logs in {run_dir / 'logs'}")
        return stack

    def down(self) -> None:
        if self._processes is not None:
            self._processes.stop_all()
            self._processes = None
