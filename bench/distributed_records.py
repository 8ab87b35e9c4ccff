"""Benchmark: how fast distributed load workers' request records reach the journal, streamed or sharded.

    .venv/bin/python bench/distributed_records.py [--workers 2] [--seconds 5] [--rate 0]

Both ways use chaosgate's own pieces (harness/load/records.py, harness/journal.py); the records are
synthetic, shaped like a real request's (about 230 bytes of JSON), so what is measured is the records'
path alone, not HTTP. Each of ``--workers`` worker processes makes records as fast as it can (or ``--rate``
per second each) for ``--seconds``:

* stream: Locust's own ``MasterRunner``/``WorkerRunner`` on loopback; each worker's records ride its
  ``report_to_master`` reports (every 3 s, and a last batch at the end), the master's ``worker_report``
  listener writes them to stdout as harness/load/fleet.py does, and this process journals each line
  (JournalWriter, as LoadGenerator does). Wire bytes are the msgpack size of each batch.
* shard: each worker writes its records to its own JSON-lines file (write_shard); once all have ended,
  this process reads the shards, merges them by timestamp (merge) and journals every record.

Prints, per way: records, records/s made by the workers, records/s journalled end to end (from the
load's start to the last record in the journal), bytes per record on the wire or in the shard, and
the journal's bytes per record; writes bench/results/distributed_records.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.journal import JournalWriter  # noqa: E402 - after the path
from harness.load.records import STREAM_KEY, RecordBuffer, merge, read_shard, tagged, write_shard  # noqa: E402

MAX_RECORDS = 5_000_000  # per worker: the loop is bounded in count as well as time


def record(worker: int, n: int) -> dict[str, Any]:
    """A record shaped like a real request's (harness/load/worker.py)."""
    return {"event": "request", "ts": time.time(), "id": f"{worker:02d}abcdef-{n}", "kind": "chat",
            "latency": 0.0123456789, "status": 200, "bytes": 412, "error": None, "replica": "chat[1]",
            "upstream": "127.0.0.1:40123"}


def produce(worker: int, seconds: float, rate: float, sink: Any, pause: Any) -> int:
    """Records into ``sink`` for ``seconds`` (``rate`` a second when above 0), yielding to ``pause`` now and then."""
    start = time.monotonic()
    n = 0
    while n < MAX_RECORDS and (elapsed := time.monotonic() - start) < seconds:
        if rate > 0 and n >= rate * elapsed:
            pause(0.001)
            continue
        sink(record(worker, n))
        n += 1
        if n % 200 == 0:
            pause(0)
    return n


# ---- the processes' roles ---------------------------------------------------------------------------------------

def role_master(workers: int) -> None:
    import gevent
    import msgpack  # type: ignore[import-untyped]
    from locust.env import Environment

    env = Environment(user_classes=[])
    runner = env.create_master_runner("127.0.0.1", 0)
    wire = [0]
    flushed: set[str] = set()
    produced = [0]

    def write(client_id: str, records: list[dict[str, Any]]) -> None:
        if records:
            wire[0] += len(msgpack.packb(records))
            sys.stdout.write("".join(json.dumps(r, separators=(",", ":")) + "\n"
                                     for r in tagged(records, client_id[-6:])))
            sys.stdout.flush()

    env.events.worker_report.add_listener(lambda client_id, data, **_: write(client_id, data.get(STREAM_KEY) or []))

    def on_flushed(environment: Any, msg: Any, **_: Any) -> None:
        write(msg.node_id, msg.data[STREAM_KEY])
        produced[0] += msg.data["produced"]
        flushed.add(msg.node_id)

    runner.register_message("bench_flushed", on_flushed)
    print(json.dumps({"event": "listening", "port": runner.server.port}), flush=True)
    deadline = time.monotonic() + 30
    while len(runner.clients.ready) < workers and time.monotonic() < deadline:
        gevent.sleep(0.05)
    runner.send_message("bench_go")
    print(json.dumps({"event": "go", "ts": time.time()}), flush=True)
    deadline = time.monotonic() + 120
    while len(flushed) < workers and time.monotonic() < deadline:
        gevent.sleep(0.05)
    print(json.dumps({"event": "done", "wire_bytes": wire[0], "produced": produced[0]}), flush=True)
    runner.quit()
    os._exit(0)


def role_worker(master_port: int, index: int, seconds: float, rate: float) -> None:
    import gevent
    from locust.env import Environment

    env = Environment(user_classes=[])
    runner = env.create_worker_runner("127.0.0.1", master_port)
    buffer = RecordBuffer()
    env.events.report_to_master.add_listener(lambda client_id, data, **_: data.update({STREAM_KEY: buffer.drain()}))

    def run() -> None:
        n = produce(index, seconds, rate, buffer.add, gevent.sleep)
        runner.send_message("bench_flushed", {STREAM_KEY: buffer.drain(), "produced": n})

    runner.register_message("bench_go", lambda environment, msg, **_: gevent.spawn(run))
    runner.greenlet.join()
    os._exit(0)


