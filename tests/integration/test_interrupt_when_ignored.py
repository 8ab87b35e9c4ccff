"""`run`, `compare` and `up` stop on SIGINT even when started with SIGINT ignored, as a script starts its background
jobs (`chaosgate up ... &`): Python keeps an ignored signal ignored unless told otherwise. And `up` says
why a replica is unhealthy, in the gateway's own words."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from .conftest import CHAOSGATE, ROOT, processes_of_run, require_components, wait_for

STOP_DEADLINE = 30  # seconds from SIGINT to exit, teardown included (the run's own tests allow the same)


def _ignoring_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a non-interactive shell does


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CHAOSGATE, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignoring_sigint)


def _sigint_ignored(process: subprocess.Popen[str]) -> bool:
    """Whether the process was started with SIGINT ignored (bit 2 of its SigIgn mask)."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


@pytest.mark.integration
@pytest.mark.parametrize("command", ["run", "compare"])
def test_run_started_with_sigint_ignored_stops_on_sigint(command: str, tmp_path: Path) -> None:
    scenario = str(ROOT / "scenarios" / "compare" / "reset.yaml")
    if command == "run":
        run_dir = tmp_path / "reset"
        harness = _start("run", scenario, "--out", str(tmp_path), "--quiet")
    else:  # compare keeps each gateway's run in OUT/<gateway>/<scenario>/
        run_dir = tmp_path / "envoy" / "reset"
        harness = _start("compare", scenario, "--gateways", "envoy", "--out", str(tmp_path), "--quiet")
    journal = run_dir / "journal.jsonl"
    try:
        assert _sigint_ignored(harness), "the test starts it as a script's background job would be"
        wait_for(lambda: journal.exists() and '"load.started"' in journal.read_text(), 60, "the load to start")
        harness.send_signal(signal.SIGINT)
        _, stderr = harness.communicate(timeout=STOP_DEADLINE)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.communicate()
    assert harness.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    wait_for(lambda: not processes_of_run(run_dir), 5, "every process of the stack to end")
    assert json.loads(journal.read_text().splitlines()[-1])["outcome"] == "interrupted"


# What each gateway's own view says of a replica whose connections are reset (nginx, passive only, says
# nothing without traffic; its error-log detail is tested in tests/unit/test_nginx_config.py).
WHY = {"envoy": r"\([^;]*failed_active_health_check[^;]*\)$",             # Envoy admin's health flags
       "haproxy": r"\(DOWN [^;]+; [^:]+: .+\)$",                          # check status; its description: last check
       "litellm": r"\(health_check_failed; health check: [^\n]*error[^\n]*\)$"}  # the proxy's failed check, its error


@pytest.mark.integration
@pytest.mark.parametrize("gateway", sorted(WHY))
def test_up_started_with_sigint_ignored_says_why_and_stops_on_sigint(gateway: str, tmp_path: Path) -> None:
    require_components(gateway)
    up = _start("up", str(ROOT / "scenarios" / "compare" / "reset.yaml"), "--gateway", gateway, "--out", str(tmp_path))
    run_dir = tmp_path / "reset"
    lines: list[str] = []
    try:
        assert up.stdout is not None and up.stderr is not None and _sigint_ignored(up)
        text = ""
        for line in up.stdout:
            text += line
            if line.startswith("}"):
                break
        endpoints = json.loads(text)
        reader = threading.Thread(target=lambda: lines.extend(up.stderr or []), daemon=True)
        reader.start()
        # Break chat[0]: every connection to it is reset; the gateway's checks fail and its view says so.
        httpx.post(f"{endpoints['toxiproxy']}/proxies/chat-0/toxics",
                   json={"type": "reset_peer", "attributes": {"timeout": 0}}, timeout=5).raise_for_status()
        wait_for(lambda: any("chat[0] UNHEALTHY" in line for line in lines), 30, "up to say chat[0] is unhealthy")
        up.send_signal(signal.SIGINT)
        up.wait(timeout=STOP_DEADLINE)
        reader.join(timeout=5)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 130, "".join(lines)
    unhealthy = next(line for line in lines if "chat[0] UNHEALTHY" in line)
    assert re.search(WHY[gateway], unhealthy.strip()), unhealthy
    assert "stack trace" not in unhealthy
    assert "Traceback" not in "".join(lines)
    wait_for(lambda: not processes_of_run(run_dir), 5, "every process of the stack to end")
