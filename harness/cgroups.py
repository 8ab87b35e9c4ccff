"""Real memory limits for local replicas: one memory cgroup per replica, on cgroup v1 or v2.

Which hierarchy is used is read from what is mounted (``/proc/self/mountinfo``): a cgroup v1
hierarchy with the ``memory`` controller wins (on a hybrid host the controller lives there);
otherwise the unified cgroup v2 hierarchy, whose ``cgroup.controllers`` must offer ``memory``.

cgroup v1, under the memory controller's mount (``/sys/fs/cgroup/memory``)::

    chaosgate/<run>/<replica>/memory.limit_in_bytes        <- the limit
                              memory.memsw.limit_in_bytes  <- the same (memory + swap: no swap past it),
                                                              when the kernel accounts swap
                              memory.oom_control           -> "oom_kill N", the kernel's OOM kills
                              memory.failcnt               -> times the limit was hit

cgroup v2, under the unified mount (``/sys/fs/cgroup``) or a delegated parent in it
(``CHAOSGATE_CGROUP_PARENT``)::

    <parent>/cgroup.subtree_control                        <- "+memory" unless it lists memory already
    <parent>/chaosgate/cgroup.subtree_control              <- "+memory" (likewise)
    <parent>/chaosgate/<run>/cgroup.subtree_control        <- "+memory" (likewise)
    <parent>/chaosgate/<run>/<replica>/memory.max          <- the limit
                                       memory.swap.max     <- 0 (no swap at all), when swap is accounted
                                       memory.events       -> "oom_kill N" and "max N" (times the limit was hit)

Either way the replica's process joins ``cgroup.procs`` before it runs the fake (see
``harness.processes``), the kernel's OOM killer ends it when it grows past the limit, and
``oom_kills()`` reads the kernel's own counter: that is how an exit is told to be an OOM kill.
A machine where none of this can be done (no memory controller, a read-only cgroupfs, not root
and no delegated parent) gets a ``CgroupUnavailable`` before anything starts, naming the
runtime that works there (``--runtime docker``).

``CHAOSGATE_CGROUP_MEMORY_ROOT`` names the hierarchy's root instead of the mount table (its
version is then told by its files: ``cgroup.controllers`` is v2, ``memory.limit_in_bytes`` v1);
the unit tests point it, or ``find_hierarchy(root=...)``, at a tree laid out like the kernel's.
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.errors import StackError

ROOT_ENV = "CHAOSGATE_CGROUP_MEMORY_ROOT"
PARENT_ENV = "CHAOSGATE_CGROUP_PARENT"
MOUNTINFO = Path("/proc/self/mountinfo")
UNIFIED = Path("/sys/fs/cgroup")
V1_MEMORY = UNIFIED / "memory"
WORKS_ELSEWHERE = ("run it as root on a host with a writable cgroup hierarchy, "
                   "or use --runtime docker, where the container engine enforces memory_limit")


class CgroupUnavailable(StackError):
    """This machine cannot give a replica a memory cgroup (the message says why and what works)."""


def _unavailable(why: str) -> CgroupUnavailable:
    return CgroupUnavailable(f"memory_limit needs a memory cgroup per replica on the local runtime, but {why}; "
                             f"{WORKS_ELSEWHERE}")


# -- what is mounted --------------------------------------------------------------------------

@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo, the fields this module needs."""

    point: Path
    fstype: str
    read_only: bool
    super_options: frozenset[str]


