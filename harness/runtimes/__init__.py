"""The registry of runtimes: one module per runtime, one line here per module."""

from __future__ import annotations

from harness.runtimes.base import Replica, Runtime, Stack
from harness.runtimes.docker import DockerRuntime
from harness.runtimes.local import LocalRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    "local": LocalRuntime,
    "docker": DockerRuntime,
}

__all__ = ["RUNTIMES", "Replica", "Runtime", "Stack"]
