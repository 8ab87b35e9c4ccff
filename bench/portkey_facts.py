"""Measure what the Portkey adapter's promise and traps rely on, against the real gateway (docs/gateways.md, Portkey).

    .venv/bin/python bench/portkey_facts.py [--repeat 3]

Starts a stack with the harness's local runtime (Portkey 1.15.2 from .tools/portkey, Toxiproxy, two openai fakes and
one anthropic fake), then sends chat completions through Portkey with configs written for each question (the
adapter's own rendering, with other retry and timeout settings), a replica refused (its Toxiproxy proxy disabled),
answering 503 or 500, or hanging (the fake's control API). For each case: the status, the seconds, the
x-portkey-last-used-option-index and x-portkey-retry-attempt-count headers, the fake that answered, and the start
of the body. Prints a table and writes bench/results/portkey_facts.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.gateways.portkey import CONFIG_HEADER, SERVED_BY_HEADER  # noqa: E402
from harness.runtimes.base import Stack  # noqa: E402
from harness.runtimes.local import LocalRuntime  # noqa: E402
from harness.scenario import parse_scenario  # noqa: E402

SCENARIO = """
name: portkey-facts
gateway: {kind: portkey, health_check: null}
upstreams:
  - {name: chat, replicas: 2, fallback: claude}
  - {name: claude, kind: anthropic, replicas: 1}
load: {duration: 5s, max_tokens: 4}
"""
BODY = {"model": "fake-model", "max_tokens": 4, "messages": [{"role": "user", "content": "hello"}]}


def target(stack: Stack, replica: str) -> dict[str, Any]:
    provider = "anthropic" if replica.startswith("claude") else "openai"
    return {"provider": provider, "api_key": "x", "custom_host": f"http://{stack.gateway_address(replica)}/v1"}


def lb(stack: Stack, *replicas: str) -> dict[str, Any]:
    return {"strategy": {"mode": "loadbalance"}, "targets": [target(stack, r) for r in replicas]}


def ask(stack: Stack, config: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    began = time.perf_counter()
    response = httpx.post(f"{stack.gateway.url}/v1/chat/completions", json={**BODY, "stream": stream}, timeout=30,
                          headers={CONFIG_HEADER: json.dumps(config)})
    return {"status": response.status_code, "seconds": round(time.perf_counter() - began, 3),
            "served_by": response.headers.get(SERVED_BY_HEADER),
            "retry_attempt_count": response.headers.get("x-portkey-retry-attempt-count"),
            "replica": response.headers.get("x-chaosgate-replica"), "body": response.text[:110]}


def fault(stack: Stack, replica: str, mode: dict[str, Any] | None) -> None:
    url = f"{stack.control_url(replica)}/fault"
    (httpx.put(url, json=mode, timeout=5) if mode is not None else httpx.delete(url, timeout=5)).raise_for_status()


def cases(stack: Stack) -> list[tuple[str, Callable[[], Any]]]:
    """Each question, in order: each case sets up the replica's state it needs, then asks."""
    proxy = stack.replicas["chat[0]"].proxy_name
    one = lb(stack, "chat[0]")
    claude = lb(stack, "claude[0]")

    def refused(config: dict[str, Any], stream: bool = False) -> Callable[[], Any]:
        def case() -> Any:
            stack.toxiproxy.set_enabled(proxy, False)
            return ask(stack, config, stream=stream)
        return case

    def with_mode(mode: dict[str, Any] | None, config: dict[str, Any]) -> Callable[[], Any]:
        def case() -> Any:
            stack.toxiproxy.set_enabled(proxy, True)
            fault(stack, "chat[0]", mode)
            return ask(stack, config)
        return case

    def no_header() -> Any:
        fault(stack, "chat[0]", None)
        return httpx.post(f"{stack.gateway.url}/v1/chat/completions", json=BODY, timeout=10).status_code

    status_503 = {"mode": "error_status", "status": 503, "retry_after": None}
    hang = {"mode": "hang_before_headers"}
    return [
        ("ok, one target", lambda: ask(stack, one)),
        ("ok, streamed", lambda: ask(stack, one, stream=True)),
        ("refused, no retry (Portkey's default)", refused(one)),
        ("refused, retry attempts 1", refused({**one, "retry": {"attempts": 1}})),
        ("refused, retry attempts 2", refused({**one, "retry": {"attempts": 2}})),
        ("refused, attempts 2, on_status_codes []", refused({**one, "retry": {"attempts": 2, "on_status_codes": []}})),
        ("refused -> fallback to claude (anthropic)", refused({"strategy": {"mode": "fallback"}, "targets": [one, claude]})),
        ("streamed, refused -> fallback to claude (anthropic)",
         refused({"strategy": {"mode": "fallback"}, "targets": [one, claude]}, stream=True)),
        ("refused, fallback on_status_codes [503]",
         refused({"strategy": {"mode": "fallback", "on_status_codes": [503]}, "targets": [one, claude]})),
        ("503, retry attempts 2 (default codes)", with_mode(status_503, {**one, "retry": {"attempts": 2}})),
        ("503, attempts 2, on_status_codes [500]",
         with_mode(status_503, {**one, "retry": {"attempts": 2, "on_status_codes": [500]}})),
        ("hang, request_timeout 1000, attempts 2", with_mode(hang, {**one, "request_timeout": 1000, "retry": {"attempts": 2}})),
        ("hang, request_timeout 1000 -> fallback",
         with_mode(hang, {"request_timeout": 1000, "strategy": {"mode": "fallback"}, "targets": [one, lb(stack, "chat[1]")]})),
        ("no config header", no_header),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[Any]] = {}
    startups: list[float] = []
    for _ in range(args.repeat):
        runtime = LocalRuntime()
        with tempfile.TemporaryDirectory(prefix="cg-portkey-") as tmp:
            began = time.perf_counter()
            try:
                stack = runtime.up(parse_scenario(SCENARIO, "inline.yaml"), Path(tmp))
                startups.append(round(time.perf_counter() - began, 3))
                for name, case in cases(stack):
                    results.setdefault(name, []).append(case())
            finally:
                runtime.down()
    print(f"stack up (Portkey ready, no health to wait for): median {statistics.median(startups):.2f}s {startups}")
    for name, samples in results.items():
        first = samples[0]
        if isinstance(first, dict):
            seconds = [s["seconds"] for s in samples]
            print(f"{name:44} {first['status']} {min(seconds):.3f}-{max(seconds):.3f}s served_by={first['served_by']} "
                  f"retry-count={first['retry_attempt_count']} replica={first['replica']} {first['body'][:70]!r}")
        else:
            print(f"{name:44} {samples}")
    out = ROOT / "bench" / "results" / "portkey_facts.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"startup_s": startups, "cases": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
