"""`chaosgate lint`, `validate` and `run --strict`: findings with file:line, exit codes, --help."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from harness.lint import TRAPS

REPO = Path(__file__).resolve().parents[2]
TRAPS_DIR = REPO / "scenarios" / "traps"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_help_explains_and_lists_every_trap() -> None:
    code, out, _ = invoke("lint", "--help")
    assert code == 0 and "configuration traps" in out and "--strict" in out
    for trap in TRAPS:
        assert trap.id in out


def test_shipped_scenarios_lint_clean() -> None:
    code, out, err = invoke("lint", str(REPO / "scenarios"))
    assert code == 0, out + err
    assert out == "" and "0 findings" in err


def test_ai_scenarios_lint_clean_on_their_own_gateway() -> None:
    code, out, err = invoke("lint", str(REPO / "scenarios" / "ai"))
    assert code == 0, out + err
    assert out == "" and "6 files, 0 findings" in err


def test_trap_scenarios_exit_1_on_the_error_and_name_every_trap_at_its_line() -> None:
    code, out, err = invoke("lint", str(TRAPS_DIR))
    assert code == 1, out + err
    for path in sorted(TRAPS_DIR.glob("*.yaml")):
        trap = path.read_text().split("\n", 1)[0].removeprefix("# TRAP ").split(":")[0]
        line = next(line for line in out.splitlines() if line.startswith(f"{path}:"))
        assert f"[{trap}]" in line
        assert line.split(":")[1].isdigit(), line  # file:line:col
    assert "(4 failing)" in err  # the errors: envoy.max-ejection-percent, haproxy.observe-retries, litellm.no-health,
    # litellm.check-routing-off


def test_warnings_alone_pass_unless_strict() -> None:
    panic = str(TRAPS_DIR / "envoy-panic-threshold.yaml")
    assert invoke("lint", panic)[0] == 0
    assert invoke("lint", "--strict", panic)[0] == 1


def test_gateway_override_and_invalid_files(tmp_path: Path) -> None:
    code, out, _ = invoke("lint", "--gateway", "haproxy", str(TRAPS_DIR / "envoy-no-traffic-interval.yaml"))
    assert code == 0 and "[haproxy.startup-state]" in out and "[envoy." not in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nload: {duration: 5s}\n")
    code, _, err = invoke("lint", str(bad))
    assert code == 2 and "upstreams: required field is missing" in err


def test_validate_prints_the_lints_findings() -> None:
    code, out, _ = invoke("validate", str(TRAPS_DIR / "envoy-uneject-flapping.yaml"))
    assert code == 0
    assert "envoy-uneject-flapping.yaml: ok" in out and "[envoy.uneject-flapping] gateway.outlier_detection:" in out


def test_run_strict_refuses_before_starting_anything(tmp_path: Path) -> None:
    code, _, err = invoke("run", "--strict", "--out", str(tmp_path), str(TRAPS_DIR / "envoy-panic-threshold.yaml"))
    assert code == 2
    assert "[envoy.panic-threshold]" in err and "(--strict)" in err
    assert list(tmp_path.iterdir()) == []
