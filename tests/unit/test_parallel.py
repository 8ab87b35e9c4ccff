"""``run --parallel N`` (harness/parallel.py): N at a time, the worst exit code, what is refused, and
an interrupt that stops every child. The children here are small Python processes standing in for
``chaosgate run``: each waits for the test to hand it its exit code on stdin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from harness import parallel, pytest_plugin
from harness.cli import main
from harness.parallel import Ended, Job, Outcome, Scheduler, interrupt_on_signals, refusals, run_command, worst
from harness.scenario import load_scenario
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "scenarios"

FAKE = r"""
import os, signal, subprocess, sys
if sys.argv[1] == "stubborn":  # ignores SIGINT, and so does the process it started in its group
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    grandchild = subprocess.Popen([sys.executable, "-c",
                                   "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); sys.stdin.read()"])
    print("grandchild", grandchild.pid, flush=True)
else:  # tears down at SIGINT as chaosgate run does: exit 130
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
print("ready", flush=True)
line = sys.stdin.readline()
sys.exit(int(line) if line.strip() else 0)
"""


class FakeChildren:
    """Starts one fake child per job; ``finish(name, code)`` makes it exit with ``code``."""

    def __init__(self, stubborn: tuple[str, ...] = ()) -> None:
        self.stubborn = stubborn
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.started: list[str] = []

    def start(self, job: Job) -> subprocess.Popen[bytes]:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with job.log.open("wb") as log:
            child = subprocess.Popen([sys.executable, "-c", FAKE, "stubborn" if job.name in self.stubborn else "plain"],
                                     stdin=subprocess.PIPE, stdout=log, start_new_session=True)
        self.children[job.name] = child
        self.started.append(job.name)
        return child

    def finish(self, name: str, code: int) -> None:
        stdin = self.children[name].stdin
        assert stdin is not None
        stdin.write(f"{code}\n".encode())
        stdin.flush()

    def close(self) -> None:
        for child in self.children.values():
            if child.stdin:
                child.stdin.close()
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


@pytest.fixture
def fakes() -> Iterator[FakeChildren]:
    children = FakeChildren()
    yield children
    children.close()


def _jobs(tmp_path: Path, *names: str) -> list[Job]:
    return [Job(name, tmp_path / f"{name}.yaml", ("unused",), tmp_path / name / "chaosgate.log") for name in names]


class Background:
    """The scheduler's run() in a thread, with what it reported."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.outcome: Outcome | None = None
        self.thread = threading.Thread(target=self._run, args=(scheduler,), daemon=True)
        self.thread.start()

    def _run(self, scheduler: Scheduler) -> None:
        self.outcome = scheduler.run()

    def result(self, timeout: float) -> Outcome:
        self.thread.join(timeout)
        assert self.outcome is not None, f"the scheduler had not returned after {timeout:g}s"
        return self.outcome


def _ready(job: Job) -> bool:
    return job.log.exists() and "ready" in job.log.read_text()


def test_runs_n_at_a_time_starting_the_next_as_one_ends(tmp_path: Path, fakes: FakeChildren) -> None:
    jobs = _jobs(tmp_path, "a", "b", "c", "d", "e")
    reported: list[tuple[str, int, int]] = []
    ended: list[Ended] = []
    scheduler = Scheduler(jobs, 2, start=fakes.start, on_start=lambda job, running, waiting:
                          reported.append((job.name, running, waiting)), on_end=ended.append)
    run = Background(scheduler)
    wait_until(lambda: len(reported) == 2, 10, "the first two children")  # reported once started
    assert fakes.started == ["a", "b"] and reported == [("a", 1, 4), ("b", 2, 3)]
    fakes.finish("b", 0)
    wait_until(lambda: len(reported) == 3, 10, "the third child once b ended")
    assert fakes.started == ["a", "b", "c"] and reported[-1] == ("c", 2, 2)
    assert [e.job.name for e in ended] == ["b"]
    for name, code in (("a", 0), ("c", 1), ("d", 0)):
        fakes.finish(name, code)
        wait_until(lambda: name in [e.job.name for e in ended], 10, f"{name} to end")
    fakes.finish("e", 0)
    outcome = run.result(10)
    assert [e.job.name for e in outcome.ended] == ["b", "a", "c", "d", "e"]
    assert [e.code for e in outcome.ended] == [0, 0, 1, 0, 0]
    assert max(running for _, running, _ in reported) == 2
    assert outcome.exit_code == 1 and not outcome.interrupted and outcome.killed == []


