"""Fixtures for the report tests: recorded-shape journals on disk and a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.missing import missing

from .browser import Browser, Page, chromium_binary
from .journals import reset_run, write_journal

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """The journal of a finished synthetic replica-reset run, in its run folder."""
    return write_journal(tmp_path / "synthetic-reset" / "journal.jsonl", reset_run())


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium; missing, it skips the test, or fails it under CI=true."""
    binary = chromium_binary()
    if binary is None:
        missing("chromium is not installed: run `bash .ci/setup` (.ci/setup.d/chromium.sh installs it)")
    started = Browser(binary)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    tab = browser.page()
    try:
        yield tab
    finally:
        tab.close()
