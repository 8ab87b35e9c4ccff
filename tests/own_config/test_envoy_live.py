"""The user's own envoy.yaml on the real stack: reset and all-down pass within the windows its own settings
promise, and changing its health check interval (1s → 3s) moves both the promise and the measured detection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from tests.integration.conftest import ROOT, chaosgate, processes_of_run, require_components, shipped_run
from tests.integration import test_shipped_scenarios as shipped

FIXTURE = Path(__file__).resolve().parent / "envoy"
EXAMPLE = ROOT / "scenarios" / "own-config" / "envoy" / "reset.yaml"
_RUNS: dict[str, tuple[Path, dict[str, Any], str]] = {}

__all__ = ["shipped_run"]  # the integration suite's fixture, used here by the shipped example's test


def run(scenario: Path, out: Path) -> tuple[Path, dict[str, Any], str]:
    """``chaosgate run`` on a scenario (once per file and session): its run folder, summary and stdout."""
    key = str(scenario)
    if key not in _RUNS:
        require_components()
        result = chaosgate("run", str(scenario), "--out", str(out), "--quiet", timeout=200)
        name = next(line.split(": ", 1)[1] for line in scenario.read_text().splitlines() if line.startswith("name: "))
        run_dir = out / name
        assert (run_dir / "summary.json").exists(), result.stdout + result.stderr
        _RUNS[key] = (run_dir, json.loads((run_dir / "summary.json").read_text()), result.stdout + result.stderr)
    return _RUNS[key]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["reset", "all-down"])
def test_the_users_envoy_file_passes_reset_and_all_down(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    run_dir, summary, output = run(FIXTURE / f"{name}.yaml", tmp_path_factory.mktemp(name))
    assert summary["passed"] and summary["complete"], output
    assert all(verdict["passed"] for verdict in summary["expectations"]), summary["expectations"]
    promised = [v for v in summary["expectations"] if v["params"].get("within") == "promised"]
    assert len(promised) == 2
    for verdict in promised:  # the windows came from the user's file, its lines named
        assert f"[from {FIXTURE / 'envoy.yaml'}: clusters[chat] at line 70; " in verdict["promised"]["how"]
        assert "clusters[chat].health_checks[0].interval at line 87" in verdict["promised"]["how"]
    # The file as it ran, and its diff against the user's: only the endpoints, ports and observer additions.
    rendered = (run_dir / "envoy.yaml").read_text()
    changes = [line for line in (run_dir / "envoy.yaml.diff").read_text().splitlines()
               if line[:1] == "-" and not line.startswith("---")]
    assert changes == ["-    socket_address: {address: 127.0.0.1, port_value: 9901}",
                       "-        socket_address: {address: 0.0.0.0, port_value: 10000}",
                       "-        socket_address: {address: 127.0.0.1, port_value: 10001}",
                       "-                    socket_address: {address: 127.0.0.1, port_value: 8001}",
                       "-                    socket_address: {address: 127.0.0.1, port_value: 8002}",
                       "-                    socket_address: {address: 127.0.0.1, port_value: 8003}"]
    assert "retry_budget:" in rendered and "circuit_breakers:" in rendered  # what the user wrote runs as written
    events = read_journal(run_dir / "journal.jsonl")
    started = events[0]
    assert started["gateway_config"]["text"] == (FIXTURE / "envoy.yaml").read_text()
    # the replicas each endpoint became: every one served, and the gateway's upstream log saw them
    requests = [e for e in events if e["type"] == "request"]
    assert {e["replica"] for e in requests if e["replica"]} == {"chat[0]", "chat[1]", "chat[2]"}
    assert (run_dir / "envoy-upstream.jsonl").read_text().count('"upstream":"127.0.0.1:') > 50
    assert '"cluster_name":"chat"' in (run_dir / "envoy-health.jsonl").read_text()
    assert processes_of_run(run_dir) == [], "the stack was torn down"


@pytest.mark.integration
def test_the_health_check_interval_moves_the_promise_and_the_measured_detection(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Done when: interval 1s → 3s in the user's file; the promised window and the measured detection both move."""
    _, fast, _ = run(FIXTURE / "reset.yaml", tmp_path_factory.mktemp("reset"))
    folder = tmp_path_factory.mktemp("slow-config")
    text = (FIXTURE / "envoy.yaml").read_text()
    old = "          interval: 1s\n          no_traffic_interval: 1s\n"
    assert old in text
    (folder / "envoy.yaml").write_text(text.replace(old, "          interval: 3s\n          no_traffic_interval: 3s\n"))
    # the same scenario; the load runs past the later promised recovery (fault end 11s + 6.24s)
    scenario = (FIXTURE / "reset.yaml").read_text().replace("duration: 16s", "duration: 19s")
    (folder / "reset.yaml").write_text(scenario.replace("name: own-envoy-reset", "name: own-envoy-reset-slow"))
    _, slow, output = run(folder / "reset.yaml", tmp_path_factory.mktemp("slow"))
    assert slow["passed"], output
    (f_fault,), (s_fault,) = fast["faults"], slow["faults"]
    assert (f_fault["promised_detection"]["earliest"], f_fault["promised_detection"]["latest"]) == (1.0, 2.04)
    assert (s_fault["promised_detection"]["earliest"], s_fault["promised_detection"]["latest"]) == (3.0, 6.04)
    assert (s_fault["promised_recovery"]["earliest"], s_fault["promised_recovery"]["latest"]) == (3.0, 6.04)
    # measured: detection needs (unhealthy_threshold − 1) intervals, so it moved from about 1s to at least 3s
    assert 1.0 <= f_fault["detected_after"] <= 2.24
    assert 3.0 <= s_fault["detected_after"] <= 6.24
    assert 3.0 <= s_fault["recovered_after"] <= 6.24


@pytest.mark.integration
def test_the_shipped_example_passes(shipped_run: Any) -> None:  # noqa: F811 (the fixture imported above)
    shipped.test_shipped_scenario_passes(EXAMPLE, shipped_run)
