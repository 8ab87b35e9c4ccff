"""Exit codes of every command: 2 for bad input or environment, 3 for a bug in chaosgate (one line,
the traceback in a file), 130 for an interrupt; never a traceback on the terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import crash
from harness.cli import EXIT_BUG, EXIT_INTERRUPTED, EXIT_UNRUNNABLE, main

JOURNAL = Path(__file__).resolve().parents[1] / "data" / "fuzz-reset.journal.jsonl"


def test_a_bug_is_one_line_naming_the_traceback_file_and_exit_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("'<' not supported between instances of 'str' and 'float'")

    monkeypatch.setattr("harness.cli.write_outputs", broken)
    result = CliRunner().invoke(main, ["report", str(JOURNAL), "--out", str(tmp_path)])
    assert result.exit_code == EXIT_BUG
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    found = re.fullmatch(r"chaosgate: internal error \(a bug in chaosgate, not in your input\): TypeError: '<' not "
                         r"supported between instances of 'str' and 'float'; the full traceback is in (\S+); every "
                         r"stack this command started was torn down\. Please report it with that file\.", line)
    assert found, line
    written = Path(found.group(1)).read_text()
    assert "Traceback (most recent call last)" in written and "in broken" in written
    Path(found.group(1)).unlink()


def test_a_bug_during_a_run_leaves_its_traceback_in_the_run_folder(tmp_path: Path) -> None:
    try:
        raise ValueError("a bug")
    except ValueError as exc:
        path = crash.record(exc, tmp_path / "run")
        assert crash.record(exc, tmp_path / "elsewhere") == path  # written once, where the run is
    assert path == tmp_path / "run" / crash.TRACEBACK_NAME
    assert "ValueError: a bug" in path.read_text()


def test_an_interrupt_is_exit_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("harness.cli.write_outputs", interrupted)
    result = CliRunner().invoke(main, ["report", str(JOURNAL), "--out", str(tmp_path)])
    assert result.exit_code == EXIT_INTERRUPTED and result.stderr.strip() == "interrupted"


def test_an_unwritable_place_is_the_environment_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["report", str(JOURNAL), "--out", str(blocker / "out")])
    assert result.exit_code == EXIT_UNRUNNABLE, result.output
    assert result.stderr.startswith(f"chaosgate: {blocker / 'out'}: ") and "Traceback" not in result.output


def test_a_bad_journal_among_good_ones_is_named_and_the_others_are_judged(tmp_path: Path) -> None:
    good, bad = tmp_path / "good" / "journal.jsonl", tmp_path / "bad" / "journal.jsonl"
    for path in (good, bad):
        path.parent.mkdir()
        path.write_text(JOURNAL.read_text())
    lines = bad.read_text().splitlines()
    lines[7] = lines[7].replace('"latency":0.0', '"latency":"0.0')  # a string latency, as a hand edit leaves it
    lines[7] = lines[7].replace(',"status"', '","status"', 1)
    bad.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == EXIT_UNRUNNABLE
    assert result.stderr.splitlines() == [
        f"{bad}:8: request: latency: expected a number (seconds until the response ended), got the string "
        "'0.08801725699998997'",
        f"{bad}: not judged (its report was not rewritten)"]
    assert "fuzz-reset: PASSED" in result.stdout and (good.parent / "index.html").exists()
    assert not (bad.parent / "index.html").exists()
