"""scenarios/mcp-schema-drift.yaml on the real stack: the drift reaches the mcp clients (injected),
the MCP health check ejects the replica (detected), and without that check nothing does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harness.journal import read_journal
from harness.scenario import load_scenario, parse_scenario
from harness.timeline import build_timeline

from .conftest import ROOT, ShippedRun, chaosgate

SCENARIO = ROOT / "scenarios" / "mcp-schema-drift.yaml"


def _run(path: Path, out: Path, duration: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = chaosgate("run", str(path), "--out", str(out), "--quiet", timeout=duration + 90)
    name = yaml.safe_load(path.read_text())["name"]
    summary = json.loads((out / name / "summary.json").read_text())
    assert summary["complete"], result.stdout + result.stderr
    return summary, read_journal(out / name / "journal.jsonl")


def test_drift_is_seen_by_clients_then_ejected(shipped_run: ShippedRun) -> None:
    scenario = load_scenario(SCENARIO)
    run = shipped_run(SCENARIO, "local")  # the session's run of the shipped scenario (test_shipped_scenarios')
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    summary = json.loads((run.run_dir / "summary.json").read_text())
    events = read_journal(run.run_dir / "journal.jsonl")
    assert summary["passed"], summary["expectations"]
    timeline = build_timeline(events)
    (fault,) = timeline.faults
    detected = timeline.first_unhealthy("tools[0]", fault.start)
    assert detected is not None and detected - fault.start <= scenario.gateway.health_check.interval + 1.0  # type: ignore[union-attr]

    # Sessions that connected to tools[0] between the drift and its ejection failed at connect, with the
    # client's own schema error (sessions begun before the drift go on: their later steps still work);
    # nothing else failed, and nothing failed before the drift. (Ejection can come before any session
    # connects there on a busy machine; the next test shows the clients' side without the MCP check.)
    window = timeline.requests_between(fault.start, detected)
    hit = [r for r in window if r.replica == "tools[0]" and r.kind == "mcp_initialize"]
    assert all(r.error == "schema" and "InitializeResult" in (r.body or "") for r in hit), hit
    assert all(r in hit for r in window if not r.ok)
    assert all(r.ok for r in timeline.requests_between(0, fault.start) if r.t + r.latency <= fault.start)

    # Injected and detected by the MCP check: Envoy's event names an ACTIVE failure of an answer with
    # status 200 (only the drifted body fails the check), for tools[0] only.
    health_log = [json.loads(line) for line in (run.run_dir / "envoy-health.jsonl").read_text().splitlines()]
    ejections = [e for e in health_log if "eject_unhealthy_event" in e]
    assert ejections and all(e["eject_unhealthy_event"] == {"failure_type": "ACTIVE", "http_status_code": 200}
                             for e in ejections)
    replicas = next(e for e in events if e["type"] == "stack.ready")["endpoints"]["replicas"]
    drifted = replicas["tools[0]"]["gateway_address"]
    assert {f"{e['host']['socket_address']['address']}:{e['host']['socket_address']['port_value']}"
            for e in ejections} == {drifted}

    # After detection no new session failed: every connect worked (a session already open on tools[0]
    # at its ejection may lose its session: see the scenario's header).
    after = timeline.requests_between(detected, fault.end)
    connects = [r for r in after if r.kind == "mcp_initialize"]
    assert connects and all(r.ok and r.replica in ("tools[1]", "tools[2]") for r in connects)
    assert all(r.error == "http_4xx" and "Session not found" in (r.body or "") for r in after if not r.ok)

    # Every step of the mcp persona is in the journal, and the others kept serving the whole time.
    kinds = {r.kind for r in timeline.requests}
    assert kinds == {"mcp_initialize", "mcp_tools_list", "mcp_tools_call"}
    during = [r for r in timeline.requests_between(fault.start, fault.end) if r.ok]
    assert {r.replica for r in during} >= {"tools[1]", "tools[2]"}


def test_without_the_mcp_check_the_drift_goes_unnoticed(tmp_path: Path) -> None:
    """The same drift with the gateway's plain GET /health: never detected, clients keep failing."""
    data = yaml.safe_load(SCENARIO.read_text())
    data["name"] = "mcp-schema-drift-plain-check"
    del data["gateway"]["health_check"]["mcp"]
    data["load"]["duration"] = "10s"
    data["faults"][0].update({"at": "3s", "for": "5s"})
    data["expect"] = [{"kind": "upstream_unhealthy", "target": "tools[0]", "within": "2.5s"},
                      {"kind": "error_rate", "window": "fault", "max": 0.0}]
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    scenario = parse_scenario(path.read_text(), str(path))
    summary, events = _run(path, tmp_path / "out", scenario.load.duration)
    verdicts = {v["kind"]: v for v in summary["expectations"]}
    assert not summary["passed"]
    assert not verdicts["upstream_unhealthy"]["passed"] and verdicts["upstream_unhealthy"]["measured"] == "never"
    assert not verdicts["error_rate"]["passed"]
    timeline = build_timeline(events)
    (fault,) = timeline.faults
    # Sessions that began, and ended, well inside the fault (clearing it takes a moment: a session
    # that spans the clear may connect to the healed replica).
    late = [r for r in timeline.requests_between(fault.start + 2.0, fault.end - 0.5)
            if r.replica == "tools[0]" and r.kind == "mcp_initialize" and r.t + r.latency <= fault.end - 0.5]
    assert late and all(r.error == "schema" for r in late), "tools[0] kept getting sessions, which kept failing"
