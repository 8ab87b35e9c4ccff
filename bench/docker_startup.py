"""Benchmark: stack start-up on the docker runtime, with cold and warm images, beside local.

    .venv/bin/python bench/docker_startup.py [--repeat 5] [--cold-repeat 1] [--scenario bench/bench-scenario.yaml]
                                             [--skip-scratch] [--out bench/results/docker_startup.json]

``--cold-repeat 0 --skip-scratch`` measures local and docker warm only (no image is removed).

Each sample is ``Runtime.up`` until the gateway reports every replica healthy (what a user
waits for), then ``down``, timed separately:

* local         processes on 127.0.0.1 (LocalRuntime), as bench/startup.py measures it;
* docker warm   every image built and up to date (the usual case);
* docker cold   the three application images removed, with their layer cache: ``up``
                builds them from the base image and the wheelhouse, then starts the stack;
* docker scratch  nothing at all: the base image, the application images and the
                wheelhouse removed, so ``up`` runs debootstrap, ``pip wheel`` (from pip's
                cache, as on a machine that installed the project) and every build.

Cold and scratch samples remove chaosgate's images: do not run this while docker-runtime
tests run. Prints a table and writes bench/results/docker_startup.json. Figures vary with
machine load; report the median and the spread.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.runtimes.base import Runtime  # noqa: E402
from harness.runtimes.docker import DockerRuntime  # noqa: E402
from harness.runtimes.docker_engine import connect  # noqa: E402
from harness.runtimes.docker_images import BASE_IMAGE, BUILD_DIR, IMAGES, ensure_images  # noqa: E402
from harness.runtimes.local import LocalRuntime  # noqa: E402
from harness.scenario import Scenario, load_scenario  # noqa: E402

Sample = dict[str, float]


def _quiet(message: str) -> None:
    pass


def _remove_images(tags: list[str]) -> None:
    from docker.errors import ImageNotFound

    client = connect()
    for tag in tags:
        try:
            client.images.remove(tag, force=True, noprune=False)  # its untagged parents (the layer cache) go too
        except ImageNotFound:
            pass


def _cold() -> None:
    _remove_images([spec.tag for spec in IMAGES])


def _scratch() -> None:
    _remove_images([spec.tag for spec in IMAGES] + [BASE_IMAGE])
    shutil.rmtree(BUILD_DIR / "wheels", ignore_errors=True)


def measure(make: Callable[[], Runtime], scenario: Scenario, repeat: int,
            prepare: Callable[[], None] | None = None) -> list[Sample]:
    samples = []
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        with tempfile.TemporaryDirectory() as tmp:
            runtime = make()
            began = time.perf_counter()
            try:
                runtime.up(scenario, Path(tmp) / scenario.name)
                ready = time.perf_counter()
            finally:
                ended = time.perf_counter()
                runtime.down()
            samples.append({"up": ready - began, "down": time.perf_counter() - ended})
    return samples


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):7.2f}s  min {min(values):7.2f}s  max {max(values):7.2f}s  (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="samples of local and docker warm (default 5)")
    parser.add_argument("--cold-repeat", type=int, default=1, help="samples of docker cold and scratch (default 1)")
    parser.add_argument("--scenario", type=Path, default=ROOT / "bench" / "bench-scenario.yaml")
    parser.add_argument("--skip-scratch", action="store_true", help="do not rebuild the base image from nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "docker_startup.json",
                        help="where the samples are written")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)

    results: dict[str, list[Sample]] = {}
    results["local"] = measure(LocalRuntime, scenario, args.repeat)
    ensure_images(connect(), _quiet)
    results["docker warm"] = measure(lambda: DockerRuntime(log=_quiet), scenario, args.repeat)
    if args.cold_repeat > 0:
        results["docker cold"] = measure(lambda: DockerRuntime(log=_quiet), scenario, args.cold_repeat, prepare=_cold)
    if not args.skip_scratch and args.cold_repeat > 0:
        results["docker scratch"] = measure(lambda: DockerRuntime(log=_quiet), scenario, args.cold_repeat,
                                            prepare=_scratch)

    print(f"stack start-up of {args.scenario.name} ({len(scenario.replicas)} replicas, Toxiproxy, Envoy, "
          "until every replica is healthy):")
    for name, samples in results.items():
        print(f"  {name:<15} up   {_summary([s['up'] for s in samples])}")
        print(f"  {'':<15} down {_summary([s['down'] for s in samples])}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "scenario": str(args.scenario.relative_to(ROOT)) if args.scenario.is_relative_to(ROOT) else str(args.scenario),
        "samples": results}, indent=2) + "\n")
    print(f"samples written to {args.out}")


if __name__ == "__main__":
    main()
