"""A detection or recovery the gateway never made while the run ended before its promised window did is
"not observed" in the report and in the CLI's verdict lines, in the words ``chaosgate compare`` uses
(harness/promise/window.Placement.not_observed), not a bare "never"."""

from __future__ import annotations

from typing import Any

import pytest

from harness.cli import _print_verdicts
from harness.report.data import RunData
from harness.report.html import render_run

from .journals import T0, reset_run


def load_ends_before_readmission(end: float = 14.0) -> list[dict[str, Any]]:
    """The reset run with the load (and run) ending ``end`` s in, 1s after the fault, and chat[0] never readmitted
    (the promised recovery, [1s, 2.04s] +200ms, needs up to 2.24s)."""
    events = [e for e in reset_run() if e["ts"] <= T0 + end and not (e["type"] == "health" and e["healthy"]
                                                                       and e["ts"] > T0)]
    events += [{"type": "load.finished", "ts": T0 + end, "requests": 0, "failures": 0, "stopped": False},
               {"type": "run.finished", "ts": T0 + end + 0.2, "outcome": "complete", "error": None}]
    return events


def fault_ends_before_detection() -> list[dict[str, Any]]:
    """The reset run with the fault cleared 1.5s after it began and chat[0] never marked unhealthy (the promised
    detection, [1s, 2.04s] +200ms, needs up to 2.24s)."""
    out = []
    for e in reset_run():
        if e["type"] == "health" and e["ts"] > T0:
            continue
        out.append({**e, "ts": T0 + 6.5} if e["type"] == "fault.cleared" else e)
    return sorted(out, key=lambda e: e["ts"])


RECOVERY_WORDS = "not observed: the load ended 1s after the fault, the promise allows up to 2.24s"
DETECTION_WORDS = "not observed: the fault ended 1.5s after it began, the promise allows up to 2.24s"


def test_a_readmission_after_the_loads_end_is_not_observed_in_the_report() -> None:
    run = RunData.from_events(load_ends_before_readmission())
    (fault,) = run.faults
    assert fault.not_observed() == ("", RECOVERY_WORDS)
    assert run.summary()["faults"][0]["not_observed"] == {"recovery": RECOVERY_WORDS}
    html = render_run(run)
    assert f'data-not-observed="recovery">N{RECOVERY_WORDS[1:]}</div>' in html
    assert 'data-not-observed="detection"' not in html


def test_a_detection_after_the_faults_end_is_not_observed_in_the_report() -> None:
    run = RunData.from_events(fault_ends_before_detection())
    (fault,) = run.faults
    assert fault.detected is None and fault.not_observed() == (DETECTION_WORDS, "")
    html = render_run(run)
    assert f'data-not-observed="detection">N{DETECTION_WORDS[1:]}</div>' in html


def test_a_missed_window_is_not_called_not_observed() -> None:
    """The load outlasted the promised recovery and chat[0] never came back: missed (outside), not 'not observed'."""
    run = RunData.from_events(load_ends_before_readmission(end=19.0))
    assert run.faults[0].not_observed() == ("", "")
    assert run.summary()["faults"][0]["not_observed"] == {}
    assert run.faults[0].promise_held() == ("yes", "NO")
    assert "data-not-observed" not in render_run(run)


def test_the_cli_verdict_lines_say_not_observed(capsys: pytest.CaptureFixture[str]) -> None:
    _print_verdicts(RunData.from_events(load_ends_before_readmission()).summary())
    out = capsys.readouterr().out
    assert f"  note  reset_peer@chat[0]: recovery {RECOVERY_WORDS}\n" in out
