"""LOGICAL_DNS with respect_ttl on a real stack: the answer's TTL (1 s), not refresh_rate (6 s), paces
Envoy's queries; NXDOMAIN leaves the one logical host where it was (unlike STRICT_DNS without checks)
and, having no TTL, makes Envoy wait refresh_rate before it asks again; a wrong address moves the host
at once and clients get 503s; a long TTL stops Envoy asking."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.faults import FAULTS, Fault
from harness.runtimes.base import Stack
from harness.runtimes.local import LocalRuntime
from harness.scenario import parse_scenario

from .conftest import wait_for

TTL_S = 1
REFRESH_S = 6
SCENARIO = f"""\
name: dns-logical-live
gateway: {{health_check: null, panic_threshold: 0}}
upstreams:
  - name: chat
    replicas: 1
    dns: {{resolution: logical, refresh_rate: {REFRESH_S}s, respect_ttl: true, ttl: {TTL_S}, query_timeout: 1, query_tries: 1}}
load: {{duration: 60s}}
"""
NOTICE_S = REFRESH_S + TTL_S + 1 + 5.0  # after an NXDOMAIN a refresh, one TTL, a failed try, margin
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    runtime = LocalRuntime()
    try:
        yield runtime.up(parse_scenario(SCENARIO, "dns-logical-live.yaml"), tmp_path_factory.mktemp("dns") / "run")
    finally:
        runtime.down()


def dns_fault(mode: str, **params: Any) -> Fault:
    return FAULTS["dns"].model_validate({"kind": "dns", "mode": mode, "target": "chat[0]", "at": 0, "for": 30,
                                         **params})


def queries(stack: Stack, rcode: str | None = None) -> int:
    """Queries the fake got for chat[0]'s name (those it answered with ``rcode``, if given)."""
    assert stack.dns is not None
    stats = httpx.get(f"{stack.dns.control_url}/stats", timeout=5).json()
    name = stack.dns.names["chat[0]"]
    if rcode is not None:
        return int(stats["answers"].get(name, {}).get(rcode, 0))
    return sum(stats["queries"].get(name, {}).values())


def hosts(stack: Stack) -> set[str]:
    return set(stack.gateway.host_health())


def right(stack: Stack, host: str = "127.0.0.1") -> str:
    assert stack.dns is not None
    return f"{host}:{stack.dns.ports['chat[0]']}"


def outcomes(stack: Stack, n: int = 8) -> Counter[str]:
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            response = client.post(f"{stack.gateway.url}/v1/chat/completions", json=CHAT)
            seen[response.headers.get("x-chaosgate-replica", "") if response.status_code == 200
                 else str(response.status_code)] += 1
    return seen


def test_the_answers_ttl_paces_the_queries_not_refresh_rate(stack: Stack) -> None:
    before = queries(stack)
    wait_for(lambda: queries(stack) >= before + 3, REFRESH_S - 0.5,
             f"three queries at the {TTL_S}s TTL within one refresh_rate ({REFRESH_S}s)")


def test_nxdomain_leaves_the_logical_host_where_it_was(stack: Stack) -> None:
    fault = dns_fault("nxdomain")
    before = queries(stack, "NXDOMAIN")
    fault.inject(stack, "chat[0]")
    try:
        wait_for(lambda: queries(stack, "NXDOMAIN") > before, NOTICE_S, "Envoy to ask and get NXDOMAIN")
        assert hosts(stack) == {right(stack)} and outcomes(stack) == Counter({"chat[0]": 8})
    finally:
        fault.clear(stack, "chat[0]")


def test_a_wrong_address_moves_the_logical_host_and_clients_get_503(stack: Stack) -> None:
    fault = dns_fault("wrong_address")
    fault.inject(stack, "chat[0]")
    try:
        wait_for(lambda: hosts(stack) == {right(stack, "::1")}, NOTICE_S, "the logical host to move to ::1")
        assert outcomes(stack) == Counter({"503": 8})
    finally:
        fault.clear(stack, "chat[0]")
    wait_for(lambda: hosts(stack) == {right(stack)}, NOTICE_S, "the logical host to come back to 127.0.0.1")
    wait_for(lambda: outcomes(stack, 2) == Counter({"chat[0]": 2}), NOTICE_S, "chat[0] to serve again")


def test_a_long_ttl_stops_envoy_asking(stack: Stack) -> None:
    fault = dns_fault("ttl", ttl=300)
    fault.inject(stack, "chat[0]")
    try:
        before = queries(stack)
        wait_for(lambda: queries(stack) >= before + 1, NOTICE_S, "Envoy to get one answer with TTL 300")
        settled = queries(stack)
        # Watch for four of the old TTLs: at TTL 1 Envoy would have asked four more times by then.
        quiet_until = time.monotonic() + 4 * TTL_S + 1
        while time.monotonic() < quiet_until:
            assert queries(stack) <= settled + 1, "Envoy kept asking although the answer's TTL is 300s"
            time.sleep(0.1)
    finally:
        fault.clear(stack, "chat[0]")
