"""Real upstreams (upstreams[].address): the model, and every refusal quoted with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ScenarioError, StackError, StartupTimeout
from harness.processes import free_port
from harness.runtimes.base import Replica, check_supported
from harness.runtimes.docker import DockerRuntime
from harness.runtimes.local import LocalRuntime, wait_accepts
from harness.scenario import parse_scenario
from harness.timeline import build_timeline

BASE = """\
name: t
upstreams:
  - {name: chat, address: 127.0.0.1:8000}
load: {duration: 20s}
"""


def errors_of(text: str, allow_hosts: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "x.yaml", allow_hosts=allow_hosts)
    return str(info.value).splitlines()


def test_one_address_is_one_replica_and_a_list_sets_replicas() -> None:
    one = parse_scenario(BASE, "x.yaml")
    assert one.upstreams[0].real and one.upstreams[0].addresses == ["127.0.0.1:8000"] and one.replicas == ["chat[0]"]
    many = parse_scenario(BASE.replace("address: 127.0.0.1:8000", "address: [127.0.0.1:8000, '[::1]:8001', "
                                                                  "localhost:8002]"), "x.yaml")
    assert many.upstreams[0].replicas == 3
    assert many.upstreams[0].addresses == ["127.0.0.1:8000", "[::1]:8001", "localhost:8002"]
    assert not parse_scenario(BASE.replace("address: 127.0.0.1:8000", "replicas: 2"), "x.yaml").upstreams[0].real


def test_address_count_must_match_replicas() -> None:
    text = BASE.replace("address: 127.0.0.1:8000", "replicas: 3, address: [127.0.0.1:8000, 127.0.0.1:8001]")
    assert errors_of(text) == [
        "x.yaml:3:18: upstreams[name='chat'].replicas: upstream 'chat' names 2 address(es) and has replicas: 3; each "
        "address is one replica (give a list of 3 addresses, or leave replicas out)"]


def test_address_must_be_host_and_port() -> None:
    assert errors_of(BASE.replace("127.0.0.1:8000", "127.0.0.1")) == [
        "x.yaml:3:18: upstreams[name='chat'].address: expected HOST:PORT (127.0.0.1:8000, [::1]:8000, "
        "localhost:11434), got '127.0.0.1'"]
    assert errors_of(BASE.replace("127.0.0.1:8000", "[127.0.0.1:8000, bad]")) == [
        "x.yaml:3:18: upstreams[name='chat'].address: expected HOST:PORT (127.0.0.1:8000, [::1]:8000, "
        "localhost:11434), got 'bad'"]
    assert errors_of(BASE.replace("127.0.0.1:8000", "127.0.0.1:70000")) == [
        "x.yaml:3:18: upstreams[name='chat'].address: expected a port from 1 to 65535, got 70000"]


def test_an_address_off_this_machine_needs_allow_host() -> None:
    text = BASE.replace("127.0.0.1:8000", "[gpu-1.internal:8000, 127.0.0.1:8001]")
    assert errors_of(text) == [
        "x.yaml:3:28: upstreams[name='chat'].address[0]: gpu-1.internal:8000 is not this machine: chaosgate sends "
        "load and faults only to loopback addresses unless you name the host with --allow-host gpu-1.internal"]
    allowed = parse_scenario(text, "x.yaml", allow_hosts=("gpu-1.internal",))
    assert allowed.upstreams[0].addresses == ["gpu-1.internal:8000", "127.0.0.1:8001"]


def test_fields_of_the_fakes_are_refused_on_a_real_pool() -> None:
    text = BASE.replace("address: 127.0.0.1:8000", "address: 127.0.0.1:8000, ttft: 50ms, memory_limit: 128Mi, tls: true")
    assert errors_of(text) == [
        "x.yaml:3:43: upstreams[name='chat'].ttft: ttft describes chaosgate's fake replicas; upstream 'chat' is "
        "your own server (address), which chaosgate does not start",
        "x.yaml:3:55: upstreams[name='chat'].memory_limit: memory_limit describes chaosgate's fake replicas; "
        "upstream 'chat' is your own server (address), which chaosgate does not start",
        "x.yaml:3:76: upstreams[name='chat'].tls: tls describes chaosgate's fake replicas; upstream 'chat' is your "
        "own server (address), which chaosgate does not start"]


FAKE_ONLY = {
    "{kind: llm_fault, mode: error_status, status: 503, target: 'chat[0]', at: 1s, for: 2s}":
        "llm_fault faults need the fake's control port (its fault modes)",
    "{kind: process_kill, target: 'chat[0]', at: 1s, for: 2s}":
        "process_kill faults need a process chaosgate owns (it kills it, and restarts it)",
    "{kind: process_freeze, target: 'chat[0]', at: 1s, for: 2s}":
        "process_freeze faults need a process chaosgate owns (it stops it with SIGSTOP)",
    "{kind: process_restart, target: 'chat[0]', at: 1s, for: 2s}":
        "process_restart faults need a process chaosgate owns (it restarts it)",
    "{kind: port_change, target: 'chat[0]', at: 1s, for: 2s}":
        "port_change faults need a process chaosgate owns (it restarts it on another port)",
    "{kind: oom, target: 'chat[0]', at: 1s, for: 2s}":
        "oom faults need a process chaosgate owns, in a memory cgroup chaosgate sets",
    "{kind: cert, mode: expired, target: 'chat[0]', at: 1s, for: 2s}":
        "cert faults need the fake's control port (it swaps the certificates chaosgate minted)",
}


@pytest.mark.parametrize("fault", list(FAKE_ONLY))
def test_faults_that_need_a_fake_are_refused_at_the_faults_line(fault: str) -> None:
    errors = errors_of(BASE + f"faults:\n  - {fault}\n")
    assert errors == [f"x.yaml:6:5: faults[0]: {FAKE_ONLY[fault]}; upstream 'chat' is your own server at "
                      "127.0.0.1:8000 (address), so only network and DNS faults apply to it "
                      "(docs/own-config/real-upstreams.md)"]


def test_mcp_faults_are_refused_on_a_real_mcp_pool() -> None:
    text = BASE.replace("{name: chat, address: 127.0.0.1:8000}", "{name: chat, address: 127.0.0.1:8000}\n"
                        "  - {name: tools, kind: mcp, address: 127.0.0.1:8001}")
    errors = errors_of(text + "faults:\n  - {kind: mcp_fault, mode: session_expiry, target: 'tools[0]', at: 1s, for: 2s}\n")
    assert errors == ["x.yaml:7:5: faults[0]: mcp_fault faults need the fake's control port (its fault modes); upstream "
                      "'tools' is your own server at 127.0.0.1:8001 (address), so only network and DNS faults apply "
                      "to it (docs/own-config/real-upstreams.md)"]


def test_network_and_dns_faults_apply_to_a_real_pool() -> None:
    text = BASE.replace("address: 127.0.0.1:8000", "address: 127.0.0.1:8000, dns: true") + (
        "faults:\n  - {kind: reset_peer, target: 'chat[0]', at: 1s, for: 2s}\n"
        "  - {kind: down, target: 'chat[0]', at: 4s, for: 2s}\n"
        "  - {kind: latency, target: 'chat[0]', latency: 100ms, at: 7s, for: 2s}\n"
        "  - {kind: dns, mode: nxdomain, target: 'chat[0]', at: 10s, for: 2s}\n")
    assert [f.kind for f in parse_scenario(text, "x.yaml").faults] == ["reset_peer", "down", "latency", "dns"]


def test_the_docker_runtime_refuses_real_upstreams() -> None:
    scenario = parse_scenario(BASE, "x.yaml")
    with pytest.raises(StackError) as info:
        check_supported(scenario, "docker", DockerRuntime.capabilities)
    assert str(info.value) == ("scenario 't' cannot run on the docker runtime: upstream 'chat' names your own server "
                               "(address), but the docker runtime runs only chaosgate's fake replicas; use --runtime local")
    check_supported(scenario, "local", LocalRuntime.capabilities)  # the local runtime can


def test_a_server_that_does_not_accept_connections_is_named() -> None:
    port = free_port()  # nothing listens there
    replica = Replica("chat[0]", "chat", port, "chat-0", 0, None, "openai", "127.0.0.1", True)
    with pytest.raises(StartupTimeout) as info:
        wait_accepts(replica, 0.3)
    assert str(info.value) == (f"chat[0]: your server at 127.0.0.1:{port} (upstreams[].address) did not accept "
                               "connections within 0.3s: Connection refused")


def test_a_real_replica_is_credited_with_what_the_gateway_sent_it(tmp_path: Path) -> None:
    """A user's server stamps no x-chaosgate-replica: a request it answered counts as served by the replica the
    gateway's header names; a fake's own header still wins for fakes."""
    replicas = {"chat[0]": {"proxy_url": "http://127.0.0.1:7000", "real": True},
                "chat[1]": {"proxy_url": "http://127.0.0.1:7001"}}
    events = [{"type": "run.started", "ts": 0.0, "replicas": ["chat[0]", "chat[1]"]},
              {"type": "stack.ready", "ts": 0.5, "endpoints": {"replicas": replicas}},
              {"type": "load.started", "ts": 1.0},
              {"type": "request", "ts": 1.1, "latency": 0.1, "kind": "chat", "status": 200, "error": None,
               "replica": None, "upstream": "127.0.0.1:7000"},
              {"type": "request", "ts": 1.2, "latency": 0.1, "kind": "chat", "status": 502, "error": "http_5xx",
               "replica": None, "upstream": "127.0.0.1:7000"},
              {"type": "request", "ts": 1.3, "latency": 0.1, "kind": "chat", "status": 200, "error": None,
               "replica": "chat[1]", "upstream": "127.0.0.1:7001"}]
    timeline = build_timeline(events)
    assert [(r.replica, r.routed_to) for r in timeline.requests] == [
        ("chat[0]", "chat[0]"), (None, "chat[0]"), ("chat[1]", "chat[1]")]


def test_no_traffic_to_says_a_real_replica_logs_no_tries() -> None:
    from harness.expectations.no_traffic_to import NoTrafficTo

    replicas = {"chat[0]": {"proxy_url": "http://127.0.0.1:7000", "real": True},
                "chat[1]": {"proxy_url": "http://127.0.0.1:7001", "real": True}}
    events = [{"type": "run.started", "ts": 0.0, "replicas": ["chat[0]", "chat[1]"]},
              {"type": "stack.ready", "ts": 0.5, "endpoints": {"replicas": replicas},
               "attempt_logs": {"replica": False, "replicas": [], "gateway_kind": "envoy",
                                "gateway": "envoy-upstream.jsonl"}},
              {"type": "load.started", "ts": 1.0},
              {"type": "request", "ts": 2.0, "latency": 0.1, "kind": "chat", "status": 200, "error": None,
               "replica": None, "upstream": "127.0.0.1:7001"}]
    verdict = NoTrafficTo(kind="no_traffic_to", target="chat[0]", window={"from": 0, "to": 5}).evaluate(
        build_timeline(events))
    assert verdict.passed
    assert verdict.detail == ("no attempt reached chat[0] between 0.000s and 5.000s: 0 client requests served by or "
                              "routed to chat[0] (0 failed); chat[0] is your own server (upstreams[].address), which "
                              "logs no tries of its own; 0 tries the gateway logged as sent to it (envoy-upstream.jsonl)")
