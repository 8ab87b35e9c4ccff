"""``compare --parallel N`` (harness/compare/parallel.py): one child run per scenario and gateway, written where a
serial comparison writes it, a gateway that cannot run the scenario not started (its row says why), a child that
left no journal NOT RUN with its own last words, and what is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from harness.compare import NO_FILES
from harness.compare.parallel import PlannedComparison, compare_jobs, last_line, tables_of
from harness.parallel import CHILD_LOG, Ended, Outcome

ROOT = Path(__file__).resolve().parents[2]
RESET = ROOT / "scenarios" / "compare" / "reset.yaml"
DNS = ROOT / "scenarios" / "dns-record-removed.yaml"  # a dns block: haproxy and nginx cannot honour it


def test_one_child_run_per_scenario_and_gateway_into_the_serial_comparisons_folders(tmp_path: Path) -> None:
    jobs = compare_jobs([PlannedComparison(RESET, tmp_path / "reset"), PlannedComparison(DNS, tmp_path / "dns")],
                        ["envoy", "litellm"], "local", NO_FILES, ("--workers", "2"))
    assert [job.name for job in jobs] == ["reset/envoy", "reset/litellm", "dns-record-removed/envoy"]
    first = jobs[0]
    assert first.command[first.command.index("run") + 1] == str(RESET)
    assert first.command[first.command.index("--out") + 1] == str(tmp_path / "reset" / "envoy")
    assert first.command[first.command.index("--gateway") + 1] == "envoy"
    assert first.command[-2:] == ("--workers", "2")
    assert first.log == tmp_path / "reset" / "envoy" / "reset" / CHILD_LOG  # inside the run folder


def test_a_gateway_that_cannot_run_the_scenario_is_not_started_and_its_row_says_why(tmp_path: Path) -> None:
    comparison = PlannedComparison(DNS, tmp_path)
    jobs = compare_jobs([comparison], ["envoy", "haproxy"], "local", NO_FILES)
    assert [job.name for job in jobs] == ["dns-record-removed/envoy"]
    [table] = tables_of([comparison], ["envoy", "haproxy"], "local", NO_FILES, Outcome())
    envoy, haproxy = table.rows
    assert envoy.status == haproxy.status == "NOT RUN"
    assert "no journal" in (envoy.reason or "")  # it never ran here: no child ended
    assert "haproxy cannot" in (haproxy.reason or "") and "dns" in (haproxy.reason or "")
    assert (tmp_path / "compare.json").is_file() and (tmp_path / "compare.html").is_file()


def test_a_child_that_left_no_journal_is_not_run_with_its_exit_code_and_last_words(tmp_path: Path) -> None:
    comparison = PlannedComparison(RESET, tmp_path)
    [job, _] = compare_jobs([comparison], ["envoy", "nginx"], "local", NO_FILES)
    job.log.parent.mkdir(parents=True)
    job.log.write_text("stage: starting\nthe gateway could not start: port in use\n\n")
    [table] = tables_of([comparison], ["envoy", "nginx"], "local", NO_FILES, Outcome(ended=[Ended(job, 2, 1.0)]))
    envoy, nginx = table.rows
    assert envoy.reason == "could not run (exit 2): the gateway could not start: port in use"
    assert nginx.status == "NOT RUN" and "no journal" in (nginx.reason or "")  # it never ended: no exit code


def test_last_line_of_a_missing_or_empty_log(tmp_path: Path) -> None:
    assert last_line(tmp_path / "absent.log").startswith("no output (")
    (tmp_path / "empty.log").write_text("\n \n")
    assert last_line(tmp_path / "empty.log") == "no output"


def test_remote_workers_and_a_fixed_master_port_are_refused_before_anything_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["compare", str(RESET), "--gateways", "envoy", "--parallel", "2",
                                       "--remote-workers", "1", "--master-port", "5557", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--remote-workers cannot say which" in result.output and "--master-port would give" in result.output
    assert "nothing was run" in result.output and not any(tmp_path.iterdir())


def test_two_files_of_one_name_are_refused_with_parallel_as_without(tmp_path: Path) -> None:
    twin = tmp_path / "twin.yaml"
    twin.write_text(RESET.read_text())
    result = CliRunner().invoke(main, ["compare", str(RESET), str(twin), "--gateways", "envoy", "--parallel", "2",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "scenario name 'reset'" in result.output, result.output
    assert not (tmp_path / "out").exists()
