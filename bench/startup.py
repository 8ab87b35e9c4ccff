"""Benchmark: how long the local stack takes to start, and what a run costs beyond its load.

    .venv/bin/python bench/startup.py [--repeat 5] [--scenario bench/bench-scenario.yaml]

* start-up: ``LocalRuntime.up`` until the gateway reports every replica healthy, then
  ``down``; each phase timed separately (Toxiproxy + replicas ready, gateway ready, all healthy
  are inside ``up``; the total is what a user waits for).
* overhead: wall time of a whole ``run_scenario`` (start-up, load, teardown, judging,
  writing outputs) minus the load duration the scenario declares.

Prints a table and writes bench/results/startup.json. Figures vary with machine load;
report the median and the spread.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.run import run_scenario  # noqa: E402
from harness.runtimes.local import LocalRuntime  # noqa: E402
from harness.scenario import load_scenario  # noqa: E402


def measure_startup(scenario_file: Path, repeat: int) -> list[dict[str, float]]:
    scenario = load_scenario(scenario_file)
    samples = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runtime = LocalRuntime()
            began = time.perf_counter()
            runtime.up(scenario, Path(tmp) / scenario.name)
            ready = time.perf_counter()
            runtime.down()
            samples.append({"up": ready - began, "down": time.perf_counter() - ready})
    return samples


def measure_overhead(scenario_file: Path, repeat: int) -> list[dict[str, float]]:
    scenario = load_scenario(scenario_file)
    samples = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            result = run_scenario(scenario, scenario_file, scenario_file.read_text(), Path(tmp))
            wall = time.perf_counter() - began
            samples.append({"wall": wall, "overhead": wall - scenario.load.duration,
                            "requests": float(result.summary["requests"])})
    return samples


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f}s  min {min(values):.3f}s  max {max(values):.3f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="samples of each measurement (default 5)")
    parser.add_argument("--scenario", type=Path, default=ROOT / "bench" / "bench-scenario.yaml")
    args = parser.parse_args()

    startup = measure_startup(args.scenario, args.repeat)
    overhead = measure_overhead(args.scenario, max(1, args.repeat // 2))
    print(f"stack start-up (3 replicas, Toxiproxy, Envoy, all healthy): {_summary([s['up'] for s in startup])}")
    print(f"stack teardown:                                             {_summary([s['down'] for s in startup])}")
    print(f"run overhead (wall - declared load duration):               {_summary([s['overhead'] for s in overhead])}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "startup.json").write_text(json.dumps({
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "scenario": str(args.scenario.relative_to(ROOT)) if args.scenario.is_relative_to(ROOT) else str(args.scenario),
        "startup": startup, "overhead": overhead}, indent=2) + "\n")
    print(f"samples written to {out / 'startup.json'}")


if __name__ == "__main__":
    main()
