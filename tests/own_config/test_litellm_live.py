"""The user's own LiteLLM proxy config.yaml, run: the LiteLLM proxy started from the rewritten file in
front of the fake replicas, the load asking for the bound model group, and the windows promised from the
file's own settings met (tests/own_config/litellm/).

LiteLLM's proxy takes 8-25 s to import on a busy 2-core machine; each run's load is 20-21 s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from tests.integration.conftest import chaosgate, processes_of_run, require_components

HERE = Path(__file__).resolve().parent / "litellm"
STARTUP = 90.0  # LitellmGateway.startup_timeout


def run(scenario_file: Path, out: Path, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the scenario; its summary and journal (it must complete)."""
    result = chaosgate("run", str(scenario_file), "--out", str(out), "--quiet", timeout=21 + STARTUP + 60)
    run_dir = out / name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"], result.stdout + result.stderr
    assert processes_of_run(run_dir) == [], "the stack was torn down"
    return summary, read_journal(run_dir / "journal.jsonl")


@pytest.mark.integration
@pytest.mark.parametrize(("scenario", "name"), [("reset.yaml", "own-litellm-reset"),
                                                ("all-down.yaml", "own-litellm-all-down")])
def test_the_users_file_runs_and_meets_the_windows_it_promises(tmp_path: Path, scenario: str, name: str) -> None:
    require_components("litellm")
    summary, events = run(HERE / scenario, tmp_path / "out", name)
    assert summary["passed"], json.dumps(summary["expectations"], indent=1)
    assert summary["gateway"] == "litellm"
    fault = summary["faults"][0]
    for key in ("promised_detection", "promised_recovery"):  # computed from the file, its lines named
        assert f"[from {HERE / 'litellm.yaml'}: model_list[0] (model_name: chat) at line 5;" in fault[key]["how"]
        assert "router_settings.cooldown_time at line 38" in fault[key]["how"]
    ready = next(e for e in events if e["type"] == "stack.ready")
    diff = ready["gateway_config_diff"]
    assert diff.count("-      api_base: http://10.20.0.1") == 3 and diff.count("+      api_base: http://127.0.0.1:") == 3
    assert "+    - chaosgate_litellm_probe.probe" in diff
    served = [e for e in events if e["type"] == "request" and e["status"] == 200]
    assert served, "the load asked for the bound group's model (chat), which the proxy serves"
    header = events[0]
    assert header["gateway_config"]["file"] == str(HERE / "litellm.yaml")


@pytest.mark.integration
def test_a_longer_cooldown_time_in_the_file_moves_the_promised_and_the_measured_recovery(tmp_path: Path) -> None:
    """The "Done when" test: cooldown_time 2s → 8s in the user's file. chat[0] resets connections for 3s: its
    failed calls (and failed checks) cool it down for cooldown_time, so with 8s it comes back at least 8s after
    it went out, well after the fault's end; with 2s, at the next passing check round."""
    require_components("litellm")
    measured: dict[int, tuple[float, float]] = {}
    for cooldown in (2, 8):
        folder = tmp_path / f"cooldown-{cooldown}"
        folder.mkdir()
        text = (HERE / "litellm.yaml").read_text()
        assert "  cooldown_time: 4 " in text
        (folder / "litellm.yaml").write_text(text.replace("  cooldown_time: 4 ", f"  cooldown_time: {cooldown} "))
        scenario = (HERE / "reset.yaml").read_text()
        # the fault shorter (3s, longer than the cooldowns' detection), so that the 20s load covers the latest
        # promised recovery of both (8s + a round + margins)
        # and no no_traffic_to: with a 2s cooldown the deployment is back in rotation before a 3s fault ends
        no_traffic = '  - {kind: no_traffic_to, target: "chat[0]", window: after_detection}\n'
        assert "at: 4s, for: 7s" in scenario and no_traffic in scenario
        (folder / "reset.yaml").write_text(scenario.replace("at: 4s, for: 7s", "at: 4s, for: 3s").replace(no_traffic, ""))
        summary, _ = run(folder / "reset.yaml", folder / "out", "own-litellm-reset")
        assert summary["passed"], json.dumps(summary["expectations"], indent=1)
        fault = summary["faults"][0]
        measured[cooldown] = fault["promised_recovery"]["latest"], fault["recovered_after"]
    (promised_short, recovered_short), (promised_long, recovered_long) = measured[2], measured[8]
    # promised: a round + 8s, against the checks' round + 2s + round (a round: ~0.1-1.2s as the proxy stamped them)
    assert promised_long >= 8 and promised_long - promised_short >= 3, measured
    # measured: with 8s, out at least 8s from its cooldown, which began in the fault's 3s (less the observer's 1s);
    # with 2s, back at the next passing check round (measured: 2.26s and 6.19s)
    assert recovered_long >= 8 - 3 - 1 and recovered_long - recovered_short >= 1, measured
