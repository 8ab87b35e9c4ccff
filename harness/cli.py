"""The ``chaosgate`` command line.

Exit codes: 0 every expectation held; 1 an expectation failed; 2 the input or the environment
is wrong (bad file or journal, missing component, port in use, ...); 3 a bug in chaosgate (one
line says so and where its traceback was written; stacks are torn down first); 130 interrupted
(Ctrl-C / SIGTERM). No exception but KeyboardInterrupt leaves ``main()`` (ChaosgateGroup.invoke).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import yaml

from harness import __version__, crash
from harness.attach import (ATTACH_REFUSED, DEFAULT_WAIT, Attach, AttachError, log_view, parse_attach,
                            scenario_problems)
from harness.errors import ChaosgateError, JournalError, ScenarioError
from harness.gateways import GATEWAYS, HostHealth, not_applicable
from harness.lint import CHECKS, TRAPS, Finding, lint_file, lint_native
from harness.load.config import Distribution
from harness.own_config import kind_of_file
from harness.parallel import (
    CHILD_LOG, GRACE_S, Ended, Job, Scheduler, distribution_args, distribution_refusals, interrupt_on_signals, refusals,
    run_command,
)
from harness.output import journals_in, load_run, read_summary, write_index, write_outputs
from harness.progress import Progress
from harness.report import compare, junit_xml, render_comparison
from harness.report.compare import Comparison
from harness.runtimes import RUNTIMES
from harness.runtimes.base import check_supported
from harness.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from harness.compare import GatewayFiles

EXIT_PASSED, EXIT_FAILED, EXIT_UNRUNNABLE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM stop the command (as KeyboardInterrupt: teardown, exit 130), even when it was
    started with SIGINT ignored, as a script starts its background jobs (`cmd &`): Python keeps a
    signal ignored that was ignored when it started, unless a handler is installed explicitly."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupt)


def scenario_files(paths: tuple[Path, ...]) -> Iterator[Path]:
    """Each file given, and every *.yaml / *.yml directly inside each folder given, sorted (in a folder, not a
    gateway's own file beside its scenarios: envoy.yaml, litellm.yaml without top-level upstreams)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
                              and _native_kind(p, None) is None)
        else:
            yield path


def _load_all(paths: tuple[Path, ...], gateway: str | None = None, gateway_config: Path | None = None,
              allow_hosts: tuple[str, ...] = (), gateway_view: bool = True) -> tuple[list[tuple[Path, Scenario]], list[str]]:
    loaded: list[tuple[Path, Scenario]] = []
    errors: list[str] = []
    files = list(scenario_files(paths))
    if not files:
        errors.append(f"no scenario files (*.yaml) in {', '.join(map(str, paths))}")
    for file in files:
        try:
            loaded.append((file, load_scenario(file, gateway, gateway_config, allow_hosts, gateway_view=gateway_view)))
        except ScenarioError as exc:
            errors.append(str(exc))
    return loaded, errors


def own_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--gateway-config`` and ``--allow-host``: the user's own gateway file (docs/own-config.md)."""
    command = click.option(
        "--allow-host", "allow_hosts", multiple=True, metavar="HOST",
        help="A host off this machine the gateway's file may send traffic to (repeat for several); without it, "
             "such a file is refused.")(command)
    return click.option(
        "--gateway-config", "gateway_config", default=None, metavar="PATH",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Run the gateway from this file of yours (envoy.yaml, haproxy.cfg, nginx.conf, LiteLLM config.yaml) "
             "instead of the scenario's gateway.config or gateway block (docs/own-config.md).")(command)


def distribution_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--workers``, ``--remote-workers``, ``--master-bind``, ``--master-port``, ``--join-timeout``: the load
    under a Locust master and its workers (docs/distributed.md)."""
    command = click.option(
        "--join-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS", help="How long the master waits for every worker to join before the run fails.")(command)
    command = click.option(
        "--master-port", default=0, type=click.IntRange(0, 65535), metavar="PORT",
        help="The Locust master's port (default: a free one, printed for remote workers).")(command)
    command = click.option(
        "--master-bind", default="127.0.0.1", show_default=True, metavar="ADDR",
        help="The address the Locust master listens on; name another than loopback to let workers on other "
             "machines join.")(command)
    command = click.option(
        "--remote-workers", default=0, type=click.IntRange(0, 64), metavar="K",
        help="Wait for K more workers started elsewhere (chaosgate worker --master HOST:PORT) before the load starts.")(command)
    return click.option(
        "--workers", default=None, type=click.IntRange(0, 64), metavar="N",
        help="Drive the load from a Locust master and N local worker processes (overrides the scenario's "
             "load.workers; 0: one load process).")(command)


def _distribution(workers: int | None, remote_workers: int, master_bind: str, master_port: int,
                  join_timeout: float) -> Distribution | None:
    if workers is None and remote_workers == 0 and (master_bind, master_port, join_timeout) == ("127.0.0.1", 0, 30.0):
        return None  # the scenario's load.workers, with the defaults
    return Distribution(workers, remote_workers, master_bind, master_port, join_timeout)


def attach_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--attach``, ``--attach-admin`` and ``--attach-wait``: a gateway chaosgate does not start (docs/own-config/attach.md)."""
    command = click.option(
        "--attach-wait", "attach_wait", default=DEFAULT_WAIT, show_default=True, type=float, metavar="SECONDS",
        help="With --attach: how long to wait for the gateway to answer through chaosgate's upstreams.")(command)
    command = click.option(
        "--attach-admin", "attach_admin", default=None, metavar="URL",
        help="With --attach: where the gateway's view of health is read (Envoy's admin URL, HAProxy's stats socket "
             "tcp://HOST:PORT, the LiteLLM proxy's URL); without it, expectations that need that view are refused.")(command)
    return click.option(
        "--attach", "attach_url", default=None, metavar="URL",
        help="Use the gateway running at URL instead of starting one: chaosgate starts Toxiproxy and the replicas, "
             "prints the addresses the gateway's upstreams must point at, and waits until it answers through them.")(command)


