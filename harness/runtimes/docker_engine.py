"""The Docker engine as the docker runtime sees it: a client with clear errors, the labels
that mark everything a run creates, and the removal of a run's resources by those labels.

Every container, network and volume a run creates carries ``io.chaosgate.run=<run id>``
and ``io.chaosgate.owner=<host>:<pid>:<process start time>`` of the harness that created
it. Teardown removes a run by its id; ``reap_orphans`` removes the runs whose owner
process no longer exists (a harness that was SIGKILLed, or lost power), so the next run
cleans up after it. Runs of other live processes are never touched.

The ``docker`` SDK is imported lazily: the local runtime and the CLI never pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ComponentMissing, StackError
from harness.ownership import owner_alive, owner_token

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

LABEL_RUN = "io.chaosgate.run"
LABEL_OWNER = "io.chaosgate.owner"
LABEL_RUN_DIR = "io.chaosgate.run-dir"
LABEL_COMPONENT = "io.chaosgate.component"
LABEL_NAME = "io.chaosgate.name"

HOW_TO_GET_AN_ENGINE = ("run `bash .ci/setup` (as root it installs Debian's docker.io and starts dockerd), "
                        "or start a Docker engine yourself and set DOCKER_HOST if it is not on "
                        "/var/run/docker.sock; or use --runtime local")


def connect(timeout: float = 60.0) -> DockerClient:
    """A client of the engine at DOCKER_HOST (default: the local socket); ComponentMissing if none answers."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # the SDK is a dependency; a broken install is still worth a clear word
        raise ComponentMissing("the docker Python SDK is not installed: run `bash .ci/setup`") from exc
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise ComponentMissing(f"no Docker engine answers at {where} ({_first_line(exc)}): {HOW_TO_GET_AN_ENGINE}") from exc
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- ownership (harness/ownership.py: the token and its test are shared with the local runtime) --

def run_labels(run_id: str, run_dir: Path) -> dict[str, str]:
    """The labels every resource of one run carries."""
    return {LABEL_RUN: run_id, LABEL_OWNER: owner_token(), LABEL_RUN_DIR: str(run_dir.resolve())}


# -- removal -----------------------------------------------------------------------

def run_containers(client: DockerClient, run_id: str) -> list[Container]:
    return list(client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}, ignore_removed=True))


def save_logs(containers: Iterable[Container], log_dir: Path) -> None:
    """Write each container's output to ``log_dir/<name>.log`` (as the local runtime names them)."""
    from docker.errors import DockerException

    log_dir.mkdir(parents=True, exist_ok=True)
    for container in containers:
        name = container.labels.get(LABEL_NAME) or container.name or container.id or "container"
        try:
            output = container.logs(stdout=True, stderr=True)
        except DockerException as exc:
            output = f"(could not read the container's logs: {_first_line(exc)})\n".encode()
        (log_dir / f"{file_safe(name)}.log").write_bytes(output)


def remove_run(client: DockerClient, run_id: str, log_dir: Path | None = None) -> list[str]:
    """Remove every container, network and volume labelled with ``run_id``; return what could not be removed.

    Containers are killed, not stopped: the run is over and their logs are saved first.
    """
    from docker.errors import DockerException, NotFound

    problems: list[str] = []
    selector: dict[str, str | list[str] | bool] = {"label": f"{LABEL_RUN}={run_id}"}
    try:
        containers = run_containers(client, run_id)
        if log_dir is not None:
            save_logs(containers, log_dir)

        def remove(container: Container) -> None:
            try:
                container.remove(force=True, v=True)
            except NotFound:
                pass
            except DockerException as exc:
                problems.append(f"container {container.name}: {_first_line(exc)}")

        if containers:
            with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
                list(pool.map(remove, containers))
        for network in client.networks.list(filters=selector):
            try:
                network.remove()
            except NotFound:
                pass
            except DockerException as exc:
                problems.append(f"network {network.name}: {_first_line(exc)}")
        for volume in client.volumes.list(filters=selector):
            try:
                volume.remove(force=True)
            except NotFound:
                pass
            except DockerException as exc:
                problems.append(f"volume {volume.name}: {_first_line(exc)}")
    except DockerException as exc:
        problems.append(f"the engine: {_first_line(exc)}")
    return problems


def leftover_runs(client: DockerClient) -> dict[str, str]:
    """Every run id that has a labelled container, network or volume, with its owner token."""
    selector: dict[str, str | list[str] | bool] = {"label": LABEL_RUN}
    runs: dict[str, str] = {}
    resources: list[dict[str, str]] = []
    resources += [c.labels for c in client.containers.list(all=True, filters=selector, ignore_removed=True)]
    resources += [n.attrs.get("Labels") or {} for n in client.networks.list(filters=selector)]
    resources += [v.attrs.get("Labels") or {} for v in client.volumes.list(filters=selector)]
    for labels in resources:
        if LABEL_RUN in labels:
            runs.setdefault(labels[LABEL_RUN], labels.get(LABEL_OWNER, ""))
    return runs


def reap_orphans(client: DockerClient) -> list[str]:
    """Remove the runs whose harness process is gone; return their ids."""
    from docker.errors import DockerException

    try:
        orphans = [run for run, owner in leftover_runs(client).items() if not owner_alive(owner)]
    except DockerException as exc:
        raise StackError(f"cannot list the engine's containers: {_first_line(exc)}") from exc
    for run_id in orphans:
        remove_run(client, run_id)
    return orphans


def file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
