"""TLS to the upstreams: the test CA's certificates, the scenario's tls field, Envoy's
UpstreamTlsContext (accepted by Envoy itself) and the cert fault's calls to the control API."""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from pydantic import TypeAdapter

from harness import loopback
from harness.certs import CERT_KINDS, WRONG_HOST, cert_paths, mint
from harness.errors import FaultError, ScenarioError, StackError
from harness.faults.cert import Cert
from harness.gateways import UpstreamAddress, UpstreamTlsTrust
from harness.gateways.envoy import EnvoyGateway, envoy_binary
from harness.scenario import FaultSpec, Gateway, parse_scenario
from harness.upstream_tls import prepare

NAME = "chat.upstream.test"
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def minted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    mint(directory, NAME, now=NOW)
    return directory


def leaf(directory: Path, kind: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(cert_paths(directory, kind)[0].read_bytes())[0]


def dns_names(cert: x509.Certificate) -> list[str]:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


# -- the test CA ----------------------------------------------------------------------------

def test_mint_writes_the_ca_and_every_kind(minted: Path) -> None:
    assert (minted / "ca.pem").exists()
    for kind in CERT_KINDS:
        chain, key = cert_paths(minted, kind)
        assert chain.read_text().count("BEGIN CERTIFICATE") == 2, "leaf and its issuer"
        assert "PRIVATE KEY" in key.read_text()


def test_each_kind_is_bad_in_exactly_its_own_way(minted: Path) -> None:
    ca = x509.load_pem_x509_certificate((minted / "ca.pem").read_bytes())
    valid, expired, early = leaf(minted, "valid"), leaf(minted, "expired"), leaf(minted, "not_yet_valid")
    assert valid.not_valid_before_utc < NOW < valid.not_valid_after_utc
    assert expired.not_valid_after_utc < NOW
    assert early.not_valid_before_utc > NOW
    assert dns_names(leaf(minted, "wrong_host")) == [WRONG_HOST]
    for kind in ("valid", "expired", "not_yet_valid", "untrusted"):
        assert dns_names(leaf(minted, kind)) == [NAME]
    for kind in ("valid", "expired", "not_yet_valid", "wrong_host"):
        assert leaf(minted, kind).issuer == ca.subject
        leaf(minted, kind).verify_directly_issued_by(ca)
    assert leaf(minted, "untrusted").issuer != ca.subject


@pytest.mark.parametrize("kind", CERT_KINDS)
def test_every_certificate_loads_into_an_ssl_context(minted: Path, kind: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert_paths(minted, kind))


# -- the scenario ---------------------------------------------------------------------------

BASE = """\
name: t
upstreams:
  - {name: chat, replicas: 2%s}
load: {duration: 10s}
"""


def test_tls_true_uses_the_default_server_name() -> None:
    (pool,) = parse_scenario(BASE % ", tls: true", "x.yaml").upstreams
    assert pool.tls is not None and pool.server_name == "chat.upstream.test"
    (plain,) = parse_scenario(BASE % "", "x.yaml").upstreams
    assert plain.tls is None
    (off,) = parse_scenario(BASE % ", tls: false", "x.yaml").upstreams
    assert off.tls is None


def test_tls_server_name_is_validated() -> None:
    (pool,) = parse_scenario(BASE % ", tls: {server_name: llm.internal}", "x.yaml").upstreams
    assert pool.server_name == "llm.internal"
    with pytest.raises(ScenarioError, match="server_name"):
        parse_scenario(BASE % ", tls: {server_name: 'Bad Name'}", "x.yaml")


def test_a_cert_fault_needs_a_tls_pool() -> None:
    fault = '\nfaults:\n  - {kind: cert, mode: expired, target: "chat[0]", at: 1s, for: 2s}\n'
    with pytest.raises(ScenarioError, match="set tls: true on upstream 'chat'"):
        parse_scenario(BASE % "" + fault, "x.yaml")
    scenario = parse_scenario(BASE % ", tls: true" + fault, "x.yaml")
    assert scenario.faults[0].label == "cert:expired@chat[0]"


def test_prepare_mints_one_folder_per_tls_pool(tmp_path: Path) -> None:
    scenario = parse_scenario(BASE.replace("load:", "  - {name: embed}\nload:") % ", tls: true", "x.yaml")
    pools = prepare(scenario, tmp_path)
    assert set(pools) == {"chat"}
    assert pools["chat"].ca_file == tmp_path / "tls" / "chat" / "ca.pem" and pools["chat"].ca_file.exists()
    assert pools["chat"].fake_args() == ["--tls-dir", str(tmp_path / "tls" / "chat")]
    assert pools["chat"].trust() == UpstreamTlsTrust(str(pools["chat"].ca_file), "chat.upstream.test")


# -- Envoy's config -------------------------------------------------------------------------

def tls_upstreams(ca_file: Path) -> list[UpstreamAddress]:
    trust = UpstreamTlsTrust(str(ca_file), NAME)
    return ([UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 21000 + i, tls=trust) for i in range(2)]
            + [UpstreamAddress("plain", "plain[0]", "127.0.0.1", 22000)])


