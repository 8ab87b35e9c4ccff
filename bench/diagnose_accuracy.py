"""Accuracy of ``chaosgate diagnose``: inject every fault kind into one stack, diagnose during each,
and compare the named cause with the injected one.

    .venv/bin/python bench/diagnose_accuracy.py            # prints the table, updates docs/diagnose.md
    .venv/bin/python bench/diagnose_accuracy.py --no-docs  # prints only

Writes the confusion table between the accuracy markers of docs/diagnose.md and the raw
outcomes to bench/results/diagnose_accuracy.json. Exits 1 if any fault kind is misdiagnosed.
The suite itself is harness/diagnose/accuracy.py; tests/integration/test_diagnose_accuracy.py
runs it in CI.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.diagnose.accuracy import Outcome, confusion_table, run_suite  # noqa: E402

DOCS = ROOT / "docs" / "diagnose.md"
BEGIN, END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"


def _print(outcome: Outcome) -> None:
    mark = "ok  " if outcome.correct else "MISS"
    print(f"{mark} {outcome.case.label:<40} expected {outcome.case.expected:<26} named {outcome.named:<26} "
          f"({outcome.layer or '-'}, {outcome.seconds:.2f}s)", flush=True)


def write_docs(table: str, header: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOCS}: the markers {BEGIN} and {END} are missing")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    DOCS.write_text(f"{before}{BEGIN}\n{header}\n\n{table}\n{END}{after}", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-docs", action="store_true", help="Do not update docs/diagnose.md.")
    args = parser.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="diagnose-accuracy-") as tmp:
        outcomes = run_suite(Path(tmp), progress=_print)
    took = time.monotonic() - began
    table = confusion_table(outcomes)
    print()
    print(table)
    print(f"\n{len(outcomes)} faults in {took:.0f}s")
    header = (f"Measured by `.venv/bin/python bench/diagnose_accuracy.py` ({len(outcomes)} injected faults, one stack, "
              f"{took:.0f}s on {platform.machine()} Python {platform.python_version()}, local runtime):")
    results = ROOT / "bench" / "results" / "diagnose_accuracy.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({"seconds": round(took, 1), "outcomes": [
        {"fault": o.case.label, "target": o.case.target, "expected": o.case.expected, "named": o.named,
         "layer": o.layer, "gateway_detected": o.gateway_detected, "correct": o.correct, "evidence": o.evidence,
         "seconds": round(o.seconds, 3)} for o in outcomes]}, indent=2))
    if not args.no_docs:
        write_docs(table, header)
        print(f"updated {DOCS}")
    return 0 if all(o.correct for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
