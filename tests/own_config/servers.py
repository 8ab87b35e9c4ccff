"""Stand-ins for servers a user runs: chaosgate fakes started by the test itself (not by chaosgate), as a
vLLM or an Ollama would be, and scenario files with their addresses filled in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from harness.processes import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def user_servers(count: int, logs: Path) -> Iterator[list[str]]:
    """``count`` OpenAI-compatible servers on 127.0.0.1 (fakes/llm.py, named ``user-server-<i>``): their
    ``host:port`` addresses; stopped on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    addresses: list[str] = []
    try:
        for i in range(count):
            port = free_port()
            with (logs / f"user-server-{i}.log").open("wb") as log:
                children.append(subprocess.Popen(
                    [sys.executable, "-m", "fakes.llm", "--name", f"user-server-{i}", "--host", "127.0.0.1",
                     "--port", str(port), "--ttft-ms", "20"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
            addresses.append(f"127.0.0.1:{port}")
        for address in addresses:
            wait_until(lambda: _answers(f"http://{address}/health"), 30, f"the user's server at {address}")
        yield addresses
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def with_addresses(template: Path, addresses: list[str], out: Path) -> Path:
    """The scenario ``template`` with ADDRESS_<i> replaced by ``addresses[i]``, written to ``out``."""
    text = template.read_text(encoding="utf-8")
    for i, address in enumerate(addresses):
        text = text.replace(f"ADDRESS_{i}", address)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
