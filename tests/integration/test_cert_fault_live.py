"""The cert fault on a real stack: a TLS client sees the replica's certificate change while it
runs, and Envoy (validating against the run's test CA and the expected name) ejects the replica
and takes it back after the rotation to a valid certificate."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from pydantic import TypeAdapter

from harness.certs import WRONG_HOST
from harness.faults import Fault
from harness.runtimes.base import Stack
from harness.runtimes.local import LocalRuntime
from harness.scenario import FaultSpec, Scenario, parse_scenario

from .conftest import wait_for

SCENARIO = """\
name: cert-live
gateway:
  health_check: {interval: 500ms, timeout: 250ms, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 500ms}
  panic_threshold: 0
upstreams:
  - {name: chat, replicas: 2, tls: {server_name: llm.example.test}}
load: {duration: 30s}
"""
LOG_FLUSH_S = 15.0  # Envoy writes its event log in batches
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Scenario]]:
    scenario = parse_scenario(SCENARIO, "cert-live.yaml")
    runtime = LocalRuntime()
    try:
        yield runtime.up(scenario, tmp_path_factory.mktemp("cert") / "run"), scenario
    finally:
        runtime.down()


def peer_cert(stack: Stack, replica: str) -> x509.Certificate:
    """The certificate ``replica`` serves now, fetched by a fresh handshake that verifies nothing."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", stack.replicas[replica].port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="llm.example.test") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def verified_handshake(stack: Stack, replica: str) -> str | None:
    """None if a client trusting the run's CA accepts ``replica`` as llm.example.test, else the reason."""
    context = ssl.create_default_context(cafile=str(stack.run_dir / "tls" / "chat" / "ca.pem"))
    try:
        with socket.create_connection(("127.0.0.1", stack.replicas[replica].port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="llm.example.test"):
            return None
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message)


def cert_fault(mode: str) -> Fault:
    return TypeAdapter(FaultSpec).validate_python({"kind": "cert", "mode": mode, "target": "chat[0]", "at": 0, "for": 1})


def gateway_sees(stack: Stack, replica: str, healthy: bool) -> bool:
    return stack.replica_health()[replica].healthy is healthy


def bounds(scenario: Scenario) -> tuple[float, float]:
    """Detection and readmission bounds from the health check, with margin for a busy machine."""
    hc = scenario.gateway.health_check
    assert hc is not None
    return (hc.unhealthy_threshold * hc.interval + hc.timeout + 3.0, hc.healthy_threshold * hc.interval + 3.0)


@pytest.mark.integration
def test_the_replicas_serve_tls_validated_by_the_gateway(stack: tuple[Stack, Scenario]) -> None:
    running, _ = stack
    assert verified_handshake(running, "chat[0]") is None
    with pytest.raises(httpx.HTTPError):  # the data port speaks TLS only
        httpx.get(f"http://127.0.0.1:{running.replicas['chat[0]'].port}/health", timeout=2)
    for _ in range(4):  # through Envoy, over TLS, to both replicas
        assert httpx.post(f"{running.gateway.url}/v1/chat/completions", json=CHAT, timeout=5).status_code == 200
    config = (running.run_dir / "envoy.yaml").read_text()
    assert "UpstreamTlsContext" in config and "llm.example.test" in config


@pytest.mark.integration
@pytest.mark.parametrize(("mode", "reason"), [
    ("expired", "certificate has expired"),
    ("not_yet_valid", "certificate is not yet valid"),
    ("wrong_host", "Hostname mismatch"),
    ("untrusted", "self-signed certificate in certificate chain"),  # its chain ends at a CA nobody trusts
])
def test_cert_fault_is_seen_by_clients_and_the_gateway(stack: tuple[Stack, Scenario], mode: str, reason: str) -> None:
    running, scenario = stack
    detect, readmit = bounds(scenario)
    fault = cert_fault(mode)
    try:
        fault.inject(running, "chat[0]")
        served = peer_cert(running, "chat[0]")
        now = dt.datetime.now(dt.timezone.utc)
        if mode == "expired":
            assert served.not_valid_after_utc < now
        if mode == "not_yet_valid":
            assert served.not_valid_before_utc > now
        if mode == "wrong_host":
            assert WRONG_HOST in served.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert reason in (verified_handshake(running, "chat[0]") or "")
        wait_for(lambda: gateway_sees(running, "chat[0]", healthy=False), detect, f"Envoy to eject chat[0] ({mode})")
        assert "failed_active_health_check" in running.replica_health()["chat[0]"].flags
        for _ in range(6):  # the other replica serves every request once chat[0] is out
            response = httpx.post(f"{running.gateway.url}/v1/chat/completions", json=CHAT, timeout=5)
            assert response.status_code == 200 and response.headers["x-chaosgate-replica"] == "chat[1]"
    finally:
        fault.clear(running, "chat[0]")
    served = peer_cert(running, "chat[0]")
    assert served.not_valid_before_utc < dt.datetime.now(dt.timezone.utc) < served.not_valid_after_utc
    assert verified_handshake(running, "chat[0]") is None
    wait_for(lambda: gateway_sees(running, "chat[0]", healthy=True), readmit, f"Envoy to readmit chat[0] ({mode})")


@pytest.mark.integration
def test_handshake_failures_are_network_failures_of_the_health_check(stack: tuple[Stack, Scenario]) -> None:
    """Envoy's health event log: a failed certificate check is failure_type NETWORK, no HTTP status,
    and it takes unhealthy_threshold of them to eject the replica."""
    running, scenario = stack
    detect, readmit = bounds(scenario)
    log = Path(running.run_dir / "envoy-health.jsonl")
    start = len(log.read_text().splitlines())
    fault = cert_fault("untrusted")
    try:
        fault.inject(running, "chat[0]")
        wait_for(lambda: gateway_sees(running, "chat[0]", healthy=False), detect, "Envoy to eject chat[0]")
        wait_for(lambda: "eject_unhealthy_event" in "".join(log.read_text().splitlines()[start:]), LOG_FLUSH_S,
                 "Envoy to write the ejection to its health event log")
    finally:
        fault.clear(running, "chat[0]")
    wait_for(lambda: gateway_sees(running, "chat[0]", healthy=True), readmit, "Envoy to readmit chat[0]")
    port = f'"port_value":{running.replicas["chat[0]"].proxy_port},'
    events = [line for line in log.read_text().splitlines()[start:] if port in line]
    ejection = next(i for i, line in enumerate(events) if "eject_unhealthy_event" in line)
    assert '"failure_type":"NETWORK"' in events[ejection]
    failures = [line for line in events[:ejection] if "health_check_failure_event" in line]
    assert scenario.gateway.health_check is not None
    assert len(failures) == scenario.gateway.health_check.unhealthy_threshold - 1, events[:ejection + 1]
    assert all('"failure_type":"NETWORK"' in line and '"http_status_code":0' in line for line in failures)
