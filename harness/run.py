"""The pipeline of one scenario run: up → load + faults + observer → journal → judge → outputs.

Whatever happens (a failed expectation, a crash, Ctrl-C, SIGTERM), the stack is torn down,
every fault is cleared, and the journal and summary of what was seen are written.
"""

from __future__ import annotations

import platform
import shlex
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__, crash
from harness.attach import Attach
from harness.attempts import AttemptCollector, gateway_attempt_log, sources_for
from harness.diagnose.scheduled import join_all, start_diagnosis
from harness.errors import ChaosgateError, LoadError
from harness.gateway_events import health_event_sources
from harness.gateway_watch import GatewayWatch
from harness.faults.base import FaultContext
from harness.gateways import not_applicable
from harness.gateways.base import ReportsHealthRounds, ShapesLoad
from harness.journal import JournalWriter
from harness.lint import lint_text
from harness.judge import Judgement
from harness.load.config import Distribution, LoadConfig
from harness.load.generator import LoadGenerator
from harness.observer import HealthObserver
from harness.output import write_outputs
from harness.phases import PhaseClock
from harness.own_config import DIFF_SUFFIX, native_config
from harness.plan import DiagnosisAction, FaultAction, Plan, make_plan, together
from harness.progress import Progress, Status
from harness.runtimes import RUNTIMES, Stack
from harness.runtimes.base import RUN_MARKER, check_supported
from harness.scenario import Scenario

DRAIN_GRACE = 5.0  # after the load's duration, time for in-flight requests to end


@dataclass(frozen=True)
class RunResult:
    judgement: Judgement
    summary: dict[str, Any]
    run_dir: Path


def _own_file(scenario: Scenario) -> dict[str, str] | None:
    """The user's own gateway file (``gateway.config``) as the run reads it: its path and text, journalled so
    that judging the journal later reads what ran."""
    config = native_config(scenario)
    return None if config is None else {"file": config.file, "text": config.text}


def run_scenario(scenario: Scenario, file: Path, text: str, out_dir: Path, runtime_name: str = "local",
                 progress: Progress | None = None, gateway_override: str | None = None,
                 allow_hosts: Sequence[str] = (), attach: Attach | None = None,
                 distribution: Distribution | None = None) -> RunResult:
    """Run one scenario and write ``out_dir/<name>/`` (journal.jsonl, summary.json, index.html);
    ``gateway_override`` is the ``--gateway`` the scenario was loaded with (recorded in the command);
    ``attach``: the running gateway to use instead of starting one (harness/attach.py);
    ``distribution``: --workers and the other options of distributed load (docs/distributed.md)."""
    progress = progress or Progress(quiet=True)
    run_dir = out_dir / scenario.name
    plan = make_plan(scenario)
    findings = lint_text(scenario, text, str(file))  # configuration traps (harness/lint/), before anything starts
    warnings = [*(str(finding) for finding in findings), *not_applicable(scenario)]
    for line in [*(finding.without_severity() for finding in findings), *not_applicable(scenario)]:
        progress.warn(line)
    journal = JournalWriter(run_dir / "journal.jsonl")
    journal.write("run.started", scenario=scenario.name, file=str(file), text=text, seed=scenario.seed,
                  runtime=runtime_name, replicas=scenario.replicas, warnings=warnings,
                  traps=[finding.trap for finding in findings],
                  chaosgate=__version__, python=platform.python_version(), platform=platform.platform(),
                  command=f"chaosgate run {shlex.quote(str(file))} --runtime {runtime_name} --out {shlex.quote(str(out_dir))}"
                          + (f" --gateway {gateway_override}" if gateway_override else "")
                          + (f" --attach {attach.url}" if attach else "")
                          + (f" --attach-admin {attach.admin_url}" if attach and attach.admin_url else "")
                          + (f" --workers {distribution.workers}" if distribution and distribution.workers is not None else "")
                          + (f" --remote-workers {distribution.remote_workers}" if distribution and distribution.remote_workers
                             else ""),
                  gateway=scenario.gateway.kind, gateway_config=_own_file(scenario), allow_hosts=list(allow_hosts),
                  attach={"url": attach.url, "admin_url": attach.admin_url} if attach else None)
    outcome, error = "failed", None
    runtime = RUNTIMES[runtime_name]()
    attempts: AttemptCollector | None = None
    # The load's processes import Locust while the stack comes up; they learn the gateway's address at go.
    load = LoadGenerator(LoadConfig.for_scenario(scenario, "", distribution=distribution), journal, run_dir / "logs",
                         env={RUN_MARKER: str(run_dir.resolve())}, announce=lambda line: _announce(progress, line, distribution))
    try:
        check_supported(scenario, runtime_name, runtime.capabilities)
        progress.stage(f"[{scenario.name}] starting the stack ({runtime_name} runtime)")
        started = time.monotonic()
        # the load spawned once the runtime's checks passed (a scenario it refuses starts nothing)
        stack = runtime.up(scenario, run_dir, attach=attach, on_start=load.spawn) if attach is not None \
            else runtime.up(scenario, run_dir, on_start=load.spawn)
        gateway_log = gateway_attempt_log(stack.gateway, run_dir)
        journal.write("stack.ready", endpoints=stack.endpoints(), gateway_version=stack.gateway_version,
                      startup_seconds=round(time.monotonic() - started, 3), phases=stack.phases,
                      gateway_config=config.read_text() if (config := run_dir / stack.gateway.config_name).exists() else None,
                      # the rewritten user's file against the user's own (gateway.config; harness/own_config/)
                      gateway_config_diff=diff.read_text() if (diff := config.with_name(config.name + DIFF_SUFFIX)).exists()
                      else None,
                      # what the ``attempt`` events come from (harness/attempts.py)
                      # the user's own servers (upstreams[].address) log no attempts: only the fakes do
                      attempt_logs={"replica": not any(r.real for r in stack.replicas.values()),
                                    **({"replicas": [r.name for r in stack.replicas.values() if not r.real]}
                                       if any(r.real for r in stack.replicas.values()) else {}),
                                    "gateway_kind": stack.gateway.kind,
                                    "gateway": gateway_log.relative_to(run_dir).as_posix() if gateway_log else None})
        by_address = {stack.gateway_address(name): name for name in stack.replicas}
        attempts = AttemptCollector(journal, sources_for(run_dir, list(stack.replicas), stack.gateway, by_address)
                                    + health_event_sources(stack.gateway, run_dir, by_address))
        attempts.start()
        progress.stage(f"[{scenario.name}] stack ready in {time.monotonic() - started:.1f}s; "
                       f"gateway {stack.gateway.url}; running load for {plan.duration:g}s")
        _drive(scenario, plan, stack, journal, progress, load)
        outcome = "complete"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    except ChaosgateError as exc:
        error = str(exc)  # the report says why the run stopped: only this process knows
        raise
    except Exception as exc:  # a bug in chaosgate: its traceback goes to the run folder, the report says so
        error = f"a bug in chaosgate: {type(exc).__name__}: {exc} (traceback: {crash.record(exc, run_dir)})"
        raise
    finally:
        teardown = PhaseClock()
        load.stop()  # (already stopped when the load ran; here when the stack never came up)
        runtime.down()
        if attempts is not None:  # after teardown: the gateway has flushed its log on exit
            attempts.stop()
        journal.write("run.finished", outcome=outcome, error=error, teardown_seconds=round(teardown.since(), 3))
        journal.close()
        outputs = write_outputs(journal.path, run_dir)
    return RunResult(outputs.run.judgement, outputs.summary, run_dir)


