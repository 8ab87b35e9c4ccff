"""The user's own Envoy bootstrap (harness/own_config/envoy.py): what is read from it and where, what the
rewrite changes, what is refused, what is Unknown, and what the lint finds in it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import tests.missing
from harness.cli import main
from harness.errors import ComponentMissing, ScenarioError
from harness.gateways.base import UpstreamAddress
from harness.gateways.envoy import envoy_binary
from harness.lint import lint_file
from harness.own_config import READERS, Source, diff, kind_of_file, pool_block, read_native
from harness.own_config.base import RewriteJob
from harness.promise import Unknown, Window, detection_window, recovery_window
from harness.scenario import Gateway, Scenario, load_scenario

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURE = HERE / "envoy"
ENVOY_YAML = (FIXTURE / "envoy.yaml").read_text(encoding="utf-8")
RESET = (FIXTURE / "reset.yaml").read_text(encoding="utf-8")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def variant(tmp_path: Path, old: str = "", new: str = "", scenario: str = RESET, *replacements: tuple[str, str]) -> Path:
    """The fixture with one change (``old`` → ``new``) beside a scenario that uses it; the scenario's path."""
    text = ENVOY_YAML
    for before, after in ((old, new), *replacements):
        if before:
            assert before in text, before
            text = text.replace(before, after, 1)
    (tmp_path / "envoy.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "reset.yaml").write_text(scenario, encoding="utf-8")
    return tmp_path / "reset.yaml"


def refusal(path: Path, *allow: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, allow_hosts=allow)
    return str(caught.value).replace(str(path.parent), "D")


# -- reading ------------------------------------------------------------------------------------

def test_the_kind_comes_from_the_file_name() -> None:
    assert kind_of_file(Path("deploy/envoy.yaml")) == "envoy"
    assert kind_of_file(Path("envoy-edge.yml")) == "envoy"
    assert kind_of_file(Path("reset.yaml")) is None


def test_every_cluster_is_a_block_with_its_endpoints_in_file_order_across_localities() -> None:
    config = read_native("envoy", FIXTURE / "envoy.yaml")
    assert config.block_word == "cluster" and list(config.blocks) == ["chat", "embeddings"]
    chat = config.blocks["chat"]
    assert chat.source == Source(str(FIXTURE / "envoy.yaml"), 70, "clusters[chat]")
    assert [(e.address, e.source.line) for e in chat.endpoints] == [
        ("127.0.0.1:8001", 102), ("127.0.0.1:8002", 105), ("127.0.0.1:8003", 110)]
    assert chat.endpoints[2].source.setting == "clusters[chat].load_assignment.endpoints[1].lb_endpoints[0]"
    assert config.outbound == ()  # every address it connects to is a cluster's endpoint


def test_the_chat_clusters_settings_each_with_its_line() -> None:
    chat = read_native("envoy", FIXTURE / "envoy.yaml").blocks["chat"]
    hc = chat.settings.health_check
    assert hc is not None
    assert (hc.interval, hc.timeout, hc.unhealthy_threshold, hc.healthy_threshold, hc.no_traffic_interval,
            hc.path) == (1.0, 0.5, 2, 2, 1.0, "/health")
    assert hc.expected_statuses == list(range(200, 300))  # the range [200, 300) expanded
    assert chat.settings.panic_threshold == 0.0
    assert chat.settings.connect_timeout == 0.25
    assert chat.settings.envoy.update_merge_window == 1.0  # Envoy's default: the file does not set it
    assert chat.settings.request_timeout == 10.0  # the route /v1/chat/completions takes
    retries = chat.settings.retries
    assert retries is not None and retries.retry_on == ["connect-failure", "reset"]  # retriable-status-codes: not modelled
    assert (retries.num_retries, retries.per_try_timeout) == (2, 4.0)
    assert chat.settings.outlier_detection is None
    lines = {path[1:]: (source.line, source.setting) for path, source in chat.where.items()}
    assert lines == {
        ("connect_timeout",): (71, "clusters[chat].connect_timeout"),
        ("health_check",): (86, "clusters[chat].health_checks[0]"),
        ("health_check", "interval"): (87, "clusters[chat].health_checks[0].interval"),
        ("health_check", "timeout"): (86, "clusters[chat].health_checks[0].timeout"),
        ("health_check", "unhealthy_threshold"): (89, "clusters[chat].health_checks[0].unhealthy_threshold"),
        ("health_check", "healthy_threshold"): (90, "clusters[chat].health_checks[0].healthy_threshold"),
        ("health_check", "no_traffic_interval"): (88, "clusters[chat].health_checks[0].no_traffic_interval"),
        ("health_check", "path"): (92, "clusters[chat].health_checks[0].http_health_check.path"),
        ("health_check", "expected_statuses"): (93, "clusters[chat].health_checks[0].http_health_check.expected_statuses"),
        ("panic_threshold",): (75, "clusters[chat].common_lb_config.healthy_panic_threshold"),
        ("request_timeout",): (27, "route /v1/chat/completions: route.timeout"),
        ("retries",): (29, "route /v1/chat/completions: retry_policy"),
        ("retries", "retry_on"): (30, "route /v1/chat/completions: retry_policy.retry_on"),
        ("retries", "num_retries"): (32, "route /v1/chat/completions: retry_policy.num_retries"),
        ("retries", "per_try_timeout"): (33, "route /v1/chat/completions: retry_policy.per_try_timeout"),
    }
    assert chat.unmodelled == ()
    # A default is located where the missing setting belongs: the cluster's line.
    assert chat.locate(("gateway", "envoy", "update_merge_window")).line == 70


def test_envoys_defaults_where_the_file_is_silent() -> None:
    embeddings = read_native("envoy", FIXTURE / "envoy.yaml").blocks["embeddings"]
    hc = embeddings.settings.health_check
    assert hc is not None and hc.expected_statuses == [200, 201, 202, 203, 429]  # two ranges, end excluded
    assert hc.no_traffic_interval == 60.0 and "no_traffic_interval" not in hc.model_fields_set
    assert embeddings.settings.panic_threshold == 50.0
    assert embeddings.settings.request_timeout == 15.0 and embeddings.settings.retries is None  # not the load's route
    assert embeddings.locate(("gateway", "health_check", "no_traffic_interval")).line == 116  # the health check's line


RETRY_ON = ("retry_on: connect-failure,reset,retriable-status-codes", "retry_on: connect-failure,reset")


def _block(tmp_path: Path, old: str, new: str, name: str = "chat") -> Any:
    variant(tmp_path, old, new, RESET, RETRY_ON)
    return read_native("envoy", tmp_path / "envoy.yaml").blocks[name]


CHAT_HC = "          no_traffic_interval: 1s\n"


def test_outlier_detection_with_envoys_defaults(tmp_path: Path) -> None:
    chat = _block(tmp_path, "      circuit_breakers:\n", "      outlier_detection: {}\n      circuit_breakers:\n")
    od = chat.settings.outlier_detection
    assert od is not None
    assert (od.consecutive_5xx, od.consecutive_gateway_failure, od.interval, od.base_ejection_time,
            od.max_ejection_percent) == (5, None, 10.0, 30.0, 10)
    assert chat.unmodelled == ()  # 3 hosts: fewer than success_rate_minimum_hosts


def test_outlier_detection_as_written(tmp_path: Path) -> None:
    chat = _block(tmp_path, "      circuit_breakers:\n",
                  "      outlier_detection:\n        consecutive_5xx: 3\n        enforcing_consecutive_5xx: 0\n"
                  "        consecutive_gateway_failure: 2\n        enforcing_consecutive_gateway_failure: 100\n"
                  "        interval: 2s\n        base_ejection_time: 5s\n        max_ejection_percent: 100\n"
                  "      circuit_breakers:\n")
    od = chat.settings.outlier_detection
    assert (od.consecutive_5xx, od.consecutive_gateway_failure, od.interval, od.base_ejection_time,
            od.max_ejection_percent) == (None, 2, 2.0, 5.0, 100)
    where = {p[1:]: s.line for p, s in chat.where.items() if p[1] == "outlier_detection"}
    assert where == {("outlier_detection",): 76, ("outlier_detection", "consecutive_gateway_failure"): 79,
                     ("outlier_detection", "interval"): 81, ("outlier_detection", "base_ejection_time"): 82,
                     ("outlier_detection", "max_ejection_percent"): 83}


def test_merge_window_and_unwrapped_durations(tmp_path: Path) -> None:
    chat = _block(tmp_path, "        healthy_panic_threshold: {value: 0}  # 503 when no replica is healthy\n",
                  "        healthy_panic_threshold: {value: 0}\n        update_merge_window: {seconds: 0}\n")
    assert chat.settings.envoy.update_merge_window == 0.0
    assert chat.where[("gateway", "envoy", "update_merge_window")].line == 76


UNMODELLED = [
    ("          interval: 1s\n", "          interval: 1s\n          interval_jitter: 0.2s\n", 88,
     "clusters[chat].health_checks[0].interval_jitter",
     "interval_jitter moves each check by up to 0.2s, which the promise formulas do not add"),
    ("          interval: 1s\n", "          interval: 1s\n          interval_jitter_percent: 10\n", 88,
     "clusters[chat].health_checks[0].interval_jitter_percent",
     "interval_jitter_percent moves each check, which the promise formulas do not add"),
    ("          interval: 1s\n", "          interval: 1s\n          unhealthy_interval: 5s\n", 88,
     "clusters[chat].health_checks[0].unhealthy_interval",
     "unhealthy_interval 5s differs from the interval: the promise formulas assume every check comes one interval "
     "after the last"),
    ("          interval: 1s\n", "          interval: 1s\n          healthy_edge_interval: 0.1s\n", 88,
     "clusters[chat].health_checks[0].healthy_edge_interval",
     "healthy_edge_interval 0.1s differs from the interval: the promise formulas assume every check comes one interval "
     "after the last"),
    ("      load_assignment:\n        cluster_name: chat\n",
     "        - {timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {}}\n"
     "      load_assignment:\n        cluster_name: chat\n", 95, "clusters[chat].health_checks[1]",
     "a second health check: a replica is unhealthy when any check fails it, which the promise formulas (one check) "
     "do not model"),
    ("          http_health_check:\n            path: /health\n",
     "          tcp_health_check: {}\n          http_health_check:\n            path: /health\n", 91,
     "clusters[chat].health_checks[0].tcp_health_check",
     "a tcp health check: the promise formulas model an HTTP GET and its status"),
    ("            path: /health\n            expected_statuses:\n              - {start: 200, end: 300}\n",
     "            path: /health\n            retriable_statuses: [{start: 500, end: 600}]\n            expected_statuses:\n"
     "              - {start: 200, end: 300}\n", 93, "clusters[chat].health_checks[0].http_health_check.retriable_statuses",
     "these statuses count toward unhealthy_threshold instead of failing the replica at once, which the promise "
     "formulas do not model"),
    ("      circuit_breakers:\n", "      outlier_detection: {enforcing_consecutive_5xx: 50}\n      circuit_breakers:\n", 76,
     "clusters[chat].outlier_detection.enforcing_consecutive_5xx",
     "enforcing_consecutive_5xx 50: an ejection happens only that often, by chance"),
    ("      circuit_breakers:\n", "      outlier_detection: {success_rate_minimum_hosts: 3}\n      circuit_breakers:\n", 76,
     "clusters[chat].outlier_detection.enforcing_success_rate",
     "success-rate ejection (enforced, and the cluster has at least success_rate_minimum_hosts endpoints) ejects by "
     "statistics the promise formulas do not model"),
    ("      circuit_breakers:\n", "      outlier_detection: {split_external_local_origin_errors: true}\n"
     "      circuit_breakers:\n", 76, "clusters[chat].outlier_detection.split_external_local_origin_errors",
     "local-origin errors are counted apart from 5xx, which the promise formulas do not model"),
    ("      circuit_breakers:\n", "      outlier_detection: {}\n      circuit_breakers:\n", 30,
     "route /v1/chat/completions: retry_policy.retry_on",
     "retry_on retriable-status-codes: these retries send more tries to a failing replica, which outlier detection "
     "counts and the promise formulas do not"),
]


@pytest.mark.parametrize(("old", "new", "line", "setting", "why"), UNMODELLED, ids=[u[3].split(".")[-1] for u in UNMODELLED])
def test_what_the_promise_model_does_not_understand_makes_the_promise_unknown_at_its_line(
        tmp_path: Path, old: str, new: str, line: int, setting: str, why: str) -> None:
    retry_on = RETRY_ON if "outlier_detection" in new and not setting.startswith("route") else ("", "")
    scenario = load_scenario(variant(tmp_path, old, new, RESET, retry_on))
    block = pool_block(scenario, "chat")
    assert block is not None
    assert [(u.source.line, u.source.setting, u.why) for u in block.unmodelled] == [(line, setting, why)]
    promise = detection_window(scenario, scenario.faults[0])
    assert isinstance(promise, Unknown)
    assert promise.why == f"{tmp_path / 'envoy.yaml'}:{line} ({setting}): {why}"


def test_promised_windows_come_from_the_file_with_its_lines() -> None:
    scenario = load_scenario(FIXTURE / "reset.yaml")
    detect, recover = detection_window(scenario, scenario.faults[0]), recovery_window(scenario, scenario.faults[0])
    assert isinstance(detect, Window) and isinstance(recover, Window)
    assert (detect.earliest, detect.latest, recover.earliest, recover.latest) == (1.0, 2.04, 1.0, 2.04)
    assert f"[from {FIXTURE / 'envoy.yaml'}: clusters[chat] at line 70; " in detect.how
    assert "clusters[chat].health_checks[0].interval at line 87" in detect.how
    assert "clusters[chat].health_checks[0].unhealthy_threshold at line 89" in detect.how


def test_the_interval_moves_the_promised_window(tmp_path: Path) -> None:
    """Done when: the health check interval 1s → 3s moves the promise (the measured side: test_envoy_live.py)."""
    scenario = load_scenario(variant(tmp_path, "          interval: 1s\n          no_traffic_interval: 1s\n",
                                     "          interval: 3s\n          no_traffic_interval: 3s\n"))
    detect = detection_window(scenario, scenario.faults[0])
    assert isinstance(detect, Window) and (detect.earliest, detect.latest) == (3.0, 6.04)
    assert "clusters[chat].health_checks[0].interval at line 87" in detect.how


# -- refusals -----------------------------------------------------------------------------------

def test_an_eds_cluster_is_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, "      connect_timeout: 0.25s\n      type: STATIC\n", "      connect_timeout: 0.25s\n      type: EDS\n")
    assert refusal(path) == ("D/envoy.yaml:72: clusters[chat].type: cluster 'chat' gets its endpoints from EDS: "
                             "chaosgate binds only endpoints written in the file (load_assignment)")