def test_the_suite_exits_with_the_worst_code_of_its_runs() -> None:
    assert worst([]) == 0
    assert worst([0, 0]) == 0
    assert worst([0, 1, 0]) == 1
    assert worst([1, 2, 0]) == 2
    assert worst([2, 3, 1]) == 3
    assert worst([3, 130, 0]) == 130
    assert worst([0, -9]) == 2  # killed by a signal: it could not run to its end
    assert Outcome([Ended(Job("a", Path("a"), (), Path("l")), 0, 1.0)], interrupted=True).exit_code == 130


def test_a_parallel_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Scheduler([], 0)


def test_an_interrupt_starts_nothing_more_and_stops_every_child(tmp_path: Path, fakes: FakeChildren) -> None:
    jobs = _jobs(tmp_path, "a", "b", "c")
    told: list[list[str]] = []
    scheduler = Scheduler(jobs, 2, start=fakes.start, on_interrupt=lambda running: told.append([j.name for j in running]))
    run = Background(scheduler)
    wait_until(lambda: all(_ready(job) for job in jobs[:2]), 10, "the first two children to be ready")
    scheduler.interrupt()
    outcome = run.result(10)
    assert outcome.interrupted and outcome.exit_code == 130
    assert sorted((e.job.name, e.code) for e in outcome.ended) == [("a", 130), ("b", 130)]  # their own teardown
    assert fakes.started == ["a", "b"] and told == [["a", "b"]]
    assert outcome.killed == []


def test_a_child_that_ignores_the_interrupt_is_killed_with_its_group_after_the_grace(tmp_path: Path) -> None:
    fakes = FakeChildren(stubborn=("b",))
    try:
        jobs = _jobs(tmp_path, "a", "b")
        grace = 1.0
        scheduler = Scheduler(jobs, 2, start=fakes.start, grace=grace)
        run = Background(scheduler)
        wait_until(lambda: all(_ready(job) for job in jobs), 10, "both children to be ready")
        grandchild = int(jobs[1].log.read_text().split()[1])
        interrupted = time.monotonic()
        scheduler.interrupt()
        outcome = run.result(grace + 10)
        assert time.monotonic() - interrupted >= grace
        assert {e.job.name: e.code for e in outcome.ended} == {"a": 130, "b": -signal.SIGKILL}
        assert outcome.killed == ["b"] and outcome.exit_code == 130
        wait_until(lambda: not _alive(grandchild), 10, "the stubborn child's own child to be killed with its group")
    finally:
        fakes.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_sigint_and_sigterm_interrupt_the_scheduler_instead_of_raising(tmp_path: Path, fakes: FakeChildren) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in (signal.SIGINT, signal.SIGTERM):
        jobs = _jobs(tmp_path / sig.name, "a", "b")
        scheduler = Scheduler(jobs, 1, start=fakes.start)
        with interrupt_on_signals(scheduler):
            run = Background(scheduler)
            wait_until(lambda: _ready(jobs[0]), 10, "the first child to be ready")
            os.kill(os.getpid(), sig)  # handled in this (the main) thread: no KeyboardInterrupt
            outcome = run.result(10)
        assert outcome.interrupted and [(e.job.name, e.code) for e in outcome.ended] == [("a", 130)]
    assert {sig: signal.getsignal(sig) for sig in before} == before  # restored


def test_a_real_child_runs_in_a_session_of_its_own_and_gets_sigterm_when_the_parent_dies(tmp_path: Path) -> None:
    probe = ("import ctypes, os; v = ctypes.c_int(); ctypes.CDLL('libc.so.6').prctl(2, ctypes.byref(v)); "
             "print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid(), v.value)")
    job = Job("probe", tmp_path / "probe.yaml", (sys.executable, "-c", probe), tmp_path / "probe" / "chaosgate.log")
    child = parallel.start_child(job)
    assert child.wait(10) == 0
    assert job.log.read_text().split() == ["True", "True", str(int(signal.SIGTERM))]


