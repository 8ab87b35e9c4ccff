"""Walk a host through the layers and stop at the first that fails; diagnose every host of a view."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harness.diagnose.base import LayerResult, ProbeSettings, ProbeTarget
from harness.catalogue import CAUSES
from harness.diagnose.layers import LAYERS
from harness.diagnose.model import Cluster, GatewayView, Host


@dataclass(frozen=True)
class HostDiagnosis:
    """One host: the gateway's view of it and, if walked, what the layers found."""

    cluster: str
    host: str
    address: str
    gateway_healthy: bool | None
    flags: tuple[str, ...]
    walked: bool
    layers: tuple[LayerResult, ...] = field(default=())
    seconds: float = 0.0

    @property
    def failure(self) -> LayerResult | None:
        return next((r for r in self.layers if not r.ok), None)

    @property
    def cause(self) -> str | None:
        failure = self.failure
        return failure.cause if failure else None

    @property
    def verdict(self) -> str:
        if self.failure is not None:
            return "unhealthy"
        if not self.walked:
            return "healthy" if self.gateway_healthy else "not probed"
        return "passes" if self.gateway_healthy is not False else "passes now"

    @property
    def unhealthy(self) -> bool:
        return self.failure is not None or self.gateway_healthy is False

    @property
    def evidence(self) -> str:
        failure = self.failure
        if failure is not None:
            return failure.evidence
        if self.walked and self.gateway_healthy is False:
            return (f"every layer passes now, but the gateway marks it {'/'.join(self.flags) or 'unhealthy'}: it may be "
                    "recovering (healthy_threshold passing checks) or flapping; run diagnose again")
        if self.walked:
            return "every layer passes"
        return f"the gateway marks it healthy{' (' + '/'.join(self.flags) + ')' if self.flags else ''}; not probed"

    @property
    def next_step(self) -> str:
        cause = self.cause
        if cause is not None and cause in CAUSES:
            return CAUSES[cause].next_step
        if self.walked and self.gateway_healthy is False:
            return "watch the gateway's health flags; check its health-check event log for the last failures"
        return ""

    def to_json(self) -> dict[str, Any]:
        cause = self.cause
        failure = self.failure
        return {"cluster": self.cluster, "host": self.host, "address": self.address,
                "gateway_healthy": self.gateway_healthy, "flags": list(self.flags), "verdict": self.verdict,
                "cause": cause, "failing_layer": failure.layer if failure else None,
                "table1": CAUSES[cause].row if cause in CAUSES else None,
                "evidence": self.evidence, "next_step": self.next_step, "seconds": round(self.seconds, 3),
                "layers": [r.to_json() for r in self.layers]}


@dataclass(frozen=True)
class Diagnosis:
    """Every host of a gateway view, diagnosed."""

    source: str
    live: bool
    hosts: tuple[HostDiagnosis, ...]

    @property
    def unhealthy(self) -> bool:
        return any(h.unhealthy for h in self.hosts)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "live": self.live, "unhealthy": self.unhealthy,
                "hosts": [h.to_json() for h in self.hosts]}


def walk(cluster: Cluster, host: Host, settings: ProbeSettings, via: tuple[str, int] | None = None) -> HostDiagnosis:
    """Probe ``host`` layer by layer; stop at the first failure. ``via``: a loopback address that reaches
    the same endpoint from here when the gateway's own address does not (a gateway in a container
    dialing a proxy the host reaches on a published port); the DNS layer is then skipped."""
    target = ProbeTarget(cluster=cluster, host=host, address=via[0] if via else host.address,
                         port=via[1] if via else host.port)
    if via is not None:
        target.notes["via"] = f"{via[0]}:{via[1]}"
    began = time.perf_counter()
    results: list[LayerResult] = []
    for layer in LAYERS:
        if not layer.applies(target):
            continue
        result = layer.probe(target, settings)
        results.append(result)
        if not result.ok:
            break
    return HostDiagnosis(cluster=cluster.name, host=host.label, address=host.key, gateway_healthy=host.healthy,
                         flags=host.flags, walked=True, layers=tuple(results), seconds=time.perf_counter() - began)


def diagnose_view(view: GatewayView, settings: ProbeSettings | None = None, all_hosts: bool = False,
                  clusters: set[str] | None = None) -> Diagnosis:
    """Walk every host the gateway does not consider healthy (every host with ``all_hosts``, or when
    the view has no live health flags)."""
    settings = settings or ProbeSettings()
    out: list[HostDiagnosis] = []
    for cluster in view.clusters:
        if clusters is not None and cluster.name not in clusters:
            continue
        for host in cluster.hosts:
            if all_hosts or host.healthy is not True:
                out.append(walk(cluster, host, settings))
            else:
                out.append(HostDiagnosis(cluster=cluster.name, host=host.label, address=host.key,
                                         gateway_healthy=host.healthy, flags=host.flags, walked=False))
    return Diagnosis(source=view.source, live=view.live, hosts=tuple(out))


def diagnose_address(view: GatewayView, address: str, settings: ProbeSettings | None = None,
                     aliases: tuple[str, ...] = (), via: tuple[str, int] | None = None) -> HostDiagnosis:
    """Walk the one host the gateway has at ``address`` (``host:port``; for a DNS cluster, better its
    ``name:port`` among ``aliases``, which stays when the name's address changes), whatever its health."""
    for candidate in (*aliases, address):
        found = view.find_host(candidate)
        if found is not None:
            return walk(found[0], found[1], settings or ProbeSettings(), via)
    raise KeyError(f"the gateway ({view.source}) has no upstream host {' or '.join((*aliases, address))}")