def test_an_eds_cluster_config_is_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, "      type: STATIC\n      health_checks:\n",
                   "      type: STATIC\n      eds_cluster_config: {service_name: embeddings}\n      health_checks:\n")
    assert refusal(path) == ("D/envoy.yaml:115: clusters[embeddings].eds_cluster_config: cluster 'embeddings' gets its "
                             "endpoints from EDS: chaosgate binds only endpoints written in the file (load_assignment)")


def test_clusters_from_xds_are_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, "static_resources:\n", "dynamic_resources:\n  cds_config: {ads: {}}\nstatic_resources:\n")
    assert refusal(path) == ("D/envoy.yaml:7: dynamic_resources: listeners or clusters come from xDS (cds_config): "
                             "chaosgate binds only clusters written in the file; put them under static_resources")


def test_routes_from_rds_are_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, "                route_config:\n                  name: public\n",
                   "                rds: {route_config_name: public, config_source: {ads: {}}}\n"
                   "                route_config:\n                  name: public\n")
    assert refusal(path) == ("D/envoy.yaml:18: http_connection_manager.rds: the routes come from RDS: chaosgate reads "
                             "the route the load takes from the file; write it as route_config")


def test_binding_a_cluster_the_file_does_not_have_is_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, scenario=RESET.replace("bind: {chat: chat}", "bind: {completions: chat}"))
    assert refusal(path) == ("D/reset.yaml:14:10: gateway.bind.completions: D/envoy.yaml has no cluster named "
                             "'completions' (its clusters: chat, embeddings)")


