"""The local runtime: every component is a process on 127.0.0.1 (no Docker needed)."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path


from harness.attempts import prepare_attempts_dir, replica_attempts_file
from harness.cgroups import MemoryCgroup, memory_hierarchy
from harness.attach import Attach, AttachedGateway, announce, attached_gateway, wait_served
from harness.leftovers import reap_leftovers
from harness.errors import ComponentMissing, StartupTimeout
from harness.forkserver import ForkServer
from harness.gateways import GATEWAYS, GatewayAdapter, UpstreamAddress
from harness.phases import PhaseClock
from harness.processes import Child, ProcessGroup, answers, check_port_free, free_port
from harness.gateways.base import UpstreamResolver
from harness.runtimes.base import (DNS, MEMORY_LIMIT, PROCESS_CONTROL, REAL_UPSTREAMS, RUN_MARKER, DnsServer, Replica,
                                   Stack, wait_all_healthy)
from harness.scenario import Scenario, Upstream, split_address
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


def _start_replica(forks: ForkServer, name: str, module: str, args: list[str], cgroup: MemoryCgroup | None,
                   port: int) -> Child:
    """Start a fake replica listening on ``port`` (``{port}`` in ``args``), inside its memory cgroup if any;
    the supervisor calls this again to restart it, on the same port or, for a port change, another."""
    return forks.start(name, module, [arg.replace("{port}", str(port)) for arg in args],
                       cgroup.procs_file if cgroup else None)


def _replica_answers(control_port: int, tls: PoolTls | None, port: int) -> bool:
    """Whether the replica listening on ``port`` answers on its health and control endpoints."""
    return _both_answer(f"http://127.0.0.1:{port}/health", f"http://127.0.0.1:{control_port}/fault", tls)


# The fake server each upstream kind runs, and the options it gets from the scenario.
FAKE_MODULES = {"openai": "fakes.llm", "anthropic": "fakes.anthropic", "mcp": "fakes.mcp"}
FAKE_OPTIONS: dict[str, Callable[[Upstream, Scenario], list[str]]] = {
    "openai": lambda pool, scenario: ["--ttft-ms", f"{pool.ttft * 1000:g}", "--tokens-per-s", f"{pool.tokens_per_s:g}",
                                      "--max-tokens", str(scenario.load.max_tokens)],
    "anthropic": lambda pool, scenario: ["--ttft-ms", f"{pool.ttft * 1000:g}", "--tokens-per-s",
                                         f"{pool.tokens_per_s:g}", "--max-tokens", str(scenario.load.max_tokens)],
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
                         backends={replica: replicas[replica].address for replica in names})
    return ready


def wait_accepts(replica: Replica, timeout: float) -> None:
    """Wait until the user's own server behind ``replica`` accepts TCP connections; StartupTimeout after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((replica.host, replica.port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise StartupTimeout(f"{replica.name}: your server at {replica.address} (upstreams[].address) did "
                                     f"not accept connections within {timeout:g}s: {exc.strerror or exc}") from None
        time.sleep(0.1)


def _stderr(message: str) -> None:
    print(f"chaosgate: local: {message}", file=sys.stderr, flush=True)


