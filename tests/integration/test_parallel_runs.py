"""``chaosgate run --parallel N`` and the pytest plugin under pytest-xdist, on the real local stack: the same
verdicts, index and JUnit as a serial run; two runs of one scenario side by side share no port; an
interrupt tears every run down."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from harness.journal import read_journal
from harness.parallel import GRACE_S
from harness.runtimes.docker_engine import LABEL_RUN_DIR
from harness.scenario import load_scenario
from tests.waiting import wait_until

from .conftest import CHAOSGATE, ROOT, chaosgate, processes_of_run, wait_for
from .docker_helpers import docker_engine, leftovers, run_ids

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["docker_engine"]

SHORT = [ROOT / "scenarios" / f"{name}.yaml" for name in ("latency-spike", "process-kill", "all-down")]
ROW = re.compile(r'<tr class="(pass|fail)" data-scenario="([^"]+)">.*?<span class="badge (\w+)">(\w+)</span>'
                 r'.*?<td>(\d+ of \d+) held', re.S)


def _timeout(*files: Path) -> float:
    """A bound for running ``files`` one after another: their loads plus two minutes each for start and teardown."""
    return sum(load_scenario(f).load.duration + 120 for f in files)


def _verdicts(run_dir: Path) -> list[tuple[str, str, bool]]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return [(v["kind"], v["bound"], v["passed"]) for v in summary["expectations"]]


def _index_rows(out: Path) -> list[tuple[str, ...]]:
    return [tuple(row) for row in ROW.findall((out / "index.html").read_text())]


def _junit(path: Path) -> list[tuple[str, str, str, str, list[tuple[str, bool]]]]:
    """Each suite's name and counts, and its test cases with whether each failed: what does not depend on timing."""
    root = ET.parse(path).getroot()
    return [(s.get("name", ""), s.get("tests", ""), s.get("failures", ""), s.get("errors", ""),
             [(c.get("name", ""), c.find("failure") is not None) for c in s.iter("testcase")])
            for s in root.iter("testsuite")]


