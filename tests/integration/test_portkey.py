"""The Portkey AI gateway (``gateway.kind: portkey``) on real runs: the real gateway (npm @portkey-ai/gateway 1.15.2,
started by the harness), real fakes behind Toxiproxy, the load sending the rendered config with every request.

* every chat replica (openai) refused: Portkey falls back per request to an anthropic pool (it translates the chat
  completion), within the window its configuration promises (harness/promise/fallback.py); without ``fallback:``
  the same verdicts fail;
* one replica of two refused: Portkey's loadbalance keeps picking it, and each such request falls back to the spare
  pool inside the same client request (no client error);
* streams: the chat_stream and anthropic_stream personas get 200 streams from the fakes through Portkey, and with
  every chat replica refused the streamed chat completions are served by the anthropic fallback (Portkey translates
  the streamed message); why Portkey needed harness/gateways/portkey_headers.mjs for that, shown both ways on the
  installed @hono/node-server;
* the official ``openai`` and ``anthropic`` clients through Portkey started by the harness, with the adapter's
  headers (one config: a conditional strategy routes the anthropic persona's model to its pool), whole and streamed.

Each run's load is 6-7 s; the file runs in about 55 s.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml

from harness.gateways.base import ShapesLoad
from harness.gateways.portkey import HEADERS_SHIM, PORTKEY_DIR, SERVED_BY_HEADER, node_binary
from harness.journal import read_journal
from harness.promise import Window
from harness.promise.fallback import fallback_window
from harness.runtimes.base import Stack
from harness.runtimes.local import LocalRuntime
from harness.scenario import load_scenario, parse_scenario
from harness.timeline import FaultWindow, Request, build_timeline
from tests.integration.conftest import chaosgate, processes_of_run, require_components

HERE = Path(__file__).resolve().parent / "portkey"


def derived(name: str, tmp_path: Path, fallback: bool) -> tuple[Path, float]:
    """``HERE/<name>.yaml`` as it is, or without ``fallback:``; with the promised fallback bound (its upper end)."""
    scenario = load_scenario(HERE / f"{name}.yaml")
    promise = fallback_window(scenario, scenario.faults[0])
    assert isinstance(promise, Window), promise
    data = yaml.safe_load((HERE / f"{name}.yaml").read_text())
    if not fallback:
        for pool in data["upstreams"]:
            pool.pop("fallback", None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, promise.upper


def run(path: Path, out: Path) -> tuple[list[dict[str, Any]], list[Request], str, FaultWindow, Path]:
    """Run ``path``: its verdicts, its client requests, the CLI's output, its fault as it really was, its folder."""
    result = chaosgate("run", str(path), "--out", str(out), "--quiet", timeout=120)
    run_dir = out / load_scenario(path).name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"], result.stdout + result.stderr
    assert processes_of_run(run_dir) == [], "the stack was torn down"
    timeline = build_timeline(read_journal(run_dir / "journal.jsonl"))
    (fault,) = timeline.faults
    return summary["expectations"], timeline.requests, result.stdout + result.stderr, fault, run_dir


