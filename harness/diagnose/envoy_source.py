"""Envoy's view of its upstreams: from its admin API (live health flags) or from a config file.

``from_admin(url)`` reads ``/config_dump`` (clusters, health checks, TLS, resolvers) and
``/clusters?format=json`` (each host's health flags); ``from_config(path)`` reads a bootstrap
YAML/JSON file (no live flags: every host's health is unknown). Only the fields diagnose uses are
modelled (pydantic, unknown fields ignored); a field of the wrong shape is a DiagnoseError
naming the file and field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from harness.diagnose.model import Cluster, GatewayView, HealthCheckDef, Host, Resolver, StatusRange, TlsDef
from harness.errors import ChaosgateError, ScenarioError, location
from harness.yaml_source import load_yaml

ADMIN_TIMEOUT_S = 2.0
_FAILURE_FLAGS = ("failed_active_health_check", "failed_outlier_check", "failed_eds_health",
                  "pending_dynamic_removal", "excluded_via_immediate_hc_fail")


class DiagnoseError(ChaosgateError):
    """The gateway's configuration or admin API could not be read."""


def _duration(value: Any) -> float:
    """Envoy's JSON durations ("0.500s") or YAML ones ("1s", "250ms"), in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):  # {seconds, nanos}
        return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)\s*", str(value))
    if not match:
        raise ValueError(f"expected a duration like '0.5s', got {value!r}")
    number = float(match.group(1))
    return number / 1000 if match.group(2) == "ms" else number


class _M(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _SocketAddress(_M):
    address: str
    port_value: int = 0


class _Address(_M):
    socket_address: _SocketAddress | None = None


class _Endpoint(_M):
    address: _Address
    hostname: str | None = None


class _LbEndpoint(_M):
    endpoint: _Endpoint | None = None


class _LocalityEndpoints(_M):
    lb_endpoints: list[_LbEndpoint] = []


class _LoadAssignment(_M):
    endpoints: list[_LocalityEndpoints] = []


class _Range(_M):
    start: int
    end: int


class _Payload(_M):
    text: str | None = None  # hex, as Envoy has it

    def decoded(self) -> str | None:
        if self.text is None:
            return None
        try:
            return bytes.fromhex(self.text).decode(errors="replace")
        except ValueError:
            return self.text


class _HeaderValue(_M):
    key: str
    value: str = ""


class _HeaderOption(_M):
    header: _HeaderValue


class _HttpHealthCheck(_M):
    path: str = "/"
    host: str | None = None
    method: str | None = None
    expected_statuses: list[_Range] = []
    send: _Payload | None = None
    receive: list[_Payload] = []
    request_headers_to_add: list[_HeaderOption] = []


class _HealthCheck(_M):
    timeout: float
    interval: float
    unhealthy_threshold: int = 1
    healthy_threshold: int = 1
    http_health_check: _HttpHealthCheck | None = None

    @field_validator("timeout", "interval", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float:
        return _duration(value)

    @field_validator("unhealthy_threshold", "healthy_threshold", mode="before")
    @classmethod
    def _wrapped(cls, value: Any) -> Any:
        return value.get("value", 1) if isinstance(value, dict) else value


class _TransportSocket(_M):
    name: str = ""
    typed_config: dict[str, Any] = {}


class _ClusterType(_M):
    name: str = ""
    typed_config: dict[str, Any] = {}


class _Cluster(_M):
    name: str
    type: str = "STATIC"
    cluster_type: _ClusterType | None = None
    connect_timeout: float = 5.0
    load_assignment: _LoadAssignment | None = None
    health_checks: list[_HealthCheck] = []
    transport_socket: _TransportSocket | None = None
    http2_protocol_options: dict[str, Any] | None = None
    typed_extension_protocol_options: dict[str, Any] = {}
    dns_resolvers: list[_Address] = []
    typed_dns_resolver_config: dict[str, Any] | None = None

    @field_validator("connect_timeout", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float:
        return _duration(value)


def _resolvers(config: dict[str, Any] | None, addresses: list[_Address]) -> tuple[Resolver, ...]:
    found = [Resolver(a.socket_address.address, a.socket_address.port_value or 53)
             for a in addresses if a.socket_address is not None]
    typed = (config or {}).get("typed_config", {})
    for item in typed.get("resolvers", []) or []:
        socket = (item or {}).get("socket_address") or {}
        if socket.get("address"):
            found.append(Resolver(str(socket["address"]), int(socket.get("port_value") or 53)))
    return tuple(found)


def _http2(cluster: _Cluster) -> bool:
    if cluster.http2_protocol_options is not None:
        return True
    options = cluster.typed_extension_protocol_options.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {})
    explicit = options.get("explicit_http_config") or {}
    return "http2_protocol_options" in explicit


def _tls(socket: _TransportSocket | None) -> TlsDef | None:
    if socket is None or "UpstreamTlsContext" not in str(socket.typed_config.get("@type", "")):
        return None
    config = socket.typed_config
    common = config.get("common_tls_context") or {}
    validation = common.get("validation_context") or {}
    ca = (validation.get("trusted_ca") or {}).get("filename")
    names = tuple(str(m.get("matcher", {}).get("exact")) for m in validation.get("match_typed_subject_alt_names", [])
                  if m.get("san_type") == "DNS" and m.get("matcher", {}).get("exact"))
    return TlsDef(sni=config.get("sni"), trusted_ca_file=ca, san_names=names,
                  alpn=tuple(common.get("alpn_protocols", [])))


def _health_check(cluster: _Cluster) -> HealthCheckDef | None:
    http = next((hc for hc in cluster.health_checks if hc.http_health_check is not None), None)
    if http is None or http.http_health_check is None:
        return None
    spec = http.http_health_check
    statuses = tuple(StatusRange(r.start, r.end) for r in spec.expected_statuses) or (StatusRange(200, 201),)
    receive = tuple(text for p in spec.receive if (text := p.decoded()))
    return HealthCheckDef(path=spec.path, method=(spec.method or "GET").upper(), host=spec.host or cluster.name,
                          timeout=http.timeout, interval=http.interval,
                          unhealthy_threshold=http.unhealthy_threshold, healthy_threshold=http.healthy_threshold,
                          expected_statuses=statuses, receive=receive,
                          send=spec.send.decoded() if spec.send else None,
                          headers=tuple((h.header.key, h.header.value) for h in spec.request_headers_to_add))


def _cluster_type(cluster: _Cluster) -> tuple[str, dict[str, Any] | None]:
    """STATIC, STRICT_DNS, LOGICAL_DNS, ... and the DNS resolver config, also for Envoy's DNS cluster
    extension (cluster_type envoy.cluster.dns)."""
    if cluster.cluster_type is not None and cluster.cluster_type.name == "envoy.cluster.dns":
        typed = cluster.cluster_type.typed_config
        kind = "LOGICAL_DNS" if typed.get("all_addresses_in_single_endpoint") else "STRICT_DNS"
        return kind, typed.get("typed_dns_resolver_config")
    if cluster.cluster_type is not None:
        return cluster.cluster_type.name, None
    return cluster.type, cluster.typed_dns_resolver_config


def _kind(hc: HealthCheckDef | None) -> str:
    """MCP when the gateway's health check speaks MCP (POSTs initialize), else OpenAI-compatible."""
    return "mcp" if hc is not None and hc.send is not None and '"initialize"' in hc.send else "openai"


