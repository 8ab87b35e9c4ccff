"""Real upstreams behind Toxiproxy (upstreams[].address), end to end through Envoy: the pool's servers are
fakes this test starts itself, as a user runs a vLLM; chaosgate starts none of them, puts a Toxiproxy
proxy in front of each, and a reset fault, an all-down fault and a DNS fault are judged as for fakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import httpx

from harness.journal import read_journal
from harness.timeline import build_timeline
from tests.integration.conftest import processes_of_run, require_components
from tests.own_config.servers import ROOT, user_servers, with_addresses

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "real"


@pytest.mark.parametrize("name", ["reset", "all-down", "dns"])
def test_real_upstreams_pass_through_envoy(name: str, tmp_path: Path) -> None:
    require_components()
    with user_servers(3, tmp_path / "servers") as addresses:
        scenario = with_addresses(HERE / f"{name}.yaml", addresses, tmp_path / f"{name}.yaml")
        result = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), "--out",
                                 str(tmp_path / "out"), "--quiet"], cwd=ROOT, capture_output=True, text=True,
                                timeout=180)
        run_dir = tmp_path / "out" / f"real-{name}"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert result.returncode == 0, result.stdout + result.stderr
        assert summary["passed"] and all(v["passed"] for v in summary["expectations"]), summary["expectations"]
        events = read_journal(run_dir / "journal.jsonl")
        ready = next(e for e in events if e["type"] == "stack.ready")
        replicas = ready["endpoints"]["replicas"]
        # each replica is the user's server, reached through its own Toxiproxy proxy
        assert [replicas[f"chat[{i}]"]["url"] for i in range(3)] == [f"http://{a}" for a in addresses]
        assert all(replicas[f"chat[{i}]"]["real"] is True for i in range(3))
        assert ready["attempt_logs"]["replica"] is False
        # chaosgate started no replica: the only fakes are the test's, and they never write attempts files
        assert not list((run_dir / "attempts").glob("*.jsonl"))
        assert not list((run_dir / "logs").glob("chat*"))
        served = {e["replica"] for e in events if e["type"] == "request" and e.get("error") is None}
        assert served <= {f"user-server-{i}" for i in range(3)}  # the servers' own names, as they answer
        # ... and the run credits each answer to the replica the gateway says it picked
        timeline = build_timeline(events)
        assert {r.replica for r in timeline.requests if r.ok} == {"chat[0]", "chat[1]", "chat[2]"}
        assert processes_of_run(run_dir) == []  # everything chaosgate started has ended
        for address in addresses:  # and the user's servers were left alone
            assert httpx.get(f"http://{address}/health", timeout=2).status_code == 200
