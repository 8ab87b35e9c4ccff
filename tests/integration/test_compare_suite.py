"""The comparison suite (scenarios/compare/): the same six faults against all four real gateways.

Each file runs through `chaosgate compare` on Envoy, HAProxy, nginx and the LiteLLM proxy in turn.
Every gateway must pass the expectations that encode what it was measured to do (those scoped to
it with `gateways:` and the common ones), and every measured detection and recovery must lie inside
the window that gateway's own configuration promises (harness/promise/); a gateway that promises
never to notice the fault must indeed not notice it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.journal import read_journal
from harness.promise.check import rows
from harness.scenario import load_scenario

from .conftest import ROOT, chaosgate, processes_of_run, require_components

SUITE = sorted((ROOT / "scenarios" / "compare").glob("*.yaml"))
GATEWAYS = ["envoy", "haproxy", "nginx", "litellm"]
START_UP_ALLOWANCE = 60  # per gateway: the LiteLLM proxy alone takes 8-25 s to import on a busy machine

# How each gateway words a replica it took out, in its own view (the journal's health flags).
OWN_WORDS = {"envoy": ("failed_active_health_check", "failed_outlier_check"), "haproxy": ("DOWN",),
             "nginx": ("temporarily disabled",), "litellm": ("health_check_failed", "cooldown")}


def test_the_suite_has_the_faults_the_issue_names() -> None:
    kinds = {load_scenario(path).faults[0].kind for path in SUITE}
    assert {"reset_peer", "timeout", "down", "llm_fault", "latency"} <= kinds
    assert any(load_scenario(path).faults[0].target == "chat[*]" for path in SUITE), "an all-down scenario"


@pytest.mark.integration
@pytest.mark.parametrize("path", SUITE, ids=[p.stem for p in SUITE])
def test_every_gateway_passes_the_suite_inside_its_promised_windows(path: Path, tmp_path: Path) -> None:
    require_components(*GATEWAYS)
    scenario = load_scenario(path)
    result = chaosgate("compare", str(path), "--gateways", ",".join(GATEWAYS), "--out", str(tmp_path), "-q",
                       timeout=len(GATEWAYS) * (scenario.load.duration + START_UP_ALLOWANCE) + 60)
    table = json.loads((tmp_path / "compare.json").read_text())
    by_gateway = {row["gateway"]: row for row in table["gateways"]}
    assert list(by_gateway) == GATEWAYS
    failed = {g: [v for v in row["expectations"] if not v["passed"]] or row["reason"]
              for g, row in by_gateway.items() if row["status"] != "PASSED"}
    assert not failed, failed
    assert result.returncode == 0, result.stdout + result.stderr

    for gateway, row in by_gateway.items():
        run_dir = tmp_path / gateway / scenario.name
        summary = json.loads((run_dir / "summary.json").read_text())
        outside = [r for r in rows(summary) if r[-1] == "NO"]
        assert not outside, (gateway, outside)
        # Each gateway judged exactly the expectations scoped to it.
        judged = [v["kind"] for v in summary["expectations"]]
        assert judged == [e.kind for e in load_scenario(path, gateway).expect], gateway
        [fault] = row["faults"]
        promised = fault["promised_detection"]
        if promised and not promised.get("never") and not promised.get("unknown"):
            assert fault["detected_after"] is not None, (gateway, "promised to detect, never did")
            assert fault["detection_kept"] is True and fault["recovery_kept"] is True, (gateway, fault)
            events = read_journal(run_dir / "journal.jsonl")
            words = [e["flags"] for e in events if e["type"] == "health" and not e["healthy"]]
            assert words and all(any(own in w for own in OWN_WORDS[gateway]) for w in words), (gateway, words)
        assert processes_of_run(run_dir) == [], f"{gateway}: the stack was torn down"
    page = (tmp_path / "compare.html").read_text()
    assert all(f'data-gateway="{g}"' in page for g in GATEWAYS)
