"""The settings the AI-failover scenarios added: Envoy's retries of a 429, LiteLLM's stream timeout, and who refuses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.promise.effects import request_effect
from harness.scenario import parse_scenario
from tests.unit import test_envoy_config as envoy
from tests.unit import test_litellm_config as litellm

RETRY_429 = {"num_retries": 2, "retry_on": ["retriable-status-codes"], "retriable_status_codes": [429]}


def test_envoy_renders_retriable_status_codes(tmp_path: Path) -> None:
    policy = envoy.routes(envoy.render({"retries": RETRY_429}, tmp_path))[0]["route"]["retry_policy"]
    assert policy["retry_on"] == "retriable-status-codes" and policy["retriable_status_codes"] == [429]
    policy = envoy.routes(envoy.render({"retries": {"retry_on": ["5xx"]}}, tmp_path))[0]["route"]["retry_policy"]
    assert "retriable_status_codes" not in policy


@pytest.mark.parametrize("retries, message", [
    ("{retry_on: [retriable-status-codes]}", "list the statuses in retriable_status_codes"),
    ("{retry_on: [5xx], retriable_status_codes: [429]}", "only with retriable-status-codes in retry_on"),
    ("{retry_on: [retriable-status-codes], retriable_status_codes: [99]}", "greater than or equal to 100"),
])
def test_retriable_status_codes_needs_its_word_and_real_statuses(retries: str, message: str) -> None:
    with pytest.raises(ScenarioError) as error:
        parse_scenario(litellm.scenario_text(f"kind: envoy\nretries: {retries}"), "x.yaml")
    assert message in str(error.value), str(error.value)


def test_litellm_renders_stream_timeout_and_notes_retriable_status_codes() -> None:
    assert litellm.render({"litellm": {"stream_timeout": 1.5}})["router_settings"]["stream_timeout"] == 1.5
    assert "stream_timeout" not in litellm.render({})["router_settings"]
    scenario = parse_scenario(litellm.scenario_text("kind: litellm\nretries: {retry_on: [retriable-status-codes], "
                                                    "retriable_status_codes: [429]}"), "x.yaml")
    from harness.gateways import not_applicable
    assert any("retriable_status_codes: not applicable to litellm" in n for n in not_applicable(scenario))
    with pytest.raises(ScenarioError) as error:  # HAProxy renders no per-status retries: refused at the field
        parse_scenario(litellm.scenario_text("kind: haproxy\nretries: {retry_on: [retriable-status-codes], "
                                             "retriable_status_codes: [429]}"), "x.yaml")
    assert "retriable_status_codes" in str(error.value)


def test_openai_error_modes_are_status_answers_to_the_promise() -> None:
    text = litellm.scenario_text("kind: envoy").replace(
        '{kind: reset_peer, target: "chat[0]", at: 2s, for: 3s}',
        '{kind: llm_fault, mode: openai_error, error: insufficient_quota, target: "chat[0]", at: 2s, for: 3s}')
    effect = request_effect(parse_scenario(text, "x.yaml").faults[0], 3.0)
    assert (effect.kind, effect.status) == ("status", 429)
