"""``chaosgate compare``: one scenario against several gateways in turn, then one table.

Each gateway's run is an ordinary run (``chaosgate run SCENARIO --gateway KIND``) into
``OUT/<gateway>/<scenario>/``; the table (``OUT/compare.html``, ``compare.md``, ``compare.json``)
is built from those runs' journals (harness/compare/table.py), so it can be rebuilt without
running anything again (``table_from_runs``). Several files at once: harness/compare/suite.py (each
file's comparison in ``OUT/<scenario>/``, and an index of them all, harness/compare/index.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare.render import to_html, to_json, to_markdown, write_pages
from harness.compare.table import ComparisonTable, GatewayRow, not_run, row_from_run
from harness.errors import ChaosgateError
from harness.load.config import Distribution
from harness.output import REPORT, load_run, read_summary
from harness.progress import Progress
from harness.scenario import Scenario, load_scenario

OUTPUTS = ("compare.html", "compare.md", "compare.json")


@dataclass(frozen=True)
class GatewayFiles:
    """The user's own gateway files of a comparison (``--gateway-config KIND=PATH``: that gateway runs from
    that file; the others from the scenario's gateway block) and the hosts off this machine they may reach."""

    configs: Mapping[str, Path] = field(default_factory=dict)
    allow_hosts: tuple[str, ...] = ()
    distribution: Distribution | None = None  # --workers and the rest of distributed load (docs/distributed.md)

    def load(self, file: Path, gateway: str | None) -> Scenario:
        return load_scenario(file, gateway, self.configs.get(gateway) if gateway else None, self.allow_hosts)


NO_FILES = GatewayFiles()


def run_dir_of(out_dir: Path, gateway: str, scenario_name: str) -> Path:
    return out_dir / gateway / scenario_name


def gateway_row(gateway: str, run_dir: Path, out_dir: Path, reason: str | None = None) -> GatewayRow:
    """The row of a gateway from its run's folder (NOT RUN, with ``reason``, when it has no journal)."""
    journal = run_dir / "journal.jsonl"
    if not journal.exists():
        return not_run(gateway, reason or f"no journal in {run_dir}")
    run = load_run(journal)
    summary = read_summary(run_dir) or run.summary()
    report = os.path.relpath(run_dir / REPORT, out_dir) if (run_dir / REPORT).exists() else None
    return row_from_run(gateway, run, summary, report)


def compare_gateways(file: Path, gateways: list[str], out_dir: Path, runtime: str = "local",
                     progress: Progress | None = None, files: GatewayFiles = NO_FILES) -> ComparisonTable:
    """Run the scenario in ``file`` once per gateway (in order) and write the comparison into ``out_dir``.
    A gateway whose settings the scenario cannot honour, or whose stack cannot start, gets a NOT RUN
    row saying why; the others still run."""
    from harness.run import run_scenario  # the run pipeline imports Locust's config and the runtimes

    progress = progress or Progress(quiet=True)
    text = file.read_text(encoding="utf-8")
    rows: list[GatewayRow] = []
    name = file.stem
    for gateway in gateways:
        try:
            scenario = files.load(file, gateway)
        except ChaosgateError as exc:
            progress.warn(f"[{gateway}] cannot run {file}: {exc}")
            rows.append(not_run(gateway, str(exc)))
            continue
        name = scenario.name
        progress.stage(f"[{gateway}] running {scenario.name}")
        reason = None
        try:
            run_scenario(scenario, file, text, out_dir / gateway, runtime, progress, gateway_override=gateway,
                         allow_hosts=files.allow_hosts, distribution=files.distribution)
        except ChaosgateError as exc:  # the run's folder still holds a partial journal, when it got that far
            progress.warn(f"[{gateway}] could not run: {exc}")
            reason = str(exc)
        rows.append(gateway_row(gateway, run_dir_of(out_dir, gateway, scenario.name), out_dir, reason))
    table = ComparisonTable(scenario=name, file=str(file), runtime=runtime, rows=rows)
    write_table(table, out_dir)
    return table


def table_from_runs(file: Path, gateways: list[str], out_dir: Path, runtime: str = "local",
                    files: GatewayFiles = NO_FILES) -> ComparisonTable:
    """The comparison of runs already in ``out_dir`` (nothing runs)."""
    rows = []
    name = file.stem
    for gateway in gateways:
        try:
            name = files.load(file, gateway).name
        except ChaosgateError as exc:
            rows.append(not_run(gateway, str(exc)))
            continue
        rows.append(gateway_row(gateway, run_dir_of(out_dir, gateway, name), out_dir))
    return ComparisonTable(scenario=name, file=str(file), runtime=runtime, rows=rows)


def write_table(table: ComparisonTable, out_dir: Path) -> Path:
    """Write compare.html, compare.md and compare.json into ``out_dir``; the HTML page's path."""
    return write_pages(out_dir, "compare", to_json(table), to_markdown(table), to_html(table))


__all__ = ["NO_FILES", "OUTPUTS", "ComparisonTable", "GatewayFiles", "GatewayRow", "compare_gateways", "gateway_row", "table_from_runs",
           "write_table"]