def test_as_many_replicas_as_endpoints(tmp_path: Path) -> None:
    path = variant(tmp_path, scenario=RESET.replace("replicas: 3", "replicas: 2"))
    assert refusal(path) == ("D/envoy.yaml:70: clusters[chat]: cluster 'chat' has 3 endpoint(s) and pool 'chat' has 2 "
                             "replica(s): each endpoint becomes one replica, so set replicas: 3 on upstream 'chat'")


def test_an_unbound_cluster_off_the_machine_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = variant(tmp_path, "socket_address: {address: 127.0.0.1, port_value: 8101}",
                   "socket_address: {address: api.openai.com, port_value: 443}")
    assert refusal(path) == (
        "D/envoy.yaml:131: clusters[embeddings].load_assignment.endpoints[0].lb_endpoints[0]: sends traffic to "
        "api.openai.com:443, which is not this machine: bind the block it is in to a pool, change it to a loopback "
        "address, or allow it with --allow-host api.openai.com")
    assert load_scenario(path, allow_hosts=("api.openai.com",)).gateway.config == str(tmp_path / "envoy.yaml")
    code, out, err = invoke("validate", str(path), "--allow-host", "api.openai.com")
    assert code == 0 and f"{path}: ok" in out


def test_an_address_outside_the_clusters_is_checked_too(tmp_path: Path) -> None:
    path = variant(tmp_path, "\nstatic_resources:\n",
                   "\nstats_sinks:\n  - name: envoy.stat_sinks.statsd\n    typed_config:\n"
                   "      \"@type\": type.googleapis.com/envoy.config.metrics.v3.StatsdSink\n"
                   "      address: {socket_address: {address: 10.0.0.9, port_value: 8125}}\n\nstatic_resources:\n")
    assert refusal(path) == (
        "D/envoy.yaml:11: stats_sinks[0].typed_config.address: sends traffic to 10.0.0.9:8125, which is not this "
        "machine: bind the block it is in to a pool, change it to a loopback address, or allow it with "
        "--allow-host 10.0.0.9")


