"""Waiting for a state: poll with a deadline, never a fixed sleep before an assertion."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, poll: float = 0.05) -> T:
    """Call ``check`` until it returns something true, and return that; fail the test, naming
    ``what``, after ``timeout`` seconds (``check`` is called at least once, and once at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        last_call = time.monotonic() >= deadline
        if value := check():
            return value
        if last_call:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
