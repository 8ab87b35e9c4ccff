"""The ``chaosgate`` command line.

Exit codes: 0 every expectation held; 1 an expectation failed; 2 a scenario could not be
run (bad file, missing component, port in use, ...); 130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from harness import __version__
from harness.errors import ChaosgateError, ScenarioError
from harness.gateways import traps
from harness.judge import judge_journal
from harness.output import write_outputs
from harness.progress import Progress
from harness.runtimes import RUNTIMES
from harness.scenario import Scenario, load_scenario

EXIT_PASSED, EXIT_FAILED, EXIT_UNRUNNABLE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def scenario_files(paths: tuple[Path, ...]) -> Iterator[Path]:
    """Each file given, and every *.yaml / *.yml directly inside each folder given, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            yield path


def _load_all(paths: tuple[Path, ...]) -> tuple[list[tuple[Path, Scenario]], list[str]]:
    loaded: list[tuple[Path, Scenario]] = []
    errors: list[str] = []
    files = list(scenario_files(paths))
    if not files:
        errors.append(f"no scenario files (*.yaml) in {', '.join(map(str, paths))}")
    for file in files:
        try:
            loaded.append((file, load_scenario(file)))
        except ScenarioError as exc:
            errors.append(str(exc))
    return loaded, errors


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chaosgate")
def main() -> None:
    """chaosgate: break an AI gateway's upstreams on purpose and check that it copes.

    A scenario (YAML) names a gateway, pools of fake model replicas, a load, faults on a
    schedule and what the gateway must do (expect:). `run` starts the real stack
    (Envoy → Toxiproxy → fake replicas), drives Locust load through it, injects the faults,
    journals everything and judges the expectations.
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", default=Path("reports"), show_default=True, type=click.Path(path_type=Path),
              help="Folder for results: OUT/<scenario>/journal.jsonl, summary.json, index.html.")
@click.option("--runtime", default="local", show_default=True, type=click.Choice(sorted(RUNTIMES)),
              help="Where the stack runs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output, only the verdicts.")
def run(paths: tuple[Path, ...], out_dir: Path, runtime: str, quiet: bool) -> None:
    """Run scenario files, or every scenario in folders, and judge them.

    Exits 0 when every expectation held, 1 when one failed, 2 when a scenario could
    not be run, 130 when interrupted.
    """
    from harness.run import run_scenario

    loaded, errors = _load_all(paths)
    if errors:
        for error in errors:
            click.echo(error, err=True)
        sys.exit(EXIT_UNRUNNABLE)
    progress = Progress(quiet=quiet)
    outcomes: list[tuple[str, bool | None]] = []
    for file, scenario in loaded:
        try:
            result = run_scenario(scenario, file, file.read_text(), out_dir, runtime, progress)
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted; the stack was torn down; partial results in {out_dir / scenario.name}", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except ChaosgateError as exc:
            click.echo(f"[{scenario.name}] could not run: {exc}", err=True)
            outcomes.append((scenario.name, None))
            continue
        _print_verdicts(result.summary)
        click.echo(f"  results: {result.run_dir}")
        outcomes.append((scenario.name, result.judgement.passed))
    _print_suite(outcomes)
    if any(passed is None for _, passed in outcomes):
        sys.exit(EXIT_UNRUNNABLE)
    sys.exit(EXIT_PASSED if all(passed for _, passed in outcomes) else EXIT_FAILED)


def _print_verdicts(summary: dict[str, Any]) -> None:
    state = "PASSED" if summary["passed"] else ("INCOMPLETE" if not summary["complete"] else "FAILED")
    click.echo(f"{summary['scenario']}: {state}  ({summary['requests']} requests, "
               f"{summary['failed_requests']} failed, {summary['duration']:.1f}s)")
    for v in summary["expectations"]:
        mark = click.style("pass", fg="green") if v["passed"] else click.style("FAIL", fg="red")
        click.echo(f"  {mark}  {v['kind']:<20} bound {v['bound']:<10} measured {v['measured']:<10} {v['detail']}")


def _print_suite(outcomes: list[tuple[str, bool | None]]) -> None:
    if len(outcomes) < 2:
        return
    words = {True: "passed", False: "FAILED", None: "could not run"}
    click.echo("\nsuite: " + ", ".join(f"{name} {words[passed]}" for name, passed in outcomes))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check scenario files without running anything; print every problem with file and line."""
    loaded, errors = _load_all(paths)
    for file, scenario in loaded:
        click.echo(f"{file}: ok")
        for warning in traps(scenario):
            click.echo(f"{file}: warning: {warning}")
    for error in errors:
        click.echo(error, err=True)
    sys.exit(EXIT_UNRUNNABLE if errors else EXIT_PASSED)


@main.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editor completion)."""
    document = Scenario.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "chaosgate scenario"
    click.echo(json.dumps(document, indent=2))


@main.command()
@click.argument("scenario_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--port", type=int, default=None, help="Gateway listen port on 127.0.0.1 (default: a free one).")
@click.option("--out", "out_dir", default=Path("reports/up"), show_default=True, type=click.Path(path_type=Path),
              help="Folder for the rendered gateway config and component logs.")
@click.option("--runtime", default="local", show_default=True, type=click.Choice(sorted(RUNTIMES)))
def up(scenario_file: Path, port: int | None, out_dir: Path, runtime: str) -> None:
    """Start a scenario's stack, print its endpoints, and keep it up until Ctrl-C.

    No load and no faults are run; send requests yourself, and break replicas through
    the Toxiproxy API that is printed.
    """
    try:
        scenario = load_scenario(scenario_file)
    except ScenarioError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_UNRUNNABLE)
    stack_runtime = RUNTIMES[runtime]()
    try:
        stack = stack_runtime.up(scenario, out_dir / scenario.name, gateway_port=port)
        click.echo(json.dumps(stack.endpoints(), indent=2))
        click.echo(f"stack of {scenario.name} is up; Ctrl-C to stop", err=True)
        last: dict[str, bool] = {}
        while True:  # report the gateway's view of health as it changes, until interrupted
            current = {name: h.healthy for name, h in stack.replica_health().items()}
            for name, healthy in current.items():
                if last.get(name) is not healthy:
                    click.echo(f"{time.strftime('%H:%M:%S')} {name} {'healthy' if healthy else 'UNHEALTHY'}", err=True)
            last = current
            time.sleep(0.2)
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ChaosgateError as exc:
        click.echo(f"could not start the stack: {exc}", err=True)
        sys.exit(EXIT_UNRUNNABLE)
    finally:
        stack_runtime.down()


@main.command()
@click.argument("journal", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", default=None, type=click.Path(path_type=Path),
              help="Where to write summary.json and index.html (default: beside the journal).")
def report(journal: Path, out_dir: Path | None) -> None:
    """Judge a past run again from its journal and rewrite its summary and report."""
    try:
        judgement = judge_journal(journal)
    except ChaosgateError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_UNRUNNABLE)
    target = out_dir or journal.parent
    target.mkdir(parents=True, exist_ok=True)
    _print_verdicts(write_outputs(judgement, target))
    sys.exit(EXIT_PASSED if judgement.passed else EXIT_FAILED)


if __name__ == "__main__":
    main()
