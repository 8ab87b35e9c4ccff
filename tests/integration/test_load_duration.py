"""The load runs for the scenario's whole duration, counted from "go", however long the harness
took between the worker being ready and the start of the load."""

from __future__ import annotations

import time
from pathlib import Path

from harness.journal import JournalWriter
from harness.load.config import LoadConfig
from harness.load.generator import LoadGenerator
from harness.processes import free_port

DURATION_S = 2.0
HARNESS_DELAY_S = 2.0  # the stack coming up between the worker's "ready" and "go" (a stand-in, not a wait for state)


def test_load_lasts_its_duration_from_go(tmp_path: Path) -> None:
    # Nothing listens on the port: every request fails at once (connection refused), paced by `wait`.
    config = LoadConfig(host=f"http://127.0.0.1:{free_port()}", base_path="", users=1, spawn_rate=10.0,
                        duration=DURATION_S, mix={"chat": 1.0}, wait=0.1, max_tokens=4, request_timeout=1.0, seed=1)
    journal = JournalWriter(tmp_path / "journal.jsonl")
    load = LoadGenerator(config, journal, tmp_path / "logs")
    load.start()
    try:
        time.sleep(HARNESS_DELAY_S)
        started = time.monotonic()
        load.go()
        assert load.wait(timeout=DURATION_S + 30)
        elapsed = time.monotonic() - started
    finally:
        load.stop()
        journal.close()
    assert elapsed >= DURATION_S * 0.95, f"the load ended after {elapsed:.2f} s of its {DURATION_S} s"
    assert load.requests > 0
