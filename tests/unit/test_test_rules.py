"""The rules the tests themselves keep (DEVELOPERS' standards): under CI=true a missing component
fails, never skips; ``bash .ci/run`` sets CI=true itself; the real-stack tests ask for the gateway
they start; and nothing skips any other way than through tests/missing.py."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from tests.missing import missing

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SKIPS = re.compile(r"pytest\.skip\(|skipif|importorskip|mark\.skip|xfail")


def test_ci_run_sets_ci_true_before_anything_runs() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    exported = lines.index("export CI=true")
    assert exported < next(i for i, line in enumerate(lines) if "pytest" in line and not line.startswith("#"))
    assert exported < lines.index("bash .ci/setup")


def test_nothing_skips_but_through_missing() -> None:
    allowed = {TESTS / "missing.py", Path(__file__)}
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted(TESTS.rglob("*.py")) if path not in allowed
             for number, line in enumerate(path.read_text().splitlines(), 1) if SKIPS.search(line)]
    assert found == [], "skip through tests.missing.missing(), which fails under CI=true"
    ci_switches = [str(path.relative_to(ROOT)) for path in TESTS.rglob("*.py")
                   if path not in allowed and re.search(r"environ(\.get\(|\[)\s*[\"']CI[\"']", path.read_text())]
    assert ci_switches == [], "one place decides what CI=true means: tests/missing.py"


def test_missing_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="component missing under CI: haproxy"):
        missing("haproxy is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="haproxy is not installed"):
        missing("haproxy is not installed")


class Required(Exception):
    """What the stand-in require_components raises: the gateways a test asked for, before it started anything."""


def _asks_first(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
    def required(*gateways: str) -> None:
        raise Required(*gateways)

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{module.__name__} started the stack before it asked for its components")

    monkeypatch.setattr(module, "require_components", required)
    monkeypatch.setattr(module, "chaosgate", started)


@pytest.mark.parametrize("trap", ["haproxy-startup-state", "nginx-single-server", "litellm-no-health",
                                  "envoy-panic-threshold"])
def test_the_trap_tests_ask_for_their_gateway_first(trap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration import test_traps

    _asks_first(monkeypatch, test_traps)
    with pytest.raises(Required) as asked:
        test_traps.test_trap_scenario_bites_and_passes(ROOT / "scenarios" / "traps" / f"{trap}.yaml")
    assert asked.value.args == (trap.split("-")[0],)


def test_the_comparison_suite_asks_for_every_gateway_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration import test_compare_suite

    _asks_first(monkeypatch, test_compare_suite)
    factory = SimpleNamespace(mktemp=lambda name: tmp_path / name)
    with pytest.raises(Required) as asked:  # the module's fixture: the one place that starts the suite's runs
        test_compare_suite.compared._get_wrapped_function()(factory)
    assert asked.value.args == ("envoy", "haproxy", "nginx", "litellm")