@pytest.mark.integration
def test_portkey_falls_back_from_openai_to_anthropic_within_its_promise(tmp_path: Path) -> None:
    require_components("portkey")
    path, bound = derived("openai-to-anthropic", tmp_path, fallback=True)
    verdicts, requests, output, fault, run_dir = run(path, tmp_path / "out")
    for verdict in verdicts:
        assert verdict["passed"], (verdict, output[-2000:])
    within = next(v for v in verdicts if v["kind"] == "fallback_within")
    assert 0 < within["measured_value"] <= bound, within
    # in the fault, only claude served, by the fake's identity header and by Portkey's own
    # x-portkey-last-used-option-index (config.targets[1].targets[0], mapped by the load to claude[0]'s address)
    served = [r for r in requests if r.ok and fault.start + bound <= r.t and r.t + r.latency < fault.end]
    assert served and {r.replica for r in served} == {"claude[0]"}
    assert {r.routed_to for r in served} == {"claude[0]"}
    before = [r for r in requests if r.ok and r.t + r.latency < fault.start]
    assert before and {r.routed_to for r in before} == {"chat[0]", "chat[1]"} == {r.replica for r in before}
    # the config the load sent is in the run folder: a fallback over two loadbalance groups, no health anywhere
    config = json.loads((run_dir / "portkey-config.json").read_text())
    assert config["strategy"] == {"mode": "fallback"}
    assert [t["strategy"]["mode"] for t in config["targets"]] == ["loadbalance", "loadbalance"]
    assert [t["provider"] for t in config["targets"][1]["targets"]] == ["anthropic"]
    # the load's request id reaches the fakes (forward_headers): every served request was one try at claude
    attempts = [e for e in read_journal(run_dir / "journal.jsonl") if e["type"] == "attempt" and not e.get("health")]
    served_ids = {r.id for r in served}
    assert {a["request_id"] for a in attempts if a["replica"] == "claude[0]"} >= served_ids


@pytest.mark.integration
def test_without_fallback_portkey_fails_the_same_verdicts(tmp_path: Path) -> None:
    require_components("portkey")
    path, _ = derived("openai-to-anthropic", tmp_path, fallback=False)
    verdicts, requests, output, fault, _ = run(path, tmp_path / "out")
    for verdict in verdicts:
        assert not verdict["passed"], (verdict, output[-2000:])
    within = next(v for v in verdicts if v["kind"] == "fallback_within")
    assert "the fallback was never used" in within["detail"], within
    failed = [r for r in requests if fault.start <= r.t < fault.end and not r.ok]
    # Portkey's 500: for a try that failed to connect it names ECONNREFUSED; one in flight as the proxy went down is
    # cut instead (its cause a TypeError, seen once under load)
    assert failed and all(r.status == 500 for r in failed), failed
    assert sum("ECONNREFUSED" in (r.body or "") for r in failed) >= len(failed) - 2, failed


@pytest.mark.integration
def test_portkey_loadbalance_keeps_picking_a_dead_replica_and_falls_back_per_request(tmp_path: Path) -> None:
    require_components("portkey")
    verdicts, requests, output, fault, _ = run(HERE / "replica-down.yaml", tmp_path / "out")
    for verdict in verdicts:
        assert verdict["passed"], (verdict, output[-2000:])
    during = [r for r in requests if fault.start <= r.t and r.t + r.latency < fault.end]
    # no health: chat[0] stays in the rotation, and each request that picked it was answered by the spare pool
    assert {r.replica for r in during if r.kind == "chat"} == {"chat[1]", "spare[0]"}
    assert all(r.ok for r in during)
    # the anthropic persona's messages, routed by the same config's conditional strategy, all served by claude
    messages = [r for r in requests if r.kind == "anthropic"]
    assert messages and all(r.ok and r.replica == r.routed_to == "claude[0]" for r in messages)