def _without_view(loaded: list[tuple[Path, Scenario]], errors: list[str], gateway: str | None,
                  gateway_config: Path | None, allow_hosts: tuple[str, ...]) -> tuple[list[tuple[Path, Scenario]], list[str]]:
    """The scenarios loaded again as an attached gateway without --attach-admin runs them: the expectations that
    need the gateway's view are refused, unless that view comes from the logs of the file chaosgate writes."""
    kept: list[tuple[Path, Scenario]] = []
    for file, scenario in loaded:
        if log_view(scenario):
            kept.append((file, scenario))
            continue
        try:
            kept.append((file, load_scenario(file, gateway, gateway_config, allow_hosts, gateway_view=False)))
        except ScenarioError as exc:
            errors = [*errors, str(exc)]
    return kept, errors


def _attach(attach_url: str | None, attach_admin: str | None, attach_wait: float, scenario: Scenario,
            allow_hosts: tuple[str, ...], runtime: str) -> Attach | None:
    """The --attach options, checked against the scenario (AttachError saying what is wrong); None without --attach."""
    if attach_url is None:
        if attach_admin is not None:
            raise AttachError("--attach-admin needs --attach URL (the gateway chaosgate attaches to)")
        return None
    if runtime != "local":
        raise AttachError(ATTACH_REFUSED)
    attach = replace(parse_attach(attach_url, attach_admin, scenario.gateway.kind, allow_hosts, attach_wait),
                     log_view=log_view(scenario))
    if problems := scenario_problems(attach, scenario):
        raise AttachError("cannot attach: " + "; ".join(problems))
    return attach


def _native_kind(path: Path, gateway: str | None) -> str | None:
    """The gateway kind of ``path`` when it is a gateway's own file rather than a scenario (``chaosgate lint FILE``):
    by its name (envoy*.yaml, haproxy*.cfg, nginx*.conf, litellm*.yaml), or with --gateway, any file that is
    not a scenario. A YAML file with a top-level ``upstreams`` is a scenario whatever its name
    (scenarios/traps/litellm-no-health.yaml)."""
    if path.is_dir():
        return None
    data: object = None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            data = None
        if isinstance(data, dict) and "upstreams" in data:
            return None
    if (kind := kind_of_file(path)) is not None:
        return gateway or kind
    if gateway is None:
        return None
    if path.suffix.lower() not in (".yaml", ".yml"):
        return gateway
    return gateway if isinstance(data, dict) else None


class ChaosgateGroup(click.Group):
    """The command group, whose every command ends in one of the documented exit codes.

    What a command does not handle itself is mapped here: a ChaosgateError (bad input, environment)
    is its message and exit 2, an OSError (a file that cannot be written, ...) too; KeyboardInterrupt
    is exit 130; anything else is a bug in chaosgate: one line saying so and where the traceback was
    written, exit 3. Stacks are torn down by the commands' own ``finally`` before this is reached.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, BrokenPipeError):
            raise  # click's own exits and usage errors (exit 2), and a closed pipe (click handles it)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except ChaosgateError as exc:
            click.echo(str(exc), err=True)
            sys.exit(EXIT_UNRUNNABLE)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"chaosgate: {where}{exc.strerror or exc}", err=True)
            sys.exit(EXIT_UNRUNNABLE)
        except Exception as exc:
            click.echo(crash.one_line(exc, crash.record(exc)), err=True)
            sys.exit(EXIT_BUG)


@click.group(cls=ChaosgateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chaosgate")
def main() -> None:
    """chaosgate: break an AI gateway's upstreams on purpose and check that it copes.

    A scenario (YAML) names a gateway, pools of fake model replicas, a load, faults on a
    schedule and what the gateway must do (expect:). `run` starts the real stack
    (Envoy → Toxiproxy → fake replicas), drives Locust load through it, injects the faults,
    journals everything and judges the expectations.

    Exit codes: 0 every expectation held, 1 one failed, 2 the input or the environment is wrong,
    3 a bug in chaosgate (one line says where its traceback was written), 130 interrupted.
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", default=Path("reports"), show_default=True, type=click.Path(path_type=Path),
              help="Folder for results: OUT/<scenario>/journal.jsonl, summary.json, index.html.")
@click.option("--runtime", default="local", show_default=True, type=click.Choice(sorted(RUNTIMES)),
              help="Where the stack runs.")
@click.option("--junit", "junit_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a JUnit XML file: one test case per expectation, grouped by scenario.")
@click.option("--gateway", default=None, type=click.Choice(sorted(GATEWAYS)),
              help="Run with this gateway instead of the scenario's gateway.kind (its settings are checked against it).")
@click.option("--strict", is_flag=True,
              help="Refuse to run (exit 2) when the lint finds a configuration trap (see `chaosgate lint --help`); "
                   "without it, traps are printed as warnings and recorded in the report.")
@own_config_options
@attach_options
@distribution_options
@click.option("--parallel", "parallel", default=None, type=click.IntRange(min=1), metavar="N",
              help="Run the scenarios N at a time, each in a child `chaosgate run` of its own (its output in "
                   "OUT/<scenario>/chaosgate.log); not with --attach, --remote-workers or --master-port "
                   "(docs/parallel.md).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output, only the verdicts.")