def test_the_child_command_carries_the_options_that_apply_to_one_run(tmp_path: Path) -> None:
    command = run_command(Path("s.yaml"), Path("out"), "docker", "haproxy", True, Path("h.cfg"), ["a.example", "b"])
    assert command[1:] == ("-m", "harness.cli", "run", "s.yaml", "--out", "out", "--runtime", "docker",
                           "--gateway", "haproxy", "--strict", "--gateway-config", "h.cfg",
                           "--allow-host", "a.example", "--allow-host", "b")
    assert run_command(Path("s.yaml"), Path("out"), "local", None, False, None, [])[3:] == \
        ("run", "s.yaml", "--out", "out", "--runtime", "local")


def test_two_scenarios_of_one_name_and_attach_are_refused_naming_the_files(tmp_path: Path) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text((SHIPPED / "all-down.yaml").read_text())
    loaded = [(path, load_scenario(path)) for path in (SHIPPED / "all-down.yaml", copy, SHIPPED / "latency-spike.yaml")]
    errors = refusals(loaded, attach=False)
    assert len(errors) == 1 and str(SHIPPED / "all-down.yaml") in errors[0] and str(copy) in errors[0]
    assert "'all-down'" in errors[0]
    assert refusals(loaded[1:], attach=False) == []
    assert refusals(loaded[1:], attach=True) == ["--parallel: --attach runs one scenario against one gateway; "
                                                 "run without --parallel"]


def test_the_cli_refuses_before_starting_anything(tmp_path: Path) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text((SHIPPED / "all-down.yaml").read_text())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(SHIPPED / "all-down.yaml"), str(copy), "--parallel", "2",
                                       "--out", str(out)])
    assert result.exit_code == 2 and "both named 'all-down'" in result.output and str(copy) in result.output
    result = CliRunner().invoke(main, ["run", str(SHIPPED / "all-down.yaml"), "--parallel", "2", "--out", str(out),
                                       "--attach", "http://127.0.0.1:1"])
    assert result.exit_code == 2 and "--attach runs one scenario against one gateway" in result.output
    result = CliRunner().invoke(main, ["run", str(SHIPPED / "all-down.yaml"), "--parallel", "0"])
    assert result.exit_code == 2 and "0 is not in the range x>=1" in result.output
    assert not out.exists()


def test_only_the_reporting_process_registers_the_suite_index(tmp_path: Path) -> None:
    registered: list[str] = []
    manager = SimpleNamespace(register=lambda plugin, name: registered.append(name))
    pytest_plugin.pytest_configure(SimpleNamespace(pluginmanager=manager))  # type: ignore[arg-type]
    assert registered == ["chaosgate-suite-index"]
    pytest_plugin.pytest_configure(SimpleNamespace(pluginmanager=manager, workerinput={"workerid": "gw0"}))  # type: ignore[arg-type]
    assert registered == ["chaosgate-suite-index"]  # an xdist worker writes no index


def test_the_suite_index_lists_the_runs_the_reports_name(tmp_path: Path) -> None:
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(
            f'{{"scenario": "{name}", "passed": true, "complete": true, "expectations": []}}')
    index = pytest_plugin.SuiteIndex()
    index.pytest_sessionfinish()
    assert not (tmp_path / "index.html").exists()  # no scenario ran: nothing written
    reports: list[Any] = [SimpleNamespace(user_properties=[("report", str(tmp_path / n / "index.html"))])
                          for n in ("alpha", "beta")]
    for report in reports:
        index.pytest_runtest_logreport(report)
    index.pytest_sessionfinish()
    html = (tmp_path / "index.html").read_text()
    assert "alpha" in html and "beta" in html


def test_parallel_runs_take_on_the_workers_and_refuse_what_one_master_port_or_remote_worker_cannot_share() -> None:
    from harness.parallel import distribution_args, distribution_refusals, run_command

    assert distribution_refusals(0, 0) == []
    refused = distribution_refusals(1, 5557)
    assert len(refused) == 2 and "--remote-workers" in refused[0] and "--master-port" in refused[1]
    assert distribution_args(None, "127.0.0.1", 30.0) == ()
    args = distribution_args(2, "127.0.0.1", 12.5)
    assert args == ("--workers", "2", "--join-timeout", "12.5")
    assert run_command(Path("a.yaml"), Path("out"), "local", None, False, None, (), args)[-4:] == args
