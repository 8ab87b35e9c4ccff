"""The runtime seam: where the components of a stack run (local processes, later Docker).

``Runtime.up`` returns a running ``Stack``: the gateway, one Toxiproxy proxy per replica,
and the fake replicas, all ready. ``Stack.down`` stops everything it started and must be
safe to call more than once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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
    port: int          # where the replica itself listens
    proxy_name: str    # its Toxiproxy proxy
    proxy_port: int    # where the gateway reaches it


@dataclass
class Stack:
    """A running stack; also the context faults act on (see harness.faults.base.FaultContext)."""

    gateway: GatewayAdapter
    toxiproxy: ToxiproxyControl
    toxiproxy_url: str
    replicas: dict[str, Replica]
    run_dir: Path
    gateway_version: str = ""

    def proxy_name(self, replica: str) -> str:
        return self.replicas[replica].proxy_name

    def replica_health(self) -> dict[str, HostHealth]:
        """The gateway's view of each replica, keyed by replica name."""
        by_address = {f"127.0.0.1:{r.proxy_port}": r.name for r in self.replicas.values()}
        return {by_address[address]: health for address, health in self.gateway.host_health().items()
                if address in by_address}

    def endpoints(self) -> dict[str, object]:
        """Everything a person or a report needs to reach the stack."""
        return {
            "gateway": self.gateway.url,
            "gateway_admin": self.gateway.admin_url,
            "toxiproxy": self.toxiproxy_url,
            "replicas": {r.name: {"url": f"http://127.0.0.1:{r.port}", "proxy": r.proxy_name,
                                  "proxy_url": f"http://127.0.0.1:{r.proxy_port}"} for r in self.replicas.values()},
        }


class Runtime(Protocol):
    """Starts and stops the components of a scenario's stack."""

    name: str

    def up(self, scenario: Scenario, run_dir: Path, gateway_port: int | None = None) -> Stack:
        """Start every component and wait until the gateway sees every replica healthy."""

    def down(self) -> None:
        """Stop everything ``up`` started; idempotent, never raises."""