def run(paths: tuple[Path, ...], out_dir: Path, runtime: str, junit_file: Path | None, gateway: str | None,
        strict: bool, gateway_config: Path | None, allow_hosts: tuple[str, ...], attach_url: str | None,
        attach_admin: str | None, attach_wait: float, workers: int | None, remote_workers: int, master_bind: str,
        master_port: int, join_timeout: float, parallel: int | None, quiet: bool) -> None:
    """Run scenario files, or every scenario in folders, and judge them.

    Each scenario writes OUT/<scenario>/ (journal.jsonl, summary.json and the HTML report
    index.html); OUT/index.html lists every run in OUT with its verdict. With --parallel N,
    N scenarios run at a time, each in a process of its own.

    Exits 0 when every expectation held, 1 when one failed, 2 when a scenario could
    not be run, 130 when interrupted.
    """
    from harness.run import run_scenario

    _stop_on_signals()
    loaded, errors = _load_all(paths, gateway, gateway_config, allow_hosts)
    if attach_url is not None and attach_admin is None:  # no view of health: what needs it is refused
        loaded, errors = _without_view(loaded, errors, gateway, gateway_config, allow_hosts)
    attach: Attach | None = None
    if parallel is not None:  # what cannot run side by side: --attach, two scenarios of one name, one master port
        errors += refusals(loaded, attach=attach_url is not None or attach_admin is not None)
        errors += distribution_refusals(remote_workers, master_port)
    elif attach_url is not None and len(loaded) + len(errors) > 1:
        errors.append("--attach runs one scenario at a time (the gateway must be pointed at each run's upstreams); "
                      "give one scenario file")
    elif loaded:
        try:
            attach = _attach(attach_url, attach_admin, attach_wait, loaded[0][1], allow_hosts, runtime)
        except AttachError as exc:
            errors.append(str(exc))
    if strict:  # every trap is an error, found before anything starts
        errors += [f"{finding} (--strict)" for file, scenario in loaded for finding in lint_file(file, scenario)]
    if errors:
        for error in errors:
            click.echo(error, err=True)
        sys.exit(EXIT_UNRUNNABLE)
    if parallel is not None:
        load_args = distribution_args(workers, master_bind, join_timeout)
        jobs = [Job(scenario.name, file, run_command(file, out_dir, runtime, gateway, strict, gateway_config, allow_hosts,
                                                     load_args), out_dir / scenario.name / CHILD_LOG)
                for file, scenario in loaded]
        sys.exit(_run_parallel(jobs, parallel, out_dir, junit_file, quiet))
    progress = Progress(quiet=quiet)
    outcomes: list[tuple[str, bool | None]] = []
    distribution = _distribution(workers, remote_workers, master_bind, master_port, join_timeout)
    for file, scenario in loaded:
        try:
            result = run_scenario(scenario, file, file.read_text(), out_dir, runtime, progress, gateway_override=gateway,
                                  allow_hosts=allow_hosts, attach=attach, distribution=distribution)
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted; the stack was torn down; partial results in {out_dir / scenario.name}", err=True)
            _suite_outputs(out_dir, [*(name for name, _ in outcomes), scenario.name], junit_file)
            sys.exit(EXIT_INTERRUPTED)
        except ChaosgateError as exc:
            click.echo(f"[{scenario.name}] could not run: {exc}", err=True)
            outcomes.append((scenario.name, None))
            continue
        _print_verdicts(result.summary)
        click.echo(f"  report: {result.run_dir / 'index.html'}")
        outcomes.append((scenario.name, result.judgement.passed))
    _print_suite(outcomes)
    _suite_outputs(out_dir, [name for name, _ in outcomes], junit_file)
    if any(passed is None for _, passed in outcomes):
        sys.exit(EXIT_UNRUNNABLE)
    sys.exit(EXIT_PASSED if all(passed for _, passed in outcomes) else EXIT_FAILED)


def _say_started(job: Job, running: int, waiting: int, quiet: bool) -> None:
    """A parallel suite's line as a child run starts."""
    if not quiet:
        click.echo(f"[{job.name}] started ({running} running, {waiting} waiting); output: {job.log}", err=True)


def _say_ended(end: Ended, quiet: bool) -> None:
    """A parallel suite's line as a child run ends (quiet: only for one that could not run)."""
    word = {EXIT_PASSED: "passed", EXIT_FAILED: "FAILED", EXIT_INTERRUPTED: "interrupted"}.get(
        end.code, f"could not run (exit {end.code}; see {end.job.log})")
    if not quiet or end.code not in (EXIT_PASSED, EXIT_FAILED, EXIT_INTERRUPTED):
        click.echo(f"[{end.job.name}] {word} in {end.seconds:.1f}s", err=True)


def _say_interrupted(running: list[Job]) -> None:
    click.echo(f"\ninterrupted: no new run starts; stopping {', '.join(j.name for j in running) or 'nothing'} "
               f"(SIGKILL after {GRACE_S:g}s)", err=True)


