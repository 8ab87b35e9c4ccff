"""Measured detection and recovery next to the promised windows, for runs already made.

    python -m harness.promise.check reports/ [more run or suite folders...]

Reads each run's summary.json (written by `chaosgate run` or `chaosgate report`) and prints,
per fault, the measured time to detect and to readmit, the window the gateway's configuration
promised, and whether the measurement lies inside it. Exits 1 when one lies outside.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.output import read_summary
from harness.promise.window import place, promise_from_json


def run_folders(path: Path) -> list[Path]:
    if (path / "summary.json").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("*/summary.json"))


def inside(measured: float | None, promise: dict[str, Any] | None, available: float | None = None) -> str:
    """'yes', 'NO' or '-' (nothing to compare: no promise, none computed, nothing to measure, or nothing
    measured in a run too short to tell), as ``harness.promise.window.place`` decides. ``available``: how
    long the run gave the gateway (the fault's duration for detection, the rest of the run for recovery;
    None: nothing to act on)."""
    held = place(promise_from_json(promise), measured, available).held
    return "-" if held is None else ("yes" if held else "NO")


def rows(summary: dict[str, Any]) -> list[list[str]]:
    out = []
    for fault in summary.get("faults", []):
        after_fault = summary.get("duration", fault["end"]) - fault["end"]
        for what, measured, promise, available in (
                ("detect", fault.get("detected_after"), fault.get("promised_detection"), fault["end"] - fault["start"]),
                ("recover", fault.get("recovered_after"), fault.get("promised_recovery"), after_fault)):
            if what == "recover" and fault.get("detected_after") is None:
                available = None  # nothing was ejected, so there was nothing to readmit
            shown = "never" if measured is None else f"{measured:.3f}s"
            text = promise["text"] if promise else "-"
            out.append([summary["scenario"], fault["fault"], what, shown, text, inside(measured, promise, available)])
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    table = [["scenario", "fault", "", "measured", "promised", "inside"]]
    for arg in argv:
        for folder in run_folders(Path(arg)):
            summary = read_summary(folder)
            if summary is not None:
                table.extend(rows(summary))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 1 if any(row[-1] == "NO" for row in table[1:]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
