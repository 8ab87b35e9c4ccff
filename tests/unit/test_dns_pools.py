"""DNS pools without a running stack: the scenario's dns block and its checks, the Envoy cluster it
renders (validated by the real envoy binary), the dns fault's model, the health view of a replica DNS
took away, and the runtimes that refuse dns pools."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ScenarioError
from harness.faults import FAULTS
from harness.gateways.base import HostHealth, UpstreamAddress, UpstreamResolver
from harness.gateways.envoy import EnvoyGateway, envoy_binary
from harness.journal import JournalWriter, read_journal
from harness.observer import HealthObserver
from harness.runtimes import RUNTIMES
from harness.runtimes.base import DNS, DnsServer, Stack, unsupported
from harness.scenario import Gateway, Scenario, UpstreamDns, parse_scenario


def scenario(upstream: str = "{name: chat, replicas: 2, dns: true}", faults: str = "") -> Scenario:
    return parse_scenario(f"name: t\nupstreams:\n  - {upstream}\nload: {{duration: 20s}}\n"
                          + (f"faults:\n{faults}" if faults else ""), "x.yaml")


def errors(upstream: str, faults: str = "") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario(upstream, faults)
    return str(info.value).splitlines()


# -- the scenario ---------------------------------------------------------------------------

def test_dns_true_is_the_defaults_and_names_follow_the_replicas() -> None:
    pool = scenario().upstreams[0]
    assert pool.dns == UpstreamDns()
    assert (pool.dns.resolution, pool.dns.refresh_rate, pool.dns.ttl, pool.dns.lookup_family) == (
        "strict", 5.0, 5, "v4_preferred")
    assert UpstreamDns.hostname("chat", 1) == "chat-1.chaosgate.test"
    assert scenario("{name: chat, dns: false}").upstreams[0].dns is None


def test_logical_resolution_needs_exactly_one_replica() -> None:
    assert errors("{name: chat, replicas: 2, dns: {resolution: logical}}") == [
        "x.yaml:3:37: upstreams[name='chat'].dns.resolution: Envoy's LOGICAL_DNS has one endpoint, so a logical pool needs "
        "replicas: 1 (it has 2); use resolution: strict for several"]
    assert scenario("{name: chat, replicas: 1, dns: {resolution: logical}}").upstreams[0].dns is not None


def test_dns_faults_are_checked_against_their_pool() -> None:
    nxdomain = '  - {kind: dns, mode: nxdomain, target: "chat[0]", at: 1s, for: 2s}\n'
    assert errors("{name: chat, replicas: 2}", nxdomain) == [
        "x.yaml:6:5: faults[0]: dns faults act on pools resolved by name; set dns: true on upstream 'chat'"]
    wrong = '  - {kind: dns, mode: wrong_address, target: "chat[0]", at: 1s, for: 2s}\n'
    (line,) = errors("{name: chat, replicas: 2, dns: {lookup_family: v4_only}}", wrong)
    assert "answers ::1 (AAAA), which lookup_family v4_only never asks for" in line
    to_self = '  - {kind: dns, mode: flip, to: "chat[0]", target: "chat[0]", at: 1s, for: 2s}\n'
    assert "to: expected one replica other than the target, got 'chat[0]'" in errors(
        "{name: chat, replicas: 2, dns: true}", to_self)[0]
    to_nowhere = '  - {kind: dns, mode: flip, to: "chat[5]", target: "chat[0]", at: 1s, for: 2s}\n'
    assert "faults[0]: to:" in errors("{name: chat, replicas: 2, dns: true}", to_nowhere)[0]
    unknown_mode = '  - {kind: dns, mode: hijack, target: "chat[0]", at: 1s, for: 2s}\n'
    assert "unknown mode 'hijack'; expected one of nxdomain, servfail, no_answer, wrong_address, flip, ttl" in \
        errors("{name: chat, replicas: 2, dns: true}", unknown_mode)[0]


def test_dns_fault_labels_name_the_mode() -> None:
    fault = FAULTS["dns"].model_validate({"kind": "dns", "mode": "ttl", "ttl": 300, "target": "chat[1]",
                                          "at": 1, "for": 2})
    assert fault.label == "dns:ttl@chat[1]" and fault.exclusive


# -- the Envoy cluster ---------------------------------------------------------------------------

def dns_upstreams(settings: UpstreamDns, replicas: int = 2) -> list[UpstreamAddress]:
    resolver = UpstreamResolver("127.0.0.1", 15353, settings)
    return [UpstreamAddress("chat", f"chat[{i}]", UpstreamDns.hostname("chat", i), 21000 + i, dns=resolver)
            for i in range(replicas)]


def test_a_dns_pool_renders_envoys_dns_cluster_with_the_fake_as_its_only_resolver(tmp_path: Path) -> None:
    settings = UpstreamDns(refresh_rate=2.0, failure_refresh_rate=0.5, respect_ttl=True, lookup_family="all",
                           query_timeout=1, query_tries=2)
    gateway = EnvoyGateway(Gateway(), 10000, 10001, "chat")
    (cluster,) = gateway.config(dns_upstreams(settings), tmp_path)["static_resources"]["clusters"]
    assert "type" not in cluster and cluster["cluster_type"]["name"] == "envoy.cluster.dns"
    dns = cluster["cluster_type"]["typed_config"]
    assert (dns["all_addresses_in_single_endpoint"], dns["dns_refresh_rate"], dns["respect_dns_ttl"],
            dns["dns_lookup_family"]) == (False, "2.000s", True, "ALL")
    assert dns["dns_failure_refresh_rate"] == {"base_interval": "0.500s", "max_interval": "2.000s"}
    cares = dns["typed_dns_resolver_config"]["typed_config"]
    assert cares["resolvers"] == [{"socket_address": {"address": "127.0.0.1", "port_value": 15353}}]
    assert (cares["use_resolvers_as_fallback"], cares["query_timeout_seconds"], cares["query_tries"]) == (False, 1, 2)
    assert [e["endpoint"]["address"]["socket_address"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]] \
        == [{"address": "chat-0.chaosgate.test", "port_value": 21000},
            {"address": "chat-1.chaosgate.test", "port_value": 21001}]


@pytest.mark.parametrize("settings, replicas", [
    (UpstreamDns(), 3),
    (UpstreamDns(resolution="logical", lookup_family="v4_only"), 1),
    (UpstreamDns(respect_ttl=True, lookup_family="auto", query_timeout=2, query_tries=1), 2),
])
def test_envoy_validates_the_dns_cluster(settings: UpstreamDns, replicas: int, tmp_path: Path) -> None:
    gateway = EnvoyGateway(Gateway(), 10000, 10001, "chat")
    path = gateway.write_config(dns_upstreams(settings, replicas), tmp_path)
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()


# -- the health view and the journal --------------------------------------------------------------

class Hosts:
    """A gateway whose view of its hosts the test sets."""

    url = admin_url = "http://127.0.0.1:1"
    kind = "fake"

    def __init__(self) -> None:
        self.view: dict[str, HostHealth] = {}

    def host_health(self) -> dict[str, HostHealth]:
        return dict(self.view)


def dns_stack(gateway: Any, tmp_path: Path) -> Stack:
    from harness.runtimes.base import Replica

    replicas = {f"chat[{i}]": Replica(f"chat[{i}]", "chat", 30000 + i, f"chat-{i}", 21000 + i) for i in range(2)}
    dns = DnsServer("127.0.0.1:15353", "http://127.0.0.1:15354",
                    {name: f"chat-{i}.chaosgate.test" for i, name in enumerate(replicas)},
                    {name: 21000 + i for i, name in enumerate(replicas)}, {})
    return Stack(gateway=gateway, toxiproxy=None, toxiproxy_url="", replicas=replicas,  # type: ignore[arg-type]
                 run_dir=tmp_path, dns=dns)


def test_a_replica_whose_address_dns_took_away_is_unhealthy_and_removed(tmp_path: Path) -> None:
    gateway = Hosts()
    stack = dns_stack(gateway, tmp_path)
    gateway.view = {"127.0.0.1:21000": HostHealth(True, ""), "127.0.0.1:21001": HostHealth(True, "")}
    assert {n: h.healthy for n, h in stack.replica_health().items()} == {"chat[0]": True, "chat[1]": True}
    gateway.view = {"::1:21000": HostHealth(True, ""), "127.0.0.1:21001": HostHealth(True, "pending_dynamic_removal")}
    health = stack.replica_health()
    assert health["chat[0]"] == HostHealth(False, "removed") and health["chat[1]"].healthy


def test_the_observer_journals_hosts_added_removed_and_reflagged(tmp_path: Path) -> None:
    gateway = Hosts()
    stack = dns_stack(gateway, tmp_path)
    journal = JournalWriter(tmp_path / "journal.jsonl")
    journal.write("run.started", scenario="t", text="", file="t.yaml")
    observer = HealthObserver(stack, journal)
    gateway.view = {"127.0.0.1:21000": HostHealth(True, ""), "127.0.0.1:21001": HostHealth(True, "")}
    observer._sample()
    gateway.view = {"127.0.0.1:21000": HostHealth(True, "pending_dynamic_removal"),
                    "127.0.0.1:21001": HostHealth(True, ""), "::1:21000": HostHealth(False, "failed_active_hc")}
    observer._sample()
    gateway.view = {"127.0.0.1:21001": HostHealth(True, "")}
    observer._sample()
    observer._sample()  # nothing changed: nothing journalled
    journal.close()
    events = read_journal(tmp_path / "journal.jsonl")
    hosts = [e for e in events if e["type"] == "hosts"]
    assert [(e["added"], e["removed"], e["changed"]) for e in hosts] == [
        (["127.0.0.1:21000", "127.0.0.1:21001"], [], []),
        (["::1:21000"], [], ["127.0.0.1:21000"]),
        ([], ["127.0.0.1:21000", "::1:21000"], [])]
    assert hosts[1]["hosts"]["127.0.0.1:21000"] == "pending_dynamic_removal"
    health = [(e["replica"], e["healthy"], e["flags"]) for e in events if e["type"] == "health"]
    assert health == [("chat[0]", True, ""), ("chat[1]", True, ""), ("chat[0]", False, "removed")]


# -- runtimes ------------------------------------------------------------------------------------

def test_only_runtimes_that_run_the_fake_dns_server_accept_dns_pools() -> None:
    s = scenario()
    assert DNS in RUNTIMES["local"].capabilities and unsupported(s, "local", RUNTIMES["local"].capabilities) == []
    assert DNS in RUNTIMES["docker"].capabilities and unsupported(s, "docker", RUNTIMES["docker"].capabilities) == []
    assert "upstream 'chat' sets dns, but the docker runtime does not run the fake DNS server" in \
        unsupported(s, "docker", RUNTIMES["docker"].capabilities - {DNS})
