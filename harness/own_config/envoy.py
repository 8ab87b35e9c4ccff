"""The user's own Envoy bootstrap (``gateway.config: envoy.yaml``): read and rewritten (docs/own-config/envoy.md).

Reading is the inverse of what harness/gateways/envoy.py renders: every cluster of
``static_resources.clusters`` is a block, its endpoints those of ``load_assignment`` (every
locality and priority, in file order), its settings the scenario model's ``Gateway`` block:

* ``health_checks[0]`` → ``health_check`` (interval, timeout, thresholds, ``no_traffic_interval``,
  the HTTP path, ``expected_statuses`` ranges expanded); Envoy's defaults where the file is silent;
* ``outlier_detection`` → ``outlier_detection`` (Envoy's defaults: consecutive_5xx 5 enforced at 100 %,
  interval 10s, base_ejection_time 30s, max_ejection_percent 10; consecutive_gateway_failure only
  when it is enforced);
* ``common_lb_config``: ``healthy_panic_threshold`` (default 50) → ``panic_threshold``,
  ``update_merge_window`` (default 1s) → ``envoy.update_merge_window``; ``connect_timeout`` (default 5s);
* the route of the first listener that ``/v1/chat/completions`` (the load) matches, when it targets
  the cluster: its ``timeout`` (default 15s) → ``request_timeout``, its ``retry_policy`` (or its
  virtual host's) → ``retries``.

What changes detection or readmission but the promise formulas do not model (jitter, edge intervals,
several or non-HTTP health checks, success-rate or failure-percentage ejection, ...) is listed in
``Block.unmodelled``: that block's promises are Unknown. Endpoints from EDS, listeners/clusters from
xDS (``dynamic_resources``) and routes from RDS are refused.
"""

from __future__ import annotations

from types import MappingProxyType

import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from harness.errors import ScenarioError
from harness.gateways.base import UPSTREAM_HEADER, UpstreamAddress
from harness.gateways.envoy import UPSTREAM_LOG, _upstream_log, is_ip
from harness.own_config.base import (Block, Endpoint, NativeConfig, RewriteJob, Rewritten, Source, Unmodelled,
                                     YamlPath, refuse)
from harness.yaml_source import YamlDocument, load_yaml

__all__ = ["HEALTH_LOG", "LOAD_PATH", "OUTLIER_LOG", "EnvoyReader"]

HEALTH_LOG = "envoy-health.jsonl"    # every health check's event sink (as harness/gateways/envoy.py renders)
OUTLIER_LOG = "envoy-outlier.jsonl"  # cluster_manager.outlier_detection.event_log_path
LOAD_PATH = "/v1/chat/completions"   # what the load requests (harness/load/worker.py): the route it takes is read
HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"

# Envoy's defaults (the v3 API's documentation), where the file leaves a setting out.
NO_TRAFFIC_INTERVAL = 60.0
CONNECT_TIMEOUT = 5.0
ROUTE_TIMEOUT = 15.0
PANIC_THRESHOLD = 50.0
UPDATE_MERGE_WINDOW = 1.0
OUTLIER = {"consecutive_5xx": 5, "consecutive_gateway_failure": 5, "interval": 10.0, "base_ejection_time": 30.0,
           "max_ejection_percent": 10, "enforcing_consecutive_5xx": 100, "enforcing_consecutive_gateway_failure": 0,
           "enforcing_success_rate": 100, "success_rate_minimum_hosts": 5, "enforcing_failure_percentage": 0,
           "failure_percentage_minimum_hosts": 5}
RETRY_ON = ("connect-failure", "reset", "5xx", "gateway-error", "refused-stream")  # the model's words (scenario.Retries)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


# The shape of what the reader and the rewrite walk: (the type a value must have, what is inside it). A file
# that has something else there is refused at that line (Envoy would refuse it too), never a traceback.
Shape = tuple[type, Any]
ANY: Shape = (object, {})
ADDRESS: Shape = (dict, {"socket_address": (dict, {}), "pipe": (dict, {})})
ROUTE: Shape = (dict, {"match": (dict, {}), "route": (dict, {"retry_policy": (dict, {})}),
                       "response_headers_to_add": (list, ANY)})
FILTER_CONFIG: Shape = (dict, {
    "http_filters": (list, (dict, {"typed_config": (dict, {"upstream_log": (list, ANY)})})),
    "route_config": (dict, {"virtual_hosts": (list, (dict, {"routes": (list, ROUTE), "retry_policy": (dict, {})}))}),
})
LISTENER: Shape = (dict, {"address": ADDRESS,
                          "filter_chains": (list, (dict, {"filters": (list, (dict, {"typed_config": FILTER_CONFIG}))}))})