def _unescape(field_: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of ``text`` (proc(5): ``id parent major:minor root point options [optional...] - fstype
    source super-options``); lines that do not have that shape are left out."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 6:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4:
            continue
        mounts.append(Mount(Path(_unescape(fields[4])), fields[dash + 1], "ro" in fields[5].split(","),
                            frozenset(fields[dash + 3].split(","))))
    return mounts


@dataclass(frozen=True)
class Hierarchy:
    """The cgroup hierarchy that holds the memory controller, and where chaosgate's cgroups go in it."""

    version: Literal[1, 2]
    root: Path                    # v1: the memory controller's mount; v2: the unified mount
    read_only: bool = False
    parent: str = ""              # v2: a delegated cgroup under root where ours go ("" is the root itself)

    @property
    def parent_path(self) -> Path:
        return self.root / self.parent.strip("/") if self.parent.strip("/") else self.root

    @property
    def base(self) -> Path:
        """The folder of every chaosgate run's cgroups."""
        return self.parent_path / "chaosgate"

    def check(self) -> None:
        """CgroupUnavailable unless cgroups can be made here: the controller is there, the fs writable."""
        if self.read_only:
            raise _unavailable(f"the cgroup filesystem at {self.root} is mounted read-only "
                               "(as in a container without its own writable cgroup namespace)")
        if self.version == 1:
            if not (self.root / "memory.limit_in_bytes").exists():
                raise _unavailable(f"{self.root} is not a cgroup v1 memory hierarchy (it has no memory.limit_in_bytes)")
        else:
            if not self.parent_path.is_dir():
                raise _unavailable(f"the cgroup {self.parent_path} ({PARENT_ENV}) does not exist")
            available = _words(self.parent_path / "cgroup.controllers")
            if "memory" not in available:
                raise _unavailable(f"the memory controller is not available in the cgroup v2 hierarchy at "
                                   f"{self.parent_path} (its cgroup.controllers lists: {' '.join(sorted(available)) or 'nothing'}; "
                                   "the parent cgroup must enable it in its cgroup.subtree_control)")
        target = self.base if self.base.is_dir() else self.parent_path
        if not os.access(target, os.W_OK):
            raise _unavailable(f"{target} is not writable by this user (creating cgroups needs root, "
                               f"or on cgroup v2 a cgroup delegated to you named by {PARENT_ENV})")

    def cgroup_of(self, pid: int) -> Path:
        """The memory cgroup ``/proc/<pid>/cgroup`` says ``pid`` is in, as a folder of this hierarchy."""
        for line in (Path("/proc") / str(pid) / "cgroup").read_text().splitlines():
            number, controllers, path = line.split(":", 2)
            if (self.version == 2 and number == "0" and controllers == "") or \
                    (self.version == 1 and "memory" in controllers.split(",")):
                return self.root / path.lstrip("/")
        raise StackError(f"pid {pid} is in no memory cgroup of {self.root}")


def _version_of(root: Path) -> Literal[1, 2] | None:
    if (root / "cgroup.controllers").exists():
        return 2
    if (root / "memory.limit_in_bytes").exists():
        return 1
    return None


def find_hierarchy(mountinfo: Path = MOUNTINFO, root: Path | None = None, parent: str | None = None) -> Hierarchy:
    """The hierarchy to put replicas' memory cgroups in: ``root`` (default ``$CHAOSGATE_CGROUP_MEMORY_ROOT``)
    when given, else the mount table's v1 memory hierarchy, else its cgroup v2 one; CgroupUnavailable
    when there is none. It is not checked for writability here: see ``Hierarchy.check``."""
    parent = os.environ.get(PARENT_ENV, "") if parent is None else parent
    try:
        mounts = parse_mountinfo(mountinfo.read_text())
    except OSError:
        mounts = []
    if root is None and (env := os.environ.get(ROOT_ENV)):
        root = Path(env)
    if root is not None:
        version = _version_of(root)
        if version is None:
            raise _unavailable(f"{root} ({ROOT_ENV}) is neither a cgroup v2 hierarchy (no cgroup.controllers) "
                               "nor a cgroup v1 memory hierarchy (no memory.limit_in_bytes)")
        holding = [m for m in mounts if root == m.point or m.point in root.parents]  # the mount root lies on
        read_only = max(holding, key=lambda m: len(m.point.parts)).read_only if holding else False
        return Hierarchy(version, root, read_only, parent if version == 2 else "")
    for mount in mounts:
        if mount.fstype == "cgroup" and "memory" in mount.super_options:
            return Hierarchy(1, mount.point, mount.read_only)
    for mount in mounts:
        if mount.fstype == "cgroup2":
            return Hierarchy(2, mount.point, mount.read_only, parent)
    if not mounts:  # no mount table to read: what the usual places hold
        for guess in (V1_MEMORY, UNIFIED):
            if (version := _version_of(guess)) is not None:
                return Hierarchy(version, guess, False, parent if version == 2 else "")
    raise _unavailable("no cgroup hierarchy with the memory controller is mounted "
                       f"(neither a cgroup v1 memory hierarchy nor cgroup v2 in {mountinfo})")


def memory_hierarchy() -> Hierarchy:
    """The machine's hierarchy, checked: what the local runtime calls before it starts anything."""
    hierarchy = find_hierarchy()
    hierarchy.check()
    return hierarchy


# -- the file protocol --------------------------------------------------------------------------

def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def write_cgroup_file(path: Path, value: str) -> None:
    """Write ``value`` into an existing cgroup file (never creates one: a missing file is an error,
    as it is on the kernel's cgroupfs, where a file exists only where its controller is enabled)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _counters(path: Path) -> dict[str, int]:
    """``key value`` lines (memory.events, memory.oom_control) as a dict; unreadable: empty."""
    counters = {}
    try:
        text = path.read_text()
    except OSError:
        return {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        try:
            counters[key] = int(value)
        except ValueError:
            continue
    return counters


def parse_limit(text: str) -> int | None:
    """A limit file's value in bytes; None for no limit (v2's ``max``, v1's page-rounded 2**63-1)."""
    value = text.strip()
    if value == "max":
        return None
    number = int(value)
    return None if number >= 2**63 - 4096 * 2 else number


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _explain(exc: OSError, path: Path, replica: str) -> CgroupUnavailable:
    why = {errno.EROFS: "the cgroup filesystem is read-only",
           errno.EACCES: "permission denied: creating cgroups needs root (or a delegated cgroup v2 parent)",
           errno.EPERM: "not permitted: creating cgroups needs root (or a delegated cgroup v2 parent)",
           errno.EBUSY: "the cgroup has processes of its own, and cgroup v2 enables a controller for the "
                        f"children of a cgroup without processes only (set {PARENT_ENV} to one)",
           errno.ENOENT: "the controller is not enabled there"}.get(exc.errno or 0, exc.strerror or str(exc))
    return _unavailable(f"{replica}: cannot set up the memory cgroup at {path} ({why})")


def enable_controller(folder: Path, controller: str, who: str) -> None:
    """cgroup v2: make ``controller`` available to ``folder``'s children (``+controller`` into its
    cgroup.subtree_control, unless it is listed there already)."""
    if controller not in _words(folder / "cgroup.controllers"):
        raise _unavailable(f"{who}: the {controller} controller is not available in {folder} (its cgroup.controllers "
                           f"lacks {controller}: its parent's cgroup.subtree_control must enable it)")
    if controller not in _words(folder / "cgroup.subtree_control"):
        try:
            write_cgroup_file(folder / "cgroup.subtree_control", f"+{controller}")
        except OSError as exc:
            raise _explain(exc, folder / "cgroup.subtree_control", who) from exc


def make_v2_cgroup(hierarchy: Hierarchy, path: Path, controller: str, who: str) -> None:
    """cgroup v2: make ``path`` (a folder under ``hierarchy.parent_path``) with ``controller`` enabled
    down to it: ``+controller`` into the subtree_control of the parent and of every folder between."""
    between = path.relative_to(hierarchy.parent_path).parents  # e.g. chaosgate/run, chaosgate, .
    for folder in [hierarchy.parent_path / p for p in reversed(between)]:
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise _explain(exc, folder, who) from exc
        enable_controller(folder, controller, who)
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise _explain(exc, path, who) from exc


@dataclass
class MemoryCgroup:
    """One replica's memory cgroup: ``create`` makes it, ``remove`` deletes it (idempotent)."""

    run: str
    replica: str
    limit_bytes: int
    hierarchy: Hierarchy = field(default_factory=memory_hierarchy)

    @property
    def path(self) -> Path:
        return self.hierarchy.base / _safe(self.run) / _safe(self.replica)

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def create(self) -> None:
        self.hierarchy.check()
        step = self.path
        try:
            if self.hierarchy.version == 1:
                self.path.mkdir(parents=True, exist_ok=True)
                write_cgroup_file(step := self.path / "memory.limit_in_bytes", str(self.limit_bytes))
                if (self.path / "memory.memsw.limit_in_bytes").exists():
                    write_cgroup_file(step := self.path / "memory.memsw.limit_in_bytes", str(self.limit_bytes))
                return
            make_v2_cgroup(self.hierarchy, self.path, "memory", self.replica)
            step = self.path / "memory.max"
            if not step.exists():
                raise _unavailable(f"{self.replica}: {self.path} has no memory.max: the memory controller "
                                   f"is not enabled for it (its parent's cgroup.subtree_control lacks memory)")
            write_cgroup_file(step, str(self.limit_bytes))
            if (swap := self.path / "memory.swap.max").exists():
                write_cgroup_file(step := swap, "0")
        except OSError as exc:
            raise _explain(exc, step, self.replica) from exc

    def _state(self) -> dict[str, int]:
        name = "memory.oom_control" if self.hierarchy.version == 1 else "memory.events"
        return _counters(self.path / name)

    def oom_kills(self) -> int:
        """The kernel's count of OOM kills in this cgroup (0 if unreadable)."""
        return self._state().get("oom_kill", 0)

    def failcnt(self) -> int:
        """How often the limit was hit: v1's ``memory.failcnt``, v2's ``max`` in ``memory.events``."""
        if self.hierarchy.version == 2:
            return self._state().get("max", 0)
        try:
            return int((self.path / "memory.failcnt").read_text())
        except (OSError, ValueError):
            return 0

    def limit(self) -> int | None:
        """The limit the kernel enforces now, in bytes (None: none)."""
        name = "memory.limit_in_bytes" if self.hierarchy.version == 1 else "memory.max"
        return parse_limit((self.path / name).read_text())

    def remove(self, timeout: float = 3.0) -> None:
        """Delete the cgroup (and its run folder, and chaosgate's, when empty) once its processes are gone."""
        deadline = time.monotonic() + timeout
        while self.path.exists():
            try:
                self.path.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
        for folder in (self.path.parent, self.path.parent.parent):  # the run's, then chaosgate's when empty
            try:
                folder.rmdir()
            except OSError:
                return