def _ports(run_dir: Path) -> set[int]:
    ready = next(e for e in read_journal(run_dir / "journal.jsonl") if e["type"] == "stack.ready")
    return {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", json.dumps(ready["endpoints"]))}


def _window(run_dir: Path) -> tuple[float, float]:
    events = read_journal(run_dir / "journal.jsonl")
    return next(e["ts"] for e in events if e["type"] == "stack.ready"), events[-1]["ts"]


@pytest.mark.integration
def test_parallel_gives_the_serial_verdicts_index_and_junit(tmp_path: Path) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    names = [load_scenario(f).name for f in SHORT]
    one_by_one = chaosgate("run", *map(str, SHORT), "--out", str(serial), "--junit", str(serial / "junit.xml"),
                           "--quiet", timeout=_timeout(*SHORT))
    three = chaosgate("run", *map(str, SHORT), "--parallel", "3", "--out", str(parallel),
                      "--junit", str(parallel / "junit.xml"), timeout=_timeout(*SHORT))
    assert three.returncode == one_by_one.returncode == 0, three.stdout + three.stderr + one_by_one.stderr
    for name in names:
        assert _verdicts(parallel / name) == _verdicts(serial / name), name
        assert f"[{name}] started" in three.stderr and f"[{name}] passed in" in three.stderr
        assert f"{name}: PASSED" in three.stdout
    assert "3 scenarios, 3 at a time" in three.stderr
    assert _index_rows(parallel) == _index_rows(serial) and [row[1] for row in _index_rows(serial)] == sorted(names)
    assert _junit(parallel / "junit.xml") == _junit(serial / "junit.xml")
    assert [suite[0] for suite in _junit(parallel / "junit.xml")] == names
    assert "suite: " + ", ".join(f"{name} passed" for name in names) in three.stdout
    starts = [_window(parallel / name)[0] for name in names]
    ends = [_window(parallel / name)[1] for name in names]
    assert max(starts) < min(ends), "the three runs were under way at the same time"


@pytest.mark.integration
def test_the_suite_exits_with_the_worst_of_its_runs(tmp_path: Path) -> None:
    files = [ROOT / "tests" / "scenarios" / "must-fail.yaml", SHORT[0]]
    out = tmp_path / "out"
    result = chaosgate("run", *map(str, files), "--parallel", "2", "--out", str(out), "--junit", str(out / "junit.xml"),
                       timeout=_timeout(*files))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[must-fail] FAILED in" in result.stderr and "[latency-spike] passed in" in result.stderr
    assert "must-fail: FAILED" in result.stdout and "suite: must-fail FAILED, latency-spike passed" in result.stdout
    failed = {suite[0]: suite[2] for suite in _junit(out / "junit.xml")}
    assert failed["latency-spike"] == "0" and int(failed["must-fail"]) >= 1
    assert [row[:2] for row in _index_rows(out)] == [("pass", "latency-spike"), ("fail", "must-fail")]


@pytest.mark.integration
@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_two_runs_of_one_scenario_side_by_side_share_no_port(runtime: str, tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    engine: DockerClient | None = request.getfixturevalue("docker_engine") if runtime == "docker" else None
    document = yaml.safe_load(SHORT[0].read_text())
    # What is judged here is that the twins do not collide (a shared port or container fails a run outright);
    # the p99 latency bound is left out: two docker stacks beside the other test workers' stretch the tail.
    document["expect"] = [e for e in document["expect"] if e["kind"] != "latency"]
    files = []
    for twin in ("twin-a", "twin-b"):
        (file := tmp_path / f"{twin}.yaml").write_text(yaml.safe_dump({**document, "name": twin}, sort_keys=False))
        files.append(file)
    out = tmp_path / "out"
    a, b = out / "twin-a", out / "twin-b"
    suite = subprocess.Popen([*CHAOSGATE, "run", *map(str, files), "--parallel", "2", "--out", str(out),
                              "--runtime", runtime], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if engine is not None:  # while both run: each its own run id, so its own containers and network
            ids = wait_until(lambda: (run_ids(engine, a), run_ids(engine, b)) if run_ids(engine, a)
                             and run_ids(engine, b) else None, 120, "both runs' containers")
            assert ids is not None and len(ids[0]) == len(ids[1]) == 1 and ids[0] != ids[1], ids
            networks = [n.name for run in (a, b) for n in engine.networks.list(
                filters={"label": f"{LABEL_RUN_DIR}={run.resolve()}"})]
            assert len(set(networks)) == 2, networks
        stdout, stderr = suite.communicate(timeout=_timeout(*files))
    finally:
        if suite.poll() is None:
            suite.kill()
            suite.wait()
    assert suite.returncode == 0, stdout + stderr
    assert _verdicts(a) == _verdicts(b) and all(passed for _, _, passed in _verdicts(a))
    (a_start, a_end), (b_start, b_end) = _window(a), _window(b)
    assert a_start < b_end and b_start < a_end, "the two stacks were up at the same time"
    assert len(_ports(a)) >= 8 and _ports(a).isdisjoint(_ports(b)), (_ports(a), _ports(b))
    if engine is not None:
        assert leftovers(engine, a) == [] and leftovers(engine, b) == []


def _mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions ``text`` (a child ``chaosgate run`` names its --out)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes() \
                    and (entry / "stat").read_text().split(") ", 1)[1][0] != "Z":
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


INTERRUPTED = [ROOT / "scenarios" / f"{name}.yaml" for name in ("replica-reset", "process-freeze", "latency-spike")]


def _start_suite(out: Path) -> tuple[subprocess.Popen[str], list[Path]]:
    """``run --parallel 2`` of three scenarios, once both first runs' faults have started: the process and their folders."""
    suite = subprocess.Popen([*CHAOSGATE, "run", *map(str, INTERRUPTED), "--parallel", "2", "--out", str(out),
                              "--junit", str(out / "junit.xml")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    running = [out / load_scenario(f).name for f in INTERRUPTED[:2]]
    wait_for(lambda: all((run / "journal.jsonl").exists() and '"fault.started"' in
                         (run / "journal.jsonl").read_text() for run in running), 120, "both runs' faults to start")
    assert all(processes_of_run(run) for run in running), "both stacks run before the interrupt"
    assert len(_mentioning(f"--out\0{out}\0")) == 3, "the suite and its two child runs"
    return suite, running


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_every_run_and_starts_no_more(sig: signal.Signals, tmp_path: Path) -> None:
    names = [load_scenario(f).name for f in INTERRUPTED]
    out = tmp_path / "out"
    suite, running = _start_suite(out)
    try:
        suite.send_signal(sig)
        stdout, stderr = suite.communicate(timeout=GRACE_S + 30)
    finally:
        if suite.poll() is None:
            suite.kill()
            suite.wait()
    assert suite.returncode == 130, stdout + stderr
    assert "interrupted: no new run starts" in stderr and "Traceback" not in stderr + stdout
    for run in running:
        wait_for(lambda: not processes_of_run(run), 10, f"every process of {run.name} to end")
        events = read_journal(run / "journal.jsonl")
        assert events[-1]["type"] == "run.finished" and events[-1]["outcome"] == "interrupted"
        assert f"[{run.name}] interrupted in" in stderr
    wait_for(lambda: not _mentioning(f"--out\0{out}\0"), 10, "every child run to end")
    assert not (out / names[2]).exists(), "the third run never started"
    assert [row[1] for row in _index_rows(out)] == sorted(names[:2])
    assert [suite_[0] for suite_ in _junit(out / "junit.xml")] == names[:2]


@pytest.mark.integration
def test_pytest_xdist_runs_the_scenarios_on_workers_and_writes_one_index(tmp_path: Path) -> None:
    out = tmp_path / "out"
    files = SHORT[:2]
    result = subprocess.run([sys.executable, "-m", "pytest", *map(str, files), "-n", "2", "-p", "no:cacheprovider",
                             "--chaosgate-out", str(out), f"--junitxml={tmp_path / 'junit.xml'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=_timeout(*files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 workers [2 items]" in result.stdout and "2 passed" in result.stdout
    names = sorted(load_scenario(f).name for f in files)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    assert [row[1] for row in _index_rows(out)] == names
    assert list(out.rglob("index.html")) and sorted(p.relative_to(out).as_posix() for p in out.rglob("index.html")) \
        == sorted(["index.html", *(f"{name}/index.html" for name in names)])
    hosts: list[Any] = [c.get("name") for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")]
    assert sorted(hosts) == names


@pytest.mark.integration
def test_a_suite_killed_outright_leaves_no_run_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    suite, running = _start_suite(out)
    suite.kill()  # SIGKILL: no teardown of its own; the kernel sends each child SIGTERM (PR_SET_PDEATHSIG)
    suite.communicate(timeout=30)
    wait_for(lambda: not _mentioning(f"--out\0{out}\0"), GRACE_S, "every child run to end")
    for run in running:
        wait_for(lambda: not processes_of_run(run), 10, f"every process of {run.name} to end")
        events = read_journal(run / "journal.jsonl")
        assert events[-1]["type"] == "run.finished" and events[-1]["outcome"] == "interrupted", run.name
