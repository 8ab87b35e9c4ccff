"""Writes a judged run to disk: summary.json and a one-page HTML placeholder report."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from harness.judge import Judgement


def summary(judgement: Judgement) -> dict[str, Any]:
    """The machine-readable outcome of one run."""
    header, timeline = judgement.header, judgement.timeline
    return {
        "scenario": judgement.scenario.name,
        "passed": judgement.passed,
        "complete": timeline.complete,
        "file": header.get("file"),
        "seed": judgement.scenario.seed,
        "runtime": header.get("runtime"),
        "gateway": judgement.scenario.gateway.kind,
        "started": header.get("ts"),
        "duration": round(timeline.end, 3),
        "requests": len(timeline.requests),
        "failed_requests": sum(not r.ok for r in timeline.requests),
        "command": header.get("command"),
        "warnings": header.get("warnings", []),
        "expectations": [v.to_json() for v in judgement.verdicts],
    }


def write_outputs(judgement: Judgement, run_dir: Path) -> dict[str, Any]:
    """Write ``summary.json`` and ``index.html`` into ``run_dir``; return the summary."""
    data = summary(judgement)
    (run_dir / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    (run_dir / "index.html").write_text(_html(data))
    return data


def _html(data: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr class={'pass' if v['passed'] else 'fail'}><td>{'PASS' if v['passed'] else 'FAIL'}</td>"
        f"<td>{e(v['description'])}</td><td>{e(v['bound'])}</td><td>{e(v['measured'])}</td><td>{e(v['detail'])}</td></tr>"
        for v in data["expectations"])
    status = "PASSED" if data["passed"] else ("INCOMPLETE" if not data["complete"] else "FAILED")
    warnings = "".join(f"<li>{e(w)}</li>" for w in data["warnings"])
    return f"""<!doctype html><html><head><meta charset=utf-8><title>{e(data['scenario'])}: {status}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
table{{border-collapse:collapse}}.pass td:first-child{{color:#070}}.fail td:first-child{{color:#b00}}</style></head>
<body><h1>{e(data['scenario'])}: {status}</h1>
<p>{data['requests']} requests, {data['failed_requests']} failed, over {data['duration']:.1f}s; gateway {e(data['gateway'])},
runtime {e(str(data['runtime']))}, seed {data['seed']}.</p>
<p>Reproduce: <code>{e(str(data['command']))}</code></p>
{f'<h2>Warnings</h2><ul>{warnings}</ul>' if warnings else ''}
<table><tr><th></th><th>expectation</th><th>bound</th><th>measured</th><th>what happened</th></tr>{rows}</table>
<p>The full report comes with chaosgate's report renderer; the journal is <code>journal.jsonl</code>.</p>
</body></html>
"""
