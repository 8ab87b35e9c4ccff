"""The Locust side of the distributed load process (harness/load/master.py, which starts the local workers first).

A Locust ``MasterRunner`` and the ``Fleet`` of its workers: their hellos and clocks, their records, their deaths.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.socket
from locust.env import Environment
from locust.rpc.protocol import Message
from locust.runners import STATE_MISSING, MasterRunner

from harness.load.clock import ROUNDS, ClockSample, best, offset_problem
from harness.load.config import LoadConfig
from harness.load.node import CLOCK, CLOCK_REPLY, CONFIG, FINISH, FLUSHED, HELLO
from harness.load.records import STREAM_KEY, tagged
from harness.load.master import spawn_local
from harness.load.worker import emit, make_user

FLUSH_TIMEOUT = 10.0  # for the workers' last records at the load's end
WATCH_INTERVAL = 0.2  # how often the workers are checked for life during the load


@dataclass
class Member:
    """One worker that said hello."""

    client_id: str
    id: str
    pid: int
    host: str
    process: subprocess.Popen[bytes] | None = None  # a local worker this master started
    samples: list[ClockSample] = field(default_factory=list)
    flushed: bool = False
    lost: str | None = None

    @property
    def joined(self) -> bool:
        return len(self.samples) >= ROUNDS


class Fleet:
    """The master's workers: their hellos and clocks, their records, and their deaths."""

    def __init__(self, runner: MasterRunner, config: LoadConfig) -> None:
        self.runner = runner
        self.config = config
        self.members: dict[str, Member] = {}
        self.local: list[subprocess.Popen[bytes]] = []
        self.requests = 0
        self.failures = 0
        self.finishing = False
        self.started = False  # the load has begun: a worker that joins now must still keep the clock bound
        runner.register_message(HELLO, self._hello)
        runner.register_message(CLOCK_REPLY, self._clock_reply)
        runner.register_message(FLUSHED, self._flushed)
        runner.environment.events.worker_report.add_listener(self._report)

    def _hello(self, environment: Environment, msg: Message, **_: Any) -> None:
        process = next((p for p in self.local if p.pid == msg.data["pid"] and msg.data["host"] == socket.gethostname()),
                       None)
        member = Member(msg.node_id, f"worker-{self.runner.get_worker_index(msg.node_id)}", int(msg.data["pid"]),
                        str(msg.data["host"]), process)
        self.members[msg.node_id] = member
        # the config now (its target comes at go): the worker makes its user class, and pays its imports, before go
        self.runner.send_message(CONFIG, self.config.model_dump(mode="json"), client_id=msg.node_id)
        self.runner.send_message(CLOCK, {"sent": time.time()}, client_id=msg.node_id)

    def _clock_reply(self, environment: Environment, msg: Message, **_: Any) -> None:
        received = time.time()
        member = self.members.get(msg.node_id)
        if member is None or member.joined:
            return
        member.samples.append(ClockSample(float(msg.data["sent"]), float(msg.data["time"]), received))
        if member.joined:
            sample = best(member.samples)
            emit({"event": "worker", "id": member.id, "client_id": member.client_id, "host": member.host,
                  "pid": member.pid, "local": member.process is not None, "offset": sample.offset,
                  "rtt": sample.rtt})
        else:
            self.runner.send_message(CLOCK, {"sent": time.time()}, client_id=msg.node_id)

    def _records(self, client_id: str, records: list[dict[str, Any]]) -> None:
        member = self.members.get(client_id)
        if not records or member is None:
            return
        failures = sum(1 for record in records if record.get("error") is not None)
        self.requests += len(records)
        self.failures += failures
        # one write for the batch: the harness reads line by line
        sys.stdout.write("".join(json.dumps(record, separators=(",", ":")) + "\n"
                                 for record in tagged(records, member.id)))
        sys.stdout.flush()

    def _report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self._records(client_id, data.get(STREAM_KEY) or [])

    def _flushed(self, environment: Environment, msg: Message, **_: Any) -> None:
        self._records(msg.node_id, msg.data.get(STREAM_KEY) or [])
        if (member := self.members.get(msg.node_id)) is not None:
            member.flushed = True

    @property
    def joined(self) -> list[Member]:
        return [member for member in self.members.values() if member.joined]

    def dead_at_start(self) -> str | None:
        """Why a local worker that has not joined yet will never join (it exited), or None."""
        joined = {member.pid for member in self.joined}
        for index, process in enumerate(self.local):
            if process.pid not in joined and process.poll() is not None:
                return (f"local worker {index} (pid {process.pid}) exited with status {process.returncode} before "
                        f"it joined (log: locust-worker-{index}.log)")
        return None

    def check(self) -> list[Member]:
        """The joined workers found dead since the last check (each marked lost, once)."""
        found = []
        for member in self.joined:
            if member.lost is not None:
                continue
            node = self.runner.clients.get(member.client_id)
            if member.process is not None and member.process.poll() is not None:
                member.lost = f"its process (pid {member.pid}) exited with status {member.process.returncode}"
            elif node is None:
                member.lost = "it quit"
            elif node.state == STATE_MISSING:
                member.lost = "it stopped sending heartbeats"
            elif self.started and (problem := offset_problem(member.id, best(member.samples),
                                                             self.config.max_clock_offset)) is not None:
                member.lost = f"it joined after the start, and {problem}"  # Locust gave it a share of the users
            if member.lost is not None:
                found.append(member)
        return found

    def finish(self) -> None:
        """Ask every live worker for its last records and wait for them (at most FLUSH_TIMEOUT)."""
        self.finishing = True
        live = [member for member in self.joined if member.lost is None]
        for member in live:
            self.runner.send_message(FINISH, None, client_id=member.client_id)
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while not all(member.flushed or member.lost for member in live) and time.monotonic() < deadline:
            gevent.sleep(0.05)
            self.check()


