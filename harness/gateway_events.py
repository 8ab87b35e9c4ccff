"""The gateway's own stamps of each health change, journalled as ``gateway.health`` events.

The observer (harness/observer.py) polls the gateway's view at 20 Hz, so a ``health`` event comes
up to one poll (and the admin API's own latency) after the gateway acted: measured on Envoy, 7-43 ms.
Where the gateway logs each change with its own timestamp, that log is tailed like the attempt logs
(harness/attempts.py) and each line journalled as ``gateway.health``: the address, healthy or not,
and the gateway's words for it. The timeline (harness/timeline.py) then moves each polled change to
the gateway's own stamp of it; the poll stays the fallback (a gateway without such a log, a change
the log does not name) and the cross-check (the ``health`` event keeps the polled time).

An adapter with such a log has ``health_event_logs(run_dir)``: the files, each with whether it is
plain text; and ``parse_health_event(record)``: one line (a JSON object, or ``{"line": text}``) as
events ``{"ts", "address", "healthy", "what"}``, none for a line that is not a health change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.attempts import AttemptSource, LineParser

HEALTH_EVENT = "gateway.health"


def health_event_sources(gateway: Any, run_dir: Path, by_address: dict[str, str]) -> list[AttemptSource]:
    """The gateway's own logs of its health changes, if its adapter keeps any (``by_address``: the address the
    gateway checks for each replica → its name)."""
    logs = getattr(gateway, "health_event_logs", None)
    if not callable(logs):
        return []
    parse_line: LineParser = gateway.parse_health_event

    def parse(record: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**event, "type": HEALTH_EVENT, "replica": by_address.get(event["address"])}
                for event in parse_line(record)]
    return [AttemptSource(path, parse, text=text) for path, text in logs(run_dir)]
