"""Benchmark: requests per second one fake LLM replica process serves, plain and streaming.

    .venv/bin/python bench/fakes_rps.py [--seconds 5] [--connections 32] [--tokens 16] [--http auto|h11]

Starts ``python -m fakes.llm`` on loopback with no simulated latency (time to first token 0,
tokens as fast as the loop goes), so what is measured is the server's own cost per request.
A small asyncio client keeps ``--connections`` keep-alive connections busy, each sending one
request after another, for a warm-up second and then ``--seconds``. On a machine with two or
more cores the server is pinned to one core and the client to another, so they do not share
one. Kinds: ``plain`` (a non-streamed chat completion of ``--tokens`` tokens), ``stream``
(the same, as SSE: ``--tokens`` + 3 frames), ``health`` (GET /health, the floor). Every
response is checked (status 200; a stream must end with ``data: [DONE]``).

Prints a table and writes bench/results/fakes_rps.json. Figures vary with machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
WARMUP_S = 1.0
# Runs the fake with h11 and the asyncio loop instead of httptools and uvloop, to compare.
H11_SERVER = ("import sys, fakes.serving as s; s.HTTP_IMPL, s.LOOP_IMPL = 'h11', 'asyncio'; "
              "from fakes.llm import main; sys.exit(main(sys.argv[1:]))")


@dataclass
class Tally:
    requests: int = 0
    latencies: list[float] = field(default_factory=list)


def _request(kind: str, tokens: int) -> bytes:
    if kind == "health":
        return b"GET /health HTTP/1.1\r\nhost: bench\r\n\r\n"
    body = json.dumps({"model": "fake-model", "max_tokens": tokens, "stream": kind == "stream",
                       "messages": [{"role": "user", "content": "Say something."}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response (content-length or chunked): its status and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)}
    if b"content-length" in headers:
        return status, await reader.readexactly(int(headers[b"content-length"]))
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, bytes(body)
        body += (await reader.readexactly(size + 2))[:-2]


async def _connection(port: int, request: bytes, kind: str, tally: Tally, measure_from: float, stop_at: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while (now := time.perf_counter()) < stop_at:  # perf_counter: uvloop's loop.time() has 1 ms steps
            writer.write(request)
            status, body = await _read_response(reader)
            if status != 200 or (kind == "stream" and not body.endswith(b"data: [DONE]\n\n")):
                raise RuntimeError(f"bad response to {kind}: {status} {body[-80:]!r}")
            if now >= measure_from:
                tally.requests += 1
                tally.latencies.append(time.perf_counter() - now)
    finally:
        writer.close()


async def _drive(port: int, kind: str, tokens: int, connections: int, seconds: float) -> dict[str, float]:
    measure_from = time.perf_counter() + WARMUP_S
    stop_at = measure_from + seconds
    tally = Tally()
    request = _request(kind, tokens)
    await asyncio.gather(*(_connection(port, request, kind, tally, measure_from, stop_at) for _ in range(connections)))
    latencies = sorted(tally.latencies)
    return {"rps": tally.requests / seconds, "requests": tally.requests,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def _run(coro: Coroutine[Any, Any, dict[str, float]]) -> dict[str, float]:
    """Run the client on uvloop when installed: the client must not be what is measured."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(port: int, tokens: int, http: str, cpu: int | None) -> subprocess.Popen[bytes]:
    args = ["--name", "bench[0]", "--port", str(port), "--ttft-ms", "0", "--tokens-per-s", "1000000",
            "--max-tokens", str(tokens)]
    command = [sys.executable, "-c", H11_SERVER, *args] if http == "h11" else [sys.executable, "-m", "fakes.llm", *args]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit("fakes.llm did not start")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per kind (after 1 s warm-up)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per reply")
    parser.add_argument("--http", choices=["auto", "h11"], default="auto",
                        help="auto: httptools + uvloop when installed (what the harness runs); h11: the pure-Python stack")
    parser.add_argument("--kinds", default="health,plain,stream")
    args = parser.parse_args()
    if not 0 < args.seconds <= 60 or not 1 <= args.connections <= 256:
        parser.error("--seconds must be in (0, 60] and --connections in [1, 256]")
    two_cores = (os.cpu_count() or 1) >= 2 and subprocess.run(["which", "taskset"], capture_output=True).returncode == 0
    if two_cores:
        os.sched_setaffinity(0, {0})  # the client on core 0, the server on core 1
    port = _free_port()
    server = _start_server(port, args.tokens, args.http, 1 if two_cores else None)
    results: dict[str, dict[str, float]] = {}
    try:
        for kind in args.kinds.split(","):
            cpu_before, own_before, began = _cpu_seconds(server.pid), time.process_time(), time.monotonic()
            results[kind] = _run(_drive(port, kind, args.tokens, args.connections, args.seconds))
            wall = time.monotonic() - began
            results[kind]["server_cpu_share"] = (_cpu_seconds(server.pid) - cpu_before) / wall
            results[kind]["client_cpu_share"] = (time.process_time() - own_before) / wall
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"fake LLM replica, one process ({args.http}), {args.connections} connections, {args.tokens} tokens/reply, "
          f"{args.seconds:g}s per kind{', server and client on separate cores' if two_cores else ''}")
    print(f"{'kind':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server CPU':>11} {'client CPU':>11}")
    for kind, r in results.items():
        print(f"{kind:8} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['server_cpu_share']:11.0%} "
              f"{r['client_cpu_share']:11.0%}")
    out = ROOT / "bench" / "results" / f"fakes_rps{'-h11' if args.http == 'h11' else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"platform": platform.platform(), "python": platform.python_version(),
                                           "cpus": os.cpu_count()},
                               "settings": vars(args), "pinned": two_cores, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
