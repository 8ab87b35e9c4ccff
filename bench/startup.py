"""Benchmark: how long the local stack takes to start, and what a run costs beyond its load.

    .venv/bin/python bench/startup.py [--repeat 5] [--gateway envoy] [--loads 5,20] [--scenario bench/bench-scenario.yaml]

* start-up: ``LocalRuntime.up`` until the gateway reports every replica healthy, then
  ``down``; each phase timed separately (Toxiproxy + replicas ready, gateway ready, all healthy
  are inside ``up``; the total is what a user waits for). ``--gateway`` runs the same scenario
  on another gateway (envoy, haproxy, nginx, litellm).
* overhead: wall time of a whole ``run_scenario`` (start-up, load, teardown, judging,
  writing outputs) minus its load duration, for each load duration of ``--loads`` (the
  scenario's own, and its fault, with the load set to that many seconds).

Prints a table and writes bench/results/startup.json. Figures vary with machine load;
report the median and the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.output import load_run, write_outputs  # noqa: E402
from harness.phases import STACK_PHASES  # noqa: E402
from harness.run import run_scenario  # noqa: E402
from harness.runtimes.local import LocalRuntime  # noqa: E402
from harness.scenario import Scenario, load_scenario  # noqa: E402


def measure_startup(scenario: Scenario, repeat: int) -> list[dict[str, float]]:
    samples = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runtime = LocalRuntime()
            began = time.perf_counter()
            stack = runtime.up(scenario, Path(tmp) / scenario.name)
            ready = time.perf_counter()
            runtime.down()
            samples.append({"up": ready - began, "down": time.perf_counter() - ready,
                            **{f"stack.{name}": seconds for name, seconds in stack.phases.items()}})
    return samples


def with_load(scenario: Scenario, seconds: float) -> Scenario:
    """``scenario`` with its load running ``seconds``."""
    return scenario.model_copy(update={"load": scenario.load.model_copy(update={"duration": seconds})})


def measure_overhead(scenario: Scenario, scenario_file: Path, repeat: int) -> list[dict[str, float]]:
    samples = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            result = run_scenario(scenario, scenario_file, scenario_file.read_text(), Path(tmp))
            wall = time.perf_counter() - began
            run = load_run(result.run_dir / "journal.jsonl")
            report = time.perf_counter()
            write_outputs(result.run_dir / "journal.jsonl", result.run_dir)  # judging + report, as the run did
            samples.append({"wall": wall, "overhead": wall - scenario.load.duration,
                            "requests": float(result.summary["requests"]),
                            **{name: seconds for name, seconds in run.phases.items() if name not in STACK_PHASES},
                            "stack_ready": float(run.startup_seconds or 0.0),
                            "judge_and_report": time.perf_counter() - report})
    return samples


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f}s  min {min(values):.3f}s  max {max(values):.3f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="samples of each measurement (default 5)")
    parser.add_argument("--scenario", type=Path, default=ROOT / "bench" / "bench-scenario.yaml")
    parser.add_argument("--gateway", default=None, help="run the scenario on this gateway (default: its own, envoy)")
    parser.add_argument("--loads", default="5,20",
                        help="load durations in seconds to measure the run overhead with (default 5,20; 0: none)")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario, args.gateway)
    loads = [float(seconds) for seconds in args.loads.split(",") if float(seconds) > 0]

    startup = measure_startup(scenario, args.repeat)
    overheads = {seconds: measure_overhead(with_load(scenario, seconds), args.scenario, max(1, args.repeat // 2))
                 for seconds in loads}
    kind = scenario.gateway.kind
    replicas = sum(pool.replicas for pool in scenario.upstreams)
    print(f"stack start-up ({replicas} replicas, Toxiproxy, {kind}, all healthy): {_summary([s['up'] for s in startup])}")
    print(f"stack teardown: {_summary([s['down'] for s in startup])}")
    for phase in STACK_PHASES:  # where start-up goes, component by component (moments since it began)
        if all(f"stack.{phase}" in s for s in startup):
            print(f"  {phase:<24} at {_summary([s[f'stack.{phase}'] for s in startup])}")
    for seconds, overhead in overheads.items():
        shares = [s["overhead"] / seconds for s in overhead]
        print(f"run overhead, {seconds:g}s load (wall - load duration): {_summary([s['overhead'] for s in overhead])}"
              f"  ({statistics.median(shares):.0%} of the load)")
        for phase, words in (("stack_ready", "stack ready"), ("load_startup", "load process ready"),
                             ("drain", "load drained after its end"), ("teardown", "teardown"),
                             ("judge_and_report", "judging and report")):
            if all(phase in s for s in overhead):
                print(f"  {words:<24} {_summary([s[phase] for s in overhead])}")
    load = os.getloadavg()
    print(f"load average during the bench: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + ("  (a busy machine: these figures are high)" if load[0] > 0.5 else ""))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "startup.json" if kind == "envoy" else f"startup-{kind}.json"
    (out / name).write_text(json.dumps({
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "load_average": list(os.getloadavg()), "cpus": os.cpu_count()},
        "scenario": str(args.scenario.relative_to(ROOT)) if args.scenario.is_relative_to(ROOT) else str(args.scenario),
        "gateway": kind, "startup": startup,
        "overhead": {f"{seconds:g}s": samples for seconds, samples in overheads.items()}}, indent=2) + "\n")
    print(f"samples written to {out / name}")


if __name__ == "__main__":
    main()
