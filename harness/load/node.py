"""A distributed load worker: ``python -m harness.load.node --master HOST:PORT`` (``chaosgate worker``).

Locust's own ``WorkerRunner`` connects to the master (harness/load/master.py, fleet.py) over Locust's transport.
The worker then says hello (its pid and host), answers the master's clock round trips (harness/load/clock.py),
builds the chat personas' user class from the config the master sends at join and again, aimed at the
gateway, at go (so a worker on another machine needs nothing but the master's address), and runs the users the master dispatches to it.
Each request's record goes into a buffer that rides Locust's ``report_to_master`` event to the master
(harness/load/records.py); at the load's end the master asks for the rest (``finish``) and the worker stops
its users and sends what is left.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import Any

import gevent
from locust.env import Environment
from locust.rpc.protocol import Message

from harness.load.config import LoadConfig, address
from harness.load.records import STREAM_KEY, RecordBuffer
from harness.load.worker import make_user

# The custom messages between master and worker (Locust's register_message / send_message).
HELLO = "chaosgate_hello"            # worker -> master: pid, host
CLOCK = "chaosgate_clock"            # master -> worker: sent
CLOCK_REPLY = "chaosgate_clock_reply"  # worker -> master: sent, time
CONFIG = "chaosgate_config"          # master -> worker: the LoadConfig, aimed at the gateway
FINISH = "chaosgate_finish"          # master -> worker: stop the users, send the records left
FLUSHED = "chaosgate_flushed"        # worker -> master: the records left


def serve(master: str) -> int:
    """Join the master at ``master`` and run its load until it quits; the exit status."""
    host, port = address(master)
    env = Environment(user_classes=[])  # the user class comes with the master's config, at go
    buffer = RecordBuffer()
    try:
        runner = env.create_worker_runner(host, port)
    except ConnectionError:
        print(f"chaosgate worker: could not reach the master at {master}", file=sys.stderr)
        return 2

    def on_report(client_id: str, data: dict[str, Any]) -> None:
        data[STREAM_KEY] = buffer.drain()

    def on_clock(environment: Environment, msg: Message, **_: Any) -> None:
        runner.send_message(CLOCK_REPLY, {"sent": msg.data["sent"], "time": time.time()})

    def on_config(environment: Environment, msg: Message, **_: Any) -> None:
        # at join (no target yet: the user class made once, Faker imported) and again at go, aimed at the gateway
        config = LoadConfig.model_validate(msg.data)
        if config.mix.get("anthropic", 0) > 0 or config.mix.get("anthropic_stream", 0) > 0:
            import anthropic  # noqa: F401 - its import (about 1 s) at join, not in the load's first second
        environment.user_classes = [make_user(config, buffer.add)]
        environment.host = config.host

    def on_finish(environment: Environment, msg: Message, **_: Any) -> None:
        runner.stop()  # kills the users' greenlets: a request cut off here is not recorded (as with one process)
        runner.send_message(FLUSHED, {STREAM_KEY: buffer.drain()})

    env.events.report_to_master.add_listener(on_report)
    runner.register_message(CLOCK, on_clock)
    runner.register_message(CONFIG, on_config)
    runner.register_message(FINISH, on_finish)
    # Only now, with every listener in place, does the master learn of this worker as chaosgate's.
    runner.send_message(HELLO, {"pid": os.getpid(), "host": socket.gethostname()})
    gevent.signal_handler(15, runner.quit)  # SIGTERM
    runner.greenlet.join()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.load.node")
    parser.add_argument("--master", required=True, help="the master's HOST:PORT")
    args = parser.parse_args(argv)
    try:
        return serve(args.master)
    except ValueError as exc:
        print(f"chaosgate worker: --master: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