def read_line() -> str:
    """A line from stdin, without blocking the other greenlets (the master answers its workers meanwhile)."""
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)
    data = b""
    while not data.endswith(b"\n"):
        gevent.socket.wait_read(fd)
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        if not chunk:  # the harness closed stdin
            break
        data += chunk
    return data.decode("utf-8", "replace")


def fail(message: str) -> None:
    emit({"event": "error", "message": message})
    sys.stderr.flush()
    os._exit(2)


def wait_for_workers(fleet: Fleet, config: LoadConfig) -> None:
    """Until every expected worker joined (its clock measured), at most join_timeout; else fail saying how many came."""
    expected = config.workers + config.remote_workers
    deadline = time.monotonic() + config.join_timeout
    while len(fleet.joined) < expected:
        if (dead := fleet.dead_at_start()) is not None:
            fail(dead)
        if time.monotonic() > deadline:
            joined = fleet.joined
            local = sum(1 for member in joined if member.process is not None)
            fail(f"only {len(joined)} of {expected} load workers joined the master within {config.join_timeout:g}s "
                 f"({local} of {config.workers} local, {len(joined) - local} of {config.remote_workers} remote); "
                 f"start the missing ones with `chaosgate worker --master HOST:PORT` or raise --join-timeout")
        gevent.sleep(0.05)
    for member in fleet.joined:
        if (problem := offset_problem(member.id, best(member.samples), config.max_clock_offset)) is not None:
            fail(problem)


def serve(config: LoadConfig, log_dir: Path, local: list[subprocess.Popen[bytes]]) -> None:
    """Run the master: ``local`` are the local workers already started (none when the port was not known before
    the bind: they are started here once it is)."""
    config.prompt_words()  # Faker's import, before the go line
    env = Environment(user_classes=[make_user(config)], host=config.host)
    try:
        runner = env.create_master_runner(config.master_bind, config.master_port)
    except SystemExit:  # Locust's own exit on a busy port (it logged why)
        fail(f"the Locust master could not bind {config.master_bind}:{config.master_port}: the port is in use")
        return
    except Exception as exc:  # noqa: BLE001 - an address that cannot be bound, said in one line
        fail(f"the Locust master could not bind {config.master_bind}:{config.master_port}: {exc}")
        return
    port = int(runner.server.port)
    emit({"event": "listening", "host": config.master_bind, "port": port})
    fleet = Fleet(runner, config)
    fleet.local = local or spawn_local(config, port, log_dir)
    wait_for_workers(fleet, config)
    emit({"event": "ready"})
    line = read_line()
    if not line:  # the harness is gone
        runner.quit()
        os._exit(0)
    config = config.aimed(line)
    fleet.config, fleet.started = config, True  # a worker joining from now on gets the aimed config at its hello
    env.user_classes = [make_user(config)]
    env.host = config.host
    runner.send_message(CONFIG, config.model_dump(mode="json"))  # before the spawn messages, on the same channel
    gevent.get_hub().loop.update_now()  # (see worker.py: the hub's clock was last read before the wait on stdin)
    end = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, end.set)
    gevent.spawn_later(config.duration, end.set)  # from go, however long the ramp-up takes
    gevent.spawn(runner.start, config.users, spawn_rate=config.spawn_rate)  # the master's ramp-up sleeps between steps
    lost: list[Member] = []

    def watch() -> None:
        while not end.is_set():
            for member in fleet.check():
                lost.append(member)
                emit({"event": "worker_lost", "id": member.id, "client_id": member.client_id, "host": member.host,
                      "pid": member.pid, "how": member.lost, "at": time.time()})
                end.set()
            gevent.sleep(WATCH_INTERVAL)

    watcher = gevent.spawn(watch)
    end.wait()
    watcher.kill()
    fleet.finish()
    emit({"event": "done", "requests": fleet.requests, "failures": fleet.failures})
    runner.quit()
    sys.stderr.flush()
    os._exit(3 if lost else 0)