@pytest.mark.integration
def test_streams_through_portkey_are_served_and_fall_back_to_the_anthropic_pool(tmp_path: Path) -> None:
    require_components("portkey")
    verdicts, requests, output, fault, run_dir = run(HERE / "stream-fallback.yaml", tmp_path / "out")
    for verdict in verdicts:
        assert verdict["passed"], (verdict, output[-2000:])
    streams = [r for r in requests if r.kind == "chat_stream"]
    messages = [r for r in requests if r.kind == "anthropic_stream"]
    assert streams and messages and {r.kind for r in requests} == {"chat_stream", "anthropic_stream"}
    # every stream of the run was a 200 read to its end ([DONE], or message_stop), its first token timed; but for
    # one in flight when the fault began: Portkey had passed on the 200, the fault cut the replica's stream, and it
    # cannot fall back in the middle of one (no [DONE]: stream_incomplete)
    in_flight = [r for r in requests if r.t < fault.start < r.t + r.latency]
    assert all(r.ok and r.status == 200 and r.ttft is not None for r in requests if r not in in_flight), \
        [(r.kind, r.status, r.error, r.body) for r in requests if not r.ok][:5]
    assert all(r.status == 200 and r.error in (None, "stream_incomplete") for r in in_flight)
    # before the fault the chat replicas streamed (the fakes' identity header, passed on by Portkey, and Portkey's
    # own x-portkey-last-used-option-index agree); in it, claude[0] did, translated into chat chunks
    before = [r for r in streams if r.t + r.latency < fault.start]
    assert before and {r.replica for r in before} == {r.routed_to for r in before} == {"chat[0]", "chat[1]"}
    assert all(r.replica == r.routed_to for r in before)
    during = [r for r in streams if fault.start + 1.0 <= r.t and r.t + r.latency < fault.end]
    assert during and {r.replica for r in during} == {r.routed_to for r in during} == {"claude[0]"}
    assert all(r.replica == r.routed_to == "claude[0]" for r in messages)
    log = (run_dir / "logs" / "portkey.log").read_text(errors="replace")  # (ECONNREFUSED lines: the fault)
    assert "Ready for connections" in log and "TypeError: immutable" not in log


# How Portkey turns a fetched answer into its own (its handleStreamingMode: new Response(stream, fetched)) and then
# adds its headers (updateHeaders), with the installed @hono/node-server's global Response in place, as serve()
# puts it for Portkey. The fetched answer comes from a one-line HTTP server in the same node process.
REBUILD = """
import http from "node:http";
import { getRequestListener } from "@hono/node-server";
getRequestListener(() => new Response("unused"));
const server = http.createServer((request, response) => response.end("data: [DONE]\\n\\n"));
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const fetched = await fetch(`http://127.0.0.1:${server.address().port}/`);
const rebuilt = new Response(fetched.body, fetched);
try {
  rebuilt.headers.append("x-portkey-last-used-option-index", "config");
  console.log(`appended ${rebuilt.headers.get("x-portkey-last-used-option-index")} ${await rebuilt.text()}`);
} catch (error) {
  console.log(`${error.name}: ${error.message}`);
}
server.close();
"""