TWO_POOLS = RESET.replace("bind: {chat: chat}", "bind: {chat: chat, embeddings: emb}").replace(
    "  - {name: chat, kind: openai, replicas: 3}\n",
    "  - {name: chat, kind: openai, replicas: 3}\n  - {name: emb, kind: openai, replicas: 2}\n")
EMBEDDINGS_ENDPOINTS = """              - endpoint:
                  address:
                    socket_address: {address: 127.0.0.1, port_value: 8101}
              - endpoint:
                  address:
                    socket_address: {address: 127.0.0.1, port_value: 8102}
"""


def test_a_bound_cluster_behind_unix_sockets_is_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, EMBEDDINGS_ENDPOINTS, "              - endpoint:\n                  address:\n"
                   "                    pipe: {path: /run/embeddings.sock}\n", TWO_POOLS)
    assert refusal(path) == (
        "D/envoy.yaml:112: clusters[embeddings]: cluster 'embeddings' reaches its endpoints through unix sockets "
        "(pipe): chaosgate puts a TCP proxy in front of each replica, so bind a cluster whose endpoints are "
        "socket_address")
    # unbound, the same cluster does no harm: a unix socket is on this machine
    assert load_scenario(variant(tmp_path, EMBEDDINGS_ENDPOINTS, "              - endpoint:\n                  address:\n"
                                 "                    pipe: {path: /run/embeddings.sock}\n")).name == "own-envoy-reset"


