"""`chaosgate compare` over several files: the index, the suite's planning, its exit status (no stack runs)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main, scenario_files
from harness.compare.index import SuiteIndex, to_html, to_markdown, write_suite_index
from harness.compare.suite import SuiteEntry, SuiteProgress, exit_status, plan_suite, run_suite
from harness.compare.table import ComparisonTable, FaultRow, GatewayRow, not_run
from harness.errors import ChaosgateError
from harness.promise.window import Never, Unknown, Window
from tests.unit.test_compare_table import table as journal_table

ROOT = Path(__file__).resolve().parents[2]
RESET = (ROOT / "scenarios" / "compare" / "reset.yaml").read_text(encoding="utf-8")
TLS = (ROOT / "scenarios" / "tls-expired.yaml").read_text(encoding="utf-8")  # valid for envoy, refused by litellm


def fault(detected: float | None, recovered: float | None, promised: Window | Never | Unknown) -> FaultRow:
    return FaultRow(label="reset_peer@chat[0]", kind="reset_peer", target="chat[0]", detected_after=detected,
                    recovered_after=recovered, promised_detection=promised, promised_recovery=promised, errors={},
                    requests=100, to_broken_after_detection=0, all_down=None, duration=6.0, after_fault=6.0)


def row(gateway: str, status: str, *faults: FaultRow) -> GatewayRow:
    return GatewayRow(gateway=gateway, status=status, version="1", report=f"{gateway}/reset/index.html",
                      requests=100, failed_requests=3, faults=list(faults))


WINDOW = Window(1.0, 2.0, "interval × threshold")
RESET_TABLE = ComparisonTable("reset", "scenarios/compare/reset.yaml", "local", [
    row("envoy", "PASSED", fault(1.5, 1.2, WINDOW)),
    row("nginx", "FAILED", fault(4.0, None, WINDOW)),
    row("litellm", "PASSED", fault(2.5, 3.0, Unknown("no formula"))),
])
REFUSED_TABLE = ComparisonTable("refused", "scenarios/compare/refused.yaml", "local", [
    row("envoy", "PASSED", fault(None, None, Never("cannot notice"))),
    not_run("nginx", "refused.yaml:3: gateway.health_check: nginx cannot honour this"),
    row("litellm", "INCOMPLETE"),
])
INDEX = SuiteIndex(["envoy", "nginx", "litellm"], "local", [RESET_TABLE, REFUSED_TABLE])


def test_the_index_has_a_cell_per_scenario_and_gateway_linking_to_the_comparison() -> None:
    page = to_html(INDEX)
    assert "<style>" in page and "<script src" not in page and "http://" not in page.replace("http://www.w3", "")
    for table in (RESET_TABLE, REFUSED_TABLE):
        assert page.count(f'<tr data-scenario="{table.scenario}">') == 1
        for gateway in INDEX.gateways:
            assert page.count(f'data-scenario="{table.scenario}" data-gateway="{gateway}"') == 1
    assert page.count('href="reset/compare.html"') == 4 and page.count('href="refused/compare.html"') == 4
    assert 'href="reset/nginx/reset/index.html"' in page    # the run's own report, relative to the index
    envoy_reset = page.split('data-scenario="reset" data-gateway="envoy"')[1].split("</td>")[0]
    assert "PASSED" in envoy_reset and "detected <strong>1.5s</strong> <span class=\"kept-kept\">kept</span>" in \
        envoy_reset
    nginx_reset = page.split('data-scenario="reset" data-gateway="nginx"')[1].split("</td>")[0]
    assert 'class="cell-failed"' in page and "FAILED" in nginx_reset
    assert '<strong>4s</strong> <span class="kept-outside">OUTSIDE</span>' in nginx_reset
    assert 'recovered <strong>never</strong> <span class="kept-outside">OUTSIDE</span>' in nginx_reset
    assert '<span class="kept-na">n/a</span>' in page.split('data-scenario="reset" data-gateway="litellm"')[1]
    assert '<span class="muted window">[1s, 2s] +200ms margin: width 1.22s of a 6s fault</span>' in envoy_reset
    nginx_refused = page.split('data-scenario="refused" data-gateway="nginx"')[1].split("</td>")[0]
    assert "NOT RUN" in nginx_refused and "nginx cannot honour this" in nginx_refused
    assert "3 of 6 runs passed" in page and "2 scenarios on 3 gateways" in page


def test_the_index_as_markdown_and_json(tmp_path: Path) -> None:
    md = to_markdown(INDEX)
    assert "| scenario | envoy | nginx | litellm |\n|---|---|---|---|" in md
    reset_line = next(line for line in md.splitlines() if line.startswith("| reset |"))
    window = "[1s, 2s] +200ms margin: width 1.22s of a 6s fault"
    assert f"[FAILED](reset/compare.html)<br>reset_peer@chat[0]: detected 4s OUTSIDE ({window}), recovered never " \
        f"OUTSIDE ({window})" in reset_line
    assert f"detected 1.5s kept ({window}), recovered 1.2s kept ({window})" in reset_line
    assert "detected 2.5s n/a" in reset_line
    assert "[NOT RUN](refused/compare.html)<br>refused.yaml:3" in md
    page = write_suite_index(INDEX, tmp_path)
    assert page == tmp_path / "index.html" and (tmp_path / "index.md").read_text() == md
    doc = json.loads((tmp_path / "index.json").read_text())
    assert doc["gateways"] == ["envoy", "nginx", "litellm"] and doc["counts"] == \
        {"PASSED": 3, "FAILED": 1, "INCOMPLETE": 1, "NOT RUN": 1}
    [reset, refused] = doc["scenarios"]
    assert reset["comparison"] == "reset/compare.html"
    assert reset["gateways"][1]["faults"] == [{"fault": "reset_peer@chat[0]", "duration": 6.0, "detected_after": 4.0,
                                               "detection_kept": False, "detection_width": 1.22,
                                               "recovered_after": None, "recovery_kept": False,
                                               "recovery_width": 1.22}]
    assert refused["gateways"][1]["status"] == "NOT RUN" and refused["gateways"][0]["faults"][0]["detection_kept"]


def test_a_window_as_wide_as_the_fault_says_so() -> None:
    wide = ComparisonTable("reset", "r.yaml", "local", [row("litellm", "PASSED", fault(1.5, 1.2, Window(0.0, 6.2, "r")))])
    md = to_markdown(SuiteIndex(["litellm"], "local", [wide]))
    assert "detected 1.5s kept ([0s, 6.2s] +200ms margin: width 6.4s of a 6s fault: spans it all)" in md


def test_the_index_of_runs_from_journals() -> None:
    t = journal_table()   # envoy and litellm from synthetic journals, nginx not run
    page = to_html(SuiteIndex(["envoy", "litellm", "nginx", "haproxy"], "local", [t], pending=["b"], interrupted=True))
    assert 'data-scenario="t" data-gateway="litellm"' in page and "down@chat[*]" in page
    assert 'data-scenario="t" data-gateway="haproxy"></td>' in page   # a gateway the table does not have
    assert "Interrupted after 1 of 2 scenarios" in page and "Not compared (interrupted): b" in page


def test_the_exit_status_over_all_scenarios() -> None:
    passed = ComparisonTable("a", "a.yaml", "local", [row("envoy", "PASSED"), row("nginx", "PASSED")])
    failed = ComparisonTable("b", "b.yaml", "local", [row("envoy", "PASSED"), row("nginx", "FAILED")])
    incomplete = ComparisonTable("c", "c.yaml", "local", [row("envoy", "INCOMPLETE")])
    unrunnable = ComparisonTable("d", "d.yaml", "local", [not_run("envoy", "no envoy")])
    assert exit_status([passed]) == 0 and exit_status([passed, passed]) == 0
    assert exit_status([passed, failed]) == 1
    assert exit_status([failed, incomplete]) == 2 and exit_status([passed, unrunnable, failed]) == 2


def scenario(folder: Path, file: str, name: str, text: str = RESET) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(text.replace("name: reset\n", f"name: {name}\n").replace("name: tls-expired\n", f"name: {name}\n"),
                    encoding="utf-8")
    return path


def test_a_folder_is_its_yaml_files_sorted_not_recursive(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    scenario(suite, "b.yaml", "second")
    scenario(suite, "a.yaml", "first")
    scenario(suite / "deeper", "c.yaml", "nested")
    (suite / "notes.txt").write_text("not a scenario")
    single = scenario(tmp_path, "z.yaml", "last")
    entries = plan_suite(list(scenario_files((suite, single))), ["envoy", "nginx"])
    assert entries == [SuiteEntry(suite / "a.yaml", "first"), SuiteEntry(suite / "b.yaml", "second"),
                       SuiteEntry(single, "last")]


def test_duplicate_names_are_refused_before_anything_runs(tmp_path: Path) -> None:
    scenario(tmp_path / "suite", "a.yaml", "reset")
    scenario(tmp_path / "suite", "b.yaml", "reset")
    with pytest.raises(ChaosgateError, match=r"scenario name 'reset' is in .*a.yaml and .*b.yaml"):
        plan_suite(list(scenario_files((tmp_path / "suite",))), ["envoy"])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "suite"), "--gateways", "envoy", "--out", str(out)])
    assert result.exit_code == 2 and "so the names must differ" in result.output and "nothing was run" in result.output
    assert not out.exists()


def test_a_file_no_gateway_can_load_is_refused_before_anything_runs(tmp_path: Path) -> None:
    good = scenario(tmp_path, "good.yaml", "good")
    bad = scenario(tmp_path, "bad.yaml", "bad", RESET.replace("load:", "lode:"))
    with pytest.raises(ChaosgateError, match="bad.yaml") as error:
        plan_suite([good, bad], ["envoy", "nginx"])
    assert str(error.value).count("unknown field 'lode'") == 1   # the same problem for every gateway: said once
    tls = scenario(tmp_path, "tls.yaml", "tls", TLS)   # valid as it stands, not for litellm: a NOT RUN row later
    assert plan_suite([tls], ["litellm"]) == [SuiteEntry(tls, "tls")]


class InterruptingProgress(SuiteProgress):
    """Progress that presses Ctrl-C at the first line about the given scenario."""

    def __init__(self, at: str) -> None:
        super().__init__(stream=io.StringIO())
        self.at = at

    def _print(self, message: str) -> None:
        if self.at in self.prefix:
            raise KeyboardInterrupt
        super()._print(message)


def test_a_suite_no_gateway_can_run_writes_every_comparison_and_the_index(tmp_path: Path) -> None:
    files = [scenario(tmp_path / "suite", f"{name}.yaml", name, TLS) for name in ("tls-a", "tls-b")]
    out = tmp_path / "out"
    progress = SuiteProgress(stream=io.StringIO())
    index = run_suite(plan_suite(files, ["litellm"]), ["litellm"], out, progress=progress)
    assert [t.scenario for t in index.tables] == ["tls-a", "tls-b"] and not index.pending
    assert exit_status(index.tables) == 2
    assert isinstance(progress.stream, io.StringIO)
    lines = progress.stream.getvalue().splitlines()
    assert lines[0].startswith("[1/2 tls-a] warning: [litellm] cannot run") and lines[-1].startswith("[2/2 tls-b] ")
    for name in ("tls-a", "tls-b"):
        table = json.loads((out / name / "compare.json").read_text())
        assert table["scenario"] == name and table["gateways"][0]["status"] == "NOT RUN"
    assert 'data-scenario="tls-b" data-gateway="litellm"' in (out / "index.html").read_text()
    assert json.loads((out / "index.json").read_text())["counts"] == {"NOT RUN": 2}


def test_ctrl_c_keeps_what_finished_in_the_index(tmp_path: Path) -> None:
    files = [scenario(tmp_path / "suite", f"{name}.yaml", name, TLS) for name in ("tls-a", "tls-b", "tls-c")]
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_suite(plan_suite(files, ["litellm"]), ["litellm"], out, progress=InterruptingProgress("tls-b"))
    doc = json.loads((out / "index.json").read_text())
    assert doc["interrupted"] and [s["scenario"] for s in doc["scenarios"]] == ["tls-a"]
    assert doc["pending"] == ["tls-b", "tls-c"]
    assert (out / "tls-a" / "compare.html").exists() and not (out / "tls-b").exists()
