"""The wheelhouse of the fakes image: every Python package the fakes need, as wheels built on
the host with ``pip wheel``, so that the image build needs no package index.

What goes in: the distributions the fakes import (found by following their imports, see
docker_sources.py) and pip itself, each pinned to the version installed here, with every
installed distribution as a constraint so that transitive dependencies get the host's
versions too. pip finds the wheels in its cache, a package index, or PIP_FIND_LINKS /
PIP_INDEX_URL (a mirror, on an air-gapped machine). Rebuilt only when that list changes.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.errors import StackError
from harness.runtimes.docker_base import BUILD_DIR, ROOT, Log, digest
from harness.runtimes.docker_sources import third_party_distributions

# uvicorn serves faster with these when they are installed; the fakes use them when present,
# so the image has them when the host does, and both runtimes serve alike.
OPTIONAL_SPEEDUPS = ("uvloop", "httptools")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def image_requirements() -> list[str]:
    """What the fakes image installs: the distributions the fakes import (found by following
    their imports), pinned to the versions installed here, plus pip itself (it installs the rest)."""
    names = third_party_distributions(ROOT)
    names += [n for n in OPTIONAL_SPEEDUPS if _installed(n)]
    pinned = [f"{name}=={version}" for name in dict.fromkeys(names) if (version := _installed(name))]
    return [f"pip=={_installed('pip') or '24.0'}", *pinned]


def host_constraints() -> list[str]:
    """Every distribution installed here, so transitive dependencies get the host's versions too."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and _canonical(name) not in ("chaosgate", "pip"):
            found[_canonical(name)] = f"{name}=={dist.version}"
    return sorted(found.values())


def ensure_wheelhouse(log: Log) -> Path:
    """``BUILD_DIR/wheels``: a wheel for every requirement of the fakes image, built with the
    host's pip (it uses the pip cache, PIP_INDEX_URL / PIP_FIND_LINKS for a mirror)."""
    requirements = image_requirements()
    constraints = host_constraints()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    key = digest([python, *requirements, "--", *constraints])
    wheels = BUILD_DIR / "wheels"
    if (wheels / ".digest").exists() and (wheels / ".digest").read_text() == key:
        return wheels
    log(f"building the wheelhouse for Python {python} (pip wheel, {len(requirements)} requirements)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix="wheels.", dir=BUILD_DIR))
    try:
        (fresh / "requirements.txt").write_text("\n".join(requirements) + "\n")
        (fresh / "constraints.txt").write_text("\n".join(constraints) + "\n")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--wheel-dir", str(fresh), "-r", str(fresh / "requirements.txt"), "-c", str(fresh / "constraints.txt")],
            capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError("pip wheel could not build the wheelhouse for the fakes image (a package index, "
                             "the pip cache, or PIP_FIND_LINKS must provide the wheels):\n"
                             + "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:]))
        (fresh / "constraints.txt").unlink()
        (fresh / ".digest").write_text(key)
        if wheels.exists():
            shutil.rmtree(wheels)
        fresh.rename(wheels)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh, ignore_errors=True)
    return wheels