def test_a_bound_cluster_without_endpoints_is_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, "        cluster_name: embeddings\n        endpoints:\n" + "          - lb_endpoints:\n"
                   + EMBEDDINGS_ENDPOINTS, "        cluster_name: embeddings\n", TWO_POOLS)
    assert refusal(path) == (
        "D/envoy.yaml:112: clusters[embeddings]: cluster 'embeddings' has no endpoints "
        "(load_assignment.endpoints[].lb_endpoints): chaosgate makes each endpoint one replica, so bind a cluster "
        "whose endpoints are in the file")


def test_a_file_that_is_not_yaml_or_has_an_unreadable_setting(tmp_path: Path) -> None:
    assert refusal(variant(tmp_path, "          interval: 1s\n", "          interval: 1000ms\n")) == (
        "D/envoy.yaml:87: clusters[chat].health_checks[0].interval: cannot read '1000ms' as a duration; expected "
        "seconds such as '1s' or '0.5s' (as Envoy does)")
    assert refusal(variant(tmp_path, "stat_prefix: public", "stat_prefix: [public")).startswith(
        "D/envoy.yaml:18:")
    assert refusal(variant(tmp_path, "          unhealthy_threshold: 2\n", "")) == (
        "D/envoy.yaml:86: clusters[chat].health_checks[0]: the health check has no unhealthy_threshold (Envoy "
        "requires one)")


# -- the rewrite --------------------------------------------------------------------------------

def _rewrite(config_path: Path = FIXTURE / "envoy.yaml") -> str:
    config = read_native("envoy", config_path)
    replicas = [UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 31000 + i) for i in range(3)]
    ports = iter([32002, 32003])
    job = RewriteJob({"chat": "chat"}, replicas, 32000, 32001, "127.0.0.1", Path("/run/chaosgate"), lambda: next(ports))
    return READERS["envoy"].rewrite(config, job).text


