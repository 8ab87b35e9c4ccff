"""Request records of distributed workers: how they travel to the harness, and how shards are merged.

Two ways were measured (bench/distributed_records.py, figures in docs/distributed.md):

* stream (kept): each worker buffers its records and hands them to Locust's own ``report_to_master`` event,
  which sends them to the master with the stats every WORKER_REPORT_INTERVAL (3 s); the master's
  ``worker_report`` listener writes them, tagged with the worker's id, to the harness as today's single load
  process does. A remote worker's records arrive the same way, over Locust's transport.
* shard: each worker writes its records to its own JSON-lines file and the harness merges the files by
  timestamp once the load has ended (``merge``). It needs the files on the harness's machine, which a
  worker on another machine cannot give without a transport of its own.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

STREAM_KEY = "chaosgate_records"  # the key of the records in a worker's report to the master

Record = dict[str, Any]


class RecordBuffer:
    """A worker's records not yet sent to the master (one gevent thread: no lock needed)."""

    def __init__(self) -> None:
        self._records: list[Record] = []

    def add(self, record: Record) -> None:
        self._records.append(record)

    def drain(self) -> list[Record]:
        """Every record buffered so far, and an empty buffer."""
        records, self._records = self._records, []
        return records

    def __len__(self) -> int:
        return len(self._records)


def tagged(records: Iterable[Record], worker: str) -> Iterator[Record]:
    """The records, each with the id of the worker that sent its request."""
    for record in records:
        yield {**record, "worker": worker}


def write_shard(path: Path, records: Iterable[Record]) -> int:
    """Append records to a worker's shard (JSON lines); the bytes written."""
    written = 0
    with path.open("a", encoding="utf-8") as file:
        for record in records:
            line = json.dumps(record, separators=(",", ":")) + "\n"
            file.write(line)
            written += len(line)
    return written


def read_shard(path: Path) -> list[Record]:
    """A shard's records (a line cut short by a worker that died mid-write is left out)."""
    records = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("ts"), int | float):
                records.append(record)
    return records


def merge(shards: Iterable[Iterable[Record]]) -> list[Record]:
    """The records of every shard in one list ordered by start time (``ts``); equal times keep shard order.
    A shard is written as requests end, not as they start, so each is sorted before the merge."""
    ordered = [sorted(shard, key=_ts) for shard in shards]
    return list(heapq.merge(*ordered, key=_ts))


def _ts(record: Record) -> float:
    return float(record["ts"])
