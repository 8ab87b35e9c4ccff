"""The two report tests that run the real stack (Envoy, Toxiproxy, fake replicas, Locust):
a suite with one failing scenario through `chaosgate run --junit`, its reports opened in
Chromium (the screenshot of the shipped scenario's report is kept under reports/screenshots/),
and scenarios run through the pytest plugin with -k and --junitxml."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


from tests.integration.conftest import require_components

from .browser import Page
from .conftest import ROOT
from .test_browser import LOOK

pytest_plugins = ["pytester"]
SCREENSHOTS = ROOT / "reports" / "screenshots"


@pytest.fixture(autouse=True)
def components() -> None:
    """Envoy and Toxiproxy must be installed; under CI=true their absence fails the test."""
    require_components()


@pytest.mark.integration
def test_a_suite_with_one_failing_scenario(tmp_path: Path, page: Page) -> None:
    junit = tmp_path / "junit.xml"
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "scenarios/replica-reset.yaml",
                             "tests/scenarios/must-fail.yaml", "--out", str(tmp_path), "--junit", str(junit), "-q"],
                            cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"suite report: {tmp_path / 'index.html'}" in result.stdout

    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("9", "2", "0")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["replica-reset", "must-fail"]
    assert suites["replica-reset"].get("failures") == "0" and len(suites["replica-reset"].findall("testcase")) == 6
    failures = {case.get("name", "").split(":")[0]: case.find("failure")
                for case in suites["must-fail"].iter("testcase")}
    failed = {name: f.get("message", "") for name, f in failures.items() if f is not None}
    assert list(failed) == ["1. upstream_unhealthy", "2. no_traffic_to"]
    assert failed["1. upstream_unhealthy"].startswith("measured ") and "; bound ≤ 200ms: " in failed["1. upstream_unhealthy"]
    assert "; bound 0 attempts: " in failed["2. no_traffic_to"] and " attempts reached chat[0]" in failed["2. no_traffic_to"]
    assert all(case.get("classname") == "chaosgate.must-fail" for case in suites["must-fail"].iter("testcase"))

    report = tmp_path / "replica-reset" / "index.html"
    page.open(report.as_uri())
    seen = page.evaluate(LOOK)
    assert page.console_errors() == [] and page.requested_urls() == [report.as_uri()]
    assert seen["h1"].split() == ["replica-reset", "PASSED"]
    assert [(c["name"], len(c["faults"])) for c in seen["charts"]] == [
        ("requests", 1), ("errors", 1), ("latency", 1), ("health", 1)]
    for chart in seen["charts"]:
        assert chart["drawn"] >= 1 and chart["faults"][0]["width"] > 100, chart
        assert [m.split()[0] for m in chart["moments"]] == ["detected", "recovered"], chart
    assert len(seen["rows"]) == 6 and all(r["cells"][1] == "PASS" and all(r["cells"]) for r in seen["rows"])
    page.screenshot(SCREENSHOTS / "replica-reset.png")
    assert (SCREENSHOTS / "replica-reset.png").stat().st_size > 50_000

    page.open((tmp_path / "index.html").as_uri())
    rows = page.evaluate("[...document.querySelectorAll('table.suite tbody tr')].map(tr => tr.dataset.scenario + ' ' + tr.innerText)")
    assert [r.split()[0] for r in rows] == ["must-fail", "replica-reset"]
    assert "FAILED" in rows[0] and "PASSED" in rows[1]
    page.open((tmp_path / "must-fail" / "index.html").as_uri())
    seen = page.evaluate(LOOK)
    assert page.console_errors() == []
    assert [r["kind"] for r in seen["rows"] if r["cells"][1] == "FAIL"] == ["upstream_unhealthy", "no_traffic_to"]
    assert seen["advice"][:2] == ["upstream_unhealthy failed: the gateway marks chat[0] unhealthy within 200ms of the fault starting",
                                  "no_traffic_to failed: no request or retry reaches chat[0] while the fault is active"]
    # beside no_traffic_to, the tries that reached chat[0] in the fault: Envoy logs each one (its upstream_log)
    tries = page.evaluate("[...document.querySelectorAll('div.tries')].map(d => [d.dataset.tries, d.innerText])")
    assert len(tries) == 1 and int(tries[0][0]) > 0, tries
    assert f"{tries[0][0]} tries reached chat[0] between 2." in tries[0][1], tries
    assert "(+0." in tries[0][1] and ": request " in tries[0][1] and "at chat[0], seen by the gateway log" in tries[0][1]


QUICK = """\
name: {name}
upstreams:
  - {{name: chat, replicas: 2}}
gateway:
  health_check: {{interval: 500ms, timeout: 250ms, unhealthy_threshold: 2, healthy_threshold: 1, no_traffic_interval: 500ms}}
  panic_threshold: 0
load: {{users: 2, spawn_rate: 2, duration: 3s}}
faults:
  - {{kind: reset_peer, target: "chat[0]", at: 1s, for: 1500ms}}
expect:
  - {{kind: error_rate, window: baseline, max: 0.0}}
  - {{kind: upstream_unhealthy, target: "chat[0]", within: {within}}}
"""


@pytest.mark.integration
def test_pytest_runs_scenarios_with_k_and_junitxml(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", **{"scen/quick-pass": QUICK.format(name="quick-pass", within="1400ms"),
                                  "scen/quick-fail": QUICK.format(name="quick-fail", within="50ms"),
                                  "scen/slow-other": QUICK.format(name="slow-other", within="1s")})
    result = pytester.runpytest("scen", "-k", "quick", "--junitxml=junit.xml", "--chaosgate-out=out", "-p", "no:locust")
    result.assert_outcomes(passed=1, failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*quick-fail: FAILED*", "*FAIL  upstream_unhealthy:*; measured *s, bound ≤ 50ms: *"])
    root = ET.parse(pytester.path / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"quick-pass", "quick-fail"}
    failure = cases["quick-fail"].find("failure")
    assert failure is not None and "bound ≤ 50ms" in (failure.get("message", "") + (failure.text or ""))
    assert cases["quick-pass"].find("failure") is None
    properties = {p.get("name"): p.get("value") for p in cases["quick-pass"].iter("property")}
    assert properties["2. upstream_unhealthy"].startswith("pass: measured ")
    assert properties["report"] == str(pytester.path / "out" / "quick-pass" / "index.html")
    assert (pytester.path / "out" / "index.html").exists()
    assert not (pytester.path / "out" / "slow-other").exists()
