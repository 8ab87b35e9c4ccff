"""The pytest plugin, driven through pytest itself (pytester): which YAML files become items,
-k selection, and a scenario that cannot be loaded failing with its problems. No stack needed."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

SCENARIO = """\
name: {name}
upstreams:
  - {{name: chat, replicas: 2}}
load: {{users: 2, duration: 3s}}
faults:
  - {{kind: reset_peer, target: "chat[0]", at: 1s, for: 1500ms}}
expect:
  - {{kind: error_rate, window: baseline, max: 0.0}}
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", **{
        "scen/alpha": SCENARIO.format(name="alpha"),
        "scen/beta": SCENARIO.format(name="beta"),
        "scen/compose": "services: {web: {image: nginx}}\n",           # YAML, but not a scenario
        "scen/broken": "name: broken\nupstreams: []\nload: {duration: soon}\n",
        "scen/nested/gamma": SCENARIO.format(name="gamma"),             # not directly in the folder named
    })
    return pytester


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("chaosgate") == "harness.pytest_plugin"


def test_each_scenario_in_the_folder_named_is_one_item(suite: pytest.Pytester) -> None:
    result = suite.runpytest("scen", "--collect-only", "-q", "-p", "no:locust")
    result.stdout.fnmatch_lines(["scen/alpha.yaml::alpha", "scen/beta.yaml::beta", "scen/broken.yaml::broken",
                                 "", "3 tests collected*"], consecutive=True)
    assert "gamma" not in result.stdout.str() and "compose" not in result.stdout.str()


def test_a_file_named_itself_is_collected_and_k_selects_by_scenario_name(suite: pytest.Pytester) -> None:
    result = suite.runpytest("scen/nested/gamma.yaml", "--collect-only", "-q", "-p", "no:locust")
    result.stdout.fnmatch_lines(["scen/nested/gamma.yaml::gamma", "1 test collected*"])
    result = suite.runpytest("scen", "-k", "beta or alpha", "--collect-only", "-q", "-p", "no:locust")
    result.stdout.fnmatch_lines(["scen/alpha.yaml::alpha", "scen/beta.yaml::beta", "2/3 tests collected (1 deselected)*"])


def test_a_test_tree_does_not_run_the_scenario_files_it_holds(suite: pytest.Pytester) -> None:
    suite.makepyfile(**{"scen/test_plain": "def test_plain():\n    assert True\n"})
    result = suite.runpytest("--collect-only", "-q", "-p", "no:locust")  # the whole tree, from its root
    result.stdout.fnmatch_lines(["scen/test_plain.py::test_plain", "1 test collected*"])


def test_an_invalid_scenario_fails_with_its_file_line_and_field(suite: pytest.Pytester) -> None:
    result = suite.runpytest("scen/broken.yaml", "-p", "no:locust", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*scen/broken.yaml:2:*upstreams: *", "*broken.yaml:3:*load.duration: expected a duration*"])
    assert "Traceback" not in result.stdout.str()
    junit = (suite.path / "junit.xml").read_text()
    assert 'name="broken"' in junit and "<failure" in junit


def test_an_unknown_runtime_fails_the_item_with_the_choices(suite: pytest.Pytester) -> None:
    result = suite.runpytest("scen/alpha.yaml", "--chaosgate-runtime=nope", "-p", "no:locust")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*alpha: could not run: --chaosgate-runtime 'nope': expected one of *local*"])
