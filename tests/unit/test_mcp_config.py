"""MCP pools: the MCP health check in the scenario and in Envoy's config, the mcp persona in the
load mix, and the records and error kinds of the persona's session steps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx2
import pydantic
import pytest
from mcp.shared.exceptions import MCPError

from harness.errors import ScenarioError
from harness.gateways.base import UpstreamAddress
from harness.gateways.envoy import EnvoyGateway, envoy_binary
from harness.load.config import LoadConfig, split_users
from harness.load.mcp_worker import request_record
from harness.mcp_check import McpStepFailed, StepOutcome, classify, leaf
from harness.scenario import McpHealthCheck, parse_scenario

REPO = Path(__file__).resolve().parents[2]

MCP_SCENARIO = """\
name: t
gateway:
  health_check: {interval: 1s, mcp: true}
upstreams:
  - {name: chat, kind: openai, replicas: 2}
  - {name: tools, kind: mcp, replicas: 2}
load: {duration: 10s, users: 5, mix: {chat: 1, mcp: 1}}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def test_mcp_health_check_shorthand_and_defaults() -> None:
    scenario = parse_scenario(MCP_SCENARIO, "s.yaml")
    assert scenario.gateway.health_check is not None
    mcp = scenario.gateway.health_check.mcp
    assert mcp == McpHealthCheck()
    assert mcp.path == "/mcp" and mcp.protocol_version == "2025-11-25"
    assert mcp.body_fragments == ['"protocolVersion":"2025-11-25"', '"capabilities":{', '"tools":', '"serverInfo":{']
    assert scenario.mcp_load_pool == "tools" and scenario.load_pool == "chat"


def test_an_mcp_only_scenario_needs_no_openai_pool() -> None:
    scenario = parse_scenario("name: t\nupstreams: [{name: tools, kind: mcp}]\n"
                              "load: {duration: 5s, mix: {mcp: 1}}\n", "s.yaml")
    config = LoadConfig.for_scenario(scenario, "http://127.0.0.1:1")
    assert (config.users, config.mcp_users, config.mcp_path) == (0, 10, "/tools/mcp")


def test_mcp_persona_without_an_mcp_pool_is_an_error() -> None:
    assert errors("name: t\nupstreams: [{name: chat}]\nload: {duration: 5s, mix: {chat: 1, mcp: 1}}\n") == [
        "s.yaml:3:37: load.mix.mcp: the mcp persona talks to an mcp pool, but no upstream has kind: mcp"]


def test_mcp_pool_must_name_an_mcp_pool() -> None:
    text = MCP_SCENARIO.replace("mix: {chat: 1, mcp: 1}", "mix: {chat: 1, mcp: 1}, mcp_pool: chat")
    assert errors(text) == ["s.yaml:7:57: load.mcp_pool: expected an mcp pool (mcp pools: tools); 'chat' is an "
                            "openai pool"]


def test_chat_kinds_still_need_an_openai_pool() -> None:
    assert errors("name: t\nupstreams: [{name: tools, kind: mcp}]\nload: {duration: 5s, mix: {chat: 1}}\n") == [
        "s.yaml:2:1: upstreams: the load sends chat completions, so it needs an openai pool; 'tools' is 'mcp'"]


def test_mcp_health_check_needs_an_mcp_pool() -> None:
    text = "name: t\ngateway: {health_check: {mcp: {}}}\nupstreams: [{name: chat}]\nload: {duration: 5s}\n"
    assert errors(text) == ["s.yaml:2:26: gateway.health_check.mcp: an MCP health check needs an upstream with "
                            "kind: mcp to check"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("protocol_version", '"1999-01-01"', "Input should be '2024-11-05', '2025-03-26', '2025-06-18' or '2025-11-25'"),
    ("path", "mcp", "String should match pattern '^/'"),
    ("expect_body", "[]", "List should have at least 1 item"),
    ("method", "tools/list", "unknown field 'method'"),
])
def test_bad_mcp_health_check_fields_are_located(field: str, value: str, message: str) -> None:
    text = MCP_SCENARIO.replace("mcp: true", f"mcp: {{{field}: {value}}}")
    (problem,) = errors(text)
    assert problem.startswith("s.yaml:3:") and f"gateway.health_check.mcp.{field}: {message}" in problem


@pytest.mark.parametrize(("users", "mix", "split"), [
    (10, {"chat": 1.0}, (10, 0)),
    (10, {"mcp": 1.0}, (0, 10)),
    (10, {"chat": 0.8, "chat_stream": 0.2, "mcp": 1.0}, (5, 5)),
    (10, {"chat": 1.0, "mcp": 0.01}, (9, 1)),      # a persona with weight gets at least one user
    (10, {"chat": 0.01, "mcp": 1.0}, (1, 9)),
    (1, {"chat": 1.0, "mcp": 1.0}, (1, 1)),         # one user, two personas: one each
])
def test_users_are_split_between_the_personas(users: int, mix: dict[str, float], split: tuple[int, int]) -> None:
    assert split_users(users, mix) == split


