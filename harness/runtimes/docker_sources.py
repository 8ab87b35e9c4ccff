"""What goes into the fakes image: fakes/, the harness modules it imports, and the
third-party distributions those import.

The fakes import a few harness modules (e.g. harness.durations for their fault modes).
Copying all of harness/ would rebuild the image on every harness change; instead the
imports of fakes/ are followed (statically, with ``ast``) through harness/, and only the
modules reached go in, with the ``__init__.py`` of every package on the way. The
third-party modules imported along the way name the distributions the image installs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

PACKAGES = ("fakes",)     # copied whole (every .py file)
FOLLOWED = ("harness",)   # copied as far as the fakes import it


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, root: Path) -> set[str]:
    """Modules ``path`` imports (absolute, and relative ones made absolute), as dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1] if path.name != "__init__.py"
                       else path.relative_to(root).parent.parts)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{anchor}.{node.module}" if node.module else anchor
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def fake_sources(root: Path) -> dict[str, Path]:
    """Path inside the image's source folder -> file on the host."""
    files: dict[str, Path] = {}
    todo: list[Path] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                todo.append(path)
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        files[path.relative_to(root).as_posix()] = path
        for module in _imports(path, root):
            if module.split(".")[0] not in FOLLOWED:
                continue
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # every package on the way has its __init__.py
                found = _module_file(root, ".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return dict(sorted(files.items()))


def third_party_distributions(root: Path) -> list[str]:
    """Distributions (as installed here) providing the non-standard-library modules the image's sources import."""
    local = set(PACKAGES) | set(FOLLOWED)
    modules: set[str] = set()
    for path in fake_sources(root).values():
        modules.update(name.split(".")[0] for name in _imports(path, root))
    modules -= local | set(sys.stdlib_module_names) | {"__future__", ""}
    providers = importlib.metadata.packages_distributions()
    found: set[str] = set()
    for module in sorted(modules):
        found.update(providers.get(module, []))
    return sorted(found, key=str.lower)
