"""diagnose's pieces: reading Envoy configs, the layers against real loopback sockets (refused,
closed, reset, TLS certificates from the test CA), the `diagnosis` expectation on synthetic
journals, and its place in the plan."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from harness.certs import CA_FILE, cert_paths, mint
from harness.diagnose import CAUSES, LAYERS, DiagnoseError, ProbeSettings, from_config, walk
from harness.diagnose.base import ProbeTarget
from harness.diagnose.envoy_source import clusters_from_config
from harness.diagnose.http_health import _missing_in_order
from harness.diagnose.mcp import _arguments, _violations
from harness.diagnose.model import Cluster, HealthCheckDef, Host, StatusRange, TlsDef
from harness.diagnose.render import render_table
from harness.diagnose.walk import Diagnosis as DiagnosisReport
from harness.expectations import EXPECTATIONS
from harness.plan import make_plan
from harness.scenario import parse_scenario
from harness.timeline import build_timeline

FAST = ProbeSettings(connect_timeout=0.5, peek_s=0.1, slow_budget=0.5, inference_timeout=0.5)


def _envoy_config(**cluster: Any) -> dict[str, Any]:
    base = {"name": "chat", "type": "STATIC", "connect_timeout": "0.250s",
            "load_assignment": {"cluster_name": "chat", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 18081}}}}]}]}}
    return {"static_resources": {"clusters": [{**base, **cluster}]}}


# -- reading the gateway's configuration ------------------------------------------------

def test_config_file_gives_clusters_hosts_health_check_and_tls(tmp_path: Path) -> None:
    config = _envoy_config(
        health_checks=[{"timeout": "0.5s", "interval": "1s", "unhealthy_threshold": 2, "healthy_threshold": 3,
                        "http_health_check": {"path": "/healthz", "expected_statuses": [{"start": 200, "end": 205}]}}],
        transport_socket={"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "chat.upstream.test",
            "common_tls_context": {"alpn_protocols": ["http/1.1"], "validation_context": {
                "trusted_ca": {"filename": "/ca.pem"},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "chat.upstream.test"}}]}}}})
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    view = from_config(path)
    assert not view.live
    cluster = view.cluster("chat")
    assert cluster.connect_timeout == 0.25 and cluster.kind == "openai" and not cluster.http2
    assert cluster.health_check == HealthCheckDef(path="/healthz", host="chat", timeout=0.5, interval=1.0,
                                                  unhealthy_threshold=2, healthy_threshold=3,
                                                  expected_statuses=(StatusRange(200, 205),))
    assert cluster.tls == TlsDef(sni="chat.upstream.test", trusted_ca_file="/ca.pem",
                                 san_names=("chat.upstream.test",), alpn=("http/1.1",))
    assert [(h.address, h.port, h.healthy) for h in cluster.hosts] == [("127.0.0.1", 18081, None)]


def test_dns_cluster_extension_gives_resolver_and_names() -> None:
    config = _envoy_config(type=None, cluster_type={"name": "envoy.cluster.dns", "typed_config": {
        "all_addresses_in_single_endpoint": False,
        "typed_dns_resolver_config": {"name": "envoy.network.dns_resolver.cares", "typed_config": {
            "resolvers": [{"socket_address": {"address": "127.0.0.1", "port_value": 15353}}]}}}})
    config["static_resources"]["clusters"][0].pop("type")
    config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"]["address"] = "chat-0.chaosgate.test"
    [(cluster, hosts)] = clusters_from_config(config, "x")
    assert cluster.type == "STRICT_DNS"
    assert [(r.address, r.port) for r in cluster.resolvers] == [("127.0.0.1", 15353)]
    assert [(h.hostname, h.resolved) for h in hosts] == [("chat-0.chaosgate.test", False)]


def test_mcp_health_check_payloads_are_hex_and_make_the_cluster_mcp() -> None:
    send = b'{"jsonrpc":"2.0","id":"hc","method":"initialize"}'.hex()
    config = _envoy_config(health_checks=[{"timeout": "1s", "interval": "1s", "http_health_check": {
        "path": "/mcp", "method": "POST", "send": {"text": send}, "receive": [{"text": b'"tools"'.hex()}],
        "request_headers_to_add": [{"header": {"key": "accept", "value": "application/json"}}]}}])
    [(cluster, _)] = clusters_from_config(config, "x")
    assert cluster.kind == "mcp"
    assert cluster.health_check is not None and cluster.health_check.method == "POST"
    assert cluster.health_check.receive == ('"tools"',) and cluster.health_check.headers == (("accept", "application/json"),)


def test_bad_config_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(_envoy_config(connect_timeout="soon")))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "connect_timeout" in text)
    with pytest.raises(DiagnoseError, match=rf"envoy.yaml:{line}:\d+: static_resources.clusters\[0\].connect_timeout: "
                                            "expected a duration"):
        from_config(path)
    path.write_text("just: text\n")
    with pytest.raises(DiagnoseError, match="expected an Envoy bootstrap config"):
        from_config(path)
    path.write_text("[]\n")
    with pytest.raises(DiagnoseError, match=r"envoy.yaml:1:1: the config defines no cluster"):
        from_config(path)
    path.write_text("static_resources:\n  clusters: [\n")
    with pytest.raises(DiagnoseError, match=r"envoy.yaml:3:1: invalid YAML"):
        from_config(path)


# -- layers against real loopback sockets -------------------------------------------------

def _target(port: int, **cluster: Any) -> tuple[Cluster, Host]:
    return Cluster(name="chat", connect_timeout=0.5, **cluster), Host(cluster="chat", address="127.0.0.1", port=port,
                                                                       healthy=False, flags=("failed_active_health_check",))


@pytest.fixture
def server() -> Iterator[tuple[socket.socket, list[str]]]:
    """A listening loopback socket whose accepted connections get the behaviour set in the list."""
    listener = socket.create_server(("127.0.0.1", 0))
    behaviour: list[str] = ["close"]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if behaviour[0] == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    yield listener, behaviour
    listener.close()


def test_refused_port_is_connection_refused() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = walk(*_target(port), FAST)
    assert (result.cause, result.failure and result.failure.layer) == ("connection_refused", "tcp")
    assert "refused" in result.evidence and result.verdict == "unhealthy"


@pytest.mark.parametrize(("behaviour", "cause"), [("close", "connection_closed"), ("reset", "connection_reset")])
def test_accepted_then_closed_or_reset(server: tuple[socket.socket, list[str]], behaviour: str, cause: str) -> None:
    listener, mode = server
    mode[0] = behaviour
    result = walk(*_target(listener.getsockname()[1]), FAST)
    assert result.cause == cause


@pytest.mark.parametrize(("kind", "cause"), [("expired", "tls_expired"), ("not_yet_valid", "tls_not_yet_valid"),
                                             ("wrong_host", "tls_hostname"), ("untrusted", "tls_untrusted"),
                                             ("valid", None)])
def test_tls_certificates_judged_as_the_gateway_does(tmp_path: Path, kind: str, cause: str | None) -> None:
    mint(tmp_path, "chat.upstream.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert_paths(tmp_path, kind))
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()
    try:
        tls = TlsDef(sni="chat.upstream.test", trusted_ca_file=str(tmp_path / CA_FILE), san_names=("chat.upstream.test",))
        cluster, host = _target(listener.getsockname()[1], tls=tls)
        tls_layer = next(layer for layer in LAYERS if layer.name == "tls")
        result = tls_layer.probe(ProbeTarget(cluster, host, host.address, host.port), FAST)
    finally:
        listener.close()
    assert result.cause == cause, result.evidence
    assert "chat.upstream.test" in result.evidence or kind == "wrong_host"


def test_only_loopback_is_probed() -> None:
    cluster = Cluster(name="remote")
    host = Host(cluster="remote", address="192.0.2.10", port=80, healthy=False)
    result = walk(cluster, host, FAST)
    assert result.cause == "not_loopback" and result.failure is not None and result.failure.layer == "tcp"


# -- small pieces -------------------------------------------------------------------------

def test_receive_fragments_match_in_order() -> None:
    assert _missing_in_order(("a", "b"), "xaxbx") == []
    assert _missing_in_order(("b", "a"), "xaxbx") == ["a"]


def test_mcp_minimal_arguments_and_output_schema_violations() -> None:
    schema = {"type": "object", "required": ["a", "op"], "properties": {"a": {"type": "number"},
                                                                        "op": {"type": "string", "enum": ["add"]}}}
    assert _arguments(schema) == {"a": 1, "op": "add"}
    out = {"type": "object", "required": ["result"], "properties": {"result": {"type": "number"}}}
    assert _violations({"result": 5}, out) == []
    assert _violations({"result": "5"}, out) == ["result is str, the outputSchema says number"]
    assert _violations({"result": True}, out) == ["result is bool, the outputSchema says number"]


def test_every_cause_has_a_table_row_and_a_next_step() -> None:
    for cause in CAUSES.values():
        assert cause.row and cause.next_step


def test_table_lists_every_host_with_gateway_flags() -> None:
    healthy = walk(Cluster(name="c"), Host(cluster="c", address="192.0.2.1", port=1, healthy=True), FAST)
    report = DiagnosisReport("http://admin", True, (healthy,))
    text = render_table(report)
    assert "c/192.0.2.1:1" in text and "not_loopback" in text and "1 hosts, 1 unhealthy" in text


# -- the diagnosis expectation -----------------------------------------------------------------

SCENARIO = """
name: d
upstreams: [{name: chat, replicas: 2}]
load: {duration: 20s}
faults:
  - {kind: down, target: "chat[0]", at: 4s, for: 6s}
