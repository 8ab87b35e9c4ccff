"""What every test directory shares: how pytest-xdist (``.ci/run`` runs the suite on several workers with
``--dist loadgroup``) keeps together the tests that share a costly fixture.

A worker sets a module- or session-scoped fixture up for itself, so tests that share one must run on the same
worker, or each worker pays for it again (a real stack started, a scenario run):

* tests that use a module-scoped fixture run on one worker per module;
* tests that judge a shipped scenario's session-wide run (``shipped_run``) run on one worker per scenario, so the
  local and docker runs of that scenario are made once and shared by every test that judges them.

Everything else is spread over the workers one test at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_RUN = "shipped_run"  # tests/integration/conftest.py: one run per (scenario, runtime) per worker


def xdist_group(item: pytest.Item) -> str | None:
    """The group that keeps ``item`` on the worker that holds its shared fixture (None: any worker)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    if SHARED_RUN in info.names_closure:
        params = getattr(getattr(item, "callspec", None), "params", {})
        scenarios = [Path(v).stem for v in params.values() if isinstance(v, (str, Path))]
        if scenarios:
            return f"shipped:{scenarios[0]}"
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name) or ()
        if definitions and definitions[-1].scope in ("module", "package"):
            return f"module:{item.nodeid.split('::', 1)[0]}"
    if SHARED_RUN in info.names_closure:
        return f"module:{item.nodeid.split('::', 1)[0]}"
    return None


# tryfirst: pytest-xdist's own hook (its worker plugin, registered after this file) reads the xdist_group marks to
# put each test's group into its node id; without tryfirst it runs first, finds no mark, and every test is spread.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (group := xdist_group(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
