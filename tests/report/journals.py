"""Synthetic journals shaped like the ones harness/run.py writes, for report tests with no stack.

``reset_run()`` is a replica-reset run: three replicas served round-robin, chat[0] resets
every connection from 5s to 13s, the gateway ejects it ``detect_after`` seconds later and
readmits it ``recover_after`` seconds after the fault ends. Until it is ejected, requests the
gateway sends to chat[0] fail with Envoy's reset reply. Two of its expectations fail on
purpose (a 1s detection bound, no traffic over the whole fault window).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

T0 = 1_790_000_000.0
REPLICAS = ("chat[0]", "chat[1]", "chat[2]")
RESET_BODY = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
GATEWAY_CONFIG = "static_resources:\n  clusters:\n  - name: chat\n    health_checks:\n    - interval: 1.000s\n"

SCENARIO = """\
# A synthetic replica-reset run for the report tests.
name: synthetic-reset
description: One of three replicas resets every connection; two expectations are built to fail.
seed: 5
gateway:
  health_check: {interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}
  panic_threshold: 0
upstreams:
  - {name: chat, replicas: 3}
load: {users: 4, duration: 20s, mix: {chat: 0.75, chat_stream: 0.25}}
faults:
  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}
expect:
  - {kind: error_rate, window: baseline, max: 0.0}
  - {kind: upstream_unhealthy, target: "chat[0]", within: 1s}
  - {kind: no_traffic_to, target: "chat[0]", window: fault}
  - {kind: upstream_healthy, target: "chat[0]", within: 3s}
"""
EXPECTED_FAILURES = ("upstream_unhealthy", "no_traffic_to")


def address(replica: str) -> str:
    return f"127.0.0.1:{41000 + REPLICAS.index(replica)}"


def reset_run(detect_after: float = 1.5, recover_after: float = 1.5, rate: float = 60.0,
              cut_at: float | None = None, scenario: str = SCENARIO) -> list[dict[str, Any]]:
    """The events of one run; ``cut_at`` (seconds after load start) drops everything later,
    as a journal looks when the harness was killed then."""
    fault = {"fault": "reset_peer@chat[0]", "kind": "reset_peer", "target": "chat[0]", "replicas": ["chat[0]"],
             "params": {"direction": "downstream", "toxicity": 1.0, "timeout": "0s"}}
    detected, recovered = 5.0 + detect_after, 13.0 + recover_after
    events: list[dict[str, Any]] = [
        {"type": "run.started", "ts": T0 - 1.0, "scenario": "synthetic-reset", "file": "scenarios/synthetic-reset.yaml",
         "text": scenario, "seed": 5, "runtime": "local", "replicas": list(REPLICAS), "warnings": [],
         "chaosgate": "0.1.0", "python": "3.11.7", "platform": "Linux",
         "command": "chaosgate run scenarios/synthetic-reset.yaml --runtime local --out reports"},
        {"type": "stack.ready", "ts": T0 - 0.5, "gateway_version": "1.40.0", "startup_seconds": 0.61,
         "gateway_config": GATEWAY_CONFIG,
         "endpoints": {"gateway": "http://127.0.0.1:40000", "replicas": {
             r: {"url": f"http://127.0.0.1:{42000 + i}", "proxy": f"chat-{i}", "proxy_url": f"http://{address(r)}"}
             for i, r in enumerate(REPLICAS)}}},
        *({"type": "health", "ts": T0 - 0.5, "replica": r, "healthy": True, "flags": ""} for r in REPLICAS),
        {"type": "load.started", "ts": T0},
        {"type": "fault.started", "ts": T0 + 5.0, **fault},
        {"type": "health", "ts": T0 + detected, "replica": "chat[0]", "healthy": False,
         "flags": "failed_active_health_check"},
        {"type": "fault.cleared", "ts": T0 + 13.0, **fault},
        {"type": "health", "ts": T0 + recovered, "replica": "chat[0]", "healthy": True, "flags": ""},
    ]
    n = round(20.0 * rate)
    for i in range(n):
        t = i / rate
        ejected = detected <= t < recovered
        pool = REPLICAS[1:] if ejected else REPLICAS
        replica = pool[i % len(pool)]
        stream = i % 4 == 3
        event: dict[str, Any] = {"type": "request", "ts": T0 + t, "kind": "chat_stream" if stream else "chat",
                                 "upstream": address(replica)}
        if replica == "chat[0]" and 5.0 <= t < 13.0:  # routed to the resetting replica
            event.update(latency=0.002, status=503, error="http_5xx", replica=None, body=RESET_BODY)
        else:
            latency = 0.040 + 0.002 * (i % 7) + (0.3 if i % 97 == 0 else 0.0)
            event.update(latency=latency, status=200, error=None, replica=replica)
            if stream:
                event["ttft"] = 0.020 + 0.001 * (i % 5)
        events.append(event)
    events += [{"type": "load.finished", "ts": T0 + 20.0, "requests": n, "failures": 0, "stopped": False},
               {"type": "run.finished", "ts": T0 + 20.2, "outcome": "complete", "error": None}]
    events.sort(key=lambda e: e["ts"])
    if cut_at is not None:
        events = [e for e in events if e["ts"] <= T0 + cut_at]
    return events


def write_journal(path: Path, events: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path