def _render(tmp_path: Path, mcp: dict[str, object] | None) -> dict[str, dict[str, object]]:
    from harness.scenario import Gateway

    gateway = Gateway.model_validate({"health_check": {"path": "/health", "expected_statuses": [200], "mcp": mcp}})
    upstreams = [UpstreamAddress("chat", "chat[0]", "127.0.0.1", 21000),
                 UpstreamAddress("tools", "tools[0]", "127.0.0.1", 21001, "mcp"),
                 UpstreamAddress("tools", "tools[1]", "127.0.0.1", 21002, "mcp")]
    config = EnvoyGateway(gateway, 10000, 10001, "chat").config(upstreams, tmp_path)
    return {c["name"]: c["health_checks"][0]["http_health_check"] for c in config["static_resources"]["clusters"]}


def test_envoy_checks_mcp_pools_with_an_initialize_request(tmp_path: Path) -> None:
    checks = _render(tmp_path, {"protocol_version": "2025-06-18"})
    assert checks["chat"] == {"path": "/health", "expected_statuses": [{"start": 200, "end": 201}]}
    tools = checks["tools"]
    assert tools["path"] == "/mcp" and tools["method"] == "POST"
    sent = json.loads(bytes.fromhex(str(tools["send"]["text"])))  # type: ignore[index]
    assert sent["method"] == "initialize" and sent["params"]["protocolVersion"] == "2025-06-18" and "id" in sent
    received = [bytes.fromhex(p["text"]).decode() for p in tools["receive"]]  # type: ignore[attr-defined]
    assert received == ['"protocolVersion":"2025-06-18"', '"capabilities":{', '"tools":', '"serverInfo":{']
    headers = {h["header"]["key"]: h["header"]["value"] for h in tools["request_headers_to_add"]}  # type: ignore[attr-defined]
    assert headers == {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    assert tools["expected_statuses"] == [{"start": 200, "end": 201}]


def test_without_the_mcp_setting_mcp_pools_get_the_plain_check(tmp_path: Path) -> None:
    checks = _render(tmp_path, None)
    assert checks["tools"] == checks["chat"] == {"path": "/health", "expected_statuses": [{"start": 200, "end": 201}]}


def test_envoy_accepts_the_mcp_health_check(tmp_path: Path) -> None:
    from harness.scenario import Gateway

    gateway = Gateway.model_validate({"health_check": {"mcp": {"expect_body": ['"serverInfo":{']}}})
    upstreams = [UpstreamAddress("tools", "tools[0]", "127.0.0.1", 21001, "mcp")]
    path = EnvoyGateway(gateway, 10000, 10001, "tools").write_config(upstreams, tmp_path)
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _outcome(**fields: object) -> StepOutcome:
    base: dict[str, object] = {"step": "tools/list", "started": 100.0, "latency": 0.01, "error": None, "message": None,
                               "status": 200, "replica": "tools[1]", "upstream": "127.0.0.1:4000",
                               "request_id": "mcp0-1.1"}
    return StepOutcome(**{**base, **fields})  # type: ignore[arg-type]


def test_a_session_step_is_journalled_like_a_request() -> None:
    assert request_record(_outcome()) == {
        "event": "request", "ts": 100.0, "id": "mcp0-1.1", "kind": "mcp_tools_list", "latency": 0.01, "status": 200, "bytes": 0,
        "error": None, "replica": "tools[1]", "upstream": "127.0.0.1:4000"}
    failed = request_record(_outcome(step="initialize", error="schema", message="ValidationError: ..."))
    assert failed["kind"] == "mcp_initialize" and failed["error"] == "schema" and failed["body"] == "ValidationError: ..."


def _validation_error() -> pydantic.ValidationError:
    class Model(pydantic.BaseModel):
        x: int

    try:
        Model.model_validate({})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("exc", "status", "kind"), [
    (_validation_error(), 200, "schema"),
    (RuntimeError("Unsupported protocol version from the server: 1999-01-01"), 200, "schema"),
    (McpStepFailed("schema", "calculator is not listed"), 200, "schema"),
    (MCPError(-32001, "Request 'tools/list' timed out"), 200, "timeout"),
    (MCPError(-32600, "Unexpected content type: text/plain"), 200, "mcp_error"),
    (MCPError(-32600, "Session not found"), 404, "http_4xx"),
    (MCPError(-32603, "Server returned an error response"), 503, "http_5xx"),
    (httpx2.ConnectError("refused"), None, "connect"),
    (httpx2.ReadError("reset"), None, "reset"),
    (TimeoutError(), None, "timeout"),
])
def test_client_errors_are_classified(exc: BaseException, status: int | None, kind: str) -> None:
    assert classify(exc, status) == kind


def test_exception_groups_are_unwrapped() -> None:
    inner = RuntimeError("x")
    assert leaf(BaseExceptionGroup("outer", [ExceptionGroup("inner", [inner])])) is inner


def test_a_schema_error_names_the_field() -> None:
    from harness.mcp_check import _describe

    assert _describe(_validation_error()) == "ValidationError: Model.x: Field required"
    assert _describe(MCPError(-32600, "Session not found")) == "MCPError: -32600 Session not found"


def test_faults_md_says_what_each_check_sees_of_every_mode() -> None:
    from fakes.mcp_modes import MCP_MODE_MODELS

    text = (REPO / "docs" / "faults.md").read_text()
    section = text[text.index("## `mcp_fault`: MCP schema drift"):]
    for model in MCP_MODE_MODELS:
        mode = model.model_fields["mode"].annotation.__args__[0]  # type: ignore[union-attr]
        assert f"\n| `{mode}` |" in section, f"docs/faults.md: no row for {mode}"