def _announce(progress: Progress, line: str, distribution: Distribution | None) -> None:
    """Where the Locust master listens: a progress line, said even under --quiet when remote workers must join."""
    if distribution is not None and distribution.remote_workers and progress.quiet:
        print(line, file=progress.stream, flush=True)
    else:
        progress.stage(line)


def _drive(scenario: Scenario, plan: Plan, stack: Stack, journal: JournalWriter, progress: Progress,
           load: LoadGenerator) -> None:
    observer = HealthObserver(stack, journal)
    if stack.gateway_view:  # attached without --attach-admin: no view of health to read (harness/attach.py)
        observer.start()
    watch = GatewayWatch(stack.gateway.kind, stack.gateway_process, journal.write, stack.gateway_log) \
        if stack.gateway_process is not None else None
    if watch is not None:  # from here on, the gateway's exit is journalled (gateway.exited)
        watch.start()
    if stack.process_control is not None:  # from here on, dead replicas are restarted and journalled
        stack.process_control.watch(journal.write)
    # the model the load asks for: with LiteLLM, the model group bound to the load's pool (gateway.config)
    model = str(getattr(stack.gateway, "load_model", "fake-model"))
    active: list[FaultAction] = []
    diagnoses: list[threading.Thread] = []
    try:
        load_clock = PhaseClock()
        load.wait_ready()  # spawned before the stack came up: usually ready by now
        # what the gateway asks of each request (Portkey: its config, which it reads from a header of each request)
        gateway_target = stack.gateway.load_target() if isinstance(stack.gateway, ShapesLoad) else None
        t0 = load.go(stack.gateway.url, model, gateway_target)
        # how long the run waited for the load processes once the stack was ready (their imports, Locust's set-up)
        journal.write("load.started", ts=t0, startup_seconds=round(load_clock.since(), 3))
        schedule: list[tuple[FaultAction, ...] | DiagnosisAction] = [*together(plan.actions), *plan.diagnoses]
        for item in sorted(schedule, key=_due):  # stable: at equal times, faults first
            _sleep_until(t0 + _due(item), lambda: progress.status(_status(scenario, plan, t0, load, observer)))
            if isinstance(item, DiagnosisAction):  # probes run beside the schedule, never delaying it
                diagnoses.append(start_diagnosis(stack, item.replica, item.key, journal))
            else:
                _apply_together(item, stack, journal, active)
        _sleep_until(t0 + plan.duration, lambda: progress.status(_status(scenario, plan, t0, load, observer)))
        finished = load.wait(timeout=DRAIN_GRACE + scenario.load.request_timeout)
        # after the load's declared end: how long its last requests took to end
        journal.write("load.finished", requests=load.requests, failures=load.failures, stopped=not finished,
                      drain_seconds=round(max(0.0, time.time() - (t0 + plan.duration)), 3))
        progress.stage(f"[{scenario.name}] load finished: {load.requests} requests, {load.failures} failed")
        if load.lost:  # a distributed worker died: its share of the load is missing, so no verdict can stand
            raise LoadError("the load lost " + "; ".join(
                f"worker {lost.get('id')} (pid {lost.get('pid')} on {lost.get('host')}): {lost.get('how')}"
                for lost in load.lost))
        if watch is not None:
            watch.check()  # a gateway that died fails the run, saying so (not only "connection refused")
    finally:
        load.stop()
        join_all(diagnoses)  # bounded by the probes' timeouts
        for action in list(active):  # faults still active (interrupted run) are cleared before teardown
            try:
                _apply(FaultAction(action.t, False, action.fault, action.replicas), stack, journal)
                active.remove(action)
            except ChaosgateError as exc:  # the stack is going down anyway; keep the first error
                journal.write("warning", message=f"could not clear {action.fault.label}: {exc}")
        if stack.gateway_view:
            observer.stop()
        _journal_health_rounds(stack, journal)
        if watch is not None:  # before teardown, whose SIGTERM is not an exit to journal
            watch.stop()


