"""``chaosgate compare ... --parallel N``: every (scenario, gateway) run of a comparison, N at a time.

Each run is a child ``chaosgate run FILE --gateway KIND`` of its own (harness/parallel.py starts, waits for
and interrupts them) writing where the serial comparison writes it: ``OUT/<gateway>/<scenario>/`` for one
file, ``OUT/<scenario>/<gateway>/<scenario>/`` for several. When they have ended, the tables and the suite
index are built from those runs' journals (``table_from_runs``), so a parallel comparison writes the same
files as a serial one. A gateway the scenario cannot be run on is not started: its row says why, as in a
serial comparison; a child that ended without a journal gets a NOT RUN row quoting its log's last line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.compare import GatewayFiles, table_from_runs, write_table
from harness.compare.index import SuiteIndex, write_suite_index
from harness.compare.table import ComparisonTable, not_run
from harness.errors import ChaosgateError
from harness.parallel import CHILD_LOG, Ended, Job, Outcome, Scheduler, interrupt_on_signals, run_command


@dataclass(frozen=True)
class PlannedComparison:
    """One scenario file to compare, and the folder its table and runs go to."""

    file: Path
    out_dir: Path   # OUT for one file, OUT/<scenario> for a suite


def compare_jobs(comparisons: Sequence[PlannedComparison], gateways: Sequence[str], runtime: str, files: GatewayFiles,
                 load_args: Sequence[str] = ()) -> list[Job]:
    """The child runs, scenario by scenario and, within one, in the order of ``gateways``; a gateway the
    scenario cannot be run on has none (its NOT RUN row comes from ``table_from_runs``)."""
    jobs = []
    for comparison in comparisons:
        for gateway in gateways:
            try:
                scenario = files.load(comparison.file, gateway)
            except ChaosgateError:
                continue
            out = comparison.out_dir / gateway
            command = run_command(comparison.file, out, runtime, gateway, False, files.configs.get(gateway),
                                  files.allow_hosts, load_args)
            jobs.append(Job(f"{scenario.name}/{gateway}", comparison.file, command, out / scenario.name / CHILD_LOG))
    return jobs


def last_line(log: Path) -> str:
    """The last non-empty line of a child's output: what it said when it could not run."""
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return f"no output ({log} is missing)"
    return next((line for line in reversed(lines) if line), "no output")


def tables_of(comparisons: Sequence[PlannedComparison], gateways: list[str], runtime: str, files: GatewayFiles,
              outcome: Outcome) -> list[ComparisonTable]:
    """Each comparison's table from the runs in its folder, written there; a run that left no journal is NOT RUN
    with its child's exit code and last words."""
    ended = {(end.job.file, end.job.name.rsplit("/", 1)[1]): end for end in outcome.ended}
    tables = []
    for comparison in comparisons:
        table = table_from_runs(comparison.file, gateways, comparison.out_dir, runtime, files)
        rows = []
        for row in table.rows:
            end = ended.get((comparison.file, row.gateway))
            if row.status == "NOT RUN" and end is not None:
                row = not_run(row.gateway, f"could not run (exit {end.code}): {last_line(end.job.log)}")
            rows.append(row)
        table = ComparisonTable(scenario=table.scenario, file=table.file, runtime=runtime, rows=rows)
        write_table(table, comparison.out_dir)
        tables.append(table)
    return tables


def compare_in_parallel(comparisons: Sequence[PlannedComparison], gateways: list[str], parallel: int, runtime: str,
                        files: GatewayFiles, load_args: Sequence[str] = (), suite_dir: Path | None = None,
                        on_start: Callable[[Job, int, int], None] = lambda job, running, waiting: None,
                        on_end: Callable[[Ended], None] = lambda ended: None,
                        on_interrupt: Callable[[list[Job]], None] = lambda running: None
                        ) -> tuple[list[ComparisonTable], Outcome]:
    """Run every comparison's runs ``parallel`` at a time, then write each table (and, with ``suite_dir``, the
    suite index there). SIGINT or SIGTERM stops the runs as ``chaosgate run --parallel`` does; the tables are
    written from what the runs got to."""
    jobs = compare_jobs(comparisons, gateways, runtime, files, load_args)
    scheduler = Scheduler(jobs, parallel, on_start=on_start, on_end=on_end, on_interrupt=on_interrupt)
    with interrupt_on_signals(scheduler):
        outcome = scheduler.run()
    tables = tables_of(comparisons, gateways, runtime, files, outcome)
    if suite_dir is not None:
        write_suite_index(SuiteIndex(gateways, runtime, tables, interrupted=outcome.interrupted), suite_dir)
    return tables, outcome
