"""tests/conftest.py keeps tests that share a costly fixture on one pytest-xdist worker, and spreads the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

CONFTEST = '''
import pytest
from tests.conftest import pytest_collection_modifyitems  # noqa: F401 (the hook under test)

@pytest.fixture(scope="session")
def shipped_run():
    return None

@pytest.fixture(scope="module")
def stack():
    return None

@pytest.fixture
def per_test():
    return None
'''

TESTS = '''
from pathlib import Path
import pytest

@pytest.mark.parametrize("scenario_file", [Path("scenarios/replica-reset.yaml"), Path("scenarios/oom-kill.yaml")],
                         ids=["replica-reset", "oom-kill"])
def test_local(scenario_file, shipped_run): pass

@pytest.mark.parametrize("scenario", ["replica-reset"])
def test_docker(scenario, shipped_run): pass

def test_without_params(shipped_run): pass

def test_on_the_stack(stack, per_test): pass

def test_alone(per_test): pass
'''


def test_shared_fixtures_keep_their_tests_on_one_worker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_groups=TESTS)
    items, _ = pytester.inline_genitems()
    groups = {item.name: [m.args[0] for m in item.iter_markers("xdist_group")] for item in items}
    assert groups == {
        # the local and docker runs of one scenario, judged by several tests: one worker
        "test_local[replica-reset]": ["shipped:replica-reset"],
        "test_local[oom-kill]": ["shipped:oom-kill"],
        "test_docker[replica-reset]": ["shipped:replica-reset"],
        "test_without_params": ["module:test_groups.py"],
        "test_on_the_stack": ["module:test_groups.py"],  # a module-scoped stack
        "test_alone": [],  # any worker
    }


SPREAD = '''
import os
import pytest

@pytest.mark.parametrize("i", range(4))
def test_on_the_stack(i, stack):
    with open("workers.txt", "a") as out:
        out.write(f"stack {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.parametrize("i", range(4))
def test_alone(i, per_test):
    with open("workers.txt", "a") as out:
        out.write(f"alone {os.environ['PYTEST_XDIST_WORKER']}\\n")
'''


def test_xdist_runs_a_group_on_one_worker(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``-n 2 --dist loadgroup`` the tests of a module-scoped stack all run on one worker: the marks are
    in place before pytest-xdist reads them (tryfirst), and the pinned pytest keeps xdist's group in the node id."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_spread=SPREAD)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))  # the conftest imports tests.conftest
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    lines = [line.split() for line in (pytester.path / "workers.txt").read_text().splitlines()]
    assert len({worker for what, worker in lines if what == "stack"}) == 1, lines
    assert len([1 for what, _ in lines if what == "alone"]) == 4