def _run_parallel(jobs: list[Job], parallel: int, out_dir: Path, junit_file: Path | None, quiet: bool) -> int:
    """The jobs N at a time (harness/parallel.py): a line as each starts and ends, each one's verdicts as a
    serial run prints them, then the suite index and JUnit of the runs that started; the worst exit code."""
    def ended(end: Ended) -> None:
        _say_ended(end, quiet)
        summary = read_summary(out_dir / end.job.name)
        if summary is not None and end.code in (EXIT_PASSED, EXIT_FAILED):
            _print_verdicts(summary)
            click.echo(f"  report: {out_dir / end.job.name / 'index.html'}")

    if not quiet:
        click.echo(f"{len(jobs)} scenarios, {parallel} at a time", err=True)
    scheduler = Scheduler(jobs, parallel, on_start=functools.partial(_say_started, quiet=quiet), on_end=ended,
                          on_interrupt=_say_interrupted)
    with interrupt_on_signals(scheduler):
        outcome = scheduler.run()
    codes = {end.job.name: end.code for end in outcome.ended}
    names = [job.name for job in jobs if job.name in codes]  # the order of the files, as a serial run
    if outcome.killed:
        click.echo(f"killed after {GRACE_S:g}s: {', '.join(outcome.killed)}", err=True)
    _print_suite([(name, {EXIT_PASSED: True, EXIT_FAILED: False}.get(codes[name])) for name in names])
    _suite_outputs(out_dir, names, junit_file)
    return outcome.exit_code


def _suite_outputs(out_dir: Path, names: list[str], junit_file: Path | None) -> None:
    """The suite index of OUT, and the JUnit file of the scenarios of this invocation."""
    index = write_index(out_dir) if out_dir.is_dir() else None
    if index is not None and len(names) > 1:
        click.echo(f"suite report: {index}")
    if junit_file is not None:
        summaries = []
        for name in names:  # a scenario that could not start still left a summary marked incomplete
            summary = read_summary(out_dir / name)
            summaries.append(summary or {"scenario": name, "complete": False, "outcome": "failed",
                                         "error": "no summary was written", "expectations": []})
        _write_junit(junit_file, summaries)


def _write_junit(path: Path, summaries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(summaries), encoding="utf-8")
    click.echo(f"junit: {path}")


def _print_verdicts(summary: dict[str, Any]) -> None:
    state = "PASSED" if summary["passed"] else ("INCOMPLETE" if not summary["complete"] else "FAILED")
    click.echo(f"{summary['scenario']}: {state}  ({summary['requests']} requests, "
               f"{summary['failed_requests']} failed, {summary['duration']:.1f}s)")
    for v in summary["expectations"]:
        mark = click.style("pass", fg="green") if v["passed"] else click.style("FAIL", fg="red")
        promised = f" [promised {v['promised']['text']}]" if v.get("promised") and v["bound"] != f"in {v['promised']['text']}" else ""
        click.echo(f"  {mark}  {v['kind']:<20} bound {v['bound']:<10} measured {v['measured']:<10} {v['detail']}{promised}")
    for fault in summary.get("faults", []):
        for which, text in fault.get("not_observed", {}).items():
            click.echo(f"  note  {fault['fault']}: {which} {text}")


def _print_suite(outcomes: list[tuple[str, bool | None]]) -> None:
    if len(outcomes) < 2:
        return
    words = {True: "passed", False: "FAILED", None: "could not run"}
    click.echo("\nsuite: " + ", ".join(f"{name} {words[passed]}" for name, passed in outcomes))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--gateway", default=None, type=click.Choice(sorted(GATEWAYS)),
              help="Check the scenarios as if their gateway.kind were this gateway (and print its promised windows).")
@own_config_options
def validate(paths: tuple[Path, ...], gateway: str | None, gateway_config: Path | None,
             allow_hosts: tuple[str, ...]) -> None:
    """Check scenario files without running anything; print every problem with file and line.

    For each valid file: the lint's findings (`chaosgate lint`), and per fault the detection and
    recovery windows the gateway's configuration promises, with how each was derived (from the
    nominal load: a run computes them again from the load it measured).
    """
    from harness.promise.preview import describe

    loaded, errors = _load_all(paths, gateway, gateway_config, allow_hosts)
    for file, scenario in loaded:
        click.echo(f"{file}: ok")
        for finding in lint_file(file, scenario):
            click.echo(str(finding))
        for note in not_applicable(scenario):
            click.echo(f"{file}: warning: {note}")
        for line in describe(scenario):
            click.echo(f"  {line}")
    for error in errors:
        click.echo(error, err=True)
    sys.exit(EXIT_UNRUNNABLE if errors else EXIT_PASSED)


@main.command(epilog="\b\nTraps:\n" + "\n".join(f"  {t.id:<28} {t.severity:<7} {t.summary}" for t in TRAPS)
              + "\n\n\b\nChecks of the scenario itself, on every gateway:\n"
              + "\n".join(f"  {c.id:<31} {c.severity:<7} {c.summary}" for c in CHECKS))
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--gateway", default=None, type=click.Choice(sorted(GATEWAYS)),
              help="Lint the scenarios as if their gateway.kind were this gateway.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too, not only on errors.")
@click.option("--windows", is_flag=True, help="Also print, per fault, the promised detection and recovery windows "
                                              "and how each was derived (as `chaosgate validate` does).")
