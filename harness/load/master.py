"""The distributed load process: ``python -m harness.load.master CONFIG_JSON LOG_DIR`` (docs/distributed.md).

In place of harness/load/worker.py when ``load.workers`` (or ``--workers``/``--remote-workers``) is above 0:
a Locust ``MasterRunner`` bound to ``master_bind:master_port`` (harness/load/fleet.py), ``workers`` local
worker processes (harness/load/node.py) and room for ``remote_workers`` more (``chaosgate worker --master
HOST:PORT``). When the port is known before the bind (the harness picks a free one on loopback), the local
workers are started first, before this process imports Locust: their imports and the master's overlap, and
they connect as soon as it binds (Locust's transport queues their first message until then).

The same stdio protocol as worker.py, with more events:

* ``{"event": "listening", "host", "port"}`` once the master's port is bound;
* ``{"event": "worker", "id", "client_id", "host", "pid", "local", "offset", "rtt"}`` per worker that joined
  (its clock measured: harness/load/clock.py);
* ``{"event": "ready"}`` only once every expected worker joined and every clock keeps the bound, else
  ``{"event": "error", "message"}`` and exit status 2 (``--expect-workers`` semantics with a deadline);
* ``{"event": "request", ..., "worker"}`` per request, as the workers report them;
* ``{"event": "worker_lost", "id", "how", ...}`` when a worker dies mid-run: the load ends, the records
  sent so far are kept, and the exit status is 3;
* ``{"event": "done", "requests", "failures"}``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.load.config import LoadConfig
from harness.processes import die_with_parent

LOOPBACK = ("127.0.0.1", "localhost")


def spawn_local(config: LoadConfig, port: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start the local workers, joining the master at ``port`` (they end with this process)."""
    host = "127.0.0.1" if config.master_bind in ("0.0.0.0", "*", "") or config.master_bind in LOOPBACK \
        else config.master_bind
    processes = []
    for index in range(config.workers):
        with (log_dir / f"locust-worker-{index}.log").open("wb") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "harness.load.node", "--master", f"{host}:{port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent))
    return processes


def main() -> None:
    config = LoadConfig.model_validate_json(sys.argv[1])
    log_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path.cwd()
    local = spawn_local(config, config.master_port, log_dir) if config.master_port else []
    from harness.load.fleet import serve  # Locust's import (it patches the interpreter), after the workers' start

    serve(config, log_dir, local)


if __name__ == "__main__":
    main()