def role_shard(path: Path, index: int, seconds: float, rate: float) -> None:
    chunk: list[dict[str, Any]] = []

    def sink(item: dict[str, Any]) -> None:
        chunk.append(item)
        if len(chunk) >= 1000:
            write_shard(path, tagged(chunk, f"w{index}"))
            chunk.clear()

    n = produce(index, seconds, rate, sink, time.sleep)
    write_shard(path, tagged(chunk, f"w{index}"))
    print(json.dumps({"produced": n}), flush=True)


# ---- the two ways, end to end ----------------------------------------------------------------------------------

def _me(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def bench_stream(workers: int, seconds: float, rate: float, folder: Path) -> dict[str, Any]:
    journal = JournalWriter(folder / "stream-journal.jsonl")
    master = subprocess.Popen(_me("--role", "master", "--workers", str(workers)), stdout=subprocess.PIPE)
    assert master.stdout is not None
    port = json.loads(master.stdout.readline())["port"]
    nodes = [subprocess.Popen(_me("--role", "worker", "--master-port", str(port), "--index", str(i),
                                  "--seconds", str(seconds), "--rate", str(rate))) for i in range(workers)]
    journalled = 0
    started = last = 0.0
    done: dict[str, Any] = {}
    for raw in master.stdout:
        message = json.loads(raw)
        event = message.pop("event")
        if event == "request":
            journal.write("request", **message)
            journalled += 1
            last = time.time()
        elif event == "go":
            started = message["ts"]
        elif event == "done":
            done = message
            break
    journal.close()
    master.wait(30)
    for node in nodes:
        node.wait(30)
    size = (folder / "stream-journal.jsonl").stat().st_size
    return {"way": "stream", "records": journalled, "produced": done.get("produced", 0),
            "made_per_s": round(done.get("produced", 0) / seconds), "journalled_per_s": round(journalled / (last - started)),
            "end_to_end_s": round(last - started, 2), "merge_s": 0.0,
            "wire_bytes_per_record": round(done.get("wire_bytes", 0) / max(1, journalled), 1),
            "journal_bytes_per_record": round(size / max(1, journalled), 1)}


def bench_shard(workers: int, seconds: float, rate: float, folder: Path) -> dict[str, Any]:
    paths = [folder / f"shard-{i}.jsonl" for i in range(workers)]
    started = time.time()
    nodes = [subprocess.Popen(_me("--role", "shard", "--shard", str(path), "--index", str(i), "--seconds", str(seconds),
                                  "--rate", str(rate)), stdout=subprocess.PIPE, text=True)
             for i, path in enumerate(paths)]
    produced = sum(json.loads(node.communicate(timeout=seconds + 60)[0])["produced"] for node in nodes)
    merging = time.time()
    journal = JournalWriter(folder / "shard-journal.jsonl")
    journalled = 0
    for item in merge(read_shard(path) for path in paths):
        item.pop("event", None)
        journal.write("request", **item)
        journalled += 1
    journal.close()
    last = time.time()
    size = (folder / "shard-journal.jsonl").stat().st_size
    return {"way": "shard", "records": journalled, "produced": produced, "made_per_s": round(produced / seconds),
            "journalled_per_s": round(journalled / (last - started)), "end_to_end_s": round(last - started, 2),
            "merge_s": round(last - merging, 2),
            "wire_bytes_per_record": round(sum(path.stat().st_size for path in paths) / max(1, produced), 1),
            "journal_bytes_per_record": round(size / max(1, journalled), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="records a second per worker (0: as fast as it can)")
    parser.add_argument("--role", choices=["bench", "master", "worker", "shard"], default="bench")
    parser.add_argument("--master-port", type=int, default=0)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--shard", type=Path, default=None)
    args = parser.parse_args()
    if args.role == "master":
        return role_master(args.workers)
    if args.role == "worker":
        return role_worker(args.master_port, args.index, args.seconds, args.rate)
    if args.role == "shard":
        return role_shard(args.shard, args.index, args.seconds, args.rate)
    with tempfile.TemporaryDirectory(prefix="chaosgate-bench-") as temporary:
        rows = [bench_stream(args.workers, args.seconds, args.rate, Path(temporary)),
                bench_shard(args.workers, args.seconds, args.rate, Path(temporary))]
    print(f"{args.workers} workers, {args.seconds:g} s, rate {args.rate or 'max'} per worker, {os.cpu_count()} cores")
    columns = list(rows[0])
    print("  ".join(f"{c:>24}" if i else f"{c:<8}" for i, c in enumerate(columns)))
    for row in rows:
        print("  ".join(f"{row[c]!s:>24}" if i else f"{row[c]!s:<8}" for i, c in enumerate(columns)))
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "distributed_records.json").write_text(json.dumps(
        {"workers": args.workers, "seconds": args.seconds, "rate": args.rate, "cores": os.cpu_count(),
         "python": platform.python_version(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