@own_config_options
def lint(paths: tuple[Path, ...], gateway: str | None, strict: bool, windows: bool, gateway_config: Path | None,
         allow_hosts: tuple[str, ...]) -> None:
    """Name the configuration traps in scenario files before anything runs.

    A trap is a gateway setting, often a default, that silently defeats what the scenario
    assumes: Envoy's no-traffic interval that delays the first checks, the panic threshold that
    routes to broken replicas, a max_ejection_percent that ejects nothing, active checks that
    un-eject what outlier detection ejected, and the like (list below; docs/lint.md). Each
    finding names the file, the line and the scenario field, what happens and what to change:

    \b
      scenarios/traps/envoy-panic-threshold.yaml:30:3: warning [envoy.panic-threshold] gateway.panic_threshold: is 50%: ...

    It also checks the scenario itself on every gateway (list below): `within: promised` against a
    configuration that promises never, windows the run cannot show, durations without a unit.

    A gateway's own file is linted directly (`chaosgate lint deploy/envoy.yaml`; the kind from the
    file's name, or --gateway): every trap of every cluster, backend, upstream block or model group,
    at the line where it lives or where the missing setting belongs (docs/own-config.md).

    `chaosgate run` runs the same lint first and prints its findings as warnings (`run --strict`
    refuses to run instead). Severity `error`: the configuration guarantees a mechanism does
    nothing; `warning`: the trap bites depending on timing or load.

    Exits 0 when no trap was found (or only warnings, without --strict), 1 when one was,
    2 when a file is invalid.
    """
    from harness.promise.preview import describe

    native = {path: kind for path in paths if (kind := _native_kind(path, gateway)) is not None}
    findings: list[Finding] = []
    errors: list[str] = []
    for path, kind in native.items():
        try:
            findings += lint_native(path, kind)
        except ScenarioError as exc:
            errors.append(str(exc))
    scenario_paths = tuple(path for path in paths if path not in native)
    loaded, scenario_errors = _load_all(scenario_paths, gateway, gateway_config, allow_hosts) if scenario_paths \
        else ([], [])
    errors += scenario_errors
    findings += [finding for file, scenario in loaded for finding in lint_file(file, scenario)]
    for finding in findings:
        click.echo(str(finding))
    for file, scenario in loaded if windows else []:
        click.echo(f"{file}:")
        for line in describe(scenario):
            click.echo(f"  {line}")
    for error in errors:
        click.echo(error, err=True)
    if errors:
        sys.exit(EXIT_UNRUNNABLE)
    failing = findings if strict else [f for f in findings if f.severity == "error"]
    files = len(loaded) + len(native)
    click.echo(f"{files} file{'s' if files != 1 else ''}, {len(findings)} finding{'s' if len(findings) != 1 else ''}"
               + (f" ({len(failing)} failing)" if failing else ""), err=True)
    sys.exit(EXIT_FAILED if failing else EXIT_PASSED)


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
@click.option("--gateway", default=None, type=click.Choice(sorted(GATEWAYS)),
              help="Start this gateway instead of the scenario's gateway.kind.")
@own_config_options
@attach_options
def up(scenario_file: Path, port: int | None, out_dir: Path, runtime: str, gateway: str | None,
       gateway_config: Path | None, allow_hosts: tuple[str, ...], attach_url: str | None, attach_admin: str | None,
       attach_wait: float) -> None:
    """Start a scenario's stack, print its endpoints, and keep it up until Ctrl-C.

    No load and no faults are run; send requests yourself, and break replicas through
    the Toxiproxy API that is printed. Each change of the gateway's view of a replica is
    printed with the gateway's own words for it (Envoy's health flags, HAProxy's check status,
    the line of nginx's error log, LiteLLM's cooldown and health-check state).

    With --attach URL, no gateway is started: the gateway running at URL is pointed at the printed
    addresses (or loads the printed file), and its view of health is printed with --attach-admin.
    """
    _stop_on_signals()
    try:
        scenario = load_scenario(scenario_file, gateway, gateway_config, allow_hosts)
        attach = _attach(attach_url, attach_admin, attach_wait, scenario, allow_hosts, runtime)
        if attach is not None and port is not None:
            raise AttachError("--port sets where a gateway chaosgate starts listens; with --attach, the gateway "
                              "listens where you started it (the port of --attach)")
    except (ScenarioError, AttachError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_UNRUNNABLE)
    stack_runtime = RUNTIMES[runtime]()
    try:
        check_supported(scenario, runtime, stack_runtime.capabilities)
        stack = stack_runtime.up(scenario, out_dir / scenario.name, gateway_port=port, attach=attach) \
            if attach is not None else stack_runtime.up(scenario, out_dir / scenario.name, gateway_port=port)
        click.echo(json.dumps(stack.endpoints(), indent=2))
        click.echo(f"stack of {scenario.name} is up; Ctrl-C to stop", err=True)
        if stack.process_control is not None:  # dead replicas are restarted here too, and said so
            stack.process_control.watch(lambda type, **fields: click.echo(
                f"{time.strftime('%H:%M:%S')} {fields.get('replica')} {type} pid {fields.get('pid')}", err=True))
        last: dict[str, HostHealth] = {}
        while True:  # report the gateway's view of health as it changes, until interrupted
            current = stack.replica_health() if stack.gateway_view else {}
            for name, health in current.items():
                if (line := health_line(last.get(name), health)) is not None:
                    click.echo(f"{time.strftime('%H:%M:%S')} {name} {line}", err=True)
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


def health_line(before: HostHealth | None, now: HostHealth) -> str | None:
    """What `up` prints when the gateway's view of a replica changes (None: nothing worth a line):
    healthy or UNHEALTHY, and the gateway's own words for why; an unhealthy replica whose reason
    changes (HAProxy's 'DOWN 1/2 L4CON' becoming 'DOWN L7STS') gets a line too."""
    if before is not None and before.healthy == now.healthy and (now.healthy or before.why == now.why):
        return None
    state = "healthy" if now.healthy else "UNHEALTHY"
    return state + (f" ({now.why})" if now.why and now.why.lower() != state.lower() else "")


def _gateway_list(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in GATEWAYS]
    if unknown or not names:
        raise click.BadParameter(f"expected a comma-separated list of {', '.join(sorted(GATEWAYS))}; "
                                 f"got {value!r}")
    return list(dict.fromkeys(names))


