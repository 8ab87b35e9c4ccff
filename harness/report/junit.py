"""JUnit XML for CI: one <testsuite> per scenario, one <testcase> per expectation.

A failed expectation is a <failure> whose message holds the measured value and the bound;
a run that did not complete turns every expectation into an <error> (it was not judged on
a whole run), and a scenario without expectations gets one 'run' test case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

CLASS_PREFIX = "chaosgate"


def _case(suite: ET.Element, scenario: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=f"{CLASS_PREFIX}.{scenario}", name=name, time="0")


def _suite(summary: dict[str, Any]) -> tuple[ET.Element, int, int]:
    name = summary["scenario"]
    started = summary.get("started")
    suite = ET.Element("testsuite", name=name, time=f"{summary.get('duration', 0):.3f}",
                       timestamp=datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%S") if started else "")
    properties = ET.SubElement(suite, "properties")
    for key in ("file", "gateway", "gateway_version", "runtime", "seed", "outcome", "command", "report"):
        if summary.get(key) is not None:
            ET.SubElement(properties, "property", name=key, value=str(summary[key]))
    failures = errors = 0
    incomplete = not summary.get("complete", False)
    why = f"the run did not complete (outcome: {summary.get('outcome', 'unknown')})"
    if summary.get("error"):
        why += f": {summary['error']}"
    verdicts = summary.get("expectations", [])
    for number, v in enumerate(verdicts, start=1):
        case = _case(suite, name, f"{number}. {v['kind']}: {v['description']}")
        text = f"measured {v['measured']}; bound {v['bound']}"
        if incomplete:
            errors += 1
            ET.SubElement(case, "error", message=f"{why}; {text}", type="incomplete").text = v["detail"]
        elif not v["passed"]:
            failures += 1
            ET.SubElement(case, "failure", message=f"{text}: {v['detail']}", type=v["kind"]).text = v["detail"]
    if not verdicts:
        case = _case(suite, name, "run")
        if incomplete:
            errors += 1
            ET.SubElement(case, "error", message=why, type="incomplete")
    suite.set("tests", str(max(len(verdicts), 1)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    return suite, failures, errors


def junit_xml(summaries: list[dict[str, Any]]) -> str:
    """The JUnit XML document of a suite of runs (their summary.json contents)."""
    root = ET.Element("testsuites", name="chaosgate")
    tests = failures = errors = 0
    duration = 0.0
    for summary in summaries:
        suite, failed, broken = _suite(summary)
        root.append(suite)
        tests += int(suite.get("tests", "0"))
        failures, errors = failures + failed, errors + broken
        duration += float(summary.get("duration", 0))
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    root.set("time", f"{duration:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
