"""The runtime seam: where the components of a stack run (local processes, or Docker containers).

``Runtime.up`` returns a running ``Stack``: the gateway, one Toxiproxy proxy per replica,
and the fake replicas, all ready. ``Stack.down`` stops everything it started and must be
safe to call more than once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.errors import FaultError, StackError, StartupTimeout
from harness.gateways import GatewayAdapter, HostHealth
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

    def replica_health(self) -> dict[str, HostHealth]:
        """The gateway's view of each replica, keyed by replica name."""
        by_address = {self.gateway_address(name): name for name in self.replicas}
        return {by_address[address]: health for address, health in self.gateway.host_health().items()
                if address in by_address}

    def endpoints(self) -> dict[str, object]:
        """Everything a person or a report needs to reach the stack."""
        return {
            "gateway": self.gateway.url,
            "gateway_admin": self.gateway.admin_url,
            "toxiproxy": self.toxiproxy_url,
            "replicas": {r.name: {"url": f"http://127.0.0.1:{r.port}", "proxy": r.proxy_name,
                                  "proxy_url": f"http://127.0.0.1:{r.proxy_port}",
                                  "gateway_address": self.gateway_address(r.name), "kind": r.kind,
                                  "control_url": self.control_url(r.name) if r.control_port is not None else None}
                         for r in self.replicas.values()},
        }


class Runtime(Protocol):
    """Starts and stops the components of a scenario's stack."""

    name: str

    def up(self, scenario: Scenario, run_dir: Path, gateway_port: int | None = None) -> Stack:
        """Start every component and wait until the gateway sees every replica healthy."""

    def down(self) -> None:
        """Stop everything ``up`` started; idempotent, never raises."""


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
        time.sleep(0.05)
    unhealthy = sorted(name for name in stack.replicas if not health.get(name))
    raise StartupTimeout(f"the gateway did not see {', '.join(unhealthy)} healthy within {timeout:g}s ({logs_hint})")
