"""Start fake replicas by forking one process that has imported them, not by a new interpreter each.

A fake replica started with ``python -m fakes.llm`` spends about 0.3 s importing (starlette, uvicorn,
pydantic, faker) before it listens; three of them on a 2-core machine were most of a stack's start-up.
The fork server imports the fakes once and then forks one process per replica, which listens within
milliseconds. Each replica is still a process of its own (its own pid, session, log and memory
cgroup), so process faults (kill, freeze, OOM) hit that one replica, as before.

The harness (harness/forkserver.py) starts this with one end of a socket pair and asks over it, one
JSON line per replica::

    {"name": "chat[0]", "module": "fakes.llm", "args": [...], "log": "/run/logs/chat_0_.log", "cgroup_procs": null}

and gets ``{"pid": N}`` (or ``{"error": "..."}``). The replica is forked twice so that it is
adopted by the harness (a child subreaper, PR_SET_CHILD_SUBREAPER): the harness waits for it and
reads its exit status (a signal, an OOM kill) as for any process it started itself. The replica
then starts a session of its own, asks to be killed with the harness (PR_SET_PDEATHSIG), joins its
memory cgroup, sends its output to its log, takes the replica's name as its process name (what ``ps -o
comm`` and ``top`` show) and runs the module's ``main(args)``.

Run (by the harness)::

    python -m fakes.forkserver --fd 5 fakes.llm fakes.mcp
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from fakes import serving

FAKE_MODULES = frozenset({"fakes.llm", "fakes.anthropic", "fakes.mcp", "fakes.dns"})  # what may be preloaded and run
ADOPTION_TIMEOUT_S = 5.0  # how long a replica waits to be adopted by the harness before it gives up
EXIT_NOT_ADOPTED = 70
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


class SpawnRequest(BaseModel):
    """One replica to start: the module whose ``main`` it runs, its arguments, its log and its cgroup."""

    model_config = ConfigDict(extra="forbid")
    name: str
    module: str
    args: list[str]
    log: str
    cgroup_procs: str | None = None


def _run_replica(request: SpawnRequest, harness: int, report: int) -> None:
    """In the twice-forked process: become the replica described by ``request``; never returns."""
    code = 1
    try:
        os.setsid()  # a session of its own: the harness signals and reaps it as a group (harness/processes.py)
        os.write(report, str(os.getpid()).encode())
        os.close(report)
        deadline = time.monotonic() + ADOPTION_TIMEOUT_S
        while os.getppid() != harness:  # the intermediate exits at once; the subreaper harness adopts us
            if time.monotonic() > deadline:
                os._exit(EXIT_NOT_ADOPTED)
            time.sleep(0.0005)
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != harness:  # the harness died between the check and the prctl
            os._exit(EXIT_NOT_ADOPTED)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(request.name.encode()[:15]))
        if request.cgroup_procs is not None:
            with open(request.cgroup_procs, "w") as procs:
                procs.write(str(os.getpid()))
        log = os.open(request.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(devnull)
        sys.argv = [f"python -m {request.module}", *request.args]
        result = importlib.import_module(request.module).main(request.args)
        code = int(result or 0)
    except SystemExit as exc:  # argparse's errors exit 2
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a replica's crash goes to its log, and it exits 1
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def spawn(request: SpawnRequest, harness: int, server: socket.socket) -> int:
    """Fork twice; the grandchild becomes the replica. Returns its pid once its first parent is gone."""
    read_end, write_end = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:  # the intermediate: fork the replica and exit, orphaning it to the harness
        os.close(read_end)
        os.close(server.fileno())  # the replica keeps no line to the harness
        if os.fork() == 0:
            _run_replica(request, harness, write_end)
        os._exit(0)
    os.close(write_end)
    os.waitpid(intermediate, 0)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    if not answer:
        raise OSError("the replica process did not start")
    return int(answer)


def answer(line: bytes, harness: int, server: socket.socket) -> dict[str, Any]:
    try:
        request = SpawnRequest.model_validate_json(line)
    except ValidationError as exc:
        return {"error": f"bad request: {exc.errors()[0]['msg']}"}
    if request.module not in FAKE_MODULES:
        return {"error": f"{request.module} is not a fake this server runs ({', '.join(sorted(FAKE_MODULES))})"}
    try:
        return {"pid": spawn(request, harness, server)}
    except OSError as exc:
        return {"error": f"cannot start {request.module}: {exc.strerror or exc}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.forkserver",
                                     description="Fork fake replicas from one process that imported them "
                                                 "(started by the harness; see harness/forkserver.py).")
    parser.add_argument("--fd", type=int, required=True, help="the file descriptor of the harness's socket")
    parser.add_argument("modules", nargs="*", help="the fakes to import before the first request")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - FAKE_MODULES)
    if unknown:
        parser.error(f"not a fake: {', '.join(unknown)}")
    harness = os.getppid()
    for module in args.modules:
        imported = importlib.import_module(module)
        # what a replica does once on its first start (e.g. the fake LLM's seeded text generator), done here once
        warm = getattr(imported, "warm", None)
        if callable(warm):
            warm()
    serving.preload()
    server = socket.socket(fileno=args.fd)
    requests = server.makefile("rb")
    for line in requests:  # until the harness closes its end, or stops us
        sys.stdout.flush()
        server.sendall(json.dumps(answer(line, harness, server)).encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
