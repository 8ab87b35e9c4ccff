"""The memory cgroups' file protocol, on trees laid out like the kernel's in a temporary folder.

This machine mounts cgroup v1, where tests/integration/test_process_faults.py runs the real OOM
kill; cgroup v2 is checked here, against a unified tree with the files the kernel would show:
what is written where, how memory.events is read, ``max``, a controller missing from
subtree_control, a read-only mount, and the one message that names the runtime that works.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from harness.cgroups import (
    CgroupUnavailable,
    Hierarchy,
    MemoryCgroup,
    find_hierarchy,
    parse_limit,
    parse_mountinfo,
)
from harness.errors import StackError

MiB = 1024**2
LIMIT = 128 * MiB

# Two real hosts' mount tables (cut down): a hybrid v1 host like this one, and a unified v2 host.
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / {v1} rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = """\
22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 24 0:23 / {v2} {options},nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""


def kernel_v2_cgroup(folder: Path, controllers: str = "cpu io memory pids", subtree: str = "",
                     memory: bool = True, swap: bool = True) -> Path:
    """A cgroup v2 folder as the kernel shows it: interface files, and memory.* where its parent enabled memory."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"cgroup.controllers": controllers + "\n", "cgroup.subtree_control": subtree + "\n", "cgroup.procs": "",
             "cgroup.events": "populated 0\nfrozen 0\n"}
    if memory:
        files |= {"memory.max": "max\n", "memory.current": "0\n",
                  "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"}
        if swap:
            files["memory.swap.max"] = "max\n"
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def kernel_v1_memory(folder: Path, memsw: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"memory.limit_in_bytes": "9223372036854771712\n", "memory.failcnt": "0\n", "cgroup.procs": "",
             "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"}
    if memsw:
        files["memory.memsw.limit_in_bytes"] = "9223372036854771712\n"
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def mountinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAOSGATE_CGROUP_MEMORY_ROOT", raising=False)
    monkeypatch.delenv("CHAOSGATE_CGROUP_PARENT", raising=False)


# -- what is mounted ---------------------------------------------------------------------------

def test_a_v1_memory_hierarchy_wins_on_a_hybrid_host(tmp_path: Path) -> None:
    found = find_hierarchy(mountinfo(tmp_path, HYBRID.format(v1="/sys/fs/cgroup/memory")))
    assert found == Hierarchy(1, Path("/sys/fs/cgroup/memory"), read_only=False)
    assert found.base == Path("/sys/fs/cgroup/memory/chaosgate")


def test_a_unified_host_uses_cgroup_v2(tmp_path: Path) -> None:
    found = find_hierarchy(mountinfo(tmp_path, UNIFIED.format(v2="/sys/fs/cgroup", options="rw")))
    assert found == Hierarchy(2, Path("/sys/fs/cgroup"), read_only=False)
    delegated = find_hierarchy(mountinfo(tmp_path, UNIFIED.format(v2="/sys/fs/cgroup", options="rw")),
                               parent="/user.slice/user-1000.slice/user@1000.service")
    assert delegated.base == Path("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/chaosgate")


def test_mountinfo_escapes_and_read_only_mounts(tmp_path: Path) -> None:
    [mount] = parse_mountinfo(UNIFIED.format(v2=r"/mnt/my\040cgroups", options="ro").splitlines()[1])
    assert mount.point == Path("/mnt/my cgroups") and mount.read_only and mount.fstype == "cgroup2"
    assert parse_mountinfo("garbage\n\n1 2 3") == []


def test_no_memory_hierarchy_is_a_clear_error_naming_docker(tmp_path: Path) -> None:
    only_cpu = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    with pytest.raises(CgroupUnavailable, match="no cgroup hierarchy with the memory controller is mounted") as caught:
        find_hierarchy(mountinfo(tmp_path, only_cpu))
    assert "--runtime docker" in str(caught.value)
    assert isinstance(caught.value, StackError), "exit 2 (the environment is wrong), as every StackError"


def test_an_explicit_root_is_told_by_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_mounts = tmp_path / "absent-mountinfo"
    v2 = kernel_v2_cgroup(tmp_path / "v2")
    v1 = kernel_v1_memory(tmp_path / "v1")
    assert find_hierarchy(no_mounts, root=v2).version == 2
    monkeypatch.setenv("CHAOSGATE_CGROUP_MEMORY_ROOT", str(v1))
    assert find_hierarchy(no_mounts) == Hierarchy(1, v1)
    (tmp_path / "neither").mkdir()
    with pytest.raises(CgroupUnavailable, match="neither a cgroup v2 hierarchy"):
        find_hierarchy(no_mounts, root=tmp_path / "neither")


# -- cgroup v2: what gets written where ---------------------------------------------------------

def v2_tree(tmp_path: Path, root_subtree: str = "cpu memory pids") -> Hierarchy:
    root = kernel_v2_cgroup(tmp_path / "cgroup2", subtree=root_subtree, memory=False)
    info = mountinfo(tmp_path, UNIFIED.format(v2=root, options="rw"))
    return find_hierarchy(info)


def test_v2_create_enables_memory_down_the_path_and_writes_the_limits(tmp_path: Path) -> None:
    hierarchy = v2_tree(tmp_path)
    base = hierarchy.root / "chaosgate"
    # What the kernel shows after each mkdir: memory.* only where the parent enabled memory.
    kernel_v2_cgroup(base, memory=True)
    kernel_v2_cgroup(base / "run-1", memory=True)
    leaf = kernel_v2_cgroup(base / "run-1" / "chat_0_", controllers="memory")
    cgroup = MemoryCgroup("run-1", "chat[0]", LIMIT, hierarchy)
    cgroup.create()
    assert cgroup.path == leaf and cgroup.procs_file == leaf / "cgroup.procs"
    assert (hierarchy.root / "cgroup.subtree_control").read_text() == "cpu memory pids\n", "already enabled: untouched"
    assert (base / "cgroup.subtree_control").read_text() == "+memory"
    assert (base / "run-1" / "cgroup.subtree_control").read_text() == "+memory"
    assert (leaf / "memory.max").read_text() == str(LIMIT)
    assert (leaf / "memory.swap.max").read_text() == "0", "no swap past the limit"
    assert cgroup.limit() == LIMIT
    assert not (leaf / "memory.limit_in_bytes").exists(), "no v1 file written on v2"


def test_v2_without_swap_accounting_writes_memory_max_only(tmp_path: Path) -> None:
    hierarchy = v2_tree(tmp_path)
    kernel_v2_cgroup(hierarchy.base)
    kernel_v2_cgroup(hierarchy.base / "r")
    leaf = kernel_v2_cgroup(hierarchy.base / "r" / "chat_1_", swap=False)
    MemoryCgroup("r", "chat[1]", LIMIT, hierarchy).create()
    assert (leaf / "memory.max").read_text() == str(LIMIT) and not (leaf / "memory.swap.max").exists()


def test_v2_root_without_memory_in_subtree_control_gets_it_enabled(tmp_path: Path) -> None:
    hierarchy = v2_tree(tmp_path, root_subtree="cpu pids")
    kernel_v2_cgroup(hierarchy.base)
    kernel_v2_cgroup(hierarchy.base / "r")
    kernel_v2_cgroup(hierarchy.base / "r" / "chat_0_")
    MemoryCgroup("r", "chat[0]", LIMIT, hierarchy).create()
    assert (hierarchy.root / "cgroup.subtree_control").read_text() == "+memory"


def test_v2_a_child_without_memory_files_is_refused_plainly(tmp_path: Path) -> None:
    # The kernel did not give the new cgroup memory.max: enabling memory in its parent did not take.
    with pytest.raises(CgroupUnavailable, match=r"memory controller is not available in .*chaosgate"):
        MemoryCgroup("r", "chat[0]", LIMIT, v2_tree(tmp_path)).create()  # a folder the kernel did not fill
    hierarchy = v2_tree(tmp_path)
    kernel_v2_cgroup(hierarchy.base)
    kernel_v2_cgroup(hierarchy.base / "r")
    kernel_v2_cgroup(hierarchy.base / "r" / "chat_0_", memory=False)
    with pytest.raises(CgroupUnavailable, match=r"has no memory.max: the memory controller is not enabled") as caught:
        MemoryCgroup("r", "chat[0]", LIMIT, hierarchy).create()
    assert "--runtime docker" in str(caught.value)


def test_v2_memory_missing_from_the_parent_controllers_is_refused_before_anything(tmp_path: Path) -> None:
    root = kernel_v2_cgroup(tmp_path / "cgroup2", controllers="cpu io pids hugetlb", memory=False)
    hierarchy = find_hierarchy(mountinfo(tmp_path, UNIFIED.format(v2=root, options="rw")))
    with pytest.raises(CgroupUnavailable, match="memory controller is not available .* lists: cpu hugetlb io pids"):
        hierarchy.check()
    with pytest.raises(CgroupUnavailable):
        MemoryCgroup("r", "chat[0]", LIMIT, hierarchy).create()
    assert not hierarchy.base.exists(), "nothing was created"


def test_v2_a_delegated_parent_without_memory_says_where_to_enable_it(tmp_path: Path) -> None:
    root = kernel_v2_cgroup(tmp_path / "cgroup2", subtree="cpu pids", memory=False)
    kernel_v2_cgroup(root / "user.slice", controllers="cpu pids", memory=False)
    hierarchy = find_hierarchy(mountinfo(tmp_path, UNIFIED.format(v2=root, options="rw")), parent="user.slice")
    with pytest.raises(CgroupUnavailable, match=r"user.slice \(its cgroup.controllers lists: cpu pids; the parent "
                                                r"cgroup must enable it in its cgroup.subtree_control\)"):
        hierarchy.check()
    missing = find_hierarchy(mountinfo(tmp_path, UNIFIED.format(v2=root, options="rw")), parent="no/such")
    with pytest.raises(CgroupUnavailable, match="CHAOSGATE_CGROUP_PARENT"):
        missing.check()


def test_a_root_inside_a_read_only_mount_is_read_only(tmp_path: Path) -> None:
    root = kernel_v2_cgroup(tmp_path / "ro" / "cgroup2", memory=False)
    table = (f"21 1 0:20 / / rw - ext4 /dev/root rw\n"
             f"26 24 0:23 / {tmp_path / 'ro'} ro,relatime - tmpfs tmpfs ro\n")
    assert find_hierarchy(mountinfo(tmp_path, table), root=root).read_only
    assert not find_hierarchy(mountinfo(tmp_path, table.splitlines()[0]), root=root).read_only


def test_a_read_only_cgroupfs_is_refused_before_anything(tmp_path: Path) -> None:
    root = kernel_v2_cgroup(tmp_path / "cgroup2", memory=False)
    hierarchy = find_hierarchy(mountinfo(tmp_path, UNIFIED.format(v2=root, options="ro")))
    assert hierarchy.read_only
    with pytest.raises(CgroupUnavailable, match="mounted read-only") as caught:
        MemoryCgroup("r", "chat[0]", LIMIT, hierarchy).create()
    assert "--runtime docker" in str(caught.value)
    assert not hierarchy.base.exists()


@pytest.mark.parametrize(("code", "words"), [(errno.EROFS, "read-only"), (errno.EACCES, "needs root"),
                                             (errno.EBUSY, "has processes of its own"),
                                             (errno.ENOENT, "not enabled")])
def test_a_write_the_kernel_refuses_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 code: int, words: str) -> None:
    hierarchy = v2_tree(tmp_path, root_subtree="cpu pids")

    def refuse(path: str, flags: int, *args: object) -> int:
        raise OSError(code, os.strerror(code), path)

    monkeypatch.setattr("harness.cgroups.os.open", refuse)
    with pytest.raises(CgroupUnavailable, match=words) as caught:
        MemoryCgroup("r", "chat[0]", LIMIT, hierarchy).create()
    message = str(caught.value)
    assert "chat[0]" in message and "cgroup.subtree_control" in message and "--runtime docker" in message


def test_an_unwritable_hierarchy_is_refused_for_a_non_root_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hierarchy = v2_tree(tmp_path)
    monkeypatch.setattr("harness.cgroups.os.access", lambda path, mode: False)
    with pytest.raises(CgroupUnavailable, match="not writable by this user .*CHAOSGATE_CGROUP_PARENT"):
        hierarchy.check()


# -- cgroup v2: reading the kernel's counters ----------------------------------------------------

def test_v2_oom_kills_and_limit_hits_come_from_memory_events(tmp_path: Path) -> None:
    hierarchy = v2_tree(tmp_path)
    leaf = kernel_v2_cgroup(hierarchy.base / "r" / "chat_0_")
    cgroup = MemoryCgroup("r", "chat[0]", LIMIT, hierarchy)
    assert cgroup.oom_kills() == 0 and cgroup.failcnt() == 0
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 57\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert cgroup.oom_kills() == 2 and cgroup.failcnt() == 57
    (leaf / "memory.events").write_text("oom 1\n")  # an older kernel without the oom_kill line
    assert cgroup.oom_kills() == 0
    (leaf / "memory.events").unlink()
    assert cgroup.oom_kills() == 0, "unreadable (the cgroup is gone): no kill counted"


def test_v1_oom_kills_and_failcnt(tmp_path: Path) -> None:
    root = kernel_v1_memory(tmp_path / "memory")
    hierarchy = find_hierarchy(mountinfo(tmp_path, HYBRID.format(v1=root)))
    leaf = kernel_v1_memory(root / "chaosgate" / "r" / "chat_0_")
    cgroup = MemoryCgroup("r", "chat[0]", LIMIT, hierarchy)
    cgroup.create()
    assert (leaf / "memory.limit_in_bytes").read_text() == str(LIMIT)
    assert (leaf / "memory.memsw.limit_in_bytes").read_text() == str(LIMIT)
    assert not (leaf / "memory.max").exists(), "no v2 file written on v1"
    (leaf / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (leaf / "memory.failcnt").write_text("12\n")
    assert cgroup.oom_kills() == 3 and cgroup.failcnt() == 12


@pytest.mark.parametrize(("text", "value"), [("max\n", None), ("134217728\n", LIMIT),
                                             ("9223372036854771712\n", None), ("0", 0)])
def test_limits_read_back(text: str, value: int | None) -> None:
    assert parse_limit(text) == value
