"""`chaosgate up` starts the stack, prints its endpoints, serves the official openai client
through the real gateway, and stops everything on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import openai
import pytest

from .conftest import CHAOSGATE, ROOT, processes_of_run, wait_for


@pytest.mark.integration
def test_up_serves_openai_clients_until_interrupted(tmp_path: Path) -> None:
    up = subprocess.Popen([*CHAOSGATE, "up", str(ROOT / "scenarios" / "replica-reset.yaml"), "--out", str(tmp_path)],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "replica-reset"
    try:
        assert up.stdout is not None
        text = ""
        for line in up.stdout:  # the endpoints come as one JSON document, then the stack stays up
            text += line
            if line.startswith("}"):
                break
        endpoints = json.loads(text)
        assert set(endpoints["replicas"]) == {"chat[0]", "chat[1]", "chat[2]"}

        client = openai.OpenAI(base_url=f"{endpoints['gateway']}/v1", api_key="unused", max_retries=0, timeout=10)
        served = set()
        for _ in range(6):
            raw = client.chat.completions.with_raw_response.create(
                model="fake-model", messages=[{"role": "user", "content": "hello"}])
            completion = raw.parse()
            assert completion.choices[0].message.content and completion.choices[0].finish_reason == "stop"
            served.add(raw.headers["x-chaosgate-replica"])
        assert served == set(endpoints["replicas"]), "round robin over every replica"
        chunks = list(client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()

        up.send_signal(signal.SIGINT)
        _, stderr = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 130, stderr
    assert "Traceback" not in stderr
    wait_for(lambda: not processes_of_run(run_dir), 5, "every process of the stack to end")