CLUSTER: Shape = (dict, {
    "health_checks": (list, (dict, {"event_logger": (list, ANY), "http_health_check": (dict, {})})),
    "common_lb_config": (dict, {}), "outlier_detection": (dict, {}),
    "load_assignment": (dict, {"endpoints": (list, (dict, {"lb_endpoints": (list, (dict, {
        "endpoint": (dict, {"address": ADDRESS, "health_check_config": (dict, {})})}))}))}),
})
BOOTSTRAP: Shape = (dict, {
    "admin": (dict, {"address": ADDRESS}),
    "cluster_manager": (dict, {"outlier_detection": (dict, {})}),
    "dynamic_resources": (dict, {}),
    "static_resources": (dict, {"listeners": (list, LISTENER), "clusters": (list, CLUSTER)}),
})


class _File:
    """The parsed file and how to name its places."""

    def __init__(self, path: Path, text: str) -> None:
        self.file = str(path)
        self.doc: YamlDocument = load_yaml(text, self.file)
        if not isinstance(self.doc.data, dict):
            raise refuse(self.file, 1, "", "expected an Envoy bootstrap (a mapping with static_resources)")
        self._check(self.doc.data, BOOTSTRAP, ())

    def _check(self, value: Any, shape: Shape, path: YamlPath) -> None:
        kind, inside = shape
        if not isinstance(value, kind):
            what = "a mapping" if kind is dict else "a list" if kind is list else kind.__name__
            raise self.refuse(path, _setting(path), f"expected {what} here, got {_describe(value)}")
        if isinstance(value, dict):
            for key, child in inside.items():
                if key in value:
                    self._check(value[key], child, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._check(item, inside, (*path, i))

    def line(self, path: YamlPath) -> int:
        return self.doc.locate(path)[0] or 1

    def source(self, path: YamlPath, setting: str) -> Source:
        return Source(self.file, self.line(path), setting)

    def refuse(self, path: YamlPath, setting: str, why: str) -> ScenarioError:
        return refuse(self.file, self.line(path), setting, why)


def _get(data: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(data, dict) and isinstance(key, str):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def _seconds(f: _File, path: YamlPath, setting: str, value: Any) -> float:
    """An Envoy duration: ``"1.5s"`` (proto3 JSON) or ``{seconds, nanos}``."""
    if isinstance(value, str) and (m := _DURATION.match(value.strip())):
        return float(m.group(1))
    if isinstance(value, dict) and set(value) <= {"seconds", "nanos"}:
        try:
            return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
        except (TypeError, ValueError):
            pass
    raise f.refuse(path, setting, f"cannot read {value!r} as a duration; expected seconds such as '1s' or '0.5s' "
                                  "(as Envoy does)")


def _int(f: _File, path: YamlPath, setting: str, value: Any) -> int:
    if isinstance(value, dict) and set(value) == {"value"}:  # a wrapped UInt32Value
        value = value["value"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise f.refuse(path, setting, f"cannot read {value!r} as a whole number")
    return value


def _percent(f: _File, path: YamlPath, setting: str, value: Any) -> float:
    inner = value.get("value") if isinstance(value, dict) else value
    if isinstance(inner, bool) or not isinstance(inner, (int, float)):
        raise f.refuse(path, setting, f"cannot read {value!r} as a percentage; expected {{value: N}}")
    return float(inner)


def _route_matches(match: Any, path: str) -> bool:
    if not isinstance(match, dict):
        return False
    if "prefix" in match:
        return path.startswith(str(match["prefix"]))
    if "path" in match:
        return path == str(match["path"])
    if "path_separated_prefix" in match:
        prefix = str(match["path_separated_prefix"])
        return path == prefix or path.startswith(prefix.rstrip("/") + "/")
    if isinstance(regex := _get(match, "safe_regex", "regex"), str):
        try:
            return re.fullmatch(regex, path) is not None
        except re.error:
            return False
    return False


def _hcms(data: Any, listener: int) -> Iterator[tuple[YamlPath, dict[str, Any]]]:
    """The HTTP connection managers of one listener: (path of its typed_config, typed_config)."""
    chains = _get(data, "static_resources", "listeners", listener, "filter_chains")
    for c, chain in enumerate(chains if isinstance(chains, list) else []):
        filters = _get(chain, "filters")
        for i, item in enumerate(filters if isinstance(filters, list) else []):
            config = _get(item, "typed_config")
            if _get(item, "name") == HCM or (isinstance(config, dict) and
                                             str(config.get("@type", "")).endswith(".HttpConnectionManager")):
                if isinstance(config, dict):
                    yield ("static_resources", "listeners", listener, "filter_chains", c, "filters", i,
                           "typed_config"), config


class EnvoyReader:
    """Envoy 1.40's bootstrap YAML (``envoy*.yaml``)."""

    kind: str = "envoy"
    file_patterns: tuple[str, ...] = ("envoy*.yaml", "envoy*.yml")
    # the scenario fields whose name the lint's advice uses, in Envoy's words, where they differ
    spelling: Mapping[YamlPath, str] = MappingProxyType({
        ("gateway", "panic_threshold"): "the cluster's common_lb_config.healthy_panic_threshold: {value: 0}",
    })

    # -- reading -----------------------------------------------------------------------
    def read(self, path: Path, text: str) -> NativeConfig:
        f = _File(path, text)
        data = f.doc.data
        dynamic = data.get("dynamic_resources")
        if isinstance(dynamic, dict) and any(key in dynamic for key in ("lds_config", "cds_config", "ads_config")):
            which = ", ".join(key for key in ("lds_config", "cds_config", "ads_config") if key in dynamic)
            raise f.refuse(("dynamic_resources",), "dynamic_resources",
                           f"listeners or clusters come from xDS ({which}): chaosgate binds only clusters written in "
                           "the file; put them under static_resources")
        clusters = _get(data, "static_resources", "clusters")
        if not isinstance(clusters, list) or not clusters:
            raise f.refuse(("static_resources",), "static_resources.clusters",
                           "the file has no clusters (static_resources.clusters); expected at least the one the "
                           "load goes to")
        listeners = _get(data, "static_resources", "listeners")
        if not isinstance(listeners, list) or not listeners:
            raise f.refuse(("static_resources",), "static_resources.listeners",
                           "the file has no listeners: the load goes to the first one; add one that routes "
                           f"{LOAD_PATH} to the cluster under test")
        route = self._load_route(f)
        blocks: dict[str, Block] = {}
        for i, cluster in enumerate(clusters):
            at: YamlPath = ("static_resources", "clusters", i)
            name = _get(cluster, "name")
            if not isinstance(name, str) or not name:
                raise f.refuse(at, f"static_resources.clusters[{i}]", "a cluster without a name")
            if name in blocks:
                raise f.refuse((*at, "name"), f"clusters[{name}]", f"a second cluster named {name!r}")
            blocks[name] = self._cluster(f, at, name, cluster, route)
        if route is None:
            load_block, load_source = None, f.source(("static_resources", "listeners", 0),
                                                    f"listeners[{_get(listeners, 0, 'name') or 0}]")
        else:
            targets = _targets(route[1])
            load_block = targets[0] if targets else None
            load_source = f.source(route[0], f"route {LOAD_PATH}")
        return NativeConfig(self.kind, path, text, blocks, tuple(self._outbound(f)), block_word="cluster",
                            load_block=load_block, load_source=load_source)

    def _load_route(self, f: _File) -> tuple[YamlPath, dict[str, Any], dict[str, Any]] | None:
        """The route of the first listener that the load's requests take: (its path, route, virtual host)."""
        for hcm_path, hcm in _hcms(f.doc.data, 0):
            if "rds" in hcm:
                raise f.refuse((*hcm_path, "rds"), "http_connection_manager.rds",
                               "the routes come from RDS: chaosgate reads the route the load takes from the file; "
                               "write it as route_config")
            hosts = _get(hcm, "route_config", "virtual_hosts")
            for v, host in enumerate(hosts if isinstance(hosts, list) else []):
                routes = _get(host, "routes")
                for r, route in enumerate(routes if isinstance(routes, list) else []):
                    if _route_matches(_get(route, "match"), LOAD_PATH):
                        return (*hcm_path, "route_config", "virtual_hosts", v, "routes", r), route, host
        return None

    def _cluster(self, f: _File, at: YamlPath, name: str, cluster: dict[str, Any],
                 route: tuple[YamlPath, dict[str, Any], dict[str, Any]] | None) -> Block:
        from harness.scenario import Gateway

        label = f"clusters[{name}]"
        if cluster.get("type") == "EDS" or "eds_cluster_config" in cluster:
            key = "type" if cluster.get("type") == "EDS" else "eds_cluster_config"
            raise f.refuse((*at, key), f"{label}.{key}", f"cluster {name!r} gets its endpoints from EDS: chaosgate binds "
                                                          "only endpoints written in the file (load_assignment)")
        endpoints, pipes = self._endpoints(f, at, name, cluster)
        where: dict[YamlPath, Source] = {}
        unmodelled: list[Unmodelled] = []
        settings: dict[str, Any] = {}

        def setting(path: YamlPath, native: str, field: YamlPath) -> Source:
            found = f.source((*at, *path), f"{label}.{native}")
            where[("gateway", *field)] = found
            return found

        def unknown(path: YamlPath, native: str, why: str) -> None:
            unmodelled.append(Unmodelled(f.source((*at, *path), f"{label}.{native}"), why))

        def seconds(container: dict[str, Any], path: YamlPath, key: str, native: str, field: YamlPath) -> float | None:
            if key not in container:
                return None
            setting((*path, key), native, field)
            return _seconds(f, (*at, *path, key), f"{label}.{native}", container[key])

        if (timeout := seconds(cluster, (), "connect_timeout", "connect_timeout", ("connect_timeout",))) is not None:
            settings["connect_timeout"] = timeout
        else:
            settings["connect_timeout"] = CONNECT_TIMEOUT
        settings["health_check"] = self._health_check(f, at, label, cluster, setting, unknown, seconds)
        if "outlier_detection" in cluster:
            settings["outlier_detection"] = self._outlier(f, at, label, cluster, len(endpoints), setting, unknown,
                                                          seconds)
            if str(cluster.get("lb_policy", "ROUND_ROBIN")) != "ROUND_ROBIN":
                unknown(("lb_policy",), "lb_policy", f"lb_policy {cluster['lb_policy']} spreads the failures that "
                        "eject a replica differently from the round robin the outlier detection formulas assume")
            if any(p for p in self._priorities(cluster)):
                unknown(("load_assignment",), "load_assignment", "endpoints at a priority above 0 carry no traffic "
                        "while priority 0 is healthy, so outlier detection never sees their failures")
        common = cluster.get("common_lb_config")
        common = common if isinstance(common, dict) else {}
        if "healthy_panic_threshold" in common:
            found = setting(("common_lb_config", "healthy_panic_threshold"), "common_lb_config.healthy_panic_threshold",
                            ("panic_threshold",))
            settings["panic_threshold"] = _percent(f, (*at, "common_lb_config", "healthy_panic_threshold"),
                                                   found.setting, common["healthy_panic_threshold"])
        else:
            settings["panic_threshold"] = PANIC_THRESHOLD
        window = seconds(common, ("common_lb_config",), "update_merge_window", "common_lb_config.update_merge_window",
                         ("envoy", "update_merge_window"))
        settings["envoy"] = {"update_merge_window": UPDATE_MERGE_WINDOW if window is None else window}
        if route is not None and name in _targets(route[1]):
            self._route_settings(f, route, settings, where, unmodelled, "outlier_detection" in cluster)
        else:
            settings["request_timeout"] = ROUTE_TIMEOUT
            settings["retries"] = None
        try:
            gateway = Gateway.model_validate({"kind": "envoy", **settings})
        except ValidationError as exc:
            error = exc.errors()[0]
            field = tuple(part for part in error["loc"] if isinstance(part, str))
            source = Block(name, f.source(at, label), (), Gateway(), where).locate(("gateway", *field))
            raise refuse(f.file, source.line, source.setting, f"{error['msg'][0].lower()}{error['msg'][1:]} "
                         f"(got {error['input']!r}); chaosgate cannot use this value") from None
        if not endpoints and pipes:
            unbindable: str | None = (f"cluster {name!r} reaches its endpoints through unix sockets (pipe): chaosgate puts a TCP "
                          "proxy in front of each replica, so bind a cluster whose endpoints are socket_address")
        elif not endpoints:
            unbindable = (f"cluster {name!r} has no endpoints (load_assignment.endpoints[].lb_endpoints): chaosgate "
                          "makes each endpoint one replica, so bind a cluster whose endpoints are in the file")
        else:
            unbindable = None
        block_source = f.source(at, label)
        return Block(name, block_source, tuple(endpoints), gateway, where, tuple(unmodelled),
                     cannot_bind=(Unmodelled(block_source, unbindable),) if unbindable else ())

    @staticmethod
    def _priorities(cluster: dict[str, Any]) -> list[int]:
        localities = _get(cluster, "load_assignment", "endpoints")
        priorities = [_get(loc, "priority") for loc in (localities if isinstance(localities, list) else [])]
        return [p if isinstance(p, int) else 0 for p in priorities]

    def _endpoints(self, f: _File, at: YamlPath, name: str, cluster: dict[str, Any]) -> tuple[list[Endpoint], bool]:
        endpoints: list[Endpoint] = []
        pipes = False
        localities = _get(cluster, "load_assignment", "endpoints")
        for li, locality in enumerate(localities if isinstance(localities, list) else []):
            lbs = _get(locality, "lb_endpoints")
            for ei, lb in enumerate(lbs if isinstance(lbs, list) else []):
                here: YamlPath = (*at, "load_assignment", "endpoints", li, "lb_endpoints", ei)
                setting = f"clusters[{name}].load_assignment.endpoints[{li}].lb_endpoints[{ei}]"
                address = _get(lb, "endpoint", "address")
                if isinstance(address, dict) and "pipe" in address:
                    pipes = True
                    continue
                socket = _get(address, "socket_address")
                host, port = _get(socket, "address"), _get(socket, "port_value")
                if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
                    raise f.refuse(here, setting, "expected endpoint.address.socket_address with address and "
                                                  "port_value (a named_port or a missing port cannot be bound)")
                endpoints.append(Endpoint(host, port, f.source((*here, "endpoint", "address", "socket_address",
                                                                 "address"), setting)))
        if pipes and endpoints:
            raise f.refuse((*at, "load_assignment"), f"clusters[{name}].load_assignment",
                           f"cluster {name!r} mixes unix socket (pipe) and TCP endpoints; chaosgate cannot bind such a "
                           "cluster")
        return endpoints, pipes

    def _health_check(self, f: _File, at: YamlPath, label: str, cluster: dict[str, Any], setting: Any, unknown: Any,
                      seconds: Any) -> dict[str, Any] | None:
        checks = cluster.get("health_checks")
        if not isinstance(checks, list) or not checks:
            return None
        hc_at: YamlPath = ("health_checks", 0)
        native = "health_checks[0]"
        setting(hc_at, native, ("health_check",))
        if len(checks) > 1:
            unknown(("health_checks", 1), "health_checks[1]", "a second health check: a replica is unhealthy when "
                    "any check fails it, which the promise formulas (one check) do not model")
        hc = checks[0] if isinstance(checks[0], dict) else {}
        out: dict[str, Any] = {}
        for key in ("interval", "timeout"):
            if key not in hc:
                raise f.refuse((*at, *hc_at), f"{label}.{native}", f"the health check has no {key} (Envoy requires one)")
            out[key] = seconds(hc, hc_at, key, f"{native}.{key}", ("health_check", key))
        for key in ("unhealthy_threshold", "healthy_threshold"):
            if key not in hc:
                raise f.refuse((*at, *hc_at), f"{label}.{native}", f"the health check has no {key} (Envoy requires one)")
            found = setting((*hc_at, key), f"{native}.{key}", ("health_check", key))
            out[key] = _int(f, (*at, *hc_at, key), found.setting, hc[key])
        if (no_traffic := seconds(hc, hc_at, "no_traffic_interval", f"{native}.no_traffic_interval",
                                  ("health_check", "no_traffic_interval"))) is not None:
            out["no_traffic_interval"] = no_traffic  # else the model's default, Envoy's 60s, as a default
        for key in ("interval_jitter", "initial_jitter"):
            if key in hc and _seconds(f, (*at, *hc_at, key), key, hc[key]) > 0:
                unknown((*hc_at, key), f"{native}.{key}", f"{key} moves each check by up to {hc[key]}, which the "
                        "promise formulas do not add")
        if "interval_jitter_percent" in hc and _int(f, (*at, *hc_at, "interval_jitter_percent"),
                                                     "interval_jitter_percent", hc["interval_jitter_percent"]) > 0:
            unknown((*hc_at, "interval_jitter_percent"), f"{native}.interval_jitter_percent",
                    "interval_jitter_percent moves each check, which the promise formulas do not add")
        for key in ("unhealthy_interval", "unhealthy_edge_interval", "healthy_edge_interval"):
            if key in hc and _seconds(f, (*at, *hc_at, key), key, hc[key]) != out["interval"]:
                unknown((*hc_at, key), f"{native}.{key}", f"{key} {hc[key]} differs from the interval: the promise "
                        "formulas assume every check comes one interval after the last")
        if "no_traffic_healthy_interval" in hc:
            unknown((*hc_at, "no_traffic_healthy_interval"), f"{native}.no_traffic_healthy_interval",
                    "no_traffic_healthy_interval sets a second no-traffic period for healthy replicas, which the "
                    "promise formulas do not model")
        http = hc.get("http_health_check")
        kinds = [key for key in ("tcp_health_check", "grpc_health_check", "custom_health_check") if key in hc]
        if kinds:
            unknown((*hc_at, kinds[0]), f"{native}.{kinds[0]}", f"a {kinds[0].removesuffix('_health_check')} health "
                    "check: the promise formulas model an HTTP GET and its status")
            return out
        if not isinstance(http, dict):
            unknown(hc_at, native, "a health check without http_health_check: the promise formulas model an HTTP GET "
                    "and its status")
            return out
        if "path" in http:
            setting((*hc_at, "http_health_check", "path"), f"{native}.http_health_check.path", ("health_check", "path"))
            out["path"] = http["path"]
        if "expected_statuses" in http:
            setting((*hc_at, "http_health_check", "expected_statuses"), f"{native}.http_health_check.expected_statuses",
                    ("health_check", "expected_statuses"))
            statuses: list[int] = []
            ranges = http["expected_statuses"]
            for r, item in enumerate(ranges if isinstance(ranges, list) else []):
                start, end = _get(item, "start"), _get(item, "end")
                if not isinstance(start, int) or not isinstance(end, int) or not 100 <= start < end <= 600:
                    raise f.refuse((*at, *hc_at, "http_health_check", "expected_statuses", r),
                                   f"{label}.{native}.http_health_check.expected_statuses[{r}]",
                                   f"expected a range {{start, end}} of HTTP statuses (end excluded), got {item!r}")
                statuses += [s for s in range(start, end) if s not in statuses]
            out["expected_statuses"] = statuses
        for key, why in (("receive", "the check also requires these bytes in the answer's body"),
                         ("retriable_statuses", "these statuses count toward unhealthy_threshold instead of failing "
                                                "the replica at once"),
                         ("method", "the check is not a GET")):
            if key in http and not (key == "method" and str(http[key]).upper() == "GET"):
                unknown((*hc_at, "http_health_check", key), f"{native}.http_health_check.{key}",
                        f"{why}, which the promise formulas do not model")
        return out

    def _outlier(self, f: _File, at: YamlPath, label: str, cluster: dict[str, Any], hosts: int, setting: Any,
                 unknown: Any, seconds: Any) -> dict[str, Any]:
        od = cluster["outlier_detection"] if isinstance(cluster["outlier_detection"], dict) else {}
        od_at: YamlPath = ("outlier_detection",)
        setting(od_at, "outlier_detection", ("outlier_detection",))

        def number(key: str) -> int:
            if key not in od:
                return int(OUTLIER[key])
            return _int(f, (*at, *od_at, key), f"{label}.outlier_detection.{key}", od[key])

        out: dict[str, Any] = {}
        for key, field in (("consecutive_5xx", "consecutive_5xx"),
                           ("consecutive_gateway_failure", "consecutive_gateway_failure")):
            enforcing = number(f"enforcing_{key}")
            if 0 < enforcing < 100:
                unknown((*od_at, f"enforcing_{key}"), f"outlier_detection.enforcing_{key}",
                        f"enforcing_{key} {enforcing}: an ejection happens only that often, by chance")
            if enforcing and number(key):
                if key in od:
                    setting((*od_at, key), f"outlier_detection.{key}", ("outlier_detection", field))
                elif f"enforcing_{key}" in od:
                    setting((*od_at, f"enforcing_{key}"), f"outlier_detection.enforcing_{key}",
                            ("outlier_detection", field))
                out[field] = number(key)
            else:
                out[field] = None
        for key in ("interval", "base_ejection_time"):
            value = seconds(od, od_at, key, f"outlier_detection.{key}", ("outlier_detection", key))
            out[key] = OUTLIER[key] if value is None else value
        if "max_ejection_percent" in od:
            setting((*od_at, "max_ejection_percent"), "outlier_detection.max_ejection_percent",
                    ("outlier_detection", "max_ejection_percent"))
        out["max_ejection_percent"] = number("max_ejection_percent")
        if number("enforcing_success_rate") and hosts >= number("success_rate_minimum_hosts"):
            unknown((*od_at,), "outlier_detection.enforcing_success_rate",
                    "success-rate ejection (enforced, and the cluster has at least success_rate_minimum_hosts "
                    "endpoints) ejects by statistics the promise formulas do not model")
        if number("enforcing_failure_percentage") and hosts >= number("failure_percentage_minimum_hosts"):
            unknown((*od_at, "enforcing_failure_percentage"), "outlier_detection.enforcing_failure_percentage",
                    "failure-percentage ejection ejects by statistics the promise formulas do not model")
        flags = (("split_external_local_origin_errors", "local-origin errors are counted apart from 5xx"),
                 ("always_eject_one_host", "one replica is ejected regardless of max_ejection_percent"))
        for key, why in flags:
            if od.get(key) is True:
                unknown((*od_at, key), f"outlier_detection.{key}", f"{why}, which the promise formulas do not model")
        if od.get("successful_active_health_check_uneject_host") is False:
            unknown((*od_at, "successful_active_health_check_uneject_host"),
                    "outlier_detection.successful_active_health_check_uneject_host",
                    "a passing active check does not readmit an ejected replica, which the formulas assume it does")
        if "max_ejection_time_jitter" in od and _seconds(f, (*at, *od_at, "max_ejection_time_jitter"), "jitter",
                                                          od["max_ejection_time_jitter"]) > 0:
            unknown((*od_at, "max_ejection_time_jitter"), "outlier_detection.max_ejection_time_jitter",
                    "ejections last a random time longer, which the promise formulas do not add")
        return out

    def _route_settings(self, f: _File, route: tuple[YamlPath, dict[str, Any], dict[str, Any]],
                        settings: dict[str, Any], where: dict[YamlPath, Source], unmodelled: list[Unmodelled],
                        outlier: bool) -> None:
        at, found, host = route
        action: dict[str, Any] = found["route"] if isinstance(found.get("route"), dict) else {}
        label = f"route {LOAD_PATH}"
        if "timeout" in action:
            where[("gateway", "request_timeout")] = f.source((*at, "route", "timeout"), f"{label}: route.timeout")
            settings["request_timeout"] = _seconds(f, (*at, "route", "timeout"), "route.timeout", action["timeout"])
        else:
            settings["request_timeout"] = ROUTE_TIMEOUT
        policy, policy_at = action.get("retry_policy"), (*at, "route", "retry_policy")
        if not isinstance(policy, dict):  # the virtual host's applies to a route without its own
            policy, policy_at = host.get("retry_policy"), (*at[:-2], "retry_policy")
        if not isinstance(policy, dict):
            settings["retries"] = None
            return
        native = f"{label}: retry_policy"
        where[("gateway", "retries")] = f.source(policy_at, native)
        words = [w.strip() for w in str(policy.get("retry_on", "")).split(",") if w.strip()]
        known = [w for w in words if w in RETRY_ON]
        others = [w for w in words if w not in RETRY_ON]
        if others and outlier:
            unmodelled.append(Unmodelled(f.source((*policy_at, "retry_on"), f"{native}.retry_on"),
                                         f"retry_on {', '.join(others)}: these retries send more tries to a failing "
                                         "replica, which outlier detection counts and the promise formulas do not"))
        if not known:
            settings["retries"] = None
            return
        retries: dict[str, Any] = {"retry_on": known}
        where[("gateway", "retries", "retry_on")] = f.source((*policy_at, "retry_on"), f"{native}.retry_on")
        if "num_retries" in policy:
            where[("gateway", "retries", "num_retries")] = f.source((*policy_at, "num_retries"), f"{native}.num_retries")
            retries["num_retries"] = _int(f, (*policy_at, "num_retries"), "num_retries", policy["num_retries"])
        if "per_try_timeout" in policy:
            where[("gateway", "retries", "per_try_timeout")] = f.source((*policy_at, "per_try_timeout"),
                                                                        f"{native}.per_try_timeout")
            retries["per_try_timeout"] = _seconds(f, (*policy_at, "per_try_timeout"), "per_try_timeout",
                                                  policy["per_try_timeout"])
        settings["retries"] = retries

    def _outbound(self, f: _File) -> Iterator[Endpoint]:
        """Every socket_address the file connects to outside the clusters' endpoints (those are blocks), its
        listeners and admin (addresses it binds) and source/bind addresses."""
        binds = {"upstream_bind_config", "source_address", "bind_config", "additional_addresses"}

        def walk(node: Any, path: YamlPath) -> Iterator[Endpoint]:
            if isinstance(node, dict):
                socket = node.get("socket_address")
                if isinstance(socket, dict) and isinstance(socket.get("address"), str):
                    port = socket.get("port_value")
                    yield Endpoint(socket["address"], port if isinstance(port, int) else 0,
                                   f.source((*path, "socket_address", "address"), _setting(path)))
                for key, value in node.items():
                    if key not in binds and key != "socket_address":
                        yield from walk(value, (*path, key))
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    yield from walk(value, (*path, i))

        data = f.doc.data
        for key, value in data.items():
            if key == "admin":
                continue
            if key != "static_resources" or not isinstance(value, dict):
                yield from walk(value, (key,))
                continue
            for sub, inner in value.items():
                if sub == "clusters" and isinstance(inner, list):
                    for i, cluster in enumerate(inner):
                        if isinstance(cluster, dict):
                            for ck, cv in cluster.items():
                                if ck != "load_assignment":
                                    yield from walk(cv, ("static_resources", "clusters", i, ck))
                elif sub == "listeners" and isinstance(inner, list):
                    for i, listener in enumerate(inner):
                        if isinstance(listener, dict):
                            for lk, lv in listener.items():
                                if lk != "address":
                                    yield from walk(lv, ("static_resources", "listeners", i, lk))
                else:
                    yield from walk(inner, ("static_resources", sub))

    # -- rewriting ---------------------------------------------------------------------
    def rewrite(self, config: NativeConfig, job: RewriteJob) -> Rewritten:
        yaml = YAML()
        yaml.preserve_quotes = True
        yaml.width = 4096
        _guess_indent(yaml, config.text)
        data = yaml.load(config.text)
        resources = data["static_resources"]
        for cluster in resources["clusters"]:
            if cluster.get("name") in job.binding:
                self._bind_cluster(cluster, job.replicas_of(cluster["name"]), job.run_dir)
        admin = data.setdefault("admin", CommentedMap())
        _set_socket(admin, job.bind_address, job.admin_port)
        for i, listener in enumerate(resources.get("listeners") or []):
            _set_socket(listener, job.bind_address, job.listen_port if i == 0 else job.free_port())
        for i in range(len(resources.get("listeners") or [])):
            for _, hcm in _hcms(data, i):
                self._observe_hcm(hcm, job.run_dir)
        manager = data.setdefault("cluster_manager", CommentedMap())
        outlier = manager.setdefault("outlier_detection", CommentedMap())
        outlier["event_log_path"] = str(job.run_dir / OUTLIER_LOG)
        out = io.StringIO()
        yaml.dump(data, out)
        return Rewritten(out.getvalue())

    @staticmethod
    def _bind_cluster(cluster: Any, replicas: list[UpstreamAddress], run_dir: Path) -> None:
        """The i-th endpoint in file order becomes replica i (priorities, localities, weights kept)."""
        index = 0
        for locality in _get(cluster, "load_assignment", "endpoints") or []:
            for lb in locality.get("lb_endpoints") or []:
                replica = replicas[index]
                index += 1
                socket = lb["endpoint"]["address"]["socket_address"]
                socket["address"] = replica.host
                socket["port_value"] = replica.port
                check = _get(lb, "endpoint", "health_check_config")
                if isinstance(check, dict) and "port_value" in check:  # checks go through Toxiproxy as well
                    check["port_value"] = replica.port
        if str(cluster.get("type", "STATIC")) == "STATIC" and not all(is_ip(r.host) for r in replicas):
            cluster["type"] = "STRICT_DNS"  # Toxiproxy by its name (containers)
        sink = {"name": "envoy.health_check.event_sink.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink",
            "event_log_path": str(run_dir / HEALTH_LOG)}}
        for check in cluster.get("health_checks") or []:
            with _keep_tail(check):
                check["always_log_health_check_failures"] = True
                check["always_log_health_check_success"] = True  # the check that readmits an ejected host
                check.setdefault("event_logger", CommentedSeq()).append(_commented(sink))

    @staticmethod
    def _observe_hcm(hcm: Any, run_dir: Path) -> None:
        """The router's upstream log (every try) and the picked replica's address on every response."""
        for item in hcm.get("http_filters") or []:
            if item.get("name") == ROUTER or str(_get(item, "typed_config", "@type")).endswith(".Router"):
                with _keep_tail(item):
                    typed = item.setdefault("typed_config", CommentedMap(
                        {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}))
                    typed.setdefault("upstream_log", CommentedSeq()).append(_commented(_upstream_log(run_dir / UPSTREAM_LOG)))
        header = {"header": {"key": UPSTREAM_HEADER, "value": "%UPSTREAM_HOST%"},
                  "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for host in _get(hcm, "route_config", "virtual_hosts") or []:
            for route in host.get("routes") or []:
                with _keep_tail(route):
                    route.setdefault("response_headers_to_add", CommentedSeq()).append(_commented(header))


def _commented(value: Any) -> Any:
    """Plain data as ruamel's round-trip nodes (so a comment can be attached to them)."""
    if isinstance(value, dict):
        return CommentedMap((key, _commented(item)) for key, item in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(item) for item in value)
    return value


def _tail(node: Any) -> tuple[CommentedMap, Any] | None:
    """The last key of the innermost last block mapping in ``node``: where ruamel keeps the comments and
    blank lines that follow ``node`` in the file."""
    found = None
    while True:
        if isinstance(node, CommentedMap) and len(node):
            key = list(node)[-1]
            found = (node, key)
            node = node[key]
        elif isinstance(node, CommentedSeq) and len(node):
            node = node[-1]
        else:
            return found


@contextmanager
def _keep_tail(node: Any) -> Iterator[None]:
    """Add to ``node`` while what followed it in the file (a blank line, a comment) stays after it."""
    before = _tail(node)
    comment = None
    if before is not None and (entry := before[0].ca.items.get(before[1])) is not None and len(entry) > 2:
        comment, entry[2] = entry[2], None
    yield
    after = _tail(node)
    if comment is not None and after is not None:
        entry = after[0].ca.items.setdefault(after[1], [None, None, None, None])
        entry[2] = comment


def _targets(route: dict[str, Any]) -> list[str]:
    """The clusters a route sends to: its cluster, or each of its weighted_clusters."""
    action = route.get("route")
    weighted = _get(action, "weighted_clusters", "clusters")
    names = [_get(action, "cluster"), *(_get(item, "name") for item in (weighted if isinstance(weighted, list) else []))]
    return [name for name in names if isinstance(name, str)]


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)


def _setting(path: YamlPath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _set_socket(holder: Any, host: str, port: int) -> None:
    address = holder.setdefault("address", CommentedMap())
    address.pop("pipe", None)
    socket = address.setdefault("socket_address", CommentedMap())
    socket["address"] = host
    socket["port_value"] = port


def _guess_indent(yaml: YAML, text: str) -> None:
    """Dump with the file's own indentation (mapping indent; sequences indented under their key or not)."""
    mapping, offset = 2, 0
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        nxt = lines[i + 1]
        depth, next_depth = len(line) - len(line.lstrip()), len(nxt) - len(nxt.lstrip())
        if stripped.endswith(":") and nxt.strip().startswith("- "):
            offset = max(next_depth - depth, 0)
            break
    for i, line in enumerate(lines[:-1]):
        stripped, nxt = line.strip(), lines[i + 1]
        if stripped.endswith(":") and not stripped.startswith("- ") and nxt.strip() and not nxt.strip().startswith(("-", "#")):
            mapping = max((len(nxt) - len(nxt.lstrip())) - (len(line) - len(line.lstrip())), 1)
            break
    yaml.indent(mapping=mapping, sequence=mapping + offset, offset=offset)

