"""The team's own nginx.conf (tests/own_config/nginx/) under test end to end: real nginx 1.22, Toxiproxy and
fake replicas, started by `chaosgate run` from a scenario that names the file (gateway.config)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from tests.integration.conftest import chaosgate, health_changes, require_components

FIXTURE = Path(__file__).resolve().parent / "nginx"
pytestmark = pytest.mark.integration


def run(scenario: Path, out: Path) -> tuple[dict[str, Any], Path]:
    require_components("nginx")
    result = chaosgate("run", str(scenario), "--out", str(out), "--quiet", timeout=150)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result.returncode == 0, result.stdout + result.stderr + json.dumps(summary["expectations"], indent=1)
    return summary, run_dir


def expectation(summary: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [e for e in summary["expectations"] if e["kind"] == kind]
    return found


def test_reset_passes_with_the_team_file_and_its_promised_windows(tmp_path: Path) -> None:
    summary, run_dir = run(FIXTURE / "reset.yaml", tmp_path)
    assert summary["passed"] and all(e["passed"] for e in summary["expectations"])
    for kind in ("upstream_unhealthy", "upstream_healthy"):
        how = expectation(summary, kind)["promised"]["how"]
        assert f"[from {FIXTURE / 'nginx.conf'}: upstream llm_backends at line 28;" in how
        assert "server fail_timeout at line 29" in how
    # nginx's own words, in its own logs: the reset primary disabled, then answering again
    events = read_journal(run_dir / "journal.jsonl")
    changes = health_changes(events, "chat[0]")
    assert changes[0] == (True, "") and changes[-1] == (True, "answered again (200)"), changes
    assert all(not healthy and flags.startswith("temporarily disabled (max_fails reached")
               for healthy, flags in changes[1:-1]) and len(changes) >= 3, changes
    assert [healthy for healthy, _ in health_changes(events, "chat[2]")] == [True]  # the backup: never tried
    # the rewritten file and its diff are in the run's folder: the servers became the replicas' listeners
    ready = next(e for e in events if e["type"] == "stack.ready")
    listeners = [ready["endpoints"]["replicas"][f"chat[{i}]"]["gateway_address"] for i in range(3)]
    diff = (run_dir / "nginx.conf.diff").read_text()
    assert f"+        server {listeners[2]} max_fails=2 fail_timeout=3s backup;" in diff
    assert "-        server 10.20.0.13:8000 max_fails=2 fail_timeout=3s backup;" in diff
    # the retries hid the resets from clients: only a stream whose answer had begun when the fault started
    # (nginx cannot try another server once it passed the headers on) may fail; every request names the
    # primary nginx picked
    requests = [e for e in events if e["type"] == "request"]
    fault_start = next(e["ts"] for e in events if e["type"] == "fault.started")
    failed = [e for e in requests if e["error"]]
    assert requests and all(e["kind"] == "chat_stream" and e["ts"] < fault_start <= e["ts"] + e["latency"]
                            for e in failed), failed
    assert {e["upstream"] for e in requests} == set(listeners[:2])


def test_all_down_passes_with_the_team_file(tmp_path: Path) -> None:
    summary, run_dir = run(FIXTURE / "all-down.yaml", tmp_path)
    assert summary["passed"] and all(e["passed"] for e in summary["expectations"])
    events = read_journal(run_dir / "journal.jsonl")
    for replica in ("chat[0]", "chat[1]", "chat[2]"):  # the backup too: nginx sent it requests once both were out
        assert health_changes(events, replica)[1][0] is False
    assert "no live upstreams" in (run_dir / "nginx" / "error.log").read_text()


def with_fail_timeout(tmp_path: Path, seconds: int) -> Path:
    """The fixture with every server's fail_timeout set to ``seconds``, and the reset scenario with a 2s fault
    (shorter than either fail_timeout, so nginx's next try of the replica comes one fail_timeout after it
    disabled it: the measured recovery then follows fail_timeout, not the phase of its tries)."""
    folder = tmp_path / f"ft{seconds}"
    shutil.copytree(FIXTURE, folder)
    conf = folder / "nginx.conf"
    text = conf.read_text()
    assert text.count("fail_timeout=3s") == 3
    conf.write_text(text.replace("fail_timeout=3s", f"fail_timeout={seconds}s"))
    scenario = folder / "reset.yaml"
    scenario.write_text(scenario.read_text().replace("for: 7s", "for: 2s"))
    return scenario


def test_fail_timeout_moves_the_promised_and_the_measured_recovery(tmp_path: Path) -> None:
    """The "Done when" of the own-config issue for nginx: one setting of the user's file changed (fail_timeout
    3s → 6s), and both the promised recovery window and the measured recovery move by about as much."""
    results: dict[int, dict[str, Any]] = {}
    for seconds in (3, 6):
        summary, _ = run(with_fail_timeout(tmp_path, seconds), tmp_path / f"out{seconds}")
        results[seconds] = expectation(summary, "upstream_healthy")
        assert results[seconds]["passed"], results[seconds]
        assert f"fail_timeout {seconds}s" in results[seconds]["promised"]["how"]
    promised = {s: r["promised"]["latest"] for s, r in results.items()}
    measured = {s: r["measured_value"] for s, r in results.items()}
    # the window's latest is fail_timeout + 1s + what the measured load adds (a few tenths of a second each run)
    assert promised[6] - promised[3] == pytest.approx(3.0, abs=0.3), promised
    # nginx tries the replica again fail_timeout after it disabled it (whole seconds: up to 1s later)
    assert 2.0 <= measured[6] - measured[3] <= 4.0, measured
    assert measured[6] > promised[3] - 1.0 > measured[3], (measured, promised)