@pytest.mark.integration
@pytest.mark.parametrize(("shim", "printed"), [
    (False, "TypeError: immutable"),
    (True, "appended config data: [DONE]"),
], ids=["hono-alone", "with-portkey_headers.mjs"])
def test_why_streams_failed_and_what_the_headers_shim_changes(shim: bool, printed: str) -> None:
    require_components("portkey")
    preload = ["--import", HEADERS_SHIM.as_uri()] if shim else []
    done = subprocess.run([node_binary(), *preload, "--input-type=module", "-e", REBUILD], cwd=PORTKEY_DIR,
                          capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == printed, done.stdout + done.stderr


SCENARIO = """
name: portkey-openai-client
gateway: {kind: portkey, health_check: null, request_timeout: 2s}
upstreams:
  - {name: chat, kind: openai, replicas: 2, ttft: 5ms, tokens_per_s: 2000, fallback: claude}
  - {name: claude, kind: anthropic, replicas: 1, ttft: 5ms, tokens_per_s: 2000}
load: {duration: 5s, max_tokens: 4, mix: {chat: 1.0, anthropic: 1.0}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_components("portkey")
    runtime = LocalRuntime()
    try:
        yield runtime.up(parse_scenario(SCENARIO, "inline.yaml"), tmp_path_factory.mktemp("portkey-client"))
    finally:
        runtime.down()


@pytest.mark.integration
def test_the_openai_client_through_portkey_started_by_the_harness(stack: Stack) -> None:
    gateway = stack.gateway
    assert isinstance(gateway, ShapesLoad) and stack.gateway_view is False  # no view of health to read
    target = gateway.load_target()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=10,
                           default_headers=target.headers)
    raw = client.chat.completions.with_raw_response.create(
        model="fake-model", max_tokens=4, messages=[{"role": "user", "content": "hello"}])
    completion = raw.parse()
    assert completion.choices[0].message.content and completion.usage is not None
    assert raw.headers["x-chaosgate-replica"] in {"chat[0]", "chat[1]"}
    assert target.upstreams[raw.headers["x-portkey-last-used-option-index"]] == \
        stack.gateway_address(raw.headers["x-chaosgate-replica"])
    # every chat replica down: the same client gets the anthropic pool's answer, translated into a chat completion
    for name in ("chat[0]", "chat[1]"):
        stack.toxiproxy.set_enabled(stack.replicas[name].proxy_name, False)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="fake-model", max_tokens=4, messages=[{"role": "user", "content": "hello"}])
    finally:
        for name in ("chat[0]", "chat[1]"):
            stack.toxiproxy.set_enabled(stack.replicas[name].proxy_name, True)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-chaosgate-replica"] == "claude[0]"
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[0].targets[1].targets[0]"
    assert target.upstreams["config.targets[0].targets[1].targets[0]"] == stack.gateway_address("claude[0]")


@pytest.mark.integration
def test_the_openai_client_streams_through_portkey_and_from_its_fallback(stack: Stack) -> None:
    gateway = stack.gateway
    assert isinstance(gateway, ShapesLoad)
    target = gateway.load_target()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=10,
                           default_headers=target.headers)

    def stream() -> tuple[str, str, str]:
        """One streamed completion: its text, the replica that served it, Portkey's name for the target."""
        with client.chat.completions.with_streaming_response.create(
                model="fake-model", max_tokens=4, stream=True,
                messages=[{"role": "user", "content": "hello"}]) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            chunks = list(response.parse())
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return text, response.headers["x-chaosgate-replica"], response.headers[SERVED_BY_HEADER]

    text, replica, served = stream()
    assert text and replica in {"chat[0]", "chat[1]"}
    assert target.upstreams[served] == stack.gateway_address(replica)
    # every chat replica down: the stream comes from the anthropic pool, translated into chat chunks
    for name in ("chat[0]", "chat[1]"):
        stack.toxiproxy.set_enabled(stack.replicas[name].proxy_name, False)
    try:
        text, replica, served = stream()
    finally:
        for name in ("chat[0]", "chat[1]"):
            stack.toxiproxy.set_enabled(stack.replicas[name].proxy_name, True)
    assert text and replica == "claude[0]" and served == "config.targets[0].targets[1].targets[0]"


@pytest.mark.integration
def test_the_anthropic_client_through_portkey_started_by_the_harness(stack: Stack) -> None:
    gateway = stack.gateway
    assert isinstance(gateway, ShapesLoad)
    target = gateway.load_target()
    client = anthropic.Anthropic(base_url=f"{gateway.url}{target.anthropic_path}", api_key="x", max_retries=0,
                                 timeout=10, default_headers=target.headers)
    raw = client.messages.with_raw_response.create(model="claude-fake", max_tokens=4,
                                                   messages=[{"role": "user", "content": "hello"}])
    message = raw.parse()
    assert message.content and message.usage.output_tokens > 0
    assert raw.headers["x-chaosgate-replica"] == "claude[0]"
    assert target.upstreams[raw.headers["x-portkey-last-used-option-index"]] == stack.gateway_address("claude[0]")
    # streamed messages (a 500 from Portkey before harness/gateways/portkey_headers.mjs; docs/gateways.md)
    with client.messages.stream(model="claude-fake", max_tokens=4,
                                messages=[{"role": "user", "content": "hello"}]) as stream:
        assert stream.get_final_text()
        assert stream.response.headers["x-chaosgate-replica"] == "claude[0]"
        assert target.upstreams[stream.response.headers[SERVED_BY_HEADER]] == stack.gateway_address("claude[0]")
    # without the config header Portkey has nowhere to send the request: it says so, it does not guess
    bare = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=10)
    with pytest.raises(openai.APIStatusError) as refused:
        bare.chat.completions.create(model="fake-model", max_tokens=4, messages=[{"role": "user", "content": "x"}])
    assert refused.value.status_code == 400
