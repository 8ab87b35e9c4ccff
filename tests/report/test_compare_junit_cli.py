"""`chaosgate report` on journals (one run, a suite, a killed run, --baseline, --junit), and the
comparison and JUnit they write; all on synthetic journals, no stack."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report.compare import Row, compare, compare_runs
from harness.report.data import RunData
from harness.report.junit import junit_xml

from .conftest import ROOT
from .journals import reset_run, write_journal


def chaosgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _verdict(kind: str, measured: str, value: float | None, passed: bool, **params: object) -> dict[str, object]:
    return {"kind": kind, "params": params, "description": kind, "bound": "≤ 3s", "measured": measured,
            "measured_value": value, "passed": passed, "detail": ""}


def test_rows_say_whether_a_measurement_got_worse() -> None:
    assert Row(_verdict("u", "1.400s", 1.4, True), _verdict("u", "2.300s", 2.3, True)).change == "worse"
    assert Row(_verdict("u", "1.400s", 1.4, True), _verdict("u", "2.300s", 2.3, True)).delta_text == "+0.900s"
    assert Row(_verdict("u", "1.400s", 1.4, True), _verdict("u", "1.450s", 1.45, True)).change == "same"
    assert Row(_verdict("u", "2.0s", 2.0, True), _verdict("u", "1.0s", 1.0, True)).change == "better"
    assert Row(_verdict("u", "1.4s", 1.4, True), _verdict("u", "never", None, False)).change == "regressed"
    assert Row(_verdict("u", "never", None, False), _verdict("u", "1.0s", 1.0, True)).change == "fixed"
    assert Row(_verdict("e", "0.00%", 0.0, True), _verdict("e", "0.50%", 0.005, True)).delta_text == "+0.50 pp"
    assert Row(None, _verdict("u", "1s", 1.0, True)).change == "new"
    assert Row(_verdict("u", "1s", 1.0, True), None).change == "removed"


def test_expectations_pair_by_kind_and_parameters_not_position() -> None:
    then = {"scenario": "s", "expectations": [_verdict("e", "1%", 0.01, True, window="fault"),
                                              _verdict("e", "0%", 0.0, True, window="recovery"),
                                              _verdict("gone", "1s", 1.0, True)]}
    now = {"scenario": "s", "expectations": [_verdict("e", "0%", 0.0, True, window="recovery"),
                                             _verdict("e", "3%", 0.03, True, window="fault")]}
    rows = compare_runs(then, now)
    assert [(r.verdict["params"].get("window"), r.change) for r in rows] == [
        ("recovery", "same"), ("fault", "worse"), (None, "removed")]
    comparison = compare("old", "new", [then], [now, {"scenario": "t", "expectations": []}])
    assert [s.scenario for s in comparison.scenarios] == ["s", "t"] and comparison.scenarios[1].then is None
    assert [r.change for _, r in comparison.regressions] == ["worse"]


def test_report_rerenders_a_run_folder(journal: Path) -> None:
    result = chaosgate("report", str(journal.parent))
    assert result.returncode == 1, result.stderr
    assert "synthetic-reset: FAILED" in result.stdout
    assert "FAIL  upstream_unhealthy" in result.stdout.replace("\x1b[31m", "").replace("\x1b[0m", "")
    summary = json.loads((journal.parent / "summary.json").read_text())
    assert summary["outcome"] == "complete" and summary["report"] == "index.html"
    assert summary["faults"][0]["detected_after"] == 1.5
    assert "<h1" in (journal.parent / "index.html").read_text()


def test_report_renders_a_killed_runs_partial_journal_as_incomplete(tmp_path: Path) -> None:
    events = reset_run(cut_at=9.0)
    journal = tmp_path / "killed" / "journal.jsonl"
    text = "".join(json.dumps(e) + "\n" for e in events)
    journal.parent.mkdir()
    journal.write_text(text + text.splitlines()[-1][: 40])  # the last line torn mid-write
    result = chaosgate("report", str(journal), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "synthetic-reset: INCOMPLETE" in result.stdout
    html = (tmp_path / "out" / "index.html").read_text()
    assert 'data-status="INCOMPLETE"' in html and 'data-incomplete="true"' in html
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["outcome"] == "killed"


def test_report_refuses_what_is_not_a_journal_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"hello": 1}\n')
    result = chaosgate("report", str(bad))
    assert result.returncode == 2 and "notes.jsonl:1: type: required field is missing; expected one of run.started, " in result.stderr and "Traceback" not in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = chaosgate("report", str(empty))
    assert result.returncode == 2 and "no journal.jsonl in this folder" in result.stderr
    lacking = tmp_path / "lacking.jsonl"
    lacking.write_text(json.dumps({"type": "run.started", "ts": 1.0}) + "\n")
    result = chaosgate("report", str(lacking))
    assert result.returncode == 2 and "lacking.jsonl:1: run.started: text: required field is missing; expected the scenario's YAML text" \
        in result.stderr and "Traceback" not in result.stderr


def test_report_on_a_suite_writes_every_report_the_index_and_junit(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    write_journal(suite / "synthetic-reset" / "journal.jsonl", reset_run())
    passing = reset_run(scenario=reset_run()[0]["text"].replace("within: 1s", "within: 2s")
                        .replace("window: fault}", "window: after_detection}").replace("synthetic-reset", "calm-reset"))
    write_journal(suite / "calm-reset" / "journal.jsonl", passing)
    result = chaosgate("report", str(suite), "--junit", str(tmp_path / "junit.xml"))
    assert result.returncode == 1, result.stderr
    assert "calm-reset: PASSED" in result.stdout and "synthetic-reset: FAILED" in result.stdout
    index = (suite / "index.html").read_text()
    assert 'href="calm-reset/index.html"' in index and 'href="synthetic-reset/index.html"' in index
    assert "1 of 2 scenarios passed" in index
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "2", "0")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["calm-reset"].get("failures") == "0"
    failures = {case.get("name", "").split(":")[0]: case.find("failure") for case in suites["synthetic-reset"].iter("testcase")}
    assert [name for name, failure in failures.items() if failure is not None] == ["2. upstream_unhealthy", "3. no_traffic_to"]
    message = failures["2. upstream_unhealthy"].get("message", "")  # type: ignore[union-attr]
    assert message.startswith("measured 1.500s; bound ≤ 1s: chat[0] was marked unhealthy 1.500s")


def test_baseline_comparison_shows_a_slower_detection(tmp_path: Path) -> None:
    old = write_journal(tmp_path / "old" / "synthetic-reset" / "journal.jsonl", reset_run(detect_after=1.0))
    new = write_journal(tmp_path / "new" / "synthetic-reset" / "journal.jsonl", reset_run(detect_after=1.9))
    result = chaosgate("report", "--baseline", str(old.parent), str(new.parent))
    assert result.returncode == 1, result.stderr
    line = next(li for li in result.stdout.splitlines() if li.strip().startswith("upstream_unhealthy") and "then" in li)
    assert "then 1.000s" in line and "now 1.900s" in line and "regressed +0.900s" in line
    page = (new.parent / "compare.html").read_text()
    assert 'data-change="regressed"' in page and "1.000s pass" in page and "1.900s FAIL" in page


def test_junit_marks_every_expectation_of_an_incomplete_run_as_an_error() -> None:
    summary = RunData.from_events(reset_run(cut_at=9.0)).summary()
    root = ET.fromstring(junit_xml([summary, {"scenario": "never-started", "complete": False, "outcome": "failed",
                                              "error": "port in use", "expectations": []}]))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "0", "5")
    errors = [e.get("message", "") for e in root.iter("error")]
    assert all("did not complete (outcome: killed)" in m for m in errors[:4])
    assert errors[4] == "the run did not complete (outcome: failed): port in use"
