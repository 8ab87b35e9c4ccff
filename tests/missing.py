"""The one way a test meets a missing component: it skips on a developer's machine, and fails under
``CI=true`` (which ``bash .ci/run`` sets), so a CI run never passes by leaving things out.

tests/unit/test_test_rules.py checks that no test skips any other way.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def under_ci() -> bool:
    """Whether the tests run as CI runs them (``CI=true``, set by ``.ci/run`` itself)."""
    return os.environ.get("CI") == "true"


def missing(message: str) -> NoReturn:
    """Stop the test for want of a component: fail under CI=true, skip elsewhere."""
    if under_ci():
        pytest.fail(f"component missing under CI: {message}")
    pytest.skip(message)