def test_the_rewrite_changes_only_what_it_must() -> None:
    """Endpoints → the replicas (in file order, localities kept), listeners and admin → the run's ports, and what
    the observer needs (health and outlier event logs, the router's upstream log, the x-chaosgate-upstream header);
    comments, flow style, blank lines and everything else as the user wrote it."""
    config = read_native("envoy", FIXTURE / "envoy.yaml")
    rendered = diff(config, _rewrite(), "envoy.yaml").replace(str(FIXTURE / "envoy.yaml"), "tests/own_config/envoy/envoy.yaml")
    assert rendered == (FIXTURE / "rewrite.diff").read_text(encoding="utf-8")


def test_the_rewritten_file_is_one_envoy_accepts(tmp_path: Path) -> None:
    try:
        binary = envoy_binary()
    except ComponentMissing as exc:
        tests.missing.missing(str(exc))
    (tmp_path / "envoy.yaml").write_text(_rewrite().replace("/run/chaosgate", str(tmp_path)), encoding="utf-8")
    result = subprocess.run([binary, "--mode", "validate", "-c", str(tmp_path / "envoy.yaml")], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


def test_rewrite_keeps_the_files_own_indentation(tmp_path: Path) -> None:
    """A file that does not indent its lists under their key comes out the same way."""
    text = ("admin:\n  address:\n    socket_address:\n      address: 127.0.0.1\n      port_value: 9901\n"
            "static_resources:\n  listeners:\n  - name: public\n    address:\n      socket_address:\n"
            "        address: 127.0.0.1\n        port_value: 10000\n  clusters:\n  - name: chat\n    connect_timeout: 1s\n    load_assignment:\n"
            "      cluster_name: chat\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n            address:\n"
            "              socket_address:\n                address: 127.0.0.1\n                port_value: 8001\n")
    (tmp_path / "envoy.yaml").write_text(text, encoding="utf-8")
    config = read_native("envoy", tmp_path / "envoy.yaml")
    job = RewriteJob({"chat": "chat"}, [UpstreamAddress("chat", "chat[0]", "127.0.0.1", 31000)], 32000, 32001,
                     "127.0.0.1", Path("/run"), lambda: 1)
    out = READERS["envoy"].rewrite(config, job).text
    assert [line for line in diff(config, out, "x").splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] \
        == ["-      port_value: 9901", "+      port_value: 32001", "-        port_value: 10000", "+        port_value: 32000",
            "-                port_value: 8001",
            "+                port_value: 31000", "+cluster_manager:", "+  outlier_detection:",
            "+    event_log_path: /run/envoy-outlier.jsonl"]


# -- the lint -----------------------------------------------------------------------------------

def test_chaosgate_lint_on_the_raw_file() -> None:
    """Without a scenario, each cluster's first endpoint is supposed to go down (the load on the first cluster):
    the embeddings cluster keeps Envoy's 60s no_traffic_interval, which bites at its health check's line."""
    code, out, err = invoke("lint", str(FIXTURE / "envoy.yaml"))
    assert (code, out, err) == (0, (
        f"{FIXTURE / 'envoy.yaml'}:116: warning [envoy.no-traffic-interval] clusters[embeddings].health_checks[0]: "
        "is 60s (Envoy default), longer than the interval: until a cluster has carried traffic Envoy checks only that "
        "often; the load never sends traffic to 'embeddings', so every check of it, during "
        "embeddings-first-endpoint-down too, waits 60s (promised detection: [120s, 180.06s] +200ms margin); set "
        "no_traffic_interval equal to interval (2s)\n"), "1 file, 1 finding\n")


def test_chaosgate_lint_on_a_scenario_names_the_trap_in_the_users_file() -> None:
    code, out, err = invoke("lint", str(FIXTURE / "all-down.yaml"))
    assert (code, err) == (0, "1 file, 1 finding\n")
    assert out == (
        f"{FIXTURE / 'envoy.yaml'}:70: warning [envoy.merge-window] clusters[chat]: is 1s: down@chat[*] marks chat[0] "
        "and chat[1] unhealthy at about the same time (between 5s and 6.24s into the load); Envoy's workers apply a "
        "health change of 'chat' at once only if it is the first in a 1s window, a later one up to 1s after the admin "
        "API (and the journal) shows it, so clients keep reaching a replica marked unhealthy (or miss a readmitted "
        "one) for up to 1s; set update_merge_window: 0s\n")


def test_the_default_no_traffic_interval_is_named_at_the_health_checks_line(tmp_path: Path) -> None:
    """The embeddings cluster leaves no_traffic_interval at Envoy's 60s: a fault on its pool, which the load never
    reaches, is detected that late; the trap is located at its health check (where the setting belongs)."""
    scenario_text = TWO_POOLS.replace('target: "chat[0]"', 'target: "emb[0]"')
    path = variant(tmp_path, scenario=scenario_text)
    scenario = load_scenario(path)
    (finding,) = [f for f in lint_file(path, scenario) if f.trap == "envoy.no-traffic-interval"]
    assert (finding.file, finding.line, finding.field) == (str(tmp_path / "envoy.yaml"), 116,
                                                           "clusters[embeddings].health_checks[0]")
    assert finding.message.startswith("is 60s (Envoy default), longer than the interval: until a cluster has carried "
                                      "traffic Envoy checks only that often; the load never sends traffic to 'emb'")


def test_the_settings_model_accepts_what_is_read() -> None:
    """Every block's settings are the scenario model's Gateway block, as the promise modules read it."""
    for block in read_native("envoy", FIXTURE / "envoy.yaml").blocks.values():
        assert isinstance(block.settings, Gateway) and block.settings.kind == "envoy"
    assert isinstance(load_scenario(FIXTURE / "all-down.yaml"), Scenario)


def test_gateway_config_on_the_command_line_reads_the_file_for_an_unchanged_scenario() -> None:
    """`chaosgate validate scenarios/compare/reset.yaml --gateway-config envoy.yaml`: the pool chat is the cluster
    chat (the names match), and the windows come from the file."""
    code, out, _ = invoke("validate", str(REPO / "scenarios" / "compare" / "reset.yaml"), "--gateway-config",
                          str(FIXTURE / "envoy.yaml"))
    assert code == 0
    detect = next(line for line in out.splitlines() if line.strip().startswith("detect "))
    assert detect.strip().startswith("detect  [1s, 2.04s] +200ms margin after the fault's start: active check:")
    assert f"[from {FIXTURE / 'envoy.yaml'}: clusters[chat] at line 70; " in detect


def test_the_docs_page_and_the_shipped_example() -> None:
    from tests.test_docs import _broken_links

    assert _broken_links(REPO / "docs" / "own-config" / "envoy.md") == []
    example = REPO / "scenarios" / "own-config" / "envoy"
    assert (example / "envoy.yaml").read_text() == ENVOY_YAML  # the tested fixture, as shipped
    assert load_scenario(example / "reset.yaml").expect == load_scenario(FIXTURE / "reset.yaml").expect


def test_a_file_without_listeners_is_refused(tmp_path: Path) -> None:
    text = ENVOY_YAML[:ENVOY_YAML.index("  listeners:\n")] + ENVOY_YAML[ENVOY_YAML.index("  clusters:\n"):]
    (tmp_path / "envoy.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "reset.yaml").write_text(RESET, encoding="utf-8")
    assert refusal(tmp_path / "reset.yaml") == (
        "D/envoy.yaml:7: static_resources.listeners: the file has no listeners: the load goes to the first one; add "
        "one that routes /v1/chat/completions to the cluster under test")


def test_a_weighted_route_is_the_clusters_route_too(tmp_path: Path) -> None:
    chat = _block(tmp_path, "                            cluster: chat\n",
                  "                            weighted_clusters:\n                              clusters:\n"
                  "                                - {name: chat, weight: 100}\n")
    assert chat.settings.request_timeout == 10.0 and chat.settings.retries is not None


def test_a_health_check_without_http_makes_the_promise_unknown(tmp_path: Path) -> None:
    chat = _block(tmp_path, "          http_health_check:\n            path: /health\n            expected_statuses:\n"
                  "              - {start: 200, end: 300}\n", "")
    assert [(u.source.line, u.why) for u in chat.unmodelled] == [
        (86, "a health check without http_health_check: the promise formulas model an HTTP GET and its status")]


def test_a_value_the_model_cannot_take_is_refused_at_its_line(tmp_path: Path) -> None:
    path = variant(tmp_path, "          unhealthy_threshold: 2\n", "          unhealthy_threshold: 0\n")
    assert refusal(path) == ("D/envoy.yaml:89: clusters[chat].health_checks[0].unhealthy_threshold: input should be "
                             "greater than or equal to 1 (got 0); chaosgate cannot use this value")
    path = variant(tmp_path, "healthy_panic_threshold: {value: 0}", "healthy_panic_threshold: {value: 150}")
    assert refusal(path) == ("D/envoy.yaml:75: clusters[chat].common_lb_config.healthy_panic_threshold: input should "
                             "be less than or equal to 100 (got 150.0); chaosgate cannot use this value")


def test_a_structure_of_the_wrong_shape_is_refused_at_its_line(tmp_path: Path) -> None:
    """What the reader and the rewrite walk must be a mapping or a list where Envoy expects one: else the line."""
    path = variant(tmp_path, "                http_filters:\n                  - name: envoy.filters.http.router\n"
                   "                    typed_config:\n                      \"@type\": type.googleapis.com/envoy.extensions."
                   "filters.http.router.v3.Router\n    - name: internal\n",
                   "                http_filters: envoy.filters.http.router\n    - name: internal\n")
    assert refusal(path) == ("D/envoy.yaml:41: static_resources.listeners[0].filter_chains[0].filters[0].typed_config."
                             "http_filters: expected a list here, got 'envoy.filters.http.router'")
    path = variant(tmp_path, "      health_checks:\n        - timeout: 0.5s\n",
                   "      health_checks:\n        - null\n        - timeout: 0.5s\n")
    assert refusal(path) == ("D/envoy.yaml:86: static_resources.clusters[0].health_checks[0]: expected a mapping here, "
                             "got nothing (null)")


def test_a_folder_of_scenarios_leaves_the_gateways_own_file_beside_them_out() -> None:
    code, out, err = invoke("validate", str(REPO / "scenarios" / "own-config" / "envoy"))
    assert code == 0, out + err
    assert [line for line in out.splitlines() if not line.startswith(" ")] == [
        f"{REPO / 'scenarios' / 'own-config' / 'envoy' / 'reset.yaml'}: ok"]


def test_the_load_must_reach_the_cluster_its_pool_is_bound_to(tmp_path: Path) -> None:
    """The load requests /v1/chat/completions on the first listener: the route that takes it must send it to the
    cluster bound to the load's pool, else nothing the run measures is about that cluster."""
    two = TWO_POOLS.replace("bind: {chat: chat, embeddings: emb}", "bind: {chat: emb, embeddings: chat}").replace(
        "replicas: 3}\n  - {name: emb, kind: openai, replicas: 2}", "replicas: 2}\n  - {name: emb, kind: openai, replicas: 3}")
    assert refusal(variant(tmp_path, scenario=two)) == (
        "D/envoy.yaml:24: route /v1/chat/completions: the load's /v1/chat/completions goes to cluster 'chat', but its "
        "pool 'chat' is bound to cluster 'embeddings': route it there, or bind 'chat' to the cluster it reaches")
    path = variant(tmp_path, "                        - match: {prefix: /v1/chat/}\n",
                   "                        - match: {prefix: /v2/chat/}\n")
    assert refusal(path) == (
        "D/envoy.yaml:9: listeners[public]: the load's /v1/chat/completions has nowhere to go (no route takes it), but "
        "its pool 'chat' is bound to cluster 'chat': route it there, or bind 'chat' to the cluster it reaches")


def test_the_virtual_hosts_retry_policy_applies_to_a_route_without_its_own(tmp_path: Path) -> None:
    start = ENVOY_YAML.index("                            # Retry a broken connection")
    end = ENVOY_YAML.index("                        - match: {prefix: /v1/embeddings}")
    text = ENVOY_YAML[:start] + ENVOY_YAML[end:]
    text = text.replace('                      domains: ["*"]\n',
                        '                      domains: ["*"]\n                      retry_policy: {retry_on: 5xx, '
                        'num_retries: 3}\n', 1)
    (tmp_path / "envoy.yaml").write_text(text, encoding="utf-8")
    chat = read_native("envoy", tmp_path / "envoy.yaml").blocks["chat"]
    assert chat.settings.retries is not None
    assert (chat.settings.retries.retry_on, chat.settings.retries.num_retries) == (["5xx"], 3)
    assert chat.where[("gateway", "retries")].line == 23
    assert chat.where[("gateway", "retries", "num_retries")].setting == "route /v1/chat/completions: retry_policy.num_retries"
