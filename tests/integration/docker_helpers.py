"""Shared by the docker runtime's tests (test_docker_*.py): the engine fixture and leftover checks.

Like the ``components`` fixture in conftest.py: when no Docker engine can be had, or the
images cannot be built, the tests fail under CI=true (set-up is meant to provide both) and
are skipped elsewhere, with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.errors import ChaosgateError
from harness.runtimes.docker_engine import LABEL_RUN, LABEL_RUN_DIR, connect
from harness.runtimes.docker_images import ensure_images
from tests.missing import missing

if TYPE_CHECKING:
    from docker import DockerClient


@pytest.fixture(scope="session")
def docker_engine() -> DockerClient:
    """A client of a running engine with every image built (a no-op when they are up to date)."""
    try:
        client = connect()
        ensure_images(client, log=lambda message: print(f"docker images: {message}"))
    except ChaosgateError as exc:
        missing(f"no Docker engine (or its images cannot be built): {exc}")
    return client


def leftovers(client: DockerClient, run_dir: Path) -> list[str]:
    """Containers, networks and volumes still labelled with ``run_dir``."""
    selector: dict[str, str | list[str] | bool] = {"label": f"{LABEL_RUN_DIR}={run_dir.resolve()}"}
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=selector, ignore_removed=True)]
    found += [f"network {n.name}" for n in client.networks.list(filters=selector)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=selector)]
    return found


def run_resources(replicas: int) -> int:
    """How many resources a run of ``replicas`` replicas has in the engine: Envoy's and Toxiproxy's
    containers, each replica's network sandbox and fake container, and the run's network."""
    return 2 + 2 * replicas + 1


def run_ids(client: DockerClient, run_dir: Path) -> set[str]:
    """Run ids of the containers labelled with ``run_dir``."""
    selector: dict[str, str | list[str] | bool] = {"label": f"{LABEL_RUN_DIR}={run_dir.resolve()}"}
    return {c.labels[LABEL_RUN] for c in client.containers.list(all=True, filters=selector, ignore_removed=True)}


def health_states(client: DockerClient, label: str) -> dict[str, str]:
    """Docker's health status (starting, healthy, unhealthy) of each container with ``label``."""
    selector: dict[str, str | list[str] | bool] = {"label": label}
    return {c.name or c.id or "?": ((c.attrs.get("State") or {}).get("Health") or {}).get("Status", "none")
            for c in client.containers.list(all=True, filters=selector, ignore_removed=True)}
