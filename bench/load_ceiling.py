"""Benchmark: the load ceiling. How many requests a second chaosgate's load sends through one stack, against
vegeta at full speed on the same stack, and what each load process costs.

    .venv/bin/python bench/load_ceiling.py [--seconds 10] [--users 32] [--workers 1,2,4] [--repeat 1]

Starts one local stack (Envoy, Toxiproxy, three fake replicas with no simulated latency: time to first
token 0, tokens as fast as the loop goes) and, one after another on that stack:

* vegeta (``.tools/bin/vegeta``, v12.13.0, installed by ``bash .ci/setup``) at full speed: ``attack -rate 0``
  with ``--users`` workers, each sending the next request as soon as the last one is answered;
* chaosgate's own load (harness/load/) as a run drives it, ``--users`` users with ``wait: 0s``, every
  request journalled: one Locust process, then a Locust master with 1, 2, 4 workers (``--workers``).

For each: requests/s (2xx only), CPU seconds per 1,000 requests of the load processes (their own and their
children's, from the kernel's accounting when they end), journal bytes per request, the time from the end of
the load to the last record journalled (the master's records are streamed during the load: no merge after
it; docs/distributed.md), and the seconds the harness spent writing the journal (where the time goes:
writing must stay a small share of the load's duration).

Goals, as ratios on the same stack (issue 17): one process >= 75 % of vegeta; N workers >= 0.8 N times one
worker while free cores remain. On a 2-core machine shared by Envoy, the fakes and the load, no core is free:
the table says how far each goes. Prints a table and writes bench/results/load_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.journal import JournalWriter  # noqa: E402
from harness.load.config import Distribution, LoadConfig  # noqa: E402
from harness.load.generator import LoadGenerator  # noqa: E402
from harness.runtimes.local import LocalRuntime  # noqa: E402
from harness.scenario import Scenario, parse_scenario  # noqa: E402

VEGETA = ROOT / ".tools" / "bin" / "vegeta"
MAX_TOKENS = 16
SCENARIO = """
name: load-ceiling
seed: 1
gateway:
  health_check: {{interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}}
upstreams:
  - {{name: chat, replicas: 3, ttft: 0s, tokens_per_s: 1000000}}
load: {{users: {users}, spawn_rate: {users}, duration: {seconds}s, wait: 0s, max_tokens: {tokens}, mix: {{chat: 1.0}}}}
expect:
  - {{kind: error_rate, window: run, max: 0.01}}
"""


class TimedJournal(JournalWriter):
    """The harness's journal writer, timing its own writes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.write_seconds = 0.0

    def write(self, type: Any, ts: float | None = None, **fields: Any) -> dict[str, Any]:  # noqa: A002 (the base's name)
        began = time.perf_counter()
        try:
            return super().write(type, ts, **fields)
        finally:
            self.write_seconds += time.perf_counter() - began


