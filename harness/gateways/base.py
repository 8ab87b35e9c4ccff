"""The gateway seam: render a gateway's config from the scenario, start it, read its view of health.

An adapter knows one gateway (Envoy first; HAProxy, nginx and LiteLLM follow). It is given
the addresses of the upstream replicas (in practice, their Toxiproxy proxies) and answers
three questions: how to start it, when it is ready, and which replicas it currently
considers healthy. It also names the settings in a scenario that are known traps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.scenario import Scenario


@dataclass(frozen=True)
class UpstreamAddress:
    """Where the gateway reaches one replica of a pool."""

    pool: str
    replica: str
    host: str
    port: int
    kind: str = "openai"  # what the replica speaks (the pool's upstream kind)
    tls: UpstreamTlsTrust | None = None  # the replica serves TLS: what the gateway checks it against


@dataclass(frozen=True)
class UpstreamTlsTrust:
    """How the gateway validates a TLS replica: the CA it trusts and the name it expects."""

    ca_file: str       # PEM file of the test CA, as the gateway's process sees it
    server_name: str   # sent as SNI and required as a DNS name in the certificate


@dataclass(frozen=True)
class HostHealth:
    """The gateway's own view of one upstream address."""

    healthy: bool
    flags: str  # the gateway's words for why, e.g. '/failed_active_hc'


class GatewayAdapter(Protocol):
    """One gateway product, configured for one scenario run."""

    kind: str

    def write_config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> Path:
        """Render the gateway's configuration into ``run_dir`` and return its path."""

    def argv(self, config: Path) -> list[str]:
        """The command line that starts the gateway with ``config``."""

    def is_ready(self) -> bool:
        """Whether the gateway accepts traffic (one quick probe, no waiting)."""

    def host_health(self) -> dict[str, HostHealth]:
        """The gateway's view of every upstream, keyed by ``host:port``; raises StackError if unreachable."""

    def version(self) -> str:
        """The gateway's version string."""

    @property
    def url(self) -> str:
        """Base URL clients send requests to."""

    @property
    def admin_url(self) -> str | None:
        """Base URL of the gateway's admin interface, if it has one."""


def traps(scenario: Scenario) -> list[str]:
    """Settings in the scenario that make the gateway behave other than its expectations assume."""
    from harness.gateways import GATEWAYS

    return GATEWAYS[scenario.gateway.kind].traps(scenario)
