"""Benchmark: the process-fault and OOM scenarios on the docker runtime beside local.

    .venv/bin/python bench/docker_faults.py [--repeat 3] [--runtime local --runtime docker]
                                            [--scenario oom-kill ...]

Runs each shipped process scenario (scenarios/oom-kill.yaml, process-kill.yaml,
process-freeze.yaml, port-change.yaml) ``--repeat`` times on each runtime with the CLI, as a
user would, and reads from each run's summary.json and journal:

* detect    the gateway marked the replica unhealthy, seconds after the fault began
            (the upstream_unhealthy expectation's measured value);
* died      the replica's process (container) ended, seconds after the fault began
            (``process.exited``: for oom, how long the growth took to reach the limit);
* ready     the restarted replica answered, seconds after its (re)start (``process.ready`` -
            ``process.restarted``; a port change counts its move back);
* readmit   the gateway saw it healthy again (upstream_healthy's measured value: after the
            restart was ready, or after the fault ended);
* passed    whether every expectation held.

Prints a table (median, min-max) and writes bench/results/docker_faults.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("oom-kill", "process-kill", "process-freeze", "port-change")
METRICS = ("detect", "died", "ready", "readmit")


def _measured(summary: dict[str, Any], kind: str) -> float | None:
    for verdict in summary["expectations"]:
        if verdict["kind"] == kind and verdict.get("measured_value") is not None:
            return float(verdict["measured_value"])
    return None


def sample(scenario: str, runtime: str, out: Path) -> dict[str, Any]:
    """One run of ``scenario`` on ``runtime``: its figures."""
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(ROOT / "scenarios" / f"{scenario}.yaml"),
                             "--runtime", runtime, "--out", str(out), "--quiet"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    run_dir = out / scenario
    summary = json.loads((run_dir / "summary.json").read_text())
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    started = next(e["ts"] for e in events if e["type"] == "fault.started")
    exited = [e for e in events if e["type"] == "process.exited"]
    restarted = [e for e in events if e["type"] == "process.restarted"]
    ready = [e for e in events if e["type"] == "process.ready"]
    return {
        "passed": result.returncode == 0 and bool(summary["passed"]),
        "detect": _measured(summary, "upstream_unhealthy"),
        "died": round(exited[0]["ts"] - started, 3) if exited else None,
        "ready": round(ready[-1]["ts"] - restarted[-1]["ts"], 3) if ready and restarted else None,
        "readmit": _measured(summary, "upstream_healthy"),
        "oom": any(e.get("oom") for e in exited),
        "failed": [f"{v['kind']} {v['measured']} (bound {v['bound']})" for v in summary["expectations"] if not v["passed"]],
    }


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runtime", action="append", choices=("local", "docker"))
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    args = parser.parse_args()
    runtimes = args.runtime or ["local", "docker"]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="chaosgate-bench-") as tmp:
        for scenario in args.scenario or SCENARIOS:
            for runtime in runtimes:
                for i in range(args.repeat):
                    figures = sample(scenario, runtime, Path(tmp) / f"{scenario}-{runtime}-{i}")
                    results.setdefault(scenario, {}).setdefault(runtime, []).append(figures)
                    print(f"{scenario} {runtime} #{i + 1}: {figures}", file=sys.stderr, flush=True)
    print(f"| scenario | runtime | passed | {' | '.join(METRICS)} |")
    print("|---|---|---|" + "---|" * len(METRICS))
    for scenario, by_runtime in results.items():
        for runtime, samples in by_runtime.items():
            cells = [_cell([s[m] for s in samples if s[m] is not None]) for m in METRICS]
            print(f"| {scenario} | {runtime} | {sum(s['passed'] for s in samples)}/{len(samples)} | {' | '.join(cells)} |")
    target = ROOT / "bench" / "results" / "docker_faults.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                  "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
