"""Measure what Envoy does in each DNS fault mode (the table in docs/faults.md, DNS).

    .venv/bin/python bench/dns_modes.py [--fault-seconds 6] [--setups strict-hc,strict-nohc,logical-hc,ttl-short,ttl-long]

For each setup a local stack is started (real Envoy, Toxiproxy, fake replicas, fakes/dns.py as
Envoy's resolver); for each mode the ``dns`` fault (harness/faults/dns.py) is injected on
``chat[0]`` for --fault-seconds and cleared, while two client threads send chat completions through
the gateway (bounded: one at a time each, 5 s timeout, only during the measurement) and the
gateway's hosts are sampled at 20 Hz. Per mode it reports: when Envoy's view of chat[0]'s name
changed after injection and to what, which replicas served the clients and how many requests failed
during the fault, the queries the fake DNS server saw for the name, and when Envoy's hosts were
back as before after clearing. Prints a Markdown table; writes bench/results/dns_modes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.runtimes.base import Stack  # noqa: E402
from harness.runtimes.local import LocalRuntime  # noqa: E402
from harness.faults import FAULTS  # noqa: E402
from harness.scenario import parse_scenario  # noqa: E402

SAMPLE_S = 0.05
HC = "{interval: 1s, timeout: 0.5s, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}"
SETUPS: dict[str, tuple[str, str, int, list[dict[str, Any]]]] = {
    # name: (gateway health_check, upstream dns block, replicas, modes)
    "strict-hc": (HC, "{refresh_rate: 1s, query_timeout: 1, query_tries: 2}", 2, [
        {"mode": "nxdomain"}, {"mode": "servfail"}, {"mode": "no_answer"}, {"mode": "wrong_address"},
        {"mode": "flip", "to": "chat[1]"}]),
    "strict-nohc": ("null", "{refresh_rate: 1s, query_timeout: 1, query_tries: 2}", 2, [
        {"mode": "nxdomain"}, {"mode": "servfail"}, {"mode": "no_answer"}, {"mode": "wrong_address"},
        {"mode": "flip", "to": "chat[1]"}]),
    "logical-hc": (HC, "{resolution: logical, refresh_rate: 1s, query_timeout: 1, query_tries: 2}", 1, [
        {"mode": "nxdomain"}, {"mode": "servfail"}, {"mode": "no_answer"}, {"mode": "wrong_address"}]),
    # respect_ttl: the answer's TTL, not refresh_rate, decides when Envoy asks again.
    "ttl-short": ("null", "{refresh_rate: 10s, respect_ttl: true, ttl: 1}", 2, [
        {"mode": "nxdomain"}, {"mode": "ttl", "ttl": 30}]),
    "ttl-long": ("null", "{refresh_rate: 1s, respect_ttl: true, ttl: 30}", 2, [{"mode": "nxdomain"}]),
}


def scenario_text(name: str, health_check: str, dns: str, replicas: int, seconds: float) -> str:
    return (f"name: dns-bench-{name}\ngateway: {{panic_threshold: 0, health_check: {health_check}}}\n"
            f"upstreams: [{{name: chat, replicas: {replicas}, dns: {dns}}}]\nload: {{duration: {seconds * 3}s}}\n")


def chat_hosts(stack: Stack) -> dict[str, str]:
    """Every host of the chat cluster: ``address`` -> its flags (or HEALTHY)."""
    return {address: health.flags or "healthy" for address, health in stack.gateway.host_health().items()}


class Clients:
    """Two threads sending one chat completion at a time each through the gateway, until stopped."""

    def __init__(self, url: str) -> None:
        self.url, self.stop = url, threading.Event()
        self.results: list[tuple[float, str]] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self.stop.is_set():
                began = time.time()
                try:
                    r = client.post(f"{self.url}/v1/chat/completions", json={
                        "model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
                    outcome = r.headers.get("x-chaosgate-replica", "?") if r.status_code == 200 else \
                        f"{r.status_code} {r.text[:40]}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.results.append((began, outcome))
                time.sleep(0.02)

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def between(self, start: float, end: float) -> dict[str, int]:
        return dict(Counter(outcome for t, outcome in self.results if start <= t < end))


def measure_mode(stack: Stack, mode: dict[str, Any], seconds: float) -> dict[str, Any]:
    assert stack.dns is not None
    fault = FAULTS["dns"].model_validate({"kind": "dns", "target": "chat[0]", "at": 0, "for": seconds, **mode})
    name = stack.dns.names["chat[0]"]
    before = chat_hosts(stack)
    queries_before = _queries(stack, name)
    with Clients(stack.gateway.url) as clients:
        time.sleep(1.0)
        injected = time.time()
        fault.inject(stack, "chat[0]")
        changes: list[tuple[float, dict[str, str]]] = []
        last = before
        while time.time() < injected + seconds:
            now = chat_hosts(stack)
            if now != last:
                changes.append((time.time() - injected, now))
                last = now
            time.sleep(SAMPLE_S)
        queries_during = _queries(stack, name) - queries_before
        cleared = time.time()
        fault.clear(stack, "chat[0]")
        recovered = None
        while time.time() < cleared + seconds:
            now = chat_hosts(stack)
            if now != last:
                changes.append((time.time() - injected, now))
                last = now
            if recovered is None and now == before:
                recovered = time.time() - cleared
            time.sleep(SAMPLE_S)
        after = time.time()
    return {"mode": mode, "before": before, "changes": [{"t": round(t, 3), "hosts": h} for t, h in changes],
            "during": clients.between(injected, cleared), "after_clear": clients.between(cleared, after),
            "queries_during": queries_during, "queries_per_s": round(queries_during / seconds, 2),
            "recovered_after_clear_s": None if recovered is None else round(recovered, 3), "hosts_at_end": last}


def _queries(stack: Stack, name: str) -> int:
    assert stack.dns is not None
    stats = httpx.get(f"{stack.dns.control_url}/stats", timeout=5).json()
    return sum(stats["queries"].get(name, {}).values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault-seconds", type=float, default=6.0)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dns_modes.json")
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {}
    for setup in args.setups.split(","):
        health_check, dns, replicas, modes = SETUPS[setup]
        scenario = parse_scenario(scenario_text(setup, health_check, dns, replicas, args.fault_seconds), setup)
        runtime = LocalRuntime()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                stack = runtime.up(scenario, Path(tmp) / scenario.name)
                results[setup] = [measure_mode(stack, mode, args.fault_seconds) for mode in modes]
            finally:
                runtime.down()
        for row in results[setup]:
            first = row["changes"][0] if row["changes"] else None
            print(f"| {setup} | {row['mode']['mode']} | "
                  f"{'%.2fs: %s' % (first['t'], first['hosts']) if first else 'no change'} | {row['during']} | "
                  f"{row['queries_per_s']}/s | {row['recovered_after_clear_s']} | {row['hosts_at_end']} |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
