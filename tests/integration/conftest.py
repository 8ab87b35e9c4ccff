"""Fixtures for tests that start the real stack (Envoy, Toxiproxy, fake replicas, Locust)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import ComponentMissing
from harness.gateways.envoy import envoy_binary
from harness.gateways.haproxy import haproxy_binary
from harness.gateways.litellm import litellm_binary
from harness.gateways.nginx import nginx_binary
from harness.runtimes.base import RUN_MARKER
from harness.runtimes.local import toxiproxy_binary

ROOT = Path(__file__).resolve().parents[2]
CHAOSGATE = [sys.executable, "-m", "harness.cli"]


# The binary of each gateway other than Envoy, for tests that start it (require_components("haproxy")).
GATEWAY_BINARIES: dict[str, Callable[[], str]] = {"haproxy": haproxy_binary, "nginx": nginx_binary,
                                                  "litellm": litellm_binary}


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
        message = "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"component missing under CI: {message}")
        pytest.skip(message)


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


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


def chaosgate(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion and return its result."""
    return subprocess.run([*CHAOSGATE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
