"""Serve a fake's data app and its control app from one process, on two ports.

One uvicorn server listens on both sockets; ``PortRouter`` sends each connection to the
app of the port it was accepted on. A request to the data port can therefore never reach
the control API, whatever its path, and the control socket is bound to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

CONTROL_HOST = "127.0.0.1"  # the control API is for the harness on this machine, never for clients
SHUTDOWN_GRACE_S = 2  # a hung request (a fault) must not hold up SIGTERM for long
# The faster HTTP parser and event loop when installed (uvicorn[standard]); else h11 + asyncio.
HTTP_IMPL = "httptools" if importlib.util.find_spec("httptools") else "h11"
LOOP_IMPL = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


@dataclass(frozen=True)
class FakeApps:
    """What one fake server consists of: the app clients talk to and the app the harness drives."""

    data: ASGIApp
    control: ASGIApp


class PortRouter:
    """An ASGI app that dispatches on the local port of the connection."""

    def __init__(self, apps: FakeApps, control_port: int | None) -> None:
        self.apps, self.control_port = apps, control_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "lifespan" and server is not None and server[1] == self.control_port:
            await self.apps.control(scope, receive, send)
        else:
            await self.apps.data(scope, receive, send)


def add_serving_arguments(parser: argparse.ArgumentParser, port_help: str) -> None:
    """The command-line options every fake has: identity, data port, control port, seed."""
    parser.add_argument("--name", required=True, help="replica name, sent as x-chaosgate-replica")
    parser.add_argument("--host", default="127.0.0.1", help="address of the data port")
    parser.add_argument("--port", type=int, required=True, help=port_help)
    parser.add_argument("--control-port", type=int, default=None, help="control API port (on --control-host)")
    parser.add_argument("--control-host", default="127.0.0.1",
                        help="address of the control API (default 127.0.0.1; a container runtime binds it "
                             "inside the container and publishes it on the host's 127.0.0.1 only)")
    parser.add_argument("--seed", type=int, default=0)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen ourselves, so a busy port is detected before uvicorn starts."""
    family, type_, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def server_config(app: ASGIApp) -> uvicorn.Config:
    """uvicorn settings shared by every fake (and the in-process test fixtures)."""
    return uvicorn.Config(app, http=HTTP_IMPL, loop=LOOP_IMPL, log_level="warning", access_log=False,
                          timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


def serve(program: str, name: str, apps: FakeApps, host: str, port: int, control_port: int | None,
          control_host: str = CONTROL_HOST) -> int:
    """Bind the data port (and the control port, on 127.0.0.1 unless ``control_host`` says
    otherwise: in a container, the runtime publishes it on the host's 127.0.0.1) and serve
    until SIGINT/SIGTERM.

    Returns the exit code: 2 (with one line on stderr) when a port cannot be bound.
    """
    sockets: list[socket.socket] = []
    for bind_host, bind_port in [(host, port)] + ([(control_host, control_port)] if control_port is not None else []):
        try:
            sockets.append(bind_socket(bind_host, bind_port))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            print(f"{program} {name}: cannot bind {bind_host}:{bind_port}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    bound_control = sockets[1].getsockname()[1] if len(sockets) > 1 else None
    server = uvicorn.Server(server_config(PortRouter(apps, bound_control)))
    server.run(sockets=sockets)  # what uvicorn.run() does, but on our pre-bound sockets
    return 0 if server.started else 1
