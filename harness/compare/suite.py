"""``chaosgate compare`` over several scenario files: a comparison suite.

Each file is compared as ``compare_gateways`` does with one file, into ``OUT/<scenario name>/``
(its compare.html/.md/.json and each gateway's run under it); the index (``OUT/index.html``, .md,
.json; harness/compare/index.py) has one row per scenario and one column per gateway. The index is
rewritten after each scenario, and on Ctrl-C with what finished (the interrupted scenario's
comparison is built from the runs it got to).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.compare import NO_FILES, GatewayFiles, compare_gateways, table_from_runs, write_table
from harness.compare.index import SuiteIndex, write_suite_index
from harness.compare.table import ComparisonTable
from harness.errors import ChaosgateError
from harness.progress import Progress
from harness.scenario import load_scenario

# The command line's exit codes (harness/cli.py).
EXIT_PASSED, EXIT_FAILED, EXIT_UNRUNNABLE = 0, 1, 2


@dataclass(frozen=True)
class SuiteEntry:
    file: Path
    name: str   # the scenario's name: its folder in OUT


class SuiteProgress(Progress):
    """Progress whose lines say which scenario of the suite they are about: ``[3/6 blackhole] [nginx] running``."""

    prefix = ""

    def _print(self, message: str) -> None:
        super()._print(self.prefix + message)


def plan_suite(files: Sequence[Path], gateways: Sequence[str]) -> list[SuiteEntry]:
    """The files to compare, each with its scenario's name, in order. Raises ChaosgateError before anything runs
    (naming every problem at once) when no files are given, when a file is valid neither as it stands nor for any
    of ``gateways``, or when two files name the same scenario (their comparisons would share a folder). A file
    valid as it stands but not for some gateway is fine: that gateway gets a NOT RUN row, as with one file."""
    if not files:
        raise ChaosgateError("no scenario files (*.yaml) to compare")
    entries: list[SuiteEntry] = []
    problems: list[str] = []
    for file in files:
        try:
            entries.append(SuiteEntry(file, scenario_name(file, gateways)))
        except ChaosgateError as exc:
            problems.append(str(exc))
    by_name: dict[str, list[Path]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, []).append(entry.file)
    problems += [f"scenario name {name!r} is in {' and '.join(map(str, paths))}: each scenario's comparison goes "
                 f"to OUT/<scenario name>/, so the names must differ" for name, paths in by_name.items()
                 if len(paths) > 1]
    if problems:
        raise ChaosgateError("\n".join(problems))
    return entries


def scenario_name(file: Path, gateways: Iterable[str]) -> str:
    """The name of the scenario in ``file``, valid as it stands or for one of ``gateways``."""
    errors: list[str] = []
    for gateway in (None, *gateways):
        try:
            return load_scenario(file, gateway).name
        except ChaosgateError as exc:
            errors.append(str(exc))
    raise ChaosgateError("\n".join(dict.fromkeys(errors)))


def run_suite(entries: Sequence[SuiteEntry], gateways: list[str], out_dir: Path, runtime: str = "local",
              progress: SuiteProgress | None = None, files: GatewayFiles = NO_FILES) -> SuiteIndex:
    """Compare each scenario on ``gateways`` in turn, writing each comparison and the index into ``out_dir``."""
    progress = progress or SuiteProgress(quiet=True)
    tables: list[ComparisonTable] = []

    def index(interrupted: bool = False) -> SuiteIndex:
        return SuiteIndex(gateways, runtime, list(tables), [e.name for e in entries[len(tables):]], interrupted)

    write_suite_index(index(), out_dir)
    try:
        for number, entry in enumerate(entries, 1):
            progress.prefix = f"[{number}/{len(entries)} {entry.name}] "
            tables.append(compare_gateways(entry.file, gateways, out_dir / entry.name, runtime, progress, files))
            write_suite_index(index(), out_dir)
    except KeyboardInterrupt:
        progress.prefix = ""
        if len(tables) < len(entries) and (out_dir / entries[len(tables)].name).is_dir():
            entry = entries[len(tables)]  # the scenario that was running: what its runs got to
            tables.append(table_from_runs(entry.file, gateways, out_dir / entry.name, runtime, files))
            write_table(tables[-1], out_dir / entry.name)
        write_suite_index(index(interrupted=True), out_dir)
        raise
    progress.prefix = ""
    return index()


def exit_status(tables: Iterable[ComparisonTable]) -> int:
    """2 when a gateway could not run a scenario (or its run stopped), else 1 when one failed, else 0."""
    statuses = {row.status for table in tables for row in table.rows}
    if statuses & {"NOT RUN", "INCOMPLETE"}:
        return EXIT_UNRUNNABLE
    return EXIT_PASSED if statuses <= {"PASSED"} else EXIT_FAILED
