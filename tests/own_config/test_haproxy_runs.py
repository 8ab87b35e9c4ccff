"""The user's own haproxy.cfg, run end to end (tests/own_config/haproxy/): HAProxy 2.6 runs the file as
rewritten (its servers → the Toxiproxy listeners, its binds and stats socket → the run's ports), and the
verdicts are judged against the windows read from the file.

* reset: a primary resets every connection; retried on the other primary, so clients see no error and only
  the active check marks it DOWN (fall 3, inter 2s); the backup never serves.
* all-down: every server, the backup too, refuses; observe marks the primaries DOWN, then the backup.
* health-fail with `default-server inter 2s`, then with inter 1s: the promised detection window and the
  measured detection both move (the "done when" test of issue 15).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from tests.integration.conftest import ROOT, chaosgate, require_components

pytestmark = pytest.mark.integration

FIXTURE = ROOT / "tests" / "own_config" / "haproxy"
INTER_LINE = "    default-server inter 2s fall 3 rise 2\n"


def run(scenario: Path, out: Path) -> tuple[dict[str, Any], Path]:
    require_components("haproxy")
    result = chaosgate("run", str(scenario), "--out", str(out), "--quiet", timeout=200)
    name = next(line.split(":", 1)[1].strip() for line in scenario.read_text().splitlines() if line.startswith("name:"))
    run_dir = out / name
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((run_dir / "summary.json").read_text()), run_dir


def expectation(summary: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e for e in summary["expectations"] if e["kind"] == kind)


def health_of(run_dir: Path, replica: str) -> list[tuple[bool, str]]:
    return [(e["healthy"], e["flags"]) for e in read_journal(run_dir / "journal.jsonl")
            if e["type"] == "health" and e["replica"] == replica]


def test_reset_of_a_primary_passes_with_windows_from_the_file(tmp_path: Path) -> None:
    summary, run_dir = run(FIXTURE / "reset.yaml", tmp_path)
    assert summary["passed"], json.dumps(summary["expectations"], indent=1)
    detected = expectation(summary, "upstream_unhealthy")["promised"]
    assert (detected["earliest"], detected["latest"]) == (4.0, 6.06)  # fall 3 checks, inter 2s (active only)
    assert "defaults: default-server inter 2s at line 23" in detected["how"]
    assert "backend chat_primary: default-server observe layer7 at line 40" in detected["how"]
    # HAProxy's own words for chat-a while it was down, from its stats socket (show stat), and its own stamp of
    # the change, from the log line the rewrite added (log stderr format iso)
    assert any(not healthy and "DOWN" in flags for healthy, flags in health_of(run_dir, "chat[0]"))
    stamps = [e for e in read_journal(run_dir / "journal.jsonl") if e["type"] == "gateway.health"]
    assert [(e["replica"], e["healthy"]) for e in stamps] == [("chat[0]", False), ("chat[0]", True)], stamps
    rewritten = (run_dir / "haproxy.cfg").read_text()
    assert "    server chat-spare 127.0.0.1:" in rewritten and rewritten.count(" maxconn 100") == 3
    diff = (run_dir / "haproxy.cfg.diff").read_text()
    assert "-    server chat-a 10.0.1.11:8000 maxconn 100\n" in diff
    ready = next(e for e in read_journal(run_dir / "journal.jsonl") if e["type"] == "stack.ready")
    assert (ready["gateway_config"], ready["gateway_config_diff"]) == (rewritten, diff)  # what the report shows


def test_all_down_marks_the_backup_down_after_the_primaries(tmp_path: Path) -> None:
    summary, run_dir = run(FIXTURE / "all-down.yaml", tmp_path)
    assert summary["passed"], json.dumps(summary["expectations"], indent=1)
    events = read_journal(run_dir / "journal.jsonl")
    down = {e["replica"]: e["ts"] for e in reversed(events) if e["type"] == "health" and not e["healthy"]}
    # the backup gets requests (and so observe's errors) only once both primaries are DOWN
    assert down["chat[2]"] >= max(down["chat[0]"], down["chat[1]"]), down


def with_inter(tmp_path: Path, inter: str) -> Path:
    """The fixture's folder copied, with `default-server inter` changed in the user's file."""
    folder = tmp_path / f"inter-{inter}"
    shutil.copytree(FIXTURE, folder)
    cfg = folder / "haproxy.cfg"
    text = cfg.read_text()
    assert INTER_LINE in text
    cfg.write_text(text.replace(INTER_LINE, INTER_LINE.replace("inter 2s", f"inter {inter}")))
    return folder / "health-fail.yaml"


def test_changing_inter_in_the_file_moves_the_promise_and_the_measured_detection(tmp_path: Path) -> None:
    measured: dict[str, float] = {}
    for inter, window in (("2s", (4.0, 6.06)), ("1s", (2.0, 3.06))):
        summary, _ = run(with_inter(tmp_path, inter), tmp_path / f"out-{inter}")
        assert summary["passed"], json.dumps(summary["expectations"], indent=1)
        detected = expectation(summary, "upstream_unhealthy")
        assert (detected["promised"]["earliest"], detected["promised"]["latest"]) == window
        assert f"defaults: default-server inter {inter} at line 23" in detected["promised"]["how"]
        measured[inter] = detected["measured_value"]
    # each inside its own window (the runs passed): fall 3 failed checks take two intervals after the first, so
    # detection moved from [2s, 3.06s] to [4s, 6.06s] (measured: 2.78s and 4.32s on 2.6.12)
    assert measured["1s"] < measured["2s"], measured