def _configured_hosts(cluster: _Cluster, kind: str) -> list[Host]:
    hosts: list[Host] = []
    for locality in (cluster.load_assignment.endpoints if cluster.load_assignment else []):
        for lb in locality.lb_endpoints:
            if lb.endpoint is None or lb.endpoint.address.socket_address is None:
                continue
            socket = lb.endpoint.address.socket_address
            is_name = kind in ("STRICT_DNS", "LOGICAL_DNS")
            hosts.append(Host(cluster=cluster.name, address=socket.address, port=socket.port_value,
                              hostname=socket.address if is_name else None, resolved=not is_name))
    return hosts


Locate = Callable[[tuple[str | int, ...]], tuple[int | None, int | None]]


def clusters_from_config(data: Any, source: str, kinds: dict[str, str] | None = None,
                         default_resolvers: tuple[Resolver, ...] = (),
                         locate: Locate | None = None) -> list[tuple[Cluster, list[Host]]]:
    """Each cluster of a bootstrap config (or a config dump's cluster list) with its configured hosts.
    ``locate`` gives a field's line and column in the file, so that an error names them."""
    raw: list[Any]
    prefix: tuple[str | int, ...] = ()
    if isinstance(data, dict) and "static_resources" in data:
        prefix = ("static_resources", "clusters")
        raw = list((data.get("static_resources") or {}).get("clusters") or [])
        default_resolvers = default_resolvers or _resolvers(data.get("typed_dns_resolver_config"), [])
    elif isinstance(data, list):
        raw = data
    else:
        raise DiagnoseError(f"{source}: expected an Envoy bootstrap config with static_resources.clusters")
    out: list[tuple[Cluster, list[Host]]] = []
    for index, item in enumerate(raw):
        try:
            parsed = _Cluster.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            line, column = locate((*prefix, index, *error["loc"])) if locate is not None else (None, None)
            raise DiagnoseError(f"{location(source, line, column)}: static_resources.clusters[{index}].{where}: "
                                f"{str(error['msg']).removeprefix('Value error, ')}") from None
        type_name, resolver_config = _cluster_type(parsed)
        hc = _health_check(parsed)
        cluster = Cluster(name=parsed.name, type=type_name, connect_timeout=parsed.connect_timeout,
                          health_check=hc, tls=_tls(parsed.transport_socket), http2=_http2(parsed),
                          resolvers=_resolvers(resolver_config, parsed.dns_resolvers) or default_resolvers,
                          kind=(kinds or {}).get(parsed.name) or _kind(hc))
        out.append((cluster, _configured_hosts(parsed, type_name)))
    return out


