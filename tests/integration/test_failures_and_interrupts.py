"""A scenario built to fail exits 1 with reasons; bad input exits 2; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from harness.journal import read_journal

from .conftest import CHAOSGATE, ROOT, chaosgate, processes_of_run, wait_for

MUST_FAIL = ROOT / "tests" / "scenarios" / "must-fail.yaml"


@pytest.mark.integration
def test_violated_expectations_exit_1_with_readable_reasons(tmp_path: Path) -> None:
    result = chaosgate("run", str(MUST_FAIL), "--out", str(tmp_path), "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "must-fail: FAILED" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    summary = json.loads((tmp_path / "must-fail" / "summary.json").read_text())
    verdicts = {v["kind"]: v for v in summary["expectations"]}
    unhealthy = verdicts["upstream_unhealthy"]
    assert not unhealthy["passed"]
    # Two failed checks 1s apart: Envoy cannot be faster than (unhealthy_threshold - 1) * interval.
    assert unhealthy["measured_value"] >= 1.0 - 0.05 and unhealthy["bound_value"] == 0.2
    assert "bound 200ms" in unhealthy["detail"]
    traffic = verdicts["no_traffic_to"]
    assert not traffic["passed"] and traffic["measured_value"] > 0
    assert "attempts reached chat[0] in the window" in traffic["detail"] and "attempts reached chat[0]" in result.stdout
    assert verdicts["error_rate"]["passed"]


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_run_tears_everything_down(sig: signal.Signals, tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "replica-reset.yaml"
    run_dir = tmp_path / "replica-reset"
    journal = run_dir / "journal.jsonl"
    harness = subprocess.Popen([*CHAOSGATE, "run", str(scenario), "--out", str(tmp_path), "--quiet"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: journal.exists() and '"fault.started"' in journal.read_text(), 60, "the fault to start")
        assert processes_of_run(run_dir), "the stack is running before the interrupt"
        harness.send_signal(sig)
        _, stderr = harness.communicate(timeout=30)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert harness.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    wait_for(lambda: not processes_of_run(run_dir), 5, "every process of the stack to end")
    events = read_journal(journal)
    assert events[-1]["type"] == "run.finished" and events[-1]["outcome"] == "interrupted"
    assert any(e["type"] == "fault.cleared" for e in events), "the active fault was cleared"
    # every try the replicas logged up to the interrupt is in the journal (read once more after teardown), and every
    # answer they logged (the fakes' "type": "answer" lines, journalled as attempt.answer)
    lines = [json.loads(line) for f in (run_dir / "attempts").glob("*.jsonl") for line in f.read_text().splitlines()]
    arrivals = sum(line.get("type") != "answer" for line in lines)
    journalled = sum(1 for e in events if e["type"] == "attempt" and e["source"] == "replica")
    assert journalled == arrivals > 0
    assert sum(1 for e in events if e["type"] == "attempt.answer") == len(lines) - arrivals > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is False and summary["passed"] is False


@pytest.mark.integration
def test_invalid_scenario_exits_2_naming_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = MUST_FAIL.read_text().replace("duration: 8s", "duration: soon")
    bad.write_text(text)
    line = next(n for n, content in enumerate(text.splitlines(), start=1) if "duration: soon" in content)
    result = chaosgate("run", str(bad), "--out", str(tmp_path))
    assert result.returncode == 2
    assert f"{bad}:{line}:" in result.stderr
    assert "load.duration: expected a duration such as '1.5s' or '250ms', got 'soon'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_missing_component_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "CHAOSGATE_TOXIPROXY": str(tmp_path / "no-such-toxiproxy")}
    result = subprocess.run([*CHAOSGATE, "run", str(MUST_FAIL), "--out", str(tmp_path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "could not run" in result.stderr and "CHAOSGATE_TOXIPROXY" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = chaosgate("up", str(MUST_FAIL), "--port", str(port), "--out", str(tmp_path), timeout=60)
    assert result.returncode == 2
    assert f"port {port} for the gateway is already in use" in result.stderr
    assert processes_of_run(tmp_path / "must-fail") == []
