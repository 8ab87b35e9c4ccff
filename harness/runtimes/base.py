"""The runtime seam: where the components of a stack run (local processes, or Docker containers).

``Runtime.up`` returns a running ``Stack``: the gateway, one Toxiproxy proxy per replica,
and the fake replicas, all ready. ``Stack.down`` stops everything it started and must be
safe to call more than once.
"""

from __future__ import annotations

from collections.abc import Callable

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.attach import Attach
from harness.errors import FaultError, StackError, StartupTimeout
from harness.gateways import GATEWAYS, GatewayAdapter, HostHealth
from harness.gateway_watch import GatewayProcess
from harness.scenario import Scenario
from harness.toxiproxy import ToxiproxyControl

# Every process a run starts has this variable set to the run's folder, so that tests and
# clean-up can find whatever a run left behind.
RUN_MARKER = "CHAOSGATE_RUN_DIR"


@dataclass(frozen=True)
class Replica:
    """One fake upstream replica and the Toxiproxy proxy in front of it."""

    name: str          # e.g. chat[0]
    pool: str
    port: int          # where the replica itself listens (as the host reaches it)
    proxy_name: str    # its Toxiproxy proxy
    proxy_port: int    # where its proxy listens (as the host reaches it; on local also the gateway)
    control_port: int | None = None  # its fake's control API (fault modes), as the host reaches it
    kind: str = "openai"             # what it speaks: its pool's upstream kind
    host: str = "127.0.0.1"          # where the replica itself listens (the user's server's host, for a real one)
    real: bool = False               # the user's own server (upstreams[].address): chaosgate did not start it

    @property
    def address(self) -> str:
        """``host:port`` where the replica itself listens."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DnsServer:
    """The fake DNS server (fakes/dns.py) the gateway resolves dns pools through."""

    address: str        # host:port the gateway's resolver queries (UDP and TCP)
    control_url: str    # its control API (per-name fault modes, query counts), as the host reaches it
    names: dict[str, str]  # replica -> its name, e.g. chat[0] -> chat-0.chaosgate.test
    ports: dict[str, int]  # replica -> the port the gateway dials at whatever address the name answers
    backends: dict[str, str]  # replica -> host:port where the replica itself listens (for a flip's proxy)


class ProcessControl(Protocol):
    """What a runtime offers process faults: signals to a replica's process, restarts, supervision
    (local: harness.supervisor.Supervisor; docker: harness.runtimes.docker_supervisor.ContainerSupervisor,
    through kill/pause/unpause/stop/start of the replica's container)."""

    def pid(self, replica: str) -> int | None:
        """The replica's current process id (None while it is dead, waiting for its restart)."""

    def send(self, replica: str, sig: int) -> int:
        """Send ``sig`` to the replica's process; the pid it went to. FaultError if it is not running."""

    def restart(self, replica: str, port: int | None = None) -> int:
        """Stop the replica gracefully and start it again at once, on ``port`` if given (else where
        it listens now); the new pid. A runtime whose ports are fixed when a replica is created (docker)
        moves it to a port of its own instead of ``port``; ``process.restarted`` journals where."""

    def home_port(self, replica: str) -> int:
        """The port the replica was started on, which its proxy (and so the gateway) dials."""

    def watch(self, record: Any) -> None:
        """Start restarting dead replicas; ``record(type, **fields)`` journals process events."""

    def stop(self) -> None:
        """Stop supervising (before teardown)."""


# What a runtime can do beyond the basics; a fault or upstream setting that needs a capability the
# chosen runtime lacks is refused before anything starts (see unsupported()).
PROCESS_CONTROL = "process_control"
MEMORY_LIMIT = "memory_limit"
REAL_UPSTREAMS = "real_upstreams"  # the runtime puts Toxiproxy in front of the user's own servers (address)
DNS = "dns"  # the runtime runs the fake DNS server and points the gateway's resolver at it


@dataclass
class Stack:
    """A running stack; also the context faults act on (see harness.faults.base.FaultContext)."""

    gateway: GatewayAdapter
    toxiproxy: ToxiproxyControl
    toxiproxy_url: str
    replicas: dict[str, Replica]
    run_dir: Path
    gateway_version: str = ""
    # replica name -> the host:port the gateway dials for it (as the gateway reports it in its
    # health view and upstream header); unset: 127.0.0.1:<proxy_port>, as on the local runtime.
    gateway_addresses: dict[str, str] = field(default_factory=dict)
    process_control: ProcessControl | None = None  # None: this runtime has no process faults
    dns: DnsServer | None = None  # the fake DNS server, when a pool is resolved by name
    # the gateway's own process, watched during a run (harness/gateway_watch.py); None: not watched
    gateway_process: GatewayProcess | None = None
    gateway_log: str = ""  # where the gateway's output goes, named when it exits
    # whether the gateway's view of health is read (False: attached without --attach-admin; harness/attach.py)
    gateway_view: bool = True
    # the moment each component was ready, seconds since the runtime began (harness/phases.py); {}: not timed
    phases: dict[str, float] = field(default_factory=dict)

    def dns_server(self) -> DnsServer:
        """The fake DNS server (see harness.faults.dns); FaultError when the stack has none."""
        if self.dns is None:
            raise FaultError("this stack has no fake DNS server: set dns on the target's upstream pool")
        return self.dns

    def processes(self) -> ProcessControl:
        """The runtime's process control (see harness.faults.base.FaultContext)."""
        if self.process_control is None:
            raise FaultError("this runtime cannot signal or restart replica processes")
        return self.process_control

    def proxy_name(self, replica: str) -> str:
        return self.replicas[replica].proxy_name

    def control_url(self, replica: str) -> str:
        """Base URL of ``replica``'s control API (see harness.faults.base.FaultContext)."""
        port = self.replicas[replica].control_port
        if port is None:
            raise FaultError(f"{replica} has no control API on this runtime")
        return f"http://127.0.0.1:{port}"

    def gateway_address(self, replica: str) -> str:
        """``host:port`` the gateway dials for ``replica`` (its Toxiproxy proxy, seen from the gateway)."""
        return self.gateway_addresses.get(replica) or f"127.0.0.1:{self.replicas[replica].proxy_port}"

    def replica_health(self, hosts: dict[str, HostHealth] | None = None) -> dict[str, HostHealth]:
        """The gateway's view of each replica, keyed by replica name (from ``hosts``, the gateway's
        view by address, when given). A replica resolved by name whose address the gateway no
        longer holds (DNS took it away) is unhealthy with the flag ``removed``."""
        hosts = self.gateway.host_health() if hosts is None else hosts
        by_address = {self.gateway_address(name): name for name in self.replicas}
        health = {by_address[address]: h for address, h in hosts.items() if address in by_address}
        for replica in self.dns.names if self.dns is not None else {}:
            health.setdefault(replica, HostHealth(False, "removed"))
        return health

    def endpoints(self) -> dict[str, object]:
        """Everything a person or a report needs to reach the stack."""
        return {
            "gateway": self.gateway.url,
            "gateway_admin": self.gateway.admin_url,
            "toxiproxy": self.toxiproxy_url,
            **({"dns": {"address": self.dns.address, "control_url": self.dns.control_url, "names": self.dns.names}}
               if self.dns is not None else {}),
            "replicas": {r.name: {"url": f"http://{r.address}", "proxy": r.proxy_name, **({"real": True} if r.real else {}),
                                  "proxy_url": f"http://127.0.0.1:{r.proxy_port}",
                                  "gateway_address": self.gateway_address(r.name), "kind": r.kind,
                                  "control_url": self.control_url(r.name) if r.control_port is not None else None}
                         for r in self.replicas.values()},
        }


class Runtime(Protocol):
    """Starts and stops the components of a scenario's stack."""

    name: str
    capabilities: frozenset[str]  # PROCESS_CONTROL, MEMORY_LIMIT, ...

    def up(self, scenario: Scenario, run_dir: Path, gateway_port: int | None = None,
           attach: Attach | None = None, on_start: Callable[[], None] | None = None) -> Stack:
        """Start every component and wait until the gateway sees every replica healthy; with ``attach``, every
        component but the gateway, which runs already (harness/attach.py). ``on_start`` is called once the
        runtime's own checks passed, just before its first component starts (a run spawns its load then)."""

    def down(self) -> None:
        """Stop everything ``up`` started; idempotent, never raises."""


READY_POLL_S = 0.01  # how often start-up asks a component whether it is ready (a loopback call: about 0.2 ms)


def wait_all_healthy(stack: Stack, scenario: Scenario, logs_hint: str) -> None:
    """Wait until the gateway reports every replica healthy (its first check does that);
    StartupTimeout naming the laggards, and where their logs are, after the deadline."""
    hc = scenario.gateway.health_check
    timeout = 5.0 + (hc.timeout + hc.no_traffic_interval if hc else 0.0)
    deadline = time.monotonic() + timeout
    health: dict[str, bool] = {}
    while time.monotonic() < deadline:
        try:
            health = {name: h.healthy for name, h in stack.replica_health().items()}
        except StackError:
            health = {}
        if len(health) == len(stack.replicas) and all(health.values()):
            return
        time.sleep(READY_POLL_S)
    unhealthy = sorted(name for name in stack.replicas if not health.get(name))
    raise StartupTimeout(f"the gateway did not see {', '.join(unhealthy)} healthy within {timeout:g}s ({logs_hint})")


def unsupported(scenario: Scenario, runtime_name: str, capabilities: frozenset[str]) -> list[str]:
    """Why ``scenario`` cannot run on this runtime (empty: it can): faults and settings whose
    capability the runtime does not declare."""
    problems = [f"fault {fault.label!r} ({fault.kind}) needs {need}, which the {runtime_name} runtime does not offer"
                for fault in scenario.faults for need in sorted(fault.needs - capabilities)]
    problems += [f"upstream {pool.name!r} sets memory_limit, which the {runtime_name} runtime does not enforce"
                 for pool in scenario.upstreams if pool.memory_limit is not None and MEMORY_LIMIT not in capabilities]
    problems += [f"upstream {pool.name!r} sets dns, but the {runtime_name} runtime does not run the fake DNS server"
                 for pool in scenario.upstreams if pool.dns is not None and DNS not in capabilities]
    if scenario.gateway.config is not None and runtime_name != "local":
        problems.append(f"gateway.config (the gateway's own file) runs on the local runtime only, not {runtime_name}")
    problems += [f"upstream {pool.name!r} names your own server (address), but the {runtime_name} runtime runs "
                 "only chaosgate's fake replicas; use --runtime local"
                 for pool in scenario.upstreams if pool.real and REAL_UPSTREAMS not in capabilities]
    if runtime_name not in (gateway := GATEWAYS[scenario.gateway.kind]).runtimes:
        problems.append(f"the {gateway.kind} gateway runs on the {', '.join(sorted(gateway.runtimes))} runtime only")
    return problems


def check_supported(scenario: Scenario, runtime_name: str, capabilities: frozenset[str]) -> None:
    """StackError listing everything in ``scenario`` the runtime cannot do."""
    problems = unsupported(scenario, runtime_name, capabilities)
    if problems:
        raise StackError(f"scenario {scenario.name!r} cannot run on the {runtime_name} runtime: " + "; ".join(problems))