def from_config(path: Path, kinds: dict[str, str] | None = None) -> GatewayView:
    """The view an Envoy config file gives: clusters and hosts, health unknown."""
    try:
        document = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise DiagnoseError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DiagnoseError(f"{path}: not UTF-8 text (byte {exc.start}); expected an Envoy config in YAML or JSON") from exc
    except ScenarioError as exc:  # YAML the parser refuses, with its line and column
        raise DiagnoseError(str(exc)) from None
    clusters = [_with_hosts(cluster, hosts)
                for cluster, hosts in clusters_from_config(document.data, str(path), kinds, locate=document.locate)]
    if not clusters:
        raise DiagnoseError(f"{location(str(path), *document.locate(('static_resources',)))}: the config defines no "
                            "cluster; expected static_resources.clusters with at least one cluster to diagnose")
    return GatewayView(source=str(path), live=False, clusters=tuple(clusters))


def _with_hosts(cluster: Cluster, hosts: list[Host]) -> Cluster:
    return Cluster(**{**cluster.__dict__, "hosts": tuple(hosts)})


def from_admin(url: str, kinds: dict[str, str] | None = None, client: httpx.Client | None = None) -> GatewayView:
    """The live view of a running Envoy: its config dump and every host's health flags."""
    url = url.rstrip("/")
    http = client or httpx.Client(timeout=ADMIN_TIMEOUT_S)
    try:
        dump = http.get(f"{url}/config_dump").json()
        statuses = http.get(f"{url}/clusters", params={"format": "json"}).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DiagnoseError(f"envoy admin API at {url} did not answer: {exc}") from exc
    finally:
        if client is None:
            http.close()
    raw_clusters: list[Any] = []
    default_resolvers: tuple[Resolver, ...] = ()
    for config in dump.get("configs", []):
        kind = str(config.get("@type", ""))
        if kind.endswith("BootstrapConfigDump"):
            default_resolvers = _resolvers((config.get("bootstrap") or {}).get("typed_dns_resolver_config"), [])
        if kind.endswith("ClustersConfigDump"):
            for group in ("static_clusters", "dynamic_active_clusters"):
                raw_clusters += [entry.get("cluster", {}) for entry in config.get(group, [])]
    live: dict[str, list[dict[str, Any]]] = {
        c.get("name", ""): c.get("host_statuses", []) for c in statuses.get("cluster_statuses", [])}
    clusters = []
    for cluster, configured in clusters_from_config(raw_clusters, f"{url}/config_dump", kinds, default_resolvers):
        hosts = [_live_host(cluster.name, status) for status in live.get(cluster.name, [])]
        seen_names = {h.hostname for h in hosts if h.hostname} | {h.key for h in hosts}
        # a DNS cluster's name the gateway could not resolve has no live host: keep it, unresolved
        hosts += [h for h in configured if not h.resolved and h.hostname not in seen_names]
        clusters.append(_with_hosts(cluster, hosts))
    return GatewayView(source=url, live=True, clusters=tuple(clusters))


def _live_host(cluster: str, status: dict[str, Any]) -> Host:
    socket = (status.get("address") or {}).get("socket_address") or {}
    health = status.get("health_status") or {}
    flags = tuple(key for key, value in health.items() if value is True)
    eds = str(health.get("eds_health_status", "HEALTHY"))
    healthy = eds == "HEALTHY" and not any(flag in _FAILURE_FLAGS for flag in flags)
    if eds != "HEALTHY":
        flags = (*flags, f"eds_{eds.lower()}")
    return Host(cluster=cluster, address=str(socket.get("address", "")), port=int(socket.get("port_value", 0)),
                hostname=status.get("hostname") or None, flags=flags, healthy=healthy)
