"""The gateway comparison table, built from synthetic journals (as harness/journal.py writes them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.compare import gateway_row, write_table
from harness.compare.render import to_html, to_markdown
from harness.compare.table import ComparisonTable, all_down_answer, error_kind, kept, not_run, row_from_run
from harness.promise.window import Never, Unknown, Window
from harness.report.data import RunData
from harness.timeline import Request
from tests.unit.test_expectations import Run, proxy_address

ALL_DOWN = '  - {kind: down, target: "chat[*]", at: 5s, for: 8s}\n'
NO_HEALTHY = "no healthy upstream"
COOLDOWN = '{"error":{"message":"No deployments available for selected model, Try again in 3.0 seconds."}}'


def run_data(run: Run) -> RunData:
    header, rest = run.events[0], run.events[1:]
    return RunData.from_events([header, *sorted(rest, key=lambda e: e["ts"])])


def reset_run() -> Run:
    """chat[0] resets from 5s to 13s; the gateway marks it unhealthy at 6.5s, healthy at 14.5s; one request
    reaches it after that (at 7s), two fail before it."""
    run = Run('{kind: upstream_unhealthy, target: "chat[0]", within: 3s}').fault(5, 13)
    run.requests(0, 20, step=1.0)  # served by chat[1]
    run.request(5.5, error="http_5xx", status=503, replica=None, body="upstream connect error or disconnect/reset "
                "before headers. reset reason: connection termination", upstream=proxy_address("chat[0]"))
    run.request(6.0, error="reset", status=None, replica=None, upstream=proxy_address("chat[0]"))
    run.request(7.0, error="http_5xx", status=503, replica=None, body="late", upstream=proxy_address("chat[0]"))
    run.health(6.5, "chat[0]", False).health(14.5, "chat[0]", True)
    return run.finish()


def all_down_run(body: str, status: int = 503) -> Run:
    replicas = ("chat[0]", "chat[1]", "chat[2]")
    run = Run('{kind: upstream_unhealthy, target: "chat[*]", within: 3s}', faults=ALL_DOWN)
    run.fault(5, 13, label="down@chat[*]", kind="down", target="chat[*]", replicas=replicas)
    run.requests(0, 5, step=1.0)
    run.request(5.5, error="http_5xx", status=500, replica=None, body="Connection error.")  # before detection
    for replica in replicas:
        run.health(7.0, replica, False).health(14.0, replica, True)
    run.requests(7.0, 13.0, step=1.0, error="http_5xx" if status >= 500 else "http_4xx", status=status,
                 replica=None, body=body)
    run.request(9.2, error="http_5xx", status=500, replica=None, body="Connection error.")  # a cooldown expired
    run.requests(14.0, 20.0, step=1.0)
    return run.finish()


def test_a_row_measures_detection_recovery_and_what_clients_saw() -> None:
    data = run_data(reset_run())
    row = row_from_run("envoy", data, data.summary(), report="envoy/t/index.html")
    assert (row.gateway, row.status, row.report) == ("envoy", "PASSED", "envoy/t/index.html")
    assert row.requests == 23 and row.failed_requests == 3
    [fault] = row.faults
    assert fault.label == "reset_peer@chat[0]"
    assert fault.detected_after == pytest.approx(1.5) and fault.recovered_after == pytest.approx(1.5)
    assert fault.errors == {"503 upstream reset: connection termination": 1, "reset": 1, "503 late": 1}
    assert fault.requests == 8 + 3
    assert fault.to_broken_after_detection == 1   # the request at 7s, after the 6.5s detection
    assert fault.all_down is None                 # two replicas were left
    assert row.expectations[0]["kind"] == "upstream_unhealthy" and row.expectations[0]["passed"]


def test_never_detected_gives_no_count_after_detection() -> None:
    run = Run('{kind: upstream_unhealthy, target: "chat[0]", within: 3s}').fault(5, 13)
    run.requests(0, 20, step=1.0)
    data = run_data(run.finish())
    [fault] = row_from_run("nginx", data, data.summary(), None).faults
    assert fault.detected_after is None and fault.to_broken_after_detection is None
    assert "n/a (never detected)" in to_markdown(ComparisonTable("t", "t.yaml", "local",
                                                                 [row_from_run("nginx", data, {}, None)]))


@pytest.mark.parametrize(("body", "status"), [(NO_HEALTHY, 503), (COOLDOWN, 429)])
def test_the_all_down_answer_is_the_commonest_failure_once_detected(body: str, status: int) -> None:
    data = run_data(all_down_run(body, status))
    [fault] = row_from_run("x", data, data.summary(), None).faults
    assert fault.all_down is not None
    assert (fault.all_down.status, fault.all_down.body) == (status, body)
    assert fault.all_down.share == pytest.approx(6 / 7)   # the 9.2s 'Connection error.' is the 7th
    assert fault.all_down.requests == 7                     # from detection (7s) to the fault's end


def test_all_down_answer_of_broken_connections() -> None:
    answer = all_down_answer([Request(t=1, latency=1, kind="chat", status=None, error="timeout", replica=None)] * 2)
    assert answer is not None and (answer.status, answer.body, answer.share) == (None, "timeout", 1.0)
    assert all_down_answer([Request(t=1, latency=1, kind="chat", status=200, error=None, replica="chat[0]")]) is None


def test_kept_holds_a_measurement_to_its_promise() -> None:
    window = Window(1.0, 2.0, "formula")
    assert kept(window, 1.5, 6.0) is True and kept(window, 5.0, 6.0) is False and kept(window, None, 6.0) is False
    assert kept(window, None, 2.0) is None   # the run ended before the window did: too short to tell
    assert kept(Never("cannot eject"), None, 6.0) is True and kept(Never("cannot eject"), 1.0, 6.0) is False
    assert kept(Unknown("no formula"), 1.5, 6.0) is None and kept(None, 1.5, 6.0) is None


def table() -> ComparisonTable:
    litellm_run = all_down_run(COOLDOWN, 429)
    litellm_run.events[0]["gateway"] = "litellm"  # as `chaosgate run --gateway litellm` journals it
    envoy, litellm = run_data(all_down_run(NO_HEALTHY)), run_data(litellm_run)
    return ComparisonTable("t", "scenarios/t.yaml", "local", [
        row_from_run("envoy", envoy, envoy.summary(), "envoy/t/index.html"),
        row_from_run("litellm", litellm, litellm.summary(), "litellm/t/index.html"),
        not_run("nginx", "s.yaml:3: gateway.health_check: nginx cannot honour this"),
    ])


def test_json_markdown_and_html_carry_every_gateway() -> None:
    t = table()
    doc: dict[str, Any] = t.to_json()
    assert [g["gateway"] for g in doc["gateways"]] == ["envoy", "litellm", "nginx"]
    assert doc["gateways"][2] == {**doc["gateways"][2], "status": "NOT RUN", "faults": []}
    litellm_fault = doc["gateways"][1]["faults"][0]
    assert litellm_fault["all_down"]["status"] == 429
    for gateway, data in (("envoy", t.rows[0]), ("litellm", t.rows[1])):  # each held to its own promise
        fault = data.faults[0]
        assert fault.promised_detection is not None, gateway
        assert fault.detection_kept == kept(fault.promised_detection, fault.detected_after, fault.duration)
    md = to_markdown(t)
    assert "| nginx |  | NOT RUN | 0 (0) | s.yaml:3" in md
    assert "## down@chat[*]" in md and "429 '{\"error\":{\"message\":\"No deployments available" in md
    page = to_html(t)
    assert page.count('data-gateway="litellm"') == 2 and "n/a" in page and "<style>" in page
    assert "No deployments available" in page and "<script src" not in page


def test_written_from_run_folders(tmp_path: Path) -> None:
    run_dir = tmp_path / "litellm" / "t"
    run_dir.mkdir(parents=True)
    events = all_down_run(COOLDOWN, 429).events
    (run_dir / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    row = gateway_row("litellm", run_dir, tmp_path)
    assert row.status == "PASSED" and row.faults[0].all_down is not None
    assert gateway_row("haproxy", tmp_path / "haproxy" / "t", tmp_path, "haproxy is not installed").reason == \
        "haproxy is not installed"
    page = write_table(ComparisonTable("t", "t.yaml", "local", [row]), tmp_path)
    assert page == tmp_path / "compare.html"
    assert json.loads((tmp_path / "compare.json").read_text())["gateways"][0]["gateway"] == "litellm"
    assert (tmp_path / "compare.md").read_text().startswith("# t: 1 gateways compared")


def test_an_ai_gateways_json_errors_are_named_by_their_message() -> None:
    def failed(status: int, body: str) -> Request:
        return Request(t=1, latency=1, kind="chat", status=status, error="http_5xx", replica=None, body=body)

    litellm_500 = ('{"error":{"message":"litellm.InternalServerError: InternalServerError: OpenAIException - '
                   'Connection error.\\n\\nLiteLLM: model group \'fake-model\' failed","type":"internal_server_error"}}')
    assert error_kind(failed(500, litellm_500)) == \
        "500 litellm.InternalServerError: InternalServerError: OpenAIException - Connection error."
    assert error_kind(failed(500, litellm_500[:120])) == \
        "500 litellm.InternalServerError: InternalServerError: OpenAIException - Connection error."  # cut short
    cut_short = '{"error":{"message":"No deployments available for selected model, Try again in 10.0 sec'
    assert error_kind(failed(429, cut_short)) == "429 No deployments available for selected model, Try again in 10.0 sec"
    assert error_kind(failed(503, "no healthy upstream")) == "503 no healthy upstream"


def test_the_cli_refuses_an_unknown_gateway_before_running_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "replica-reset.yaml"
    result = CliRunner().invoke(main, ["compare", str(scenario), "--gateways", "envoy,kong", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "expected a comma-separated list of envoy, haproxy, litellm, nginx, portkey; got 'envoy,kong'" in result.output
    assert list(tmp_path.iterdir()) == []
