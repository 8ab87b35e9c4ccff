"""``chaosgate run DIR --parallel N``: the suite's scenarios N at a time, each in a child ``chaosgate run``.

Each child is a whole run of its own: its own ports (``free_port`` reserves them across processes),
its own run folder OUT/<scenario name>/, its own cgroups (named after that folder) or container
network (a random run id). The children start in sessions of their own, so a Ctrl-C at the terminal
reaches only this process, which then starts nothing more, sends SIGINT to every child's process
group (each tears its stack down as a serial run does), waits ``GRACE_S`` and SIGKILLs what is left.
A child outlives nothing: the kernel sends it SIGTERM (a clean teardown) if this process dies.

The scheduler knows nothing of scenarios: it starts ``Job`` commands through a ``start`` function
and reports each start and end (tests give it fake children). The CLI (harness/cli.py) builds the
jobs, prints the progress lines and writes the suite index and JUnit as a serial run does.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Protocol

from harness.scenario import Scenario

GRACE_S = 90.0  # after the SIGINT of an interrupt: how long the children get to tear their stacks down
CHILD_LOG = "chaosgate.log"  # a child's own output, in its run folder
EXIT_PASSED, EXIT_FAILED, EXIT_UNRUNNABLE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# worst first: a child's exit code's rank; any other code (a child killed by a signal) counts as could not run
_SEVERITY = {EXIT_INTERRUPTED: 4, EXIT_BUG: 3, EXIT_UNRUNNABLE: 2, EXIT_FAILED: 1, EXIT_PASSED: 0}
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Job:
    """One scenario's child run: its name (the run folder's), its file and the command that runs it."""

    name: str
    file: Path
    command: tuple[str, ...]
    log: Path


class ChildProcess(Protocol):
    """What the scheduler needs of a started child (``subprocess.Popen`` has it)."""

    @property
    def pid(self) -> int: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def poll(self) -> int | None: ...


@dataclass(frozen=True)
class Ended:
    job: Job
    code: int        # the child's exit code; negative: killed by that signal
    seconds: float


@dataclass
class Outcome:
    """What a parallel suite did: the runs that ended (in the order they ended), and whether it was interrupted."""

    ended: list[Ended] = field(default_factory=list)
    interrupted: bool = False
    killed: list[str] = field(default_factory=list)  # runs still alive GRACE_S after the interrupt: SIGKILLed

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.interrupted else worst([e.code for e in self.ended])


def worst(codes: Sequence[int]) -> int:
    """The suite's exit code from its runs': 130 > 3 (a bug) > 2 (could not run) > 1 (failed) > 0."""
    ranked = [code if code in _SEVERITY else EXIT_UNRUNNABLE for code in codes]
    return max(ranked, key=lambda code: _SEVERITY[code], default=EXIT_PASSED)


def refusals(loaded: Sequence[tuple[Path, Scenario]], attach: bool) -> list[str]:
    """What cannot run in parallel, each a sentence: ``--attach`` (one gateway, pointed at one run's upstreams),
    two scenarios of the same name (they would share the run folder OUT/<name>/)."""
    errors = []
    if attach:
        errors.append("--parallel: --attach runs one scenario against one gateway; run without --parallel")
    files_of: dict[str, list[Path]] = {}
    for file, scenario in loaded:
        files_of.setdefault(scenario.name, []).append(file)
    for name, files in files_of.items():
        if len(files) > 1:
            errors.append(f"--parallel: {' and '.join(map(str, files))} are both named {name!r}: parallel runs "
                          f"would share the run folder OUT/{name}/; give each a name of its own (name: in the file)")
    return errors


def _libc_prctl() -> Callable[[int, int], int]:
    prctl: Callable[[int, int], int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    return prctl


def start_child(job: Job) -> subprocess.Popen[bytes]:
    """Start ``job.command`` in a session of its own (its pid is its process group), output to ``job.log``;
    the kernel sends it SIGTERM, a clean teardown, should this process die first."""
    prctl = _libc_prctl()  # looked up before the fork: the child only calls it
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with job.log.open("wb") as log:
        return subprocess.Popen(job.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM))


def distribution_refusals(remote_workers: int, master_port: int) -> list[str]:
    """Distributed-load options that cannot apply to runs side by side, each a sentence."""
    errors = []
    if remote_workers:
        errors.append("--parallel: --remote-workers cannot say which of the parallel runs a remote worker joins; "
                      "run without --parallel")
    if master_port:
        errors.append("--parallel: --master-port would give every parallel run's Locust master the same port; "
                      "leave it out (each run picks a free one)")
    return errors


def distribution_args(workers: int | None, master_bind: str, join_timeout: float) -> tuple[str, ...]:
    """The distributed-load options a child run takes on (docs/distributed.md)."""
    return (*(["--workers", str(workers)] if workers is not None else []),
            *(["--master-bind", master_bind] if master_bind != "127.0.0.1" else []),
            *(["--join-timeout", f"{join_timeout:g}"] if join_timeout != 30.0 else []))


def run_command(file: Path, out_dir: Path, runtime: str, gateway: str | None, strict: bool,
                gateway_config: Path | None, allow_hosts: Sequence[str], extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The child's ``chaosgate run`` of one file, with the options of the parallel command that apply to it."""
    return (sys.executable, "-m", "harness.cli", "run", str(file), "--out", str(out_dir), "--runtime", runtime,
            *(["--gateway", gateway] if gateway else []), *(["--strict"] if strict else []),
            *(["--gateway-config", str(gateway_config)] if gateway_config else []),
            *(arg for host in allow_hosts for arg in ("--allow-host", host)), *extra)


class Scheduler:
    """Runs jobs ``parallel`` at a time; ``interrupt()`` (safe from a signal handler) stops the suite."""

    def __init__(self, jobs: Sequence[Job], parallel: int, start: Callable[[Job], ChildProcess] = start_child,
                 on_start: Callable[[Job, int, int], None] = lambda job, running, waiting: None,
                 on_end: Callable[[Ended], None] = lambda ended: None,
                 on_interrupt: Callable[[list[Job]], None] = lambda running: None, grace: float = GRACE_S) -> None:
        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, not {parallel}")
        self.jobs, self.parallel, self.grace = list(jobs), parallel, grace
        self._start, self._on_start, self._on_end, self._on_interrupt = start, on_start, on_end, on_interrupt
        self._events: SimpleQueue[tuple[Job, int] | None] = SimpleQueue()  # (job, code) as children end; None: stop
        self._running: dict[Job, tuple[ChildProcess, float]] = {}
        self._stopping = False

    def interrupt(self) -> None:
        self._stopping = True  # no new start from now, even before the loop reads the queue
        self._events.put(None)  # SimpleQueue.put is reentrant: a signal handler may call it

    def run(self) -> Outcome:
        outcome = Outcome()
        waiting = list(self.jobs)
        while waiting or self._running:
            while waiting and len(self._running) < self.parallel and not self._stopping:
                job = waiting.pop(0)
                child = self._start(job)
                self._running[job] = (child, time.monotonic())
                threading.Thread(target=self._wait, args=(job, child), name=f"wait-{job.name}", daemon=True).start()
                self._on_start(job, len(self._running), len(waiting))
            event = self._events.get()
            if event is None:
                if not outcome.interrupted:
                    outcome.interrupted = True
                    waiting.clear()
                    self._on_interrupt(list(self._running))
                    outcome.killed = self._stop_all(outcome)
                continue
            self._ended(event, outcome)
        return outcome

    def _wait(self, job: Job, child: ChildProcess) -> None:
        self._events.put((job, child.wait()))

    def _ended(self, event: tuple[Job, int], outcome: Outcome) -> None:
        job, code = event
        _, started = self._running.pop(job)
        ended = Ended(job, code, time.monotonic() - started)
        outcome.ended.append(ended)
        self._on_end(ended)

    def _stop_all(self, outcome: Outcome) -> list[str]:
        """SIGINT to every running child's process group; those alive after ``grace`` get SIGKILL. Returns their names."""
        for child, _ in self._running.values():
            _signal_group(child.pid, signal.SIGINT)
        deadline = time.monotonic() + self.grace
        while self._running and (left := deadline - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=left)
            except Empty:
                break
            if event is not None:  # a second interrupt changes nothing: the deadline stands
                self._ended(event, outcome)
        killed = [job.name for job in self._running]
        for child, _ in self._running.values():
            _signal_group(child.pid, signal.SIGKILL)
        while self._running:
            if (event := self._events.get()) is not None:
                self._ended(event, outcome)
        return killed


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # it has just ended


@contextmanager
def interrupt_on_signals(scheduler: Scheduler) -> Iterator[None]:
    """SIGINT and SIGTERM interrupt the scheduler (instead of raising KeyboardInterrupt) while it runs."""
    previous = {sig: signal.signal(sig, lambda signum, frame: scheduler.interrupt())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