def children_cpu() -> float:
    """CPU seconds of this process's children that have ended (vegeta's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class LoadCpu:
    """CPU seconds of the load processes (the Locust process, or the master and its workers: every descendant of
    this process whose command line runs a ``harness.load`` module), sampled from /proc every 0.2 s while they
    run; a process is counted at its last sample (the master's workers are not its waited-for children, so the
    kernel's accounting of ended children would miss them)."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LoadCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.last.values())

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while True:
            parents: dict[int, int] = {}
            cpu: dict[int, float] = {}
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
                    if b"harness.load" in (entry / "cmdline").read_bytes():
                        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
                    parents[int(entry.name)] = int(fields[1])
                except (OSError, IndexError, ValueError):
                    continue
            for pid, seconds in cpu.items():
                ancestor = parents.get(pid)
                while ancestor not in (None, 0, 1, os.getpid()):
                    ancestor = parents.get(ancestor)
                if ancestor == os.getpid():
                    self.last[pid] = seconds
            if self._stop.wait(0.2):
                return


def measure_vegeta(url: str, users: int, seconds: float, work: Path) -> dict[str, Any]:
    body = work / "body.json"
    body.write_text(json.dumps({"model": "fake-model", "max_tokens": MAX_TOKENS,
                                "messages": [{"role": "user", "content": "Say something."}]}))
    targets = f"POST {url}/v1/chat/completions\nContent-Type: application/json\n@{body}\n"
    cpu = children_cpu()
    attack = subprocess.run([str(VEGETA), "attack", "-rate", "0", "-max-workers", str(users), "-workers", str(users),
                             "-duration", f"{seconds}s", "-timeout", "10s"], input=targets.encode(),
                            capture_output=True, check=True, timeout=seconds + 60)
    report = subprocess.run([str(VEGETA), "report", "-type", "json"], input=attack.stdout, capture_output=True,
                            check=True, timeout=60)
    figures = json.loads(report.stdout)
    ok = int(figures["status_codes"].get("200", 0))
    took = figures["duration"] / 1e9
    return {"load": f"vegeta ({users} workers)", "requests": figures["requests"], "ok": ok, "seconds": took,
            "rps": ok / took, "cpu_per_1000": 1000 * (children_cpu() - cpu) / max(ok, 1),
            "p50_ms": figures["latencies"]["50th"] / 1e6}


def measure_chaosgate(scenario: Scenario, url: str, workers: int | None, work: Path) -> dict[str, Any]:
    run_dir = work / f"chaosgate-{workers}"
    run_dir.mkdir()
    journal = TimedJournal(run_dir / "journal.jsonl")
    distribution = Distribution(workers=workers or 0)
    load = LoadGenerator(LoadConfig.for_scenario(scenario, url, distribution=distribution), journal, run_dir / "logs")
    with LoadCpu() as cpu:
        try:
            load.start()
            t0 = load.go(url)
            finished = load.wait(timeout=scenario.load.duration + 60)
            drained = time.time() - (t0 + scenario.load.duration)
        finally:
            load.stop()
            journal.close()
    if not finished or load.lost:
        raise SystemExit(f"the load with {workers} workers did not finish cleanly: lost {load.lost}")
    lines = (json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines())
    requests = [e for e in lines if e["type"] == "request"]  # (a bare journal: no run.started header to check)
    ok = [r for r in requests if r.get("status") == 200]
    starts = [r["ts"] for r in requests]
    seconds = max(starts) - min(starts) if starts else 0.0
    size = (run_dir / "journal.jsonl").stat().st_size
    name = "chaosgate, one process" if not workers else f"chaosgate, master + {workers} workers"
    return {"load": name, "requests": len(requests), "ok": len(ok), "seconds": seconds,
            "rps": len(ok) / seconds if seconds else 0.0,
            "cpu_per_1000": 1000 * cpu.seconds / max(len(ok), 1), "load_processes": len(cpu.last),
            "journal_bytes_per_request": size / max(len(requests), 1),
            "after_load_s": max(0.0, drained), "journal_write_s": journal.write_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--workers", default="1,2,4", help="master + N workers, for each N (comma-separated)")
    args = parser.parse_args(argv)
    if not VEGETA.exists():
        print(f"{VEGETA} is missing: run `bash .ci/setup` (.ci/setup.d/vegeta.sh builds it)", file=sys.stderr)
        return 2
    scenario = parse_scenario(SCENARIO.format(users=args.users, seconds=args.seconds, tokens=MAX_TOKENS),
                              "load-ceiling.yaml")
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="load-ceiling-"))
    runtime = LocalRuntime()
    try:
        stack = runtime.up(scenario, work / scenario.name)
        url = stack.gateway.url
        print(f"stack up: Envoy at {url}, 3 replicas with no simulated latency; {os.cpu_count()} cores", flush=True)
        rows.append(measure_vegeta(url, args.users, args.seconds, work))
        print(_row(rows[-1]), flush=True)
        for workers in [None, *(int(n) for n in args.workers.split(",") if n)]:
            rows.append(measure_chaosgate(scenario, url, workers, work))
            print(_row(rows[-1]), flush=True)
    finally:
        runtime.down()
        shutil.rmtree(work, ignore_errors=True)
    vegeta_rps = rows[0]["rps"]
    one = next((r["rps"] for r in rows if r["load"].endswith("+ 1 workers")), None)
    print(f"\none process: {rows[1]['rps'] / vegeta_rps:.0%} of vegeta (goal >= 75%)")
    for row in rows[2:]:
        n = int(row["load"].split("+ ")[1].split()[0])
        if one:
            print(f"{row['load']}: {row['rps'] / vegeta_rps:.0%} of vegeta, {row['rps'] / one:.2f} x one worker "
                  f"(goal >= {0.8 * n:.1f} x while free cores remain)")
    out = ROOT / "bench" / "results" / "load_ceiling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.node(), "cores": os.cpu_count(), "seconds": args.seconds,
                               "users": args.users, "rows": rows}, indent=2))
    print(f"written: {out.relative_to(ROOT)}")
    return 0


def _row(row: dict[str, Any]) -> str:
    extra = ""
    if "journal_bytes_per_request" in row:
        extra = (f"  journal {row['journal_bytes_per_request']:.0f} B/request, written in {row['journal_write_s']:.2f} s; "
                 f"last record {row['after_load_s']:.2f} s after the load")
    return (f"{row['load']:<32} {row['rps']:8.0f} req/s ({row['ok']} ok of {row['requests']})  "
            f"CPU {row['cpu_per_1000']:.2f} s/1,000 requests{extra}")


if __name__ == "__main__":
    sys.exit(main())
