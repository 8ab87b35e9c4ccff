"""Fixtures that run fake replicas in-process (uvicorn in a thread, on a free port)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn

from fakes.openai_server import ReplicaConfig, create_app

START_TIMEOUT_S = 10.0


@pytest.fixture
def start_replica() -> Iterator[Callable[[ReplicaConfig], str]]:
    """Start replicas on demand; returns their base URL (``http://127.0.0.1:PORT``).

    The port is bound here (port 0) and handed to uvicorn, so there is no port race.
    """
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(config: ReplicaConfig) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"replica {config.name!r} did not start")
            time.sleep(0.005)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, _ in running:
        server.should_exit = True
    for server, thread in running:
        thread.join(timeout=START_TIMEOUT_S)
        assert not thread.is_alive(), "replica thread did not stop"
