"""Every attempt that reached a replica, copied into the journal as it is written (``attempt`` events).

A gateway may try a client request on several replicas (retries); the client sees only the last
try. Two views of the tries are logged during a run and journalled here:

* ``source: replica``: each fake appends one JSON line per request reaching its process the moment
  it arrives (``--attempts-file``, fakes/identity.py) to ``<run>/attempts/<replica>.jsonl``: Unix
  time (wall clock; the journal's ``ts`` is wall clock too, and on one machine, or in containers
  sharing its kernel clock, they are one time base), method, path, the load's request id
  (``x-chaosgate-request``), and whether it was a health check. A try that a network fault stops
  on the way (a refused connection: ``down``; a toxic on the gateway-to-replica direction, such
  as ``timeout`` with ``direction: upstream``) never reaches it. Toxics on the default
  ``downstream`` direction (``reset_peer``, ``timeout``, ``latency``) let the request through and
  act on the answer (measured), so the process sees those tries.
  The LLM and Anthropic fakes also append an answer line once each answer has ended, journalled as
  an ``attempt.answer`` event: when its status line went out, the status, the ``retry-after`` it
  sent (in seconds), the content tokens it generated and sent, and the model it answered as.
* ``source: gateway``: the gateway's own log of each upstream try, where it has one (Envoy's
  router ``upstream_log``: one line per try with ``%UPSTREAM_HOST%``; nginx's access log, whose
  ``$upstream_addr`` lists every server tried); those include the tries a network fault stopped.
  The adapter says where the log is and how to read a line (``upstream_attempts``,
  ``parse_upstream_attempts``). HAProxy and the LiteLLM proxy log the last try only.

A collector thread tails every file and journals new complete lines every POLL_INTERVAL, so a
run killed mid-way keeps what was journalled (and the files stay in the run's folder); ``stop()``
reads what is left, after the gateway has exited and flushed its log.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.journal import JournalWriter

ATTEMPTS_DIR = "attempts"
POLL_INTERVAL = 0.2

# One line of a log → the fields of its ``attempt`` events (``ts`` included): none, one, or one per try.
LineParser = Callable[[dict[str, Any]], list[dict[str, Any]]]


def replica_attempts_file(run_dir: Path, replica: str) -> Path:
    """Where the fake of ``replica`` appends its attempts (``chat[0]`` → ``attempts/chat-0.jsonl``)."""
    return run_dir / ATTEMPTS_DIR / (re.sub(r"[^A-Za-z0-9_-]+", "-", replica).strip("-") + ".jsonl")


def prepare_attempts_dir(run_dir: Path, any_user: bool = False) -> Path:
    """The run's attempts folder, empty; ``any_user``: writable by the fakes whatever user runs them (the
    docker runtime's containers run them as nobody, and the folder is mounted into each)."""
    folder = run_dir / ATTEMPTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jsonl"):  # an earlier run into the same folder
        old.unlink()
    if any_user:
        folder.chmod(0o777)
    return folder


ANSWER_FIELDS = ("request_id", "status", "retry_after", "tokens", "model", "ended")


def replica_line(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A fake's attempt line as an ``attempt`` event, or its answer line as an ``attempt.answer`` event (see
    fakes/identity.py for the fields)."""
    if not isinstance(record.get("ts"), (int, float)) or not isinstance(record.get("replica"), str):
        return []
    if record.get("type") == "answer":
        return [{"ts": float(record["ts"]), "type": "attempt.answer", "replica": record["replica"],
                 **{key: record[key] for key in ANSWER_FIELDS if record.get(key) is not None}}]
    return [{"ts": float(record["ts"]), "source": "replica", "replica": record["replica"],
             "request_id": record.get("request_id"), "health": bool(record.get("health")),
             "method": record.get("method"), "path": record.get("path")}]


@dataclass
class AttemptSource:
    """One log file and how to read its lines."""

    path: Path
    parse: LineParser
    offset: int = 0
    partial: bytes = b""
    text: bool = False  # plain text lines (HAProxy's log), given to ``parse`` as {"line": ...}; else JSON lines

    def new_events(self) -> list[dict[str, Any]]:
        """The events of the lines completed since the last call (a torn last line waits for its end)."""
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read()
        except OSError:  # not created yet (the process has not started, or logged nothing)
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        events = []
        for line in lines:
            if self.text:
                events += self.parse({"line": line.decode(errors="replace")})
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                events += self.parse(record)
        return events


class AttemptCollector:
    """Journals the attempts of every source as ``attempt`` events, in a background thread."""

    def __init__(self, journal: JournalWriter, sources: list[AttemptSource], interval: float = POLL_INTERVAL) -> None:
        self._journal, self._sources, self._interval = journal, sources, interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="attempt-collector", daemon=True)
        self.count = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and journal what is left (call it after the processes that write have exited)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.drain()

    def drain(self) -> None:
        with self._lock:
            for source in self._sources:
                for event in source.new_events():  # ``attempt`` events, unless the source says (gateway.health)
                    ts, kind = event.pop("ts"), event.pop("type", "attempt")
                    self._journal.write(kind, ts=ts, **event)
                    self.count += kind == "attempt"

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.drain()


def sources_for(run_dir: Path, replicas: list[str], gateway: Any, by_address: dict[str, str]) -> list[AttemptSource]:
    """The attempt logs of a run: each replica's file, and the gateway's log of each try when its adapter
    keeps one (``upstream_attempts(run_dir)``: the file; ``parse_upstream_attempts(line)``: its tries, each
    with the ``upstream`` address tried; ``by_address``: the address the gateway dials for each replica →
    its name)."""
    sources = [AttemptSource(replica_attempts_file(run_dir, replica), replica_line) for replica in replicas]
    if (log := gateway_attempt_log(gateway, run_dir)) is not None:
        parse_line: LineParser = gateway.parse_upstream_attempts

        def parse(record: dict[str, Any]) -> list[dict[str, Any]]:
            return [{**event, "source": "gateway", "replica": by_address.get(event["upstream"])}
                    for event in parse_line(record)]
        sources.append(AttemptSource(log, parse))
    return sources


def gateway_attempt_log(gateway: Any, run_dir: Path) -> Path | None:
    """Where the gateway logs each upstream try (None: it tells only the last try of a request)."""
    upstream_attempts = getattr(gateway, "upstream_attempts", None)
    return upstream_attempts(run_dir) if callable(upstream_attempts) else None