def _journal_health_rounds(stack: Stack, journal: JournalWriter) -> None:
    """The gateway's own stamps of its check rounds (LiteLLM), for the promised windows (harness/promise/litellm.py)."""
    if not isinstance(stack.gateway, ReportsHealthRounds):
        return
    try:
        rounds = stack.gateway.health_rounds()
    except ChaosgateError as exc:  # a dead gateway: the windows fall back to the nominal round length
        journal.write("warning", message=f"the gateway's check rounds are not known: {exc}")
        return
    if rounds is not None:
        journal.write("gateway.health_rounds", gateway=stack.gateway.kind, rounds=rounds)


def _due(item: tuple[FaultAction, ...] | DiagnosisAction) -> float:
    return item.t if isinstance(item, DiagnosisAction) else item[0].t


def _apply_together(batch: tuple[FaultAction, ...], stack: FaultContext, journal: JournalWriter,
                    active: list[FaultAction]) -> None:
    """Apply the actions due at one moment at once, each in its own thread (one fault's injection, a
    replica restart say, must not delay the next's start); each journals its own start. Then keep
    ``active`` up to date with those that succeeded, and raise the first error."""
    if len(batch) == 1:
        _apply(batch[0], stack, journal)
        done: list[tuple[FaultAction, BaseException | None]] = [(batch[0], None)]
    else:
        with ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix="fault") as pool:
            futures = [(action, pool.submit(_apply, action, stack, journal)) for action in batch]
        done = [(action, future.exception()) for action, future in futures]
    for action, exc in done:
        if exc is not None:
            continue
        if action.start:
            active.append(action)
        else:
            active[:] = [a for a in active if a.fault is not action.fault]
    if errors := [exc for _, exc in done if exc is not None]:
        raise errors[0]


def _apply(action: FaultAction, stack: FaultContext, journal: JournalWriter) -> None:
    fault = action.fault
    began = time.time()  # a fault is active from the moment its injection begins (a restart takes a while)
    for replica in action.replicas:
        if action.start:
            fault.inject(stack, replica)
        else:
            fault.clear(stack, replica)
    journal.write("fault.started" if action.start else "fault.cleared", ts=began if action.start else None,
                  fault=fault.label, kind=fault.kind,
                  target=fault.target, replicas=list(action.replicas),
                  params=fault.model_dump(mode="json", by_alias=True, exclude={"kind", "name", "target", "at", "duration"}))


def _sleep_until(moment: float, tick: Any) -> None:
    """Wait until the Unix time ``moment``, reporting progress on the way (Ctrl-C interrupts)."""
    while (left := moment - time.time()) > 0:
        tick()
        time.sleep(min(left, 0.1))


def _status(scenario: Scenario, plan: Plan, t0: float, load: LoadGenerator, observer: HealthObserver) -> Status:
    elapsed = time.time() - t0
    return Status(scenario=scenario.name, phase=plan.phase_at(elapsed), elapsed=min(elapsed, plan.duration),
                  total=plan.duration, requests=load.requests, error_rate=load.recent_error_rate(),
                  health=dict(observer.current))