class LocalRuntime:
    """Toxiproxy, the fake replicas and the gateway as child processes of the harness."""

    name = "local"
    capabilities = frozenset({PROCESS_CONTROL, MEMORY_LIMIT, DNS, REAL_UPSTREAMS})

    def __init__(self, log: Callable[[str], None] = _stderr) -> None:
        self._log = log
        self._processes: ProcessGroup | None = None
        self._supervisor: Supervisor | None = None
        self._cgroups: list[MemoryCgroup] = []
        self._forks: ForkServer | None = None  # the supervisor restarts replicas through it until down()

    def up(self, scenario: Scenario, run_dir: Path, gateway_port: int | None = None,
           attach: Attach | None = None, on_start: Callable[[], None] | None = None) -> Stack:
        clock = PhaseClock()  # each component's moment, journalled with stack.ready (harness/phases.py)
        for reaped in reap_leftovers():  # what a killed harness (and its watchdog) left: harness/leftovers.py
            self._log(reaped.describe())
        # Memory limits need a writable memory cgroup hierarchy (v1 or v2): refused before anything starts.
        hierarchy = memory_hierarchy() if any(p.memory_limit is not None for p in scenario.upstreams) else None
        run_dir.mkdir(parents=True, exist_ok=True)
        # Every process of the stack carries CHAOSGATE_RUN_DIR, so leftovers can be found by it.
        processes = self._processes = ProcessGroup(run_dir / "logs", env={RUN_MARKER: str(run_dir.resolve())})
        if gateway_port is not None and attach is None:
            check_port_free(gateway_port, "the gateway")
        toxiproxy_bin = toxiproxy_binary()
        if attach is None:
            gateway: GatewayAdapter = GATEWAYS[scenario.gateway.kind](
                scenario.gateway, listen_port=gateway_port or free_port(), admin_port=free_port(),
                load_pool=scenario.load_pool, anthropic_pool=scenario.anthropic_persona_pool)
        else:  # a gateway chaosgate does not start: the rewritten file (if any) gets its ports (harness/attach.py)
            gateway = attached_gateway(scenario, attach, free_port)

        if on_start is not None:  # every check passed: components start from here
            on_start()
        # The fake replicas are forked from one process that imports them while Toxiproxy starts.
        fake_modules = sorted({FAKE_MODULES[pool.kind] for pool in scenario.upstreams if not pool.real})
        forks = self._forks = ForkServer(processes, fake_modules, READY_TIMEOUT) if fake_modules else None
        toxiproxy_port = free_port()
        toxiproxy_url = f"http://127.0.0.1:{toxiproxy_port}"
        toxiproxy_child = processes.start("toxiproxy", [toxiproxy_bin, "-host", "127.0.0.1", "-port", str(toxiproxy_port)])
        dns_ready = _start_dns(processes, scenario)  # starts beside the replicas; waited for below
        processes.wait_ready(toxiproxy_child, lambda: answers(f"{toxiproxy_url}/version"), READY_TIMEOUT)
        clock.mark("toxiproxy_ready")  # (the fork server imports the fakes meanwhile)

        # The run's folder names its cgroups: runs of one scenario into different folders do not share them.
        run_id = f"{run_dir.name}-{hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]}"
        replica_children = []
        replica_ports: dict[str, tuple[str, int, int | None]] = {}  # replica -> host, port, control port
        tls = prepare_tls(scenario, run_dir)
        prepare_attempts_dir(run_dir)
        supervisor = self._supervisor = Supervisor()
        for pool in scenario.upstreams:
            for index in range(pool.replicas):
                name = f"{pool.name}[{index}]"
                if pool.real:  # the user's own server: no process, no control API, no supervision
                    host, real_port = split_address(pool.addresses[index])
                    replica_ports[name] = host, real_port, None
                    continue
                port, control_port = free_port(), free_port()
                while control_port == port:  # two ports that were free a moment ago: make sure they differ
                    control_port = free_port()
                replica_ports[name] = "127.0.0.1", port, control_port
                assert forks is not None  # a pool of fakes has its fork server
                args = ["--name", name, "--host", "127.0.0.1", "--port", "{port}", "--control-port", str(control_port),
                        "--seed", str(scenario.seed * 1000 + index), *FAKE_OPTIONS[pool.kind](pool, scenario),
                        "--attempts-file", str(replica_attempts_file(run_dir, name)),
                        *(tls[pool.name].fake_args() if pool.name in tls else [])]
                cgroup = None
                if pool.memory_limit is not None and hierarchy is not None:
                    cgroup = MemoryCgroup(run_id, name, pool.memory_limit, hierarchy)
                    self._cgroups.append(cgroup)
                    cgroup.create()
                start = functools.partial(_start_replica, forks, name, FAKE_MODULES[pool.kind], args, cgroup)
                ready = functools.partial(_replica_answers, control_port, tls.get(pool.name))
                policy = BackoffPolicy(pool.restart.initial_backoff, pool.restart.factor, pool.restart.max_backoff)
                replica_children.append((name, port, start(port), start, ready, policy, cgroup))

        for name, port, child, start, ready, policy, cgroup in replica_children:
            processes.wait_ready(child, functools.partial(ready, port), READY_TIMEOUT)
            supervisor.add(name, child, start, ready, policy, port, cgroup)
        clock.mark("replicas_ready")

        toxiproxy = ToxiproxyControl("127.0.0.1", toxiproxy_port)
        replicas: dict[str, Replica] = {}
        for pool in scenario.upstreams:
            for index in range(pool.replicas):
                name = f"{pool.name}[{index}]"
                proxy_name = f"{pool.name}-{index}"
                host, listens_on, control = replica_ports[name]
                replica = Replica(name, pool.name, listens_on, proxy_name, 0, control, pool.kind, host, pool.real)
                if pool.real:
                    wait_accepts(replica, READY_TIMEOUT)
                replicas[name] = replace(replica, proxy_port=toxiproxy.create_proxy(proxy_name, replica.address))

        dns = dns_ready(replicas) if dns_ready is not None else None
        clock.mark("proxies_created")
        pools = {pool.name: pool for pool in scenario.upstreams}
        upstreams = [UpstreamAddress(r.pool, r.name, dns.names[r.name] if dns and r.name in dns.names else "127.0.0.1",
                                     r.proxy_port, r.kind, tls[r.pool].trust() if r.pool in tls else None,
                                     UpstreamResolver(*_host_port(dns.address), settings)
                                     if dns and (settings := pools[r.pool].dns) else None, pools[r.pool].fallback)
                     for r in replicas.values()]
        if isinstance(gateway, AttachedGateway):
            stack = self._attached(gateway, scenario, upstreams, replicas, toxiproxy, toxiproxy_url, run_dir, dns,
                                   supervisor)
            clock.mark("gateway_answered")
            stack.phases.update(clock.marks)
            return stack
        config = gateway.write_config(upstreams, run_dir)
        gateway_child = processes.start(gateway.kind, gateway.argv(config))
        clock.mark("gateway_started")
        # A gateway may need longer to start (the LiteLLM proxy imports for 8-25 s on a busy machine).
        processes.wait_ready(gateway_child, gateway.is_ready, getattr(gateway, "startup_timeout", READY_TIMEOUT))
        clock.mark("gateway_ready")
        view = bool(getattr(gateway, "health_view", True))  # Portkey keeps none (harness/gateways/portkey.py)
        stack = Stack(gateway=gateway, toxiproxy=toxiproxy, toxiproxy_url=toxiproxy_url, replicas=replicas,
                      run_dir=run_dir, gateway_version=gateway.version(), process_control=supervisor, dns=dns,
                      gateway_process=gateway_child.process, gateway_log=str(gateway_child.log), gateway_view=view)
        if view:
            wait_all_healthy(stack, scenario, f"logs in {run_dir / 'logs'}")
        clock.mark("all_healthy")
        stack.phases.update(clock.marks)
        return stack

    def _attached(self, gateway: AttachedGateway, scenario: Scenario, upstreams: list[UpstreamAddress],
                  replicas: dict[str, Replica], toxiproxy: ToxiproxyControl, toxiproxy_url: str, run_dir: Path,
                  dns: DnsServer | None, supervisor: Supervisor) -> Stack:
        """The stack around a gateway chaosgate did not start: say what it must use, wait until it answers
        through it (and, with its view of health, until it sees every replica healthy)."""
        attach = gateway.attach
        written = gateway.write_config(upstreams, run_dir) if scenario.gateway.config is not None else None
        stack = Stack(gateway=gateway, toxiproxy=toxiproxy, toxiproxy_url=toxiproxy_url, replicas=replicas,
                      run_dir=run_dir, gateway_version=gateway.version(), process_control=supervisor, dns=dns,
                      gateway_view=attach.gateway_view)
        addresses = {name: stack.gateway_address(name) for name in replicas}
        announce(replicas, addresses, attach, run_dir, written, self._log,
                 gateway.inner.argv(written) if written is not None else None)
        deadline = time.monotonic() + attach.wait
        path = "" if scenario.load_pool == scenario.upstreams[0].name else f"/{scenario.load_pool}"
        served = wait_served(attach, path, replicas, addresses, deadline)
        self._log(f"attach: {attach.url} answers through chaosgate's upstreams ({served} served)")
        if attach.gateway_view:
            wait_all_healthy(stack, scenario, f"the gateway at {attach.url} is not chaosgate's: see its own logs")
        return stack

    def down(self) -> None:
        if self._supervisor is not None:  # first, so nothing is restarted while the stack goes down
            self._supervisor.stop()
            self._supervisor = None
        if self._forks is not None:
            self._forks.close()
            self._forks = None
        if self._processes is not None:
            self._processes.stop_all()
            self._processes = None
        for cgroup in self._cgroups:
            cgroup.remove()
        self._cgroups.clear()
