"""The local runtime: every component is a process on 127.0.0.1 (no Docker needed)."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path


from harness.attempts import prepare_attempts_dir, replica_attempts_file
from harness.cgroups import MemoryCgroup, memory_hierarchy
from harness.leftovers import reap_leftovers
from harness.errors import ComponentMissing
from harness.gateways import GATEWAYS, UpstreamAddress
from harness.processes import Child, ProcessGroup, answers, check_port_free, free_port
from harness.gateways.base import UpstreamResolver
from harness.runtimes.base import (DNS, MEMORY_LIMIT, PROCESS_CONTROL, RUN_MARKER, DnsServer, Replica, Stack,
                                   wait_all_healthy)
from harness.scenario import Scenario, Upstream
from harness.supervisor import BackoffPolicy, Supervisor
from harness.toxiproxy import ToxiproxyControl
from harness.upstream_tls import PoolTls, health_answers
from harness.upstream_tls import prepare as prepare_tls

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



def _both_answer(health: str, control: str, tls: PoolTls | None = None) -> bool:
    return health_answers(health, tls) and answers(control)


def _start_replica(processes: ProcessGroup, name: str, argv: list[str], cgroup: MemoryCgroup | None,
                   port: int) -> Child:
    """Start a fake replica listening on ``port`` (``{port}`` in ``argv``), inside its memory cgroup if any;
    the supervisor calls this again to restart it, on the same port or, for a port change, another."""
    return processes.start(name, [arg.replace("{port}", str(port)) for arg in argv],
                           cgroup_procs=cgroup.procs_file if cgroup else None)


def _replica_answers(control_port: int, tls: PoolTls | None, port: int) -> bool:
    """Whether the replica listening on ``port`` answers on its health and control endpoints."""
    return _both_answer(f"http://127.0.0.1:{port}/health", f"http://127.0.0.1:{control_port}/fault", tls)


# The fake server each upstream kind runs, and the options it gets from the scenario.
FAKE_MODULES = {"openai": "fakes.llm", "mcp": "fakes.mcp"}
FAKE_OPTIONS: dict[str, Callable[[Upstream, Scenario], list[str]]] = {
    "openai": lambda pool, scenario: ["--ttft-ms", f"{pool.ttft * 1000:g}", "--tokens-per-s", f"{pool.tokens_per_s:g}",
                                      "--max-tokens", str(scenario.load.max_tokens)],
    "mcp": lambda pool, scenario: ["--tool-latency-ms", f"{pool.ttft * 1000:g}"],
}


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _start_dns(processes: ProcessGroup, scenario: Scenario) -> Callable[[dict[str, Replica]], DnsServer] | None:
    """Start the fake DNS server with one name per replica of every dns pool (answering 127.0.0.1, where
    its proxy listens), when a pool has dns (None otherwise); the result waits until it answers."""
    names = {f"{pool.name}[{i}]": (pool.dns.hostname(pool.name, i), pool.dns.ttl)
             for pool in scenario.upstreams if pool.dns is not None for i in range(pool.replicas)}
    if not names:
        return None
    port, control_port = free_port(), free_port()
    child = processes.start("dns", [sys.executable, "-m", "fakes.dns", "--host", "127.0.0.1", "--port", str(port),
                                    "--control-port", str(control_port),
                                    *(f"--record={name}=127.0.0.1@{ttl}" for name, ttl in names.values())])
    control_url = f"http://127.0.0.1:{control_port}"

    def ready(replicas: dict[str, Replica]) -> DnsServer:
        processes.wait_ready(child, lambda: answers(f"{control_url}/stats"), READY_TIMEOUT)
        return DnsServer(address=f"127.0.0.1:{port}", control_url=control_url,
                         names={replica: name for replica, (name, _) in names.items()},
                         ports={replica: replicas[replica].proxy_port for replica in names},
                         backends={replica: f"127.0.0.1:{replicas[replica].port}" for replica in names})
    return ready


def _stderr(message: str) -> None:
    print(f"chaosgate: local: {message}", file=sys.stderr, flush=True)


class LocalRuntime:
    """Toxiproxy, the fake replicas and the gateway as child processes of the harness."""

    name = "local"
    capabilities = frozenset({PROCESS_CONTROL, MEMORY_LIMIT, DNS})

    def __init__(self, log: Callable[[str], None] = _stderr) -> None:
        self._log = log
        self._processes: ProcessGroup | None = None
        self._supervisor: Supervisor | None = None
        self._cgroups: list[MemoryCgroup] = []

    def up(self, scenario: Scenario, run_dir: Path, gateway_port: int | None = None) -> Stack:
        for reaped in reap_leftovers():  # what a killed harness (and its watchdog) left: harness/leftovers.py
            self._log(reaped.describe())
        # Memory limits need a writable memory cgroup hierarchy (v1 or v2): refused before anything starts.
        hierarchy = memory_hierarchy() if any(p.memory_limit is not None for p in scenario.upstreams) else None
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
        dns_ready = _start_dns(processes, scenario)  # starts beside the replicas; waited for below

        # The run's folder names its cgroups: runs of one scenario into different folders do not share them.
        run_id = f"{run_dir.name}-{hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]}"
        replica_children = []
        replica_ports: dict[str, tuple[int, int]] = {}
        tls = prepare_tls(scenario, run_dir)
        prepare_attempts_dir(run_dir)
        supervisor = self._supervisor = Supervisor()
        for pool in scenario.upstreams:
            for index in range(pool.replicas):
                name = f"{pool.name}[{index}]"
                port, control_port = free_port(), free_port()
                while control_port == port:  # two ports that were free a moment ago: make sure they differ
                    control_port = free_port()
                replica_ports[name] = port, control_port
                argv = [sys.executable, "-m", FAKE_MODULES[pool.kind], "--name", name, "--host", "127.0.0.1",
                        "--port", "{port}", "--control-port", str(control_port),
                        "--seed", str(scenario.seed * 1000 + index), *FAKE_OPTIONS[pool.kind](pool, scenario),
                        "--attempts-file", str(replica_attempts_file(run_dir, name)),
                        *(tls[pool.name].fake_args() if pool.name in tls else [])]
                cgroup = None
                if pool.memory_limit is not None and hierarchy is not None:
                    cgroup = MemoryCgroup(run_id, name, pool.memory_limit, hierarchy)
                    self._cgroups.append(cgroup)
                    cgroup.create()
                start = functools.partial(_start_replica, processes, name, argv, cgroup)
                ready = functools.partial(_replica_answers, control_port, tls.get(pool.name))
                policy = BackoffPolicy(pool.restart.initial_backoff, pool.restart.factor, pool.restart.max_backoff)
                replica_children.append((name, port, start(port), start, ready, policy, cgroup))

        processes.wait_ready(toxiproxy_child, lambda: answers(f"{toxiproxy_url}/version"), READY_TIMEOUT)
        for name, port, child, start, ready, policy, cgroup in replica_children:
            processes.wait_ready(child, functools.partial(ready, port), READY_TIMEOUT)
            supervisor.add(name, child, start, ready, policy, port, cgroup)

        toxiproxy = ToxiproxyControl("127.0.0.1", toxiproxy_port)
        replicas: dict[str, Replica] = {}
        for pool in scenario.upstreams:
            for index in range(pool.replicas):
                name = f"{pool.name}[{index}]"
                proxy_name = f"{pool.name}-{index}"
                port, control_port = replica_ports[name]
                proxy_port = toxiproxy.create_proxy(proxy_name, f"127.0.0.1:{port}")
                replicas[name] = Replica(name, pool.name, port, proxy_name, proxy_port, control_port, pool.kind)

        dns = dns_ready(replicas) if dns_ready is not None else None
        pools = {pool.name: pool for pool in scenario.upstreams}
        upstreams = [UpstreamAddress(r.pool, r.name, dns.names[r.name] if dns and r.name in dns.names else "127.0.0.1",
                                     r.proxy_port, r.kind, tls[r.pool].trust() if r.pool in tls else None,
                                     UpstreamResolver(*_host_port(dns.address), settings)
                                     if dns and (settings := pools[r.pool].dns) else None)
                     for r in replicas.values()]
        config = gateway.write_config(upstreams, run_dir)
        gateway_child = processes.start(gateway.kind, gateway.argv(config))
        # A gateway may need longer to start (the LiteLLM proxy imports for 8-25 s on a busy machine).
        processes.wait_ready(gateway_child, gateway.is_ready, getattr(gateway, "startup_timeout", READY_TIMEOUT))
        stack = Stack(gateway=gateway, toxiproxy=toxiproxy, toxiproxy_url=toxiproxy_url, replicas=replicas,
                      run_dir=run_dir, gateway_version=gateway.version(), process_control=supervisor, dns=dns,
                      gateway_process=gateway_child.process, gateway_log=str(gateway_child.log))
        wait_all_healthy(stack, scenario, f"logs in {run_dir / 'logs'}")
        return stack

    def down(self) -> None:
        if self._supervisor is not None:  # first, so nothing is restarted while the stack goes down
            self._supervisor.stop()
            self._supervisor = None
        if self._processes is not None:
            self._processes.stop_all()
            self._processes = None
        for cgroup in self._cgroups:
            cgroup.remove()
        self._cgroups.clear()
