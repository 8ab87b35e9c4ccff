"""Fixtures for tests that start the real stack (Envoy, Toxiproxy, fake replicas, Locust)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import tests.missing
from harness.errors import ComponentMissing
from harness.gateways.envoy import envoy_binary
from harness.gateways.haproxy import haproxy_binary
from harness.gateways.litellm import litellm_binary
from harness.gateways.nginx import nginx_binary
from harness.gateways.portkey import portkey_binary
from harness.journal import read_journal
from harness.judge import judge_events
from harness.runtimes.base import RUN_MARKER
from harness.runtimes.local import toxiproxy_binary
from harness.scenario import load_scenario
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHAOSGATE = [sys.executable, "-m", "harness.cli"]


# The binary of each gateway, for tests that start it (require_components("haproxy")); Envoy is always required.
GATEWAY_BINARIES: dict[str, Callable[[], str]] = {"envoy": envoy_binary, "haproxy": haproxy_binary,
                                                  "nginx": nginx_binary, "litellm": litellm_binary,
                                                  "portkey": portkey_binary}


def require_components(*gateways: str) -> None:
    """Envoy and Toxiproxy (and the binaries of ``gateways``, e.g. "haproxy", "nginx") must be
    installed; under CI=true their absence fails the test, else skips it."""
    missing = []
    for find in (envoy_binary, toxiproxy_binary, *(GATEWAY_BINARIES[g] for g in gateways)):
        try:
            find()
        except ComponentMissing as exc:
            missing.append(str(exc))
    if missing:
        tests.missing.missing("; ".join(missing))


@pytest.fixture(scope="session", autouse=True)
def components() -> None:
    """The real components must be installed (see require_components)."""
    require_components()


def processes_of_run(run_dir: Path) -> list[int]:
    """PIDs of live processes whose environment marks them as part of the run in ``run_dir``."""
    marker = f"{RUN_MARKER}={run_dir.resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if state != "Z" and marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def health_changes(events: list[dict[str, Any]], replica: str) -> list[tuple[bool, str]]:
    """A replica's health as the gateway's own view gave it, change by change: (healthy, the gateway's words)."""
    return [(e["healthy"], e["flags"]) for e in events if e["type"] == "health" and e["replica"] == replica]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds (tests.waiting.wait_until)."""
    wait_until(predicate, timeout, what)


def chaosgate(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion and return its result."""
    return subprocess.run([*CHAOSGATE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class ScenarioRun:
    """One `chaosgate run` of a shipped scenario: the CLI's result and the run's folder."""

    result: subprocess.CompletedProcess[str]
    run_dir: Path


ShippedRun = Callable[[Path, str], ScenarioRun]
_RUNS: dict[tuple[Path, str], ScenarioRun] = {}


@pytest.fixture(scope="session")
def shipped_run(tmp_path_factory: pytest.TempPathFactory) -> ShippedRun:
    """Run a scenario file on a runtime once per test session: the tests that judge the shipped
    scenarios on each runtime and the test that compares the runtimes share the same runs."""

    def run(path: Path, runtime: str = "local") -> ScenarioRun:
        key = (path.resolve(), runtime)
        if key not in _RUNS:
            scenario = load_scenario(path)
            out = tmp_path_factory.mktemp(f"{path.stem}-{runtime}")
            result = chaosgate("run", str(path), "--runtime", runtime, "--out", str(out), "--quiet",
                               timeout=scenario.load.duration + 120)
            _RUNS[key] = ScenarioRun(result, out / scenario.name)
        return _RUNS[key]

    return run


# -- detection and recovery stamped by the gateway's own events (harness/gateway_events.py) -----------------

STAMP_AGREEMENT = 0.005  # the journal's moment of each change vs the gateway's own stamp of it (issue: within 5 ms)
HAPROXY_STATE = re.compile(r"^(\S+) Server chat/chat-(\d+) is (UP|DOWN)\b", re.MULTILINE)


def own_stamps(gateway: str, run_dir: Path, events: list[dict[str, Any]]) -> list[tuple[float, str, bool]]:
    """(Unix time, replica, healthy) of every health change in the gateway's own log, read here on its own."""
    if gateway == "haproxy":
        log = (run_dir / "logs" / "haproxy.log").read_text()
        return [(datetime.fromisoformat(ts).timestamp(), f"chat[{i}]", state == "UP")
                for ts, i, state in HAPROXY_STATE.findall(log)]
    ready = next(e for e in events if e["type"] == "stack.ready")
    replica_at = {r["gateway_address"]: name for name, r in ready["endpoints"]["replicas"].items()}
    if gateway == "nginx":
        return nginx_stamps(run_dir, replica_at)
    if gateway == "litellm":  # the probe's log, inside the proxy: a cooldown's start and end, a verdict's write
        return [(record["ts"], replica_at[record["address"]], record["healthy"])
                for record in map(json.loads, (run_dir / "litellm-health.jsonl").read_text().splitlines())]
    stamps = []
    health = run_dir / "envoy-health.jsonl"
    for line in health.read_text().splitlines() if health.exists() else []:
        record = json.loads(line)
        address = "{address}:{port_value}".format(**record["host"]["socket_address"])
        # a passing check: the one that readmits a host outlier detection ejected has no event of its own
        for key, healthy in (("eject_unhealthy_event", False), ("add_healthy_event", True),
                             ("successful_health_check_event", True)):
            if key in record:
                stamps.append((datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp(),
                               replica_at[address], healthy))
    outlier = run_dir / "envoy-outlier.jsonl"
    for line in outlier.read_text().splitlines() if outlier.exists() else []:
        record = json.loads(line)
        if (record.get("enforced") and record.get("action") == "EJECT") or record.get("action") == "UNEJECT":
            stamps.append((datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp(),
                           replica_at[record["upstream_url"]], record["action"] == "UNEJECT"))
    return stamps


NGINX_WARN = re.compile(r'^(\S+ \S+) \[warn\] (\d+)#\d+: \*(\d+) upstream server temporarily disabled.*?'
                        r'upstream: "http://([^/"]+)', re.MULTILINE)


def nginx_stamps(run_dir: Path, replica_at: dict[str, str]) -> list[tuple[float, str, bool]]:
    """nginx's own moments, read here on their own from its complete logs: a server disabled at the end of each of
    the last k failed tries (the access log: ``$msec`` less the later tries' ``$upstream_response_time``) of a worker,
    client connection, server and second for which its error log has k ``[warn] ... temporarily disabled`` lines
    (nginx logs one at every failure from the max_fails-th on); back at the end of its first answer (status below
    500) to a try begun after such a disabling."""
    warned: dict[tuple[str, str, str, str], int] = {}
    for ts, pid, connection, address in NGINX_WARN.findall((run_dir / "nginx" / "error.log").read_text()):
        warned[(pid, connection, address, ts)] = warned.get((pid, connection, address, ts), 0) + 1
    tries = []  # (start, end, address, answered, (pid, connection, address, second))
    for record in map(json.loads, (run_dir / "nginx" / "access.log").read_text().splitlines()):
        end = record["ts"]
        for address, status, took in reversed(list(zip(*(str(record[k]).split(", ") for k in (
                "upstream_addr", "upstream_status", "upstream_response_time"))))):
            took_s = float(took) if took.replace(".", "", 1).isdigit() else 0.0
            if address in replica_at:
                second = datetime.fromtimestamp(round(end, 3)).strftime("%Y/%m/%d %H:%M:%S")
                tries.append((end - took_s, end, address, status.isdigit() and int(status) < 500,
                              (str(record["pid"]), str(record["conn"]), address, second)))
            end -= took_s
    disabled = []
    for key, count in warned.items():
        failed = sorted(end for _, end, _, answered, k in tries if k == key and not answered)
        disabled += [(end, key[2]) for end in failed[-count:]] if count <= len(failed) else []
    stamps = [(end, replica_at[address], False) for end, address in sorted(disabled)]
    for at, address in sorted(disabled):
        back = [end for start, end, a, answered, _ in tries if a == address and answered and start >= at]
        if back:
            stamps.append((min(back), replica_at[address], True))
    return stamps


def changes_match_the_gateways_own_stamps(gateway: str, run_dir: Path) -> None:
    """Every change of a replica's health after the load began is, in the judged timeline, within 5 ms of the
    gateway's own stamp of it in its own log."""
    events = read_journal(run_dir / "journal.jsonl")
    timeline = judge_events(events).timeline
    stamps = own_stamps(gateway, run_dir, events)
    for replica, changes in timeline.health.items():
        # (a host DNS took out of the cluster, flags 'removed', or put back is no health change: no event logs it)
        membership = {i for i, c in enumerate(changes) if c.flags == "removed"}
        membership |= {i + 1 for i in membership}
        for change in (c for i, c in enumerate(changes) if c.t >= 0 and i not in membership):
            at = timeline.t0 + change.t
            nearest = min((abs(ts - at) for ts, r, healthy in stamps if r == replica and healthy is change.healthy),
                          default=None)
            assert nearest is not None and nearest <= STAMP_AGREEMENT, (gateway, replica, change, nearest)
            assert change.polled is not None and change.answered is not None, change  # it was stamped
            assert change.t <= change.answered + 0.002, change  # and the poll's answer came after it
