"""Serve a fake's data app and its control app from one process, on two ports.

One uvicorn server listens on both sockets; ``PortRouter`` sends each connection to the
app of the port it was accepted on. A request to the data port can therefore never reach
the control API, whatever its path, and the control socket is bound to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from fakes.tls import TlsServing

CONTROL_HOST = "127.0.0.1"  # the control API is for the harness on this machine, never for clients
SHUTDOWN_GRACE_S = 2  # a hung request (a fault) must not hold up SIGTERM for long
# The faster HTTP parser and event loop when installed (uvicorn[standard]); else h11 + asyncio.
HTTP_IMPL = "httptools" if importlib.util.find_spec("httptools") else "h11"
LOOP_IMPL = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def preload() -> None:
    """Import what uvicorn imports when a server starts (its event loop, HTTP parser and lifespan
    modules): a fork server (fakes/forkserver.py) does it once for every replica it forks."""
    for module in (f"uvicorn.loops.{LOOP_IMPL}", f"uvicorn.protocols.http.{HTTP_IMPL}_impl", "uvicorn.lifespan.on"):
        importlib.import_module(module)


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
    parser.add_argument("--tls-dir", type=Path, default=None,
                        help="serve TLS on the data port with certificates from this folder (<name>.crt, <name>.key); "
                             "the control port stays plain HTTP and gains PUT /tls to swap them")
    parser.add_argument("--tls-cert", default="valid", help="the certificate to start with (default: valid)")
    parser.add_argument("--attempts-file", default=None,
                        help="append one JSON line per request that reaches the data port, as it arrives "
                             "(Unix time, method, path, the load's x-chaosgate-request id, whether it is a health check)")


def tls_from_args(args: argparse.Namespace) -> TlsServing | None:
    """The data port's TLS from ``--tls-dir``/``--tls-cert``; ValueError if the files are unusable."""
    return TlsServing(args.tls_dir, args.tls_cert) if args.tls_dir is not None else None


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


class PromptServer(uvicorn.Server):
    """uvicorn's server, stopping as soon as it is told to: uvicorn checks for SIGTERM once every 0.1 s,
    which was half of a stack's teardown; this one wakes on the signal (and still ticks every 0.1 s)."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            try:
                await asyncio.wait_for(self._wake.wait(), 0.1)
            except TimeoutError:
                pass

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown (stop accepting, ask every connection to close, give requests in flight
        ``timeout_graceful_shutdown`` to finish, then the lifespan's shutdown), polling every 5 ms
        where uvicorn first pauses 0.1 s and then polls every 0.1 s."""
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 0)
        while (self.server_state.connections or self.server_state.tasks) and not self.force_exit \
                and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in list(self.server_state.tasks):  # a hung request (a fault) does not hold up the exit
            task.cancel(msg="the fake is shutting down")
        if not self.force_exit:
            await self.lifespan.shutdown()


def server_config(app: ASGIApp) -> uvicorn.Config:
    """uvicorn settings shared by every fake (and the in-process test fixtures)."""
    return uvicorn.Config(app, http=HTTP_IMPL, loop=LOOP_IMPL, log_level="warning", access_log=False,
                          timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


def serve(program: str, name: str, apps: FakeApps, host: str, port: int, control_port: int | None,
          control_host: str = CONTROL_HOST, tls: TlsServing | None = None) -> int:
    """Bind the data port (and the control port, on 127.0.0.1 unless ``control_host`` says
    otherwise: in a container, the runtime publishes it on the host's 127.0.0.1) and serve
    until SIGINT/SIGTERM.

    With ``tls`` the data port speaks TLS (a second uvicorn server in the same event loop, so
    the control port stays plain HTTP).

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
    if tls is not None:
        return _serve_tls(apps, sockets, tls)
    server = PromptServer(server_config(PortRouter(apps, bound_control)))
    server.run(sockets=sockets)  # what uvicorn.run() does, but on our pre-bound sockets
    return 0 if server.started else 1


def _serve_tls(apps: FakeApps, sockets: list[socket.socket], tls: TlsServing) -> int:
    """The data socket on a TLS server, the control socket (if any) on a plain one, one event loop."""
    data_config = server_config(apps.data)
    data_config.load()
    data_config.ssl = tls.context  # ours, so PUT /tls can swap the certificate in place
    data = PromptServer(data_config)

    def drop_all() -> int:
        connections = list(data.server_state.connections)
        for connection in connections:
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        return len(connections)

    tls.drop_all = drop_all
    servers = [data]
    if len(sockets) > 1:
        control_app = Starlette(routes=[*tls.routes(), Mount("/", app=apps.control)])
        servers.append(PromptServer(server_config(control_app)))

    async def both() -> None:
        # Each server catches SIGTERM/SIGINT and, once stopped, raises it again for the one before.
        await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in zip(servers[::-1], sockets[::-1])))

    with asyncio.Runner(loop_factory=data_config.get_loop_factory()) as runner:
        runner.run(both())
    return 0 if data.started else 1
