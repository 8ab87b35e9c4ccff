"""Every shipped scenario runs on the real local stack and every expectation holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.journal import read_journal
from harness.phases import STACK_PHASES
from harness.scenario import load_scenario

from .conftest import ROOT, ShippedRun, changes_match_the_gateways_own_stamps, processes_of_run

SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.integration
@pytest.mark.parametrize("scenario_file", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_passes(scenario_file: Path, shipped_run: ShippedRun) -> None:
    scenario = load_scenario(scenario_file)
    result, run_dir = (run := shipped_run(scenario_file, "local")).result, run.run_dir
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{scenario.name}: PASSED" in result.stdout

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["scenario"] == scenario.name and summary["passed"] and summary["complete"]
    assert [v["kind"] for v in summary["expectations"]] == [e.kind for e in scenario.expect]
    for verdict in summary["expectations"]:
        assert verdict["passed"], verdict
        assert verdict["bound"] and verdict["measured"] not in ("", "n/a"), verdict
        assert set(verdict) >= {"kind", "params", "bound", "measured", "passed"}

    events = read_journal(run_dir / "journal.jsonl")
    # Where the run's time went, phase by phase (harness/phases.py): each component of the stack in order, then
    # the load's start-up, its drain and the teardown.
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert list(ready["phases"]) == list(STACK_PHASES)[:6], ready["phases"]
    assert list(ready["phases"].values()) == sorted(ready["phases"].values())
    assert ready["phases"]["all_healthy"] <= ready["startup_seconds"] + 0.001  # (rounded to 0.1 ms and 1 ms)
    assert set(summary["phases"]) >= {*STACK_PHASES.keys() - {"gateway_answered"}, "load_startup", "drain", "teardown"}
    assert 0 <= summary["phases"]["load_startup"] < 30 and 0 <= summary["phases"]["drain"] <= \
        scenario.load.request_timeout + 5 and 0 < summary["phases"]["teardown"] < 30
    types = [e["type"] for e in events]
    assert types[0] == "run.started" and types[-1] == "run.finished"
    assert events[-1]["outcome"] == "complete"
    requests = [e for e in events if e["type"] == "request"]
    assert len(requests) > 100
    served_by = {e["replica"] for e in requests if e["replica"]}
    assert served_by == set(scenario.replicas), "every replica served traffic at some point"
    streams = [e for e in requests if e["kind"] == "chat_stream" and e["error"] is None]
    if scenario.load.mix.get("chat_stream"):
        assert streams and all(0 < e["ttft"] <= e["latency"] for e in streams)
    # Every measured detection and recovery lies inside the window the gateway's configuration promised.
    assert all(f["promise_held"]["detection"] != "NO" and f["promise_held"]["recovery"] != "NO"
               for f in summary["faults"]), summary["faults"]
    assert {e["fault"] for e in events if e["type"] == "fault.started"} == {f.label for f in scenario.faults}
    assert {e["fault"] for e in events if e["type"] == "fault.cleared"} == {f.label for f in scenario.faults}
    # Each detection and recovery is the gateway's own stamp of it (its health-check and outlier event logs).
    changes_match_the_gateways_own_stamps(scenario.gateway.kind, run_dir)
    assert processes_of_run(run_dir) == [], "the stack was torn down"