def _gateway_configs(values: tuple[str, ...]) -> dict[str, Path]:
    """``--gateway-config [KIND=]PATH`` of compare, by gateway kind (click.BadParameter for a bad one)."""
    configs: dict[str, Path] = {}
    for value in values:
        kind, _, path = value.rpartition("=") if "=" in value else ("", "", value)
        kind = kind or kind_of_file(Path(path)) or ""
        if kind not in GATEWAYS:
            raise click.BadParameter(f"{value!r}: expected KIND=PATH with KIND one of {', '.join(sorted(GATEWAYS))}, "
                                     "or a file named after its gateway (envoy*.yaml, haproxy*.cfg, nginx*.conf, "
                                     "litellm*.yaml)", param_hint="--gateway-config")
        if not Path(path).is_file():
            raise click.BadParameter(f"{path!r}: no such file", param_hint="--gateway-config")
        if kind in configs:
            raise click.BadParameter(f"two files for {kind}: {configs[kind]} and {path}", param_hint="--gateway-config")
        configs[kind] = Path(path)
    return configs


@main.command(name="compare")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--gateways", default=",".join(GATEWAYS), show_default=True, callback=_gateway_list,
              help="Comma-separated gateways to run each scenario against, in this order.")
@click.option("--out", "out_dir", default=Path("reports/compare"), show_default=True, type=click.Path(path_type=Path),
              help="Folder for the results. One file: OUT/compare.html (.md, .json) and OUT/<gateway>/<scenario>/. "
                   "Several: OUT/<scenario>/ (each as for one file) and the index OUT/index.html (.md, .json).")
@click.option("--runtime", default="local", show_default=True, type=click.Choice(sorted(RUNTIMES)))
@click.option("--gateway-config", "gateway_configs", multiple=True, metavar="[KIND=]PATH",
              help="Run gateway KIND from this file of yours instead of the scenario's gateway block (the kind from "
                   "the file's name when KIND= is left out: envoy*.yaml, haproxy*.cfg, nginx*.conf, litellm*.yaml); "
                   "repeat for several gateways (docs/own-config.md).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="A host off this machine the gateways' files may send traffic to (repeat for several).")
@distribution_options
@click.option("--parallel", "parallel", default=None, type=click.IntRange(min=1), metavar="N",
              help="Run N of the comparison's runs (one per scenario and gateway) at a time, each in a child "
                   "`chaosgate run` of its own (its output in its run folder's chaosgate.log); not with "
                   "--remote-workers or --master-port (docs/parallel.md).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output, only the results and the page's path.")
def compare_gateways_command(paths: tuple[Path, ...], gateways: list[str], out_dir: Path, runtime: str,
                             gateway_configs: tuple[str, ...], allow_hosts: tuple[str, ...], workers: int | None,
                             remote_workers: int, master_bind: str, master_port: int, join_timeout: float,
                             parallel: int | None, quiet: bool) -> None:
    """Run scenarios against each gateway in turn and compare the gateways.

    \b
    chaosgate compare FILE --gateways envoy,nginx --out OUT
        one scenario: one table, OUT/compare.html (.md, .json); each run in OUT/<gateway>/<scenario>/
    chaosgate compare FOLDER|FILE... --gateways envoy,haproxy,nginx,litellm --out OUT
        several (a folder: its *.yaml, sorted, not recursive): each scenario's table and runs in
        OUT/<scenario>/, and an index OUT/index.html (.md, .json) with one row per scenario and one
        column per gateway (status; per fault, detection and recovery, kept or OUTSIDE the promised
        window). Two files naming the same scenario are refused before anything runs.

    Per gateway: the time to detect each fault and to recover, inside or outside the window the
    gateway's own configuration promises (n/a where no formula covers it), what clients saw during
    the fault (errors by kind, requests that reached the broken replica after detection) and, for a
    fault on every replica, the all-down answer (status and body). A gateway the scenario's settings
    do not fit is listed as not run, with the reason.

    Exits (over all scenarios) 2 when a gateway could not be run, else 1 when an expectation failed,
    else 0; 130 when interrupted (what finished is kept, and with several files, in the index).
    """
    from harness.compare import GatewayFiles, compare_gateways
    from harness.compare.render import result_lines
    from harness.compare.suite import SuiteProgress, exit_status, plan_suite, run_suite

    _stop_on_signals()
    files = GatewayFiles(_gateway_configs(gateway_configs), allow_hosts,
                         _distribution(workers, remote_workers, master_bind, master_port, join_timeout))
    if parallel is not None:
        sys.exit(_compare_parallel(paths, gateways, out_dir, runtime, files, parallel, quiet,
                                   distribution_refusals(remote_workers, master_port),
                                   distribution_args(workers, master_bind, join_timeout)))
    if len(paths) == 1 and paths[0].is_file():
        try:
            table = compare_gateways(paths[0], gateways, out_dir, runtime, Progress(quiet=quiet), files)
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted; the stack was torn down; partial results in {out_dir}", err=True)
            sys.exit(EXIT_INTERRUPTED)
        click.echo("\n".join(result_lines(table)))
        click.echo(f"comparison: {out_dir / 'compare.html'}")
        sys.exit(exit_status([table]))
    try:
        entries = plan_suite(list(scenario_files(paths)), gateways)
    except ChaosgateError as exc:
        click.echo(f"{exc}\nnothing was run", err=True)
        sys.exit(EXIT_UNRUNNABLE)
    try:
        index = run_suite(entries, gateways, out_dir, runtime, SuiteProgress(quiet=quiet), files)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the stack was torn down; what finished is in {out_dir / 'index.html'}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    for table in index.tables:
        click.echo("\n".join(result_lines(table, f"{table.scenario:<14} ")))
    click.echo(f"index: {out_dir / 'index.html'}")
    sys.exit(exit_status(index.tables))


def _compare_parallel(paths: tuple[Path, ...], gateways: list[str], out_dir: Path, runtime: str,
                      files: GatewayFiles, parallel: int, quiet: bool, refused: list[str], load_args: tuple[str, ...]) -> int:
    """``compare --parallel N``: the runs N at a time (harness/compare/parallel.py), a line as each starts and
    ends, then each scenario's result lines as a serial comparison prints them; the exit code of a serial one."""
    from harness.compare.parallel import PlannedComparison, compare_in_parallel
    from harness.compare.render import result_lines
    from harness.compare.suite import exit_status, plan_suite

    one_file = len(paths) == 1 and paths[0].is_file()
    entries = []
    try:
        entries = plan_suite(list(scenario_files(paths)), gateways)
    except ChaosgateError as exc:
        refused.append(str(exc))
    if refused:
        click.echo("\n".join(refused) + "\nnothing was run", err=True)
        return EXIT_UNRUNNABLE
    comparisons = [PlannedComparison(e.file, out_dir if one_file else out_dir / e.name) for e in entries]
    if not quiet:
        click.echo(f"{len(entries)} scenario(s) on {len(gateways)} gateway(s), {parallel} runs at a time", err=True)
    tables, outcome = compare_in_parallel(comparisons, gateways, parallel, runtime, files, load_args,
                                          None if one_file else out_dir, functools.partial(_say_started, quiet=quiet),
                                          functools.partial(_say_ended, quiet=quiet), _say_interrupted)
    if outcome.killed:
        click.echo(f"killed after {GRACE_S:g}s: {', '.join(outcome.killed)}", err=True)
    for table in tables:
        click.echo("\n".join(result_lines(table, "" if one_file else f"{table.scenario:<14} ")))
    click.echo(f"comparison: {out_dir / 'compare.html'}" if one_file else f"index: {out_dir / 'index.html'}")
    return EXIT_INTERRUPTED if outcome.interrupted else exit_status(tables)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Where to write (default: beside each journal). One run: OUT/summary.json and OUT/index.html; "
                   "several: OUT/<run folder>/ and the suite index OUT/index.html.")
