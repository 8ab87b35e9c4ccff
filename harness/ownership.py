"""Who started something: ``host:pid:start time`` of a harness process, and whether it still runs.

Resources a run leaves outside its own process (Docker containers and networks; the local runtime's
process sessions) carry this token, so that the next run can tell the leftovers of a harness that
is gone (SIGKILLed, out of memory, a power loss) from those of a harness that still runs. The start
time tells a reused pid apart.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command (state first); None: no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (None: no such process)."""
    fields = _stat(pid)
    return fields[19] if fields else None


def owner_token(pid: int | None = None) -> str:
    """``host:pid:start time`` of this process (or of ``pid``)."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_time(pid) or '?'}"


def owner_alive(token: str) -> bool:
    """Whether the process a token names still runs; tokens of other hosts, or not ours, count as alive."""
    try:
        host, pid, start = token.rsplit(":", 2)
        pid_number = int(pid)
    except ValueError:
        return True  # not a token we wrote: not ours to judge
    if host != socket.gethostname():
        return True
    fields = _stat(pid_number)  # a zombie (killed, not yet waited for by its parent) is gone
    return fields is not None and fields[19] == start and fields[0] != "Z"