expect:
  - {kind: diagnosis, target: "chat[0]", cause: connection_refused}
  - {kind: diagnosis, target: "chat[0]", cause: connection_refused, after: 1s}
"""


def test_diagnoses_are_planned_inside_the_fault_window() -> None:
    plan = make_plan(parse_scenario(SCENARIO, "d.yaml"))
    assert [(d.t, d.replica) for d in plan.diagnoses] == [(5.0, "chat[0]"), (7.0, "chat[0]")]
    assert len({d.key for d in plan.diagnoses}) == 2


def test_unknown_cause_and_pool_target_are_rejected() -> None:
    model = EXPECTATIONS["diagnosis"]
    with pytest.raises(ValidationError, match="unknown cause 'gremlins'"):
        model.model_validate({"kind": "diagnosis", "target": "chat[0]", "cause": "gremlins"})
    with pytest.raises(ValidationError, match="expected one replica"):
        model.model_validate({"kind": "diagnosis", "target": "chat", "cause": "healthy"})


def _events(diagnoses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    t0 = 1_700_000_000.0
    return [{"type": "run.started", "ts": t0 - 1, "replicas": ["chat[0]", "chat[1]"]},
            {"type": "load.started", "ts": t0},
            {"type": "fault.started", "ts": t0 + 4, "fault": "down@chat[0]", "kind": "down", "target": "chat[0]",
             "replicas": ["chat[0]"]},
            *[{"type": "diagnosis", "ts": t0 + 7, **d} for d in diagnoses],
            {"type": "fault.cleared", "ts": t0 + 10, "fault": "down@chat[0]", "kind": "down", "target": "chat[0]",
             "replicas": ["chat[0]"]},
            {"type": "load.finished", "ts": t0 + 20}, {"type": "run.finished", "ts": t0 + 21, "outcome": "complete"}]


@pytest.mark.parametrize(("named", "passed"), [("connection_refused", True), ("connection_closed", False), (None, False)])
def test_expectation_judges_the_journalled_diagnosis(named: str | None, passed: bool) -> None:
    expectation = parse_scenario(SCENARIO, "d.yaml").expect[0]
    key = make_plan(parse_scenario(SCENARIO, "d.yaml")).diagnoses[1].key  # t=7: the default, half of 6s into the fault
    assert key == expectation.key("down@chat[0]")  # type: ignore[attr-defined]
    timeline = build_timeline(_events([{"replica": "chat[0]", "key": key, "cause": named, "layer": "tcp",
                                        "evidence": "connect refused"}]))
    verdict = expectation.evaluate(timeline)
    assert verdict.passed is passed
    assert verdict.measured == (named or "healthy") and "3.00s into down@chat[0]" in verdict.detail


def test_expectation_fails_without_a_journalled_diagnosis_or_on_error() -> None:
    expectation = parse_scenario(SCENARIO, "d.yaml").expect[0]
    key = make_plan(parse_scenario(SCENARIO, "d.yaml")).diagnoses[1].key
    missing = expectation.evaluate(build_timeline(_events([])))
    assert not missing.passed and "no diagnosis of chat[0]" in missing.detail
    errored = expectation.evaluate(build_timeline(_events([{"replica": "chat[0]", "key": key, "cause": None,
                                                            "error": "admin API did not answer"}])))
    assert not errored.passed and "admin API did not answer" in errored.detail


def test_http1_host_behind_an_http2_cluster_is_wrong_protocol() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:  # the tcp layer's connection, then the protocol layer's
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if conn.recv(1024):
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    try:
        cluster = Cluster(name="grpc", connect_timeout=0.5, http2=True, kind="mcp")
        result = walk(cluster, Host(cluster="grpc", address="127.0.0.1", port=listener.getsockname()[1]), FAST)
    finally:
        listener.close()
    assert (result.cause, result.failure and result.failure.layer) == ("wrong_protocol", "protocol")
    assert "HTTP/1.1 400 Bad Request" in result.evidence


def test_via_probes_another_loopback_route_to_the_same_endpoint() -> None:
    """A gateway in a container dials an address this host cannot: diagnose probes the published port."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    cluster = Cluster(name="chat", connect_timeout=0.5)
    host = Host(cluster="chat", address="172.18.0.5", port=8080, hostname="toxiproxy", healthy=False)
    result = walk(cluster, host, FAST, via=("127.0.0.1", port))
    assert result.cause == "connection_refused" and f"127.0.0.1:{port}" in result.evidence
    assert [r.layer for r in result.layers] == ["tcp"]  # no DNS: the name is the container network's