def test_tls_cluster_validates_against_the_ca_and_the_name(minted: Path, tmp_path: Path) -> None:
    gw = EnvoyGateway(Gateway(), 10000, 10001, "chat")
    clusters = {c["name"]: c for c in gw.config(tls_upstreams(minted / "ca.pem"), tmp_path)["static_resources"]["clusters"]}
    assert "transport_socket" not in clusters["plain"]
    socket: dict[str, Any] = clusters["chat"]["transport_socket"]
    assert socket["name"] == "envoy.transport_sockets.tls"
    context = socket["typed_config"]
    assert context["@type"].endswith("UpstreamTlsContext") and context["sni"] == NAME
    validation = context["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"filename": str(minted / "ca.pem")}
    assert validation["match_typed_subject_alt_names"] == [{"san_type": "DNS", "matcher": {"exact": NAME}}]
    assert "http_health_check" in clusters["chat"]["health_checks"][0], "health checks use the cluster's TLS"


def test_replicas_of_one_pool_must_agree_on_tls(minted: Path, tmp_path: Path) -> None:
    mixed = [UpstreamAddress("chat", "chat[0]", "127.0.0.1", 21000, tls=UpstreamTlsTrust(str(minted / "ca.pem"), NAME)),
             UpstreamAddress("chat", "chat[1]", "127.0.0.1", 21001)]
    with pytest.raises(StackError, match="disagree on TLS"):
        EnvoyGateway(Gateway(), 10000, 10001, "chat").config(mixed, tmp_path)


def test_envoy_validates_the_tls_config(minted: Path, tmp_path: Path) -> None:
    path = EnvoyGateway(Gateway(), 10000, 10001, "chat").write_config(tls_upstreams(minted / "ca.pem"), tmp_path)
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the cert fault -------------------------------------------------------------------------

class Ctx:
    def control_url(self, replica: str) -> str:
        return f"http://control.invalid/{replica}"


def test_cert_fault_swaps_then_rotates_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    def put(url: str, json: Any, timeout: float) -> httpx.Response:
        calls.append((url, json))
        return httpx.Response(200, json={"cert": json["cert"]})

    monkeypatch.setattr(loopback.client(), "put", put)
    fault = TypeAdapter(FaultSpec).validate_python(
        {"kind": "cert", "mode": "wrong_host", "target": "chat[1]", "at": "1s", "for": "2s"})
    assert isinstance(fault, Cert) and fault.exclusive
    fault.inject(Ctx(), "chat[1]")  # type: ignore[arg-type]
    fault.clear(Ctx(), "chat[1]")  # type: ignore[arg-type]
    assert calls == [("http://control.invalid/chat[1]/tls", {"cert": "wrong_host"}),
                     ("http://control.invalid/chat[1]/tls", {"cert": "valid"})]


def test_cert_fault_reports_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loopback.client(), "put", lambda url, json, timeout: httpx.Response(404, text="no such certificate"))
    fault = TypeAdapter(FaultSpec).validate_python(
        {"kind": "cert", "mode": "expired", "target": "chat[0]", "at": "1s", "for": "2s"})
    with pytest.raises(FaultError, match="answered 404: no such certificate"):
        fault.inject(Ctx(), "chat[0]")  # type: ignore[arg-type]


def test_unknown_cert_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        TypeAdapter(FaultSpec).validate_python(
            {"kind": "cert", "mode": "revoked", "target": "chat[0]", "at": "1s", "for": "2s"})
