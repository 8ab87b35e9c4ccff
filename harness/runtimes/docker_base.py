"""What the docker runtime's image builds share: where they work, how images are labelled,
and the offline base image.

``chaosgate-base:bookworm`` is built once, with no container registry:
``debootstrap --variant=minbase --include=python3 bookworm`` into a folder from the Debian
mirror apt uses (or CHAOSGATE_DEBIAN_MIRROR), then ``docker import``. It is labelled with a
digest of the debootstrap arguments and with its Python version (the wheelhouse must match).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ComponentMissing, StackError

if TYPE_CHECKING:
    from docker import DockerClient

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / ".tools" / "docker"  # wheelhouse, build contexts, logs (git-ignored, beside the tools)

BASE_IMAGE = "chaosgate-base:bookworm"
LABEL_DIGEST = "io.chaosgate.digest"
LABEL_PYTHON = "io.chaosgate.python"

DEBIAN_SUITE = "bookworm"
DEBOOTSTRAP_ARGS = ("--variant=minbase", "--include=python3")
DEFAULT_MIRROR = "http://deb.debian.org/debian"

Log = Callable[[str], None]


def digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def debian_mirror() -> str:
    """CHAOSGATE_DEBIAN_MIRROR, else the first Debian archive apt is configured with, else deb.debian.org."""
    if override := os.environ.get("CHAOSGATE_DEBIAN_MIRROR"):
        return override
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for uri in re.findall(r"(?:^deb\s+(?:\[[^]]*\]\s+)?|^URIs:\s*)(\S+)", text, flags=re.M):
            if uri.rstrip("/").endswith("/debian") and "security" not in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def ensure_base(client: DockerClient, log: Log, force: bool = False) -> str:
    """``chaosgate-base:bookworm``, built once with debootstrap and ``docker import``; returns its id."""
    from docker.errors import ImageNotFound

    key = digest([DEBIAN_SUITE, *DEBOOTSTRAP_ARGS])
    if not force:
        try:
            image = client.images.get(BASE_IMAGE)
            if image.labels.get(LABEL_DIGEST) == key:
                return str(image.id)
        except ImageNotFound:
            pass
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None)
    if debootstrap is None:
        raise ComponentMissing("debootstrap is not installed (it builds the offline base image): run `bash .ci/setup` "
                               "as root, or `apt-get install debootstrap`; or build from a registry with "
                               "CHAOSGATE_IMAGE_BASE=registry")
    if os.geteuid() != 0:
        raise StackError("building the offline base image needs root (debootstrap): run "
                         "`sudo .venv/bin/python -m harness.runtimes.docker_cli build` once, "
                         "or build from a registry with CHAOSGATE_IMAGE_BASE=registry")
    mirror = debian_mirror()
    log(f"building {BASE_IMAGE}: debootstrap {' '.join(DEBOOTSTRAP_ARGS)} {DEBIAN_SUITE} from {mirror} (about 40 s)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="base.", dir=BUILD_DIR))
    try:
        rootfs = work / "rootfs"
        with (BUILD_DIR / "debootstrap.log").open("wb") as out:
            done = subprocess.run([debootstrap, *DEBOOTSTRAP_ARGS, DEBIAN_SUITE, str(rootfs), mirror],
                                  stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            try:
                tail = (BUILD_DIR / "debootstrap.log").read_text(errors="replace").strip().splitlines()[-5:]
            except OSError:
                tail = ["(its log is gone)"]
            raise StackError(f"debootstrap failed (exit {done.returncode}; log {BUILD_DIR / 'debootstrap.log'}):\n"
                             + "\n".join(tail))
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        python = os.readlink(rootfs / "usr/bin/python3").removeprefix("python")
        tarball = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], check=True)
        client.api.import_image(src=str(tarball), repository=BASE_IMAGE.split(":")[0], tag=BASE_IMAGE.split(":")[1],
                                changes=[f"LABEL {LABEL_DIGEST}={key} {LABEL_PYTHON}={python}",
                                         "ENV LANG=C.UTF-8", 'CMD ["bash"]'])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return str(client.images.get(BASE_IMAGE).id)
