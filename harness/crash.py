"""A bug in chaosgate: its traceback goes to a file, the user gets one line (exit code 3).

``record(exc, directory)`` writes the full traceback once, into ``directory`` (a run's folder,
when the bug happened during a run) or else a temporary file, and remembers where on the
exception, so the command line can say where it is.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path

TRACEBACK_NAME = "traceback.txt"
_WHERE = "_chaosgate_traceback"


def record(exc: BaseException, directory: Path | None = None) -> Path:
    """Write ``exc``'s traceback (once: later calls return the first file) and return its path."""
    written = getattr(exc, _WHERE, None)
    if isinstance(written, Path):
        return written
    text = f"chaosgate bug, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n" + "".join(traceback.format_exception(exc))
    path = _write(text, directory)
    try:
        setattr(exc, _WHERE, path)
    except AttributeError:  # an exception type that takes no attributes: written again if asked again
        pass
    return path


def _write(text: str, directory: Path | None) -> Path:
    if directory is not None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / TRACEBACK_NAME
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            pass  # an unwritable run folder: a temporary file still holds it
    handle = tempfile.NamedTemporaryFile("w", prefix="chaosgate-traceback-", suffix=".txt", delete=False,
                                         encoding="utf-8")
    with handle:
        handle.write(text)
    return Path(handle.name)


def one_line(exc: BaseException, path: Path) -> str:
    """What the user reads about a bug: that it is one, what it was, where the traceback is, the teardown."""
    what = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return (f"chaosgate: internal error (a bug in chaosgate, not in your input): {what}; the full traceback is in "
            f"{path}; every stack this command started was torn down. Please report it with that file.")
