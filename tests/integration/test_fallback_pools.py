"""Fallback pools rendered from the scenario (``upstreams[].fallback``), on real runs: every replica of the
primary refuses connections (a ``down`` fault), and the fallback pool serves, on Envoy (priority-1 endpoints of
the primary's cluster), HAProxy and nginx (backup servers of the primary's backend or upstream block), all openai
to openai, and on the LiteLLM proxy (router fallbacks from the chat model group to an anthropic pool's group). The served_by window and the fallback_within bound come from each file's own
configuration (harness/promise/fallback.py); the same file without ``fallback:`` runs too, and both verdicts
fail there. Each run's load is 12-13 s (LiteLLM's proxy takes 8-25 s to import on a busy 2-core machine).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.journal import read_journal
from harness.promise import Window
from harness.promise.fallback import fallback_window
from harness.scenario import load_scenario
from harness.timeline import FaultWindow, Request, build_timeline
from tests.integration.conftest import chaosgate, processes_of_run, require_components

HERE = Path(__file__).resolve().parent / "fallback"
STARTUP = 90.0  # LitellmGateway.startup_timeout
FILES = {"envoy": "envoy-priority-fallback", "haproxy": "haproxy-backup-fallback", "nginx": "nginx-backup-fallback",
         "litellm": "litellm-rendered-fallback"}


def derived(name: str, tmp_path: Path, fallback: bool) -> tuple[Path, float, float, float]:
    """``HERE/<name>.yaml`` with its served_by windows from the fault's start plus the promised fallback bound (the
    window's upper end) to the fault's end minus it, and fallback_within's bound that window (within: promised); without
    ``fallback:`` when ``fallback`` is False. Returns the written file, the bound, the window's start and end."""
    scenario = load_scenario(HERE / f"{name}.yaml")
    fault = scenario.faults[0]
    promise = fallback_window(scenario, fault)
    assert isinstance(promise, Window), promise
    bound = round(promise.upper, 3)
    data = yaml.safe_load((HERE / f"{name}.yaml").read_text())
    start = round(fault.at + bound, 3)
    # a request started within the bound of the fault's end may reach the primary after it is back (measured: one
    # LiteLLM request started 0.17 s before the end took 1.35 s on a busy machine, and chat[0] answered it)
    end = round(fault.at + fault.duration - bound, 3)
    for item in data["expect"]:
        if item["kind"] == "served_by":
            item["window"] = {"from": f"{start}s", "to": f"{end}s"}
        elif item["kind"] == "fallback_within":
            item["within"] = "promised"  # inside [lower, upper] of that window
    if not fallback:
        for pool in data["upstreams"]:
            pool.pop("fallback", None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, bound, start, end


def run(path: Path, out: Path) -> tuple[list[dict[str, Any]], list[Request], str, FaultWindow]:
    """Run ``path``: its verdicts, its client requests, the CLI's output and when its fault was really active."""
    result = chaosgate("run", str(path), "--out", str(out), "--quiet", timeout=12 + STARTUP + 60)
    run_dir = out / path.stem
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"], result.stdout + result.stderr
    assert processes_of_run(run_dir) == [], "the stack was torn down"
    timeline = build_timeline(read_journal(run_dir / "journal.jsonl"))
    (fault,) = timeline.faults
    return summary["expectations"], timeline.requests, result.stdout + result.stderr, fault


@pytest.mark.integration
@pytest.mark.parametrize("gateway", ["envoy", "haproxy", "nginx", "litellm"])
def test_the_fallback_pool_serves_while_the_primary_is_down(gateway: str, tmp_path: Path) -> None:
    require_components(*([gateway] if gateway != "envoy" else []))
    path, bound, start, end = derived(FILES[gateway], tmp_path, fallback=True)
    verdicts, requests, output, fault = run(path, tmp_path / "out")
    fallback = "claude" if gateway == "litellm" else "spare"
    for verdict in verdicts:
        assert verdict["passed"], (verdict, output[-2000:])
    within = next(v for v in verdicts if v["kind"] == "fallback_within")
    assert 0 < within["measured_value"] <= bound, within
    # who served, by the fake's identity header and by the gateway's x-chaosgate-upstream (the address it picked:
    # Envoy's %UPSTREAM_HOST%, HAProxy's %si:%sp, nginx's $upstream_addr; LiteLLM: the deployment's api_base, stamped
    # by the probe): in the window, only the fallback's replica; before the fault, never
    # the requests wholly inside the fault as it really was (a request that ends after the fault may meet chat again)
    served = [r for r in requests if r.ok and start <= r.t < end and r.t + r.latency < fault.end]
    assert served and {r.replica for r in served} == {f"{fallback}[0]"}, {r.replica for r in served}
    assert {r.routed_to for r in served} == {f"{fallback}[0]"}  # the gateway's header names the same replica
    before = [r for r in requests if r.ok and r.t + r.latency < fault.start]
    assert before and {r.replica for r in before} <= {"chat[0]", "chat[1]"}
    if gateway == "litellm":  # translated: the client got a chat completion, plain or streamed, naming the group
        assert {r.model for r in served} == {fallback} and {r.kind for r in served} == {"chat", "chat_stream"}


@pytest.mark.integration
@pytest.mark.parametrize("gateway", ["envoy", "haproxy", "nginx", "litellm"])
def test_without_fallback_the_same_verdicts_fail(gateway: str, tmp_path: Path) -> None:
    require_components(*([gateway] if gateway != "envoy" else []))
    path, _, start, end = derived(FILES[gateway], tmp_path, fallback=False)
    verdicts, requests, output, fault = run(path, tmp_path / "out")
    for verdict in verdicts:
        assert not verdict["passed"], (verdict, output[-2000:])
    within = next(v for v in verdicts if v["kind"] == "fallback_within")
    assert "the fallback was never used" in within["detail"], within
    fallback = "claude" if gateway == "litellm" else "spare"
    assert not [r for r in requests if r.replica == f"{fallback}[0]"]
    assert [r for r in requests if start <= r.t < fault.end and not r.ok]  # the fault failed them
