"""TLS pools of a run: the certificates each one's replicas serve, and what the gateway trusts.

For every upstream with ``tls`` set, ``prepare`` mints a test CA and one certificate per kind
(harness/certs.py) into ``<run>/tls/<pool>/``; the replicas start with ``--tls-dir`` on that
folder (serving ``valid``) and the gateway trusts that pool's CA only.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import loopback
from harness.certs import mint
from harness.gateways import UpstreamTlsTrust
from harness.scenario import Scenario

READY_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class PoolTls:
    """One TLS pool's certificate folder, its CA file and the name the gateway expects."""

    directory: Path
    ca_file: Path
    server_name: str

    def fake_args(self, directory: str | None = None) -> list[str]:
        """The fake's options; ``directory``: the folder as the fake sees it (default: this one)."""
        return ["--tls-dir", directory or str(self.directory)]

    def trust(self, ca_file: str | None = None) -> UpstreamTlsTrust:
        """What the gateway validates against; ``ca_file``: the CA as the gateway sees it."""
        return UpstreamTlsTrust(ca_file or str(self.ca_file), self.server_name)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this pool's CA and checks the expected name."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def prepare(scenario: Scenario, run_dir: Path) -> dict[str, PoolTls]:
    """Mint the certificates of every TLS pool of ``scenario``; pool name -> its PoolTls."""
    pools: dict[str, PoolTls] = {}
    for upstream in scenario.upstreams:
        if upstream.tls is not None:
            directory = run_dir / "tls" / upstream.name
            pools[upstream.name] = PoolTls(directory, mint(directory, upstream.server_name), upstream.server_name)
    return pools


def health_answers(url: str, pool: PoolTls | None) -> bool:
    """``GET url`` answers 200: over TLS (trusting the pool's CA, whatever the host in the URL) if
    ``pool`` is set, so a replica is ready only when its TLS port serves."""
    if pool is None:
        try:
            return loopback.client().get(url, timeout=READY_TIMEOUT_S).status_code == 200
        except httpx.HTTPError:
            return False
    url = url.replace("http://", "https://", 1)
    context = pool.client_context()
    context.check_hostname = False  # the URL says 127.0.0.1; the name is the gateway's to check
    try:
        return httpx.get(url, timeout=READY_TIMEOUT_S, verify=context).status_code == 200
    except httpx.HTTPError:
        return False
