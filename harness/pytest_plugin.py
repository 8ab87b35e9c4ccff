"""pytest plugin: ``pytest scenarios/`` runs each YAML scenario as one test item.

Registered through the ``pytest11`` entry point, so it is active wherever chaosgate is
installed. A YAML file is collected when it is a chaosgate scenario (a mapping with
``upstreams`` and ``load``) and was named on the command line, itself or by its folder, the
way ``chaosgate run`` takes them; so ``pytest`` over a test tree never runs the scenario
files it happens to contain. ``-k`` selects by scenario name, ``--junitxml`` records one
test case per scenario with each expectation as a property, and every run writes its report
to ``--chaosgate-out`` (default reports/) with the suite index beside them. Under pytest-xdist
(``pytest scenarios/ -n 3``) each worker runs its scenarios and the controller alone writes the index.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# The harness is imported only once a scenario is collected: this module loads in every
# pytest session of an environment where chaosgate is installed, and must stay cheap there.

SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaosgate", "chaosgate scenarios")
    group.addoption("--chaosgate-out", default="reports", metavar="DIR",
                    help="Folder for each scenario's journal, summary and report (default: reports).")
    group.addoption("--chaosgate-runtime", default="local", metavar="NAME",
                    help="Where the scenarios' stacks run: local (default) or docker.")


def _named_on_command_line(path: Path, config: pytest.Config) -> bool:
    root = config.invocation_params.dir
    for arg in config.args:
        named = (root / arg.split("::")[0]).resolve()
        if named in (path.resolve(), path.resolve().parent):
            return True
    return False


def _is_scenario(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return False
    except yaml.YAMLError:
        return True  # named explicitly but broken: collect it, so the item reports the error
    return isinstance(data, dict) and "upstreams" in data and "load" in data


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if file_path.suffix in SUFFIXES and _named_on_command_line(file_path, parent.config) and _is_scenario(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """One scenario file; it yields one item named after the scenario (or the file, if invalid)."""

    def collect(self) -> Iterator[ScenarioItem]:
        from harness.errors import ScenarioError
        from harness.scenario import load_scenario

        try:
            name = load_scenario(self.path).name
        except ScenarioError:
            name = self.path.stem  # the item fails with every problem when it runs
        yield ScenarioItem.from_parent(self, name=name)


class ScenarioFailed(Exception):
    """An expectation was not met (or the run did not complete); carries the run's summary."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(summary["scenario"])
        self.summary = summary


class ScenarioItem(pytest.Item):
    """Runs one scenario on a real stack and fails when an expectation is not met."""

    def runtest(self) -> None:
        from harness.errors import ChaosgateError
        from harness.run import run_scenario
        from harness.runtimes import RUNTIMES
        from harness.scenario import load_scenario

        runtime = self.config.getoption("chaosgate_runtime")
        if runtime not in RUNTIMES:
            raise ChaosgateError(f"--chaosgate-runtime {runtime!r}: expected one of {', '.join(sorted(RUNTIMES))}")
        scenario = load_scenario(self.path)  # a ScenarioError is reported by repr_failure
        out_dir = Path(self.config.getoption("chaosgate_out"))
        if not out_dir.is_absolute():
            out_dir = self.config.invocation_params.dir / out_dir
        result = run_scenario(scenario, self.path, self.path.read_text(encoding="utf-8"), out_dir, runtime)
        summary = result.summary
        self.user_properties.append(("report", str(result.run_dir / "index.html")))
        for number, v in enumerate(summary["expectations"], start=1):
            state = "pass" if v["passed"] else "FAIL"
            self.user_properties.append((f"{number}. {v['kind']}", f"{state}: measured {v['measured']}, bound {v['bound']}"))
        if not result.judgement.passed:
            raise ScenarioFailed(summary)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from harness.errors import ChaosgateError

        error = excinfo.value
        if isinstance(error, ScenarioFailed):
            return _failure_text(error.summary)
        if isinstance(error, ChaosgateError):
            return f"{self.name}: could not run: {error}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.name}"


def _failure_text(summary: dict[str, Any]) -> str:
    if not summary["complete"]:
        head = f"{summary['scenario']}: INCOMPLETE ({summary.get('outcome')}: {summary.get('error') or 'see the journal'})"
    else:
        head = f"{summary['scenario']}: FAILED"
    lines = [head]
    for v in summary["expectations"]:
        mark = "pass" if v["passed"] else "FAIL"
        lines.append(f"  {mark}  {v['kind']}: {v['description']}; measured {v['measured']}, bound {v['bound']}: {v['detail']}")
    return "\n".join(lines)


def pytest_configure(config: pytest.Config) -> None:
    """Only the process that reports writes the suite index: the session itself, or the controller of
    pytest-xdist's workers (``pytest scenarios/ -n 3``), which sees each worker's results as they arrive."""
    if not hasattr(config, "workerinput"):  # an xdist worker has it (and PYTEST_XDIST_WORKER in its environment)
        config.pluginmanager.register(SuiteIndex(), "chaosgate-suite-index")


class SuiteIndex:
    """Notes the output folder of every scenario that ran (from its ``report`` property) and writes each
    folder's index once the session ends."""

    def __init__(self) -> None:
        self.out_dirs: set[Path] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == "report":
                self.out_dirs.add(Path(str(value)).parent.parent)  # OUT/<scenario>/index.html

    def pytest_sessionfinish(self) -> None:
        if self.out_dirs:
            from harness.output import write_index

            for out_dir in sorted(self.out_dirs):
                write_index(out_dir)
