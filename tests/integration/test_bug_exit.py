"""A bug in chaosgate mid-run: exit 3 with one line, its traceback in the run's folder, and the stack gone."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import crash
from harness.cli import EXIT_BUG, main
from harness.journal import read_journal

from .conftest import ROOT, processes_of_run, wait_for

SCENARIO = ROOT / "tests" / "data" / "fuzz-reset.yaml"  # 5 s of load, a fault at 1.5 s


@pytest.mark.integration
def test_a_bug_mid_run_exits_3_with_its_traceback_in_the_run_folder_and_tears_the_stack_down(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def bug(action: Any, *args: Any) -> None:
        raise TypeError("a bug planted by the test")

    monkeypatch.setattr("harness.run._apply", bug)  # the first fault action raises, mid-run
    result = CliRunner().invoke(main, ["run", str(SCENARIO), "--out", str(tmp_path), "--quiet"])
    run_dir = tmp_path / "fuzz-reset"
    traceback_file = run_dir / crash.TRACEBACK_NAME
    assert result.exit_code == EXIT_BUG, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(r"chaosgate: internal error \(a bug in chaosgate, not in your input\): TypeError: a bug planted "
                        rf"by the test; the full traceback is in {re.escape(str(traceback_file))}; every stack this "
                        r"command started was torn down\. Please report it with that file\.", line), line
    assert "TypeError: a bug planted by the test" in traceback_file.read_text()
    wait_for(lambda: not processes_of_run(run_dir), 5, "every process of the stack to end")
    events = read_journal(run_dir / "journal.jsonl")
    gateway = next(e for e in events if e["type"] == "stack.ready")["endpoints"]["gateway"]
    host, port = gateway.removeprefix("http://").rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass  # nothing listens on the gateway's port any more
    finished = events[-1]
    assert finished["type"] == "run.finished" and finished["outcome"] == "failed"
    assert finished["error"].startswith("a bug in chaosgate: TypeError: a bug planted by the test (traceback: ")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"] is False and summary["error"] == finished["error"]