@click.option("--baseline", default=None, type=click.Path(exists=True, path_type=Path),
              help="An earlier run (journal, run folder or suite folder) to compare with: per expectation, "
                   "the measured value then and now. Writes compare.html.")
@click.option("--junit", "junit_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a JUnit XML file: one test case per expectation, grouped by scenario.")
def report(paths: tuple[Path, ...], out_dir: Path | None, baseline: Path | None, junit_file: Path | None) -> None:
    """Judge past runs again from their journals and rewrite their summaries and HTML reports.

    PATHS are journal files, run folders (holding journal.jsonl) or suite folders (holding
    run folders). A run that was killed or interrupted renders as a report marked incomplete.

    \b
      chaosgate report reports/replica-reset/journal.jsonl
      chaosgate report reports/                          # every run, and the suite index
      chaosgate report --baseline old-reports/ reports/  # then and now, per expectation

    A journal with a malformed line (a wrong type, a missing field, an unknown event, a line
    that is not a JSON object) is not judged: every such line is printed as FILE:LINE with what
    was expected, and the other journals are still judged. Only a cut-short last line (a run
    killed while writing it) is skipped, with a warning.

    Exits 0 when every expectation held, 1 when one failed or a run is incomplete,
    2 when a journal cannot be read.
    """
    journals = [journal for path in paths for journal in journals_in(path)]
    summaries = []
    unreadable = 0
    for journal in journals:
        target = journal.parent if out_dir is None else out_dir / ("" if len(journals) == 1 else journal.parent.name)
        try:
            outputs = write_outputs(journal, target, warn=lambda message: click.echo(message, err=True))
        except JournalError as exc:
            click.echo(f"{exc}\n{journal}: not judged (its report was not rewritten)", err=True)
            unreadable += 1
            continue
        _print_verdicts(outputs.summary)
        click.echo(f"  report: {outputs.report}")
        summaries.append(outputs.summary)
    suites = [out_dir] if out_dir is not None and len(journals) > 1 else \
        [p for p in paths if p.is_dir() and not (p / "journal.jsonl").exists()]
    for suite in suites:
        if suite.is_dir() and (index := write_index(suite)) is not None:
            click.echo(f"suite report: {index}")
    if baseline is not None:
        then = [load_run(j).summary() for j in journals_in(baseline)]
        comparison = compare(str(baseline), " ".join(map(str, paths)), then, summaries)
        _print_comparison(comparison)
        where = out_dir or (paths[0] if paths[0].is_dir() else paths[0].parent)
        where.mkdir(parents=True, exist_ok=True)
        (where / "compare.html").write_text(render_comparison(comparison), encoding="utf-8")
        click.echo(f"comparison: {where / 'compare.html'}")
    if junit_file is not None:
        _write_junit(junit_file, summaries)
    if unreadable:
        sys.exit(EXIT_UNRUNNABLE)
    sys.exit(EXIT_PASSED if all(s["passed"] for s in summaries) else EXIT_FAILED)


