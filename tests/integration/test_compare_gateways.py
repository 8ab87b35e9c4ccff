"""`chaosgate compare`: one scenario against Envoy and the LiteLLM proxy, then one table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.scenario import load_scenario

from .conftest import ROOT, chaosgate, processes_of_run, require_components

SCENARIO = ROOT / "scenarios" / "replica-reset.yaml"


@pytest.mark.integration
def test_compare_envoy_and_litellm_on_replica_reset(tmp_path: Path) -> None:
    require_components("litellm")
    scenario = load_scenario(SCENARIO)
    result = chaosgate("compare", str(SCENARIO), "--gateways", "envoy,litellm", "--out", str(tmp_path), "-q",
                       timeout=2 * (scenario.load.duration + 60) + 90)
    # Both run; the scenario's bounds are Envoy's, so LiteLLM may miss one (exit 1), but nothing may be unrunnable.
    assert result.returncode in (0, 1), result.stdout + result.stderr
    table = json.loads((tmp_path / "compare.json").read_text())
    assert table["scenario"] == "replica-reset"
    rows = {row["gateway"]: row for row in table["gateways"]}
    assert list(rows) == ["envoy", "litellm"]
    fault = scenario.faults[0]
    for gateway, row in rows.items():
        assert row["status"] in ("PASSED", "FAILED"), row
        assert (tmp_path / row["report"]).exists()
        [measured] = row["faults"]
        assert measured["fault"] == fault.label
        # each gateway noticed the reset while it lasted and took the replica back after it
        assert measured["detected_after"] is not None and measured["detected_after"] <= fault.duration, gateway
        assert measured["recovered_after"] is not None, gateway
        assert measured["requests"] > 0 and measured["all_down"] is None  # two replicas were left
        assert processes_of_run(tmp_path / gateway / scenario.name) == []
    envoy = rows["envoy"]["faults"][0]
    assert envoy["detection_kept"] is True and envoy["to_broken_after_detection"] == 0
    assert rows["envoy"]["status"] == "PASSED"
    page = (tmp_path / "compare.html").read_text()
    assert 'data-gateway="envoy"' in page and 'data-gateway="litellm"' in page
    assert "| litellm | 1.108." in (tmp_path / "compare.md").read_text()
