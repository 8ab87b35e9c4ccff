"""The gateway's view of its upstreams, as diagnose needs it: clusters, hosts, health flags, and
how the gateway checks and talks to them (health check, TLS, protocol, resolver).

Read from Envoy's admin API (harness/diagnose/envoy_source.py) or from an Envoy config file;
the layers (harness/diagnose/layers.py) probe a host the way this view says the gateway does.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StatusRange:
    """HTTP statuses in [start, end) count as healthy (Envoy's expected_statuses)."""

    start: int
    end: int

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and self.start <= status < self.end

    def __str__(self) -> str:
        return str(self.start) if self.end == self.start + 1 else f"{self.start}-{self.end - 1}"


@dataclass(frozen=True)
class HealthCheckDef:
    """The gateway's active HTTP health check of a cluster's hosts."""

    path: str = "/health"
    method: str = "GET"
    host: str | None = None          # Host header sent (Envoy's default: the cluster name)
    timeout: float = 1.0
    interval: float = 1.0
    unhealthy_threshold: int = 1
    healthy_threshold: int = 1
    expected_statuses: tuple[StatusRange, ...] = (StatusRange(200, 201),)
    receive: tuple[str, ...] = ()    # text the body must contain, in order (Envoy's ``receive``)
    send: str | None = None          # the request body (Envoy's ``send``), e.g. an MCP initialize
    headers: tuple[tuple[str, str], ...] = ()  # request_headers_to_add

    def expects(self, status: int) -> bool:
        return any(status in r for r in self.expected_statuses)

    def expected_text(self) -> str:
        return ", ".join(map(str, self.expected_statuses))


@dataclass(frozen=True)
class TlsDef:
    """How the gateway validates a cluster's TLS hosts."""

    sni: str | None = None
    trusted_ca_file: str | None = None
    san_names: tuple[str, ...] = ()       # DNS names the certificate must carry (exact)
    alpn: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resolver:
    """A DNS server the gateway resolves a cluster's names with."""

    address: str
    port: int = 53


@dataclass(frozen=True)
class Host:
    """One upstream endpoint of a cluster, with the gateway's own view of its health."""

    cluster: str
    address: str            # IP (or the configured hostname if the gateway has not resolved it)
    port: int
    hostname: str | None = None   # the configured name of a DNS cluster's endpoint
    flags: tuple[str, ...] = ()   # the gateway's words: failed_active_health_check, failed_outlier_check, ...
    healthy: bool | None = None   # None: unknown (read from a config file, no live gateway)
    resolved: bool = True         # False: a configured name the gateway has no address for

    @property
    def key(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def label(self) -> str:
        name = f"{self.hostname}:{self.port}" if self.hostname and self.hostname != self.address else self.key
        return f"{self.cluster}/{name}" if self.resolved or not self.hostname else f"{self.cluster}/{self.hostname}:{self.port}"


@dataclass(frozen=True)
class Cluster:
    """One upstream pool as the gateway has it configured."""

    name: str
    type: str = "STATIC"                      # STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ...
    connect_timeout: float = 5.0
    health_check: HealthCheckDef | None = None
    tls: TlsDef | None = None
    http2: bool = False                       # the gateway speaks HTTP/2 to the hosts
    resolvers: tuple[Resolver, ...] = ()      # custom DNS resolvers (empty: the system's)
    kind: str = "openai"                      # what the hosts serve: openai or mcp
    hosts: tuple[Host, ...] = field(default=())


@dataclass(frozen=True)
class GatewayView:
    """Every cluster of one gateway, where the view came from, and whether health flags are live."""

    source: str                      # the admin URL or the config file
    live: bool                       # True: health flags come from a running gateway
    clusters: tuple[Cluster, ...]

    def cluster(self, name: str) -> Cluster:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    def find_host(self, address: str) -> tuple[Cluster, Host] | None:
        """The cluster and host whose ``host:port`` (or ``hostname:port``) is ``address``."""
        for cluster in self.clusters:
            for host in cluster.hosts:
                if address in (host.key, f"{host.hostname}:{host.port}"):
                    return cluster, host
        return None
