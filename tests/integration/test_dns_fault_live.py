"""The dns fault on a real stack: Envoy resolves the replicas' names through fakes/dns.py (proved by
the queries the fake counts and by Envoy's own config dump), and each mode changes what Envoy holds
and where clients' requests go, as docs/faults.md (DNS) says. No active health check here: the pool
is exactly what DNS answers, so every change shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.faults import FAULTS, Fault
from harness.runtimes.base import Stack
from harness.runtimes.local import LocalRuntime
from harness.scenario import Scenario, parse_scenario

from .conftest import wait_for

REFRESH_S = 0.5
QUERY_TIMEOUT_S = 1  # c-ares per query, one try: a dropped query fails after 1s
SCENARIO = f"""\
name: dns-live
gateway: {{health_check: null, panic_threshold: 0}}
upstreams:
  - name: chat
    replicas: 2
    dns: {{refresh_rate: {REFRESH_S}s, query_timeout: {QUERY_TIMEOUT_S}, query_tries: 1, lookup_family: v4_preferred}}
load: {{duration: 60s}}
"""
# Envoy acts on the next refresh after the answer changed: one refresh, plus a failed try, plus margin
# for a machine shared with other test runs.
NOTICE_S = 2 * REFRESH_S + QUERY_TIMEOUT_S + 5.0
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    scenario: Scenario = parse_scenario(SCENARIO, "dns-live.yaml")
    runtime = LocalRuntime()
    try:
        yield runtime.up(scenario, tmp_path_factory.mktemp("dns") / "run")
    finally:
        runtime.down()


def dns_fault(mode: str, **params: Any) -> Fault:
    return FAULTS["dns"].model_validate({"kind": "dns", "mode": mode, "target": "chat[0]", "at": 0, "for": 30,
                                         **params})


def dns_stats(stack: Stack) -> dict[str, Any]:
    assert stack.dns is not None
    return dict(httpx.get(f"{stack.dns.control_url}/stats", timeout=5).json())


def hosts(stack: Stack) -> set[str]:
    return set(stack.gateway.host_health())


def address(stack: Stack, replica: str, host: str = "127.0.0.1") -> str:
    assert stack.dns is not None
    return f"{host}:{stack.dns.ports[replica]}"


def served(stack: Stack, n: int = 12) -> Counter[str]:
    """Who answered ``n`` chat completions through the gateway: a replica, or the failure."""
    outcomes: Counter[str] = Counter()
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            response = client.post(f"{stack.gateway.url}/v1/chat/completions", json=CHAT)
            outcomes[response.headers.get("x-chaosgate-replica", "") if response.status_code == 200
                     else f"{response.status_code} {response.text[:30]}"] += 1
    return outcomes


def restored(stack: Stack) -> None:
    """Both names answer 127.0.0.1 again and Envoy holds exactly the two proxies' addresses."""
    wait_for(lambda: hosts(stack) == {address(stack, "chat[0]"), address(stack, "chat[1]")}, NOTICE_S,
             "Envoy to hold both replicas' right addresses again")


def test_envoy_resolves_every_replica_through_the_fake_dns_server(stack: Stack) -> None:
    assert stack.dns is not None
    dump = httpx.get(f"{stack.gateway.admin_url}/config_dump", timeout=5).text
    host, port = stack.dns.address.rsplit(":", 1)
    assert f'"port_value": {port}' in dump and "envoy.network.dns_resolver.cares" in dump
    before = dns_stats(stack)["queries"]
    wait_for(lambda: all(sum(dns_stats(stack)["queries"][name].values()) >= sum(before[name].values()) + 2
                         for name in stack.dns.names.values()),
             4 * REFRESH_S + 5, "Envoy to re-resolve both names (twice) through the fake")
    assert hosts(stack) == {address(stack, "chat[0]"), address(stack, "chat[1]")}
    assert set(served(stack)) == {"chat[0]", "chat[1]"}


def test_nxdomain_drops_the_host_and_the_name_resolving_again_restores_it(stack: Stack) -> None:
    fault = dns_fault("nxdomain")
    fault.inject(stack, "chat[0]")
    try:
        wait_for(lambda: stack.replica_health()["chat[0]"].flags == "removed", NOTICE_S,
                 "Envoy to drop chat[0] after NXDOMAIN")
        assert hosts(stack) == {address(stack, "chat[1]")}
        assert served(stack) == Counter({"chat[1]": 12})
    finally:
        fault.clear(stack, "chat[0]")
    restored(stack)
    wait_for(lambda: "chat[0]" in served(stack, 6), NOTICE_S, "chat[0] to serve again")


def test_servfail_and_no_answer_keep_the_last_good_host(stack: Stack) -> None:
    assert stack.dns is not None
    name = stack.dns.names["chat[0]"]
    for mode, answer in (("servfail", "SERVFAIL"), ("no_answer", "dropped")):
        seen = dns_stats(stack)["answers"].get(name, {}).get(answer, 0)
        fault = dns_fault(mode)
        fault.inject(stack, "chat[0]")
        try:  # Envoy keeps asking and keeps failing, and keeps the address it had
            wait_for(lambda: dns_stats(stack)["answers"][name].get(answer, 0) >= seen + 3, NOTICE_S + 3,
                     f"Envoy to get {answer} for {name} three times")
            assert hosts(stack) == {address(stack, "chat[0]"), address(stack, "chat[1]")}
            assert set(served(stack)) == {"chat[0]", "chat[1]"}
        finally:
            fault.clear(stack, "chat[0]")
    restored(stack)


def test_flip_moves_the_names_traffic_to_the_other_replica(stack: Stack) -> None:
    fault = dns_fault("flip", to="chat[1]")
    for _ in range(2):  # the second flip enables the proxy the first one made
        fault.inject(stack, "chat[0]")
        try:
            wait_for(lambda: hosts(stack) == {address(stack, "chat[0]", "::1"), address(stack, "chat[1]")},
                     NOTICE_S, "Envoy to follow chat-0's name to ::1")
            assert served(stack) == Counter({"chat[1]": 12})  # both hosts now lead to chat[1]
        finally:
            fault.clear(stack, "chat[0]")
        restored(stack)
        wait_for(lambda: "chat[0]" in served(stack, 6), NOTICE_S, "chat[0] to serve again")


def test_wrong_address_sends_clients_to_a_port_nobody_serves(stack: Stack) -> None:
    fault = dns_fault("wrong_address")
    fault.inject(stack, "chat[0]")
    try:
        wait_for(lambda: hosts(stack) == {address(stack, "chat[0]", "::1"), address(stack, "chat[1]")}, NOTICE_S,
                 "Envoy to take chat-0's wrong address")
        outcomes = served(stack, 16)
        assert "chat[0]" not in outcomes and outcomes["chat[1]"] >= 4
        failures = [outcome for outcome in outcomes if outcome.startswith("503")]
        assert failures and all("upstream connect error" in f for f in failures), outcomes
    finally:
        fault.clear(stack, "chat[0]")
    restored(stack)