def _print_comparison(comparison: Comparison) -> None:
    click.echo(f"\ncompared with baseline {comparison.baseline}:")
    for scenario in comparison.scenarios:
        if scenario.then is None or scenario.now is None:
            click.echo(f"{scenario.scenario}: {'not in the baseline' if scenario.then is None else 'not in the new run'}")
            continue
        click.echo(f"{scenario.scenario}:")
        for row in scenario.rows:
            v = row.verdict
            then = row.then["measured"] if row.then else "-"
            now = row.now["measured"] if row.now else "-"
            change = f"{row.change} {row.delta_text}".strip()
            if row.change in ("regressed", "worse"):
                change = click.style(change, fg="red")
            click.echo(f"  {v['kind']:<20} bound {v['bound']:<10} then {then:<10} now {now:<10} {change}")



@main.command()
@click.option("--envoy-admin", "admin_url", default=None, metavar="URL",
              help="A running Envoy's admin API (e.g. http://127.0.0.1:9901): clusters, live health flags, config.")
@click.option("--config", "config_file", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An Envoy config file, where no admin API is reachable (health unknown: every host is walked).")
@click.option("--mcp", "mcp_clusters", multiple=True, metavar="CLUSTER",
              help="A cluster whose hosts serve MCP over Streamable HTTP (repeatable); other clusters are "
                   "taken as OpenAI-compatible.")
@click.option("--anthropic", "anthropic_clusters", multiple=True, metavar="CLUSTER",
              help="A cluster whose hosts serve Anthropic's Messages API (repeatable): its inference probe "
                   "is a message on /v1/messages instead of a chat completion.")
@click.option("--cluster", "only", multiple=True, metavar="CLUSTER", help="Only these clusters (repeatable).")
@click.option("--all", "all_hosts", is_flag=True, help="Walk healthy hosts too (finds gray failures a shallow "
              "health check misses).")
@click.option("--mcp-path", default="/mcp", show_default=True, help="Path of the MCP endpoint on the hosts.")
@click.option("--model", default=None, help="Model for the inference probe (default: the first of /v1/models).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@click.option("-v", "--verbose", is_flag=True, help="Show every layer's evidence, not only the failing one.")
def diagnose(admin_url: str | None, config_file: Path | None, mcp_clusters: tuple[str, ...],
             anthropic_clusters: tuple[str, ...], only: tuple[str, ...],
             all_hosts: bool, mcp_path: str, model: str | None, as_json: bool, verbose: bool) -> None:
    """Name the root cause of "no healthy upstream", host by host, layer by layer.

    Lists every cluster and host with the gateway's own health flags, then walks each
    unhealthy host through the layers and stops at the first that fails:

    \b
      dns          the name, with the gateway's own resolver (DNS clusters only)
      tcp          connect: refused, timeout, accepted-then-closed, reset
      tls          the certificate: expired, not yet valid, wrong name, untrusted CA
      http_health  the gateway's health check replayed: method, path, status, body, timeout
      protocol     HTTP/1.1 vs HTTP/2 (ALPN, h2c), the API's content type
      mcp          MCP handshake and schema (clusters given with --mcp)
      inference    a minimal chat completion, plain and streamed (OpenAI clusters), or
                   a minimal message on /v1/messages (clusters given with --anthropic)

    Each failure names a cause from Table 1 of the seed article with its evidence and
    what to do next (docs/diagnose.md). Probes go only to loopback addresses (127.0.0.0/8,
    ::1), with short timeouts and bounded attempts.

    \b
      chaosgate diagnose --envoy-admin http://127.0.0.1:9901
      chaosgate diagnose --config envoy.yaml --mcp tools --json

    Exits 0 when every host is healthy, 1 when one is unhealthy (to the gateway or to a
    probe), 2 when the gateway's view could not be read.
    """
    from harness.diagnose import DiagnoseError, ProbeSettings, diagnose_view, from_admin, from_config
    from harness.diagnose.render import render_table

    if (admin_url is None) == (config_file is None):
        click.echo("give exactly one of --envoy-admin URL or --config FILE", err=True)
        sys.exit(EXIT_UNRUNNABLE)
    kinds = {**{name: "mcp" for name in mcp_clusters}, **{name: "anthropic" for name in anthropic_clusters}}
    try:
        if config_file is not None:
            view = from_config(config_file, kinds)
        else:
            view = from_admin(str(admin_url), kinds)
    except DiagnoseError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_UNRUNNABLE)
    unknown = set(only) - {c.name for c in view.clusters}
    if unknown:
        click.echo(f"no cluster named {', '.join(sorted(unknown))} (clusters: "
                   f"{', '.join(c.name for c in view.clusters)})", err=True)
        sys.exit(EXIT_UNRUNNABLE)
    result = diagnose_view(view, ProbeSettings(mcp_path=mcp_path, model=model), all_hosts=all_hosts,
                           clusters=set(only) or None)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else render_table(result, verbose))
    sys.exit(EXIT_FAILED if result.unhealthy else EXIT_PASSED)


def _master_address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from harness.load.config import address

    try:
        address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


@main.command()
@click.option("--master", required=True, metavar="HOST:PORT", callback=_master_address,
              help="The Locust master of a run (`chaosgate run --remote-workers K` prints its address).")
def worker(master: str) -> None:
    """Join a run's load as one more Locust worker, from this machine or another (docs/distributed.md).

    The run's master sends the load's settings at its start, so nothing but its address is needed here;
    the worker ends when the run's load does. Its requests go to the gateway the run names and are
    journalled by the run, with this worker's id.
    """
    import os

    root = str(Path(__file__).resolve().parent.parent)  # where harness is, for the new interpreter
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    # A process of its own: Locust patches the interpreter with gevent when imported.
    os.execve(sys.executable, [sys.executable, "-m", "harness.load.node", "--master", master],
              {**os.environ, "PYTHONPATH": path})

if __name__ == "__main__":
    main()
