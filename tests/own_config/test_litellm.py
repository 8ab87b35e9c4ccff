"""The user's own LiteLLM proxy config.yaml (harness/own_config/litellm.py): what is read from it, with
its lines; what the rewrite changes (the exact diff); what is refused (each message quoted); the promised
windows computed from it; and `chaosgate lint` on it, verbatim."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import ScenarioError
from harness.gateways.base import UpstreamAddress
from harness.gateways.litellm import PROBE_MODULE, LitellmGateway
from harness.load.config import LoadConfig
from harness.own_config import diff, kind_of_file, read_native
from harness.own_config.base import RewriteJob
from harness.own_config.litellm import rewrite
from harness.promise import detection_window, recovery_window
from harness.promise.window import Unknown, Window
from harness.scenario import load_scenario

HERE = Path(__file__).resolve().parent / "litellm"
FIXTURE = HERE / "litellm.yaml"
TEXT = FIXTURE.read_text()


def copy(tmp_path: Path, replace: dict[str, str] | None = None, scenario: str = "reset.yaml") -> Path:
    """The fixture and one of its scenarios in ``tmp_path``, the fixture's text changed by ``replace``
    (each old text must be there); returns the scenario's path."""
    text = TEXT
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "litellm.yaml").write_text(text)
    shutil.copyfile(HERE / scenario, tmp_path / scenario)
    return tmp_path / scenario


def refusal(scenario: Path, *allow: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario, allow_hosts=allow)
    return str(caught.value)


# -- reading ----------------------------------------------------------------------------------

def test_the_file_name_means_litellm() -> None:
    assert kind_of_file(Path("deploy/litellm.yaml")) == kind_of_file(Path("litellm-prod.yml")) == "litellm"


def test_model_groups_are_the_blocks_each_deployment_one_endpoint_at_its_api_base_line() -> None:
    config = read_native("litellm", FIXTURE)
    assert config.block_word == "model group" and list(config.blocks) == ["chat", "chat-small"]
    chat, small = config.blocks["chat"], config.blocks["chat-small"]
    assert [(e.address, e.source.line, e.source.setting) for e in chat.endpoints] == [
        ("10.20.0.11:8000", 8, "model_list[0].litellm_params.api_base"),
        ("10.20.0.12:8000", 15, "model_list[1].litellm_params.api_base"),
        ("10.20.0.13:8000", 22, "model_list[2].litellm_params.api_base")]
    assert (chat.source.line, chat.source.setting) == (5, "model_list[0] (model_name: chat)")
    assert [(e.address, e.source.line) for e in small.endpoints] == [("127.0.0.1:8101", 29)]
    assert config.outbound == ()


def test_every_setting_is_read_with_the_line_it_comes_from() -> None:
    chat = read_native("litellm", FIXTURE).blocks["chat"]
    s = chat.settings
    assert s.kind == "litellm" and s.health_check is not None and s.outlier_detection is not None
    assert (s.health_check.interval, s.health_check.timeout) == (2.0, 1.0)
    assert (s.health_check.unhealthy_threshold, s.health_check.healthy_threshold) == (1, 1)
    assert s.litellm.health_check_routing is True and s.litellm.health_check_staleness is None
    assert (s.outlier_detection.consecutive_5xx, s.outlier_detection.base_ejection_time) == (2, 4.0)
    assert s.retries is not None and s.retries.num_retries == 2 and s.request_timeout == 10.0
    assert {".".join(map(str, path)): (source.line, source.setting) for path, source in chat.where.items()} == {
        "gateway.health_check": (48, "general_settings.background_health_checks"),
        "gateway.health_check.interval": (49, "general_settings.health_check_interval"),
        "gateway.health_check.timeout": (11, "model_list[0].model_info.health_check_timeout"),
        "gateway.litellm.health_check_routing": (50, "general_settings.enable_health_check_routing"),
        "gateway.outlier_detection": (37, "router_settings.allowed_fails"),
        "gateway.outlier_detection.consecutive_5xx": (37, "router_settings.allowed_fails"),
        "gateway.outlier_detection.base_ejection_time": (38, "router_settings.cooldown_time"),
        "gateway.retries": (36, "router_settings.num_retries"),
        "gateway.retries.num_retries": (36, "router_settings.num_retries"),
        "gateway.request_timeout": (39, "router_settings.timeout"),
    }
    assert chat.unmodelled == ()


def test_a_group_of_one_deployment_without_a_fallback_never_cools_down() -> None:
    small = read_native("litellm", FIXTURE).blocks["chat-small"]
    assert small.settings.outlier_detection is None
    assert small.locate(("gateway", "outlier_detection")).line == 26  # its own model_list entry


def test_litellm_defaults_where_the_file_says_nothing(tmp_path: Path) -> None:
    (tmp_path / "litellm.yaml").write_text(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: 'http://127.0.0.1:9/v1'}\n"
        "  - model_name: m\n    litellm_params: {model: openai/m, api_base: 'http://127.0.0.1:10/v1'}\n"
        "router_settings:\n  allowed_fails: 2\n"
        "general_settings:\n  background_health_checks: true\n")
    block = read_native("litellm", tmp_path / "litellm.yaml").blocks["m"]
    s = block.settings
    assert s.health_check is not None and (s.health_check.interval, s.health_check.timeout) == (300.0, 60.0)
    assert s.litellm.health_check_routing is False  # LiteLLM's default: the checks only report
    assert block.locate(("gateway", "litellm", "health_check_routing")).line == 8  # where it belongs
    assert s.outlier_detection is not None and s.outlier_detection.base_ejection_time == 5.0
    assert s.retries is not None and s.retries.num_retries == 2 and s.request_timeout == 6000.0


@pytest.mark.parametrize(("replace", "line", "words"), [
    ({"  allowed_fails: 1       #": "  # allowed_fails: 1     #"}, 34,
     "router_settings: no allowed_fails in router_settings: LiteLLM then cools a deployment down by its share of "
     "failed calls in the current minute"),
    ({"  allowed_fails: 1 ": "  allowed_fails: 3 "}, 37,
     "router_settings.allowed_fails: allowed_fails 3 equals LiteLLM's default (3), so its router takes it as unset"),
    ({"routing_strategy: simple-shuffle": "routing_strategy: least-busy"}, 35,
     "router_settings.routing_strategy: routing_strategy least-busy: the promise model counts on deployments "
     "picked at random"),
    ({"  health_check_interval: 2\n": "  health_check_interval: 2\n  health_check_concurrency: 2\n"}, 50,
     "general_settings.health_check_concurrency: health_check_concurrency 2: a round checks deployments in batches"),
    ({"      health_check_timeout: 1  #": "      health_check_timeout: 3  #"}, 11,
     "model_list[0].model_info.health_check_timeout: health_check_timeout differs between the file's deployments "
     "(1s, 3s): a round checks them all at once and ends with its slowest check"),
])
def test_what_the_promise_model_does_not_express_makes_the_promise_unknown_naming_it(
        tmp_path: Path, replace: dict[str, str], line: int, words: str) -> None:
    scenario = load_scenario(copy(tmp_path, replace))
    fault = scenario.faults[0]
    for promise in (detection_window(scenario, fault), recovery_window(scenario, fault)):
        assert isinstance(promise, Unknown), promise
        setting, why = words.split(": ", 1)
        assert f"{tmp_path / 'litellm.yaml'}:{line} ({setting}): {why}" in promise.why, promise.why


def test_fallbacks_retries_and_retry_policy_run_as_written_and_change_no_window(tmp_path: Path) -> None:
    """They change what a client gets, not when the router takes a deployment of the group out."""
    plain = load_scenario(copy(tmp_path / "a" if (tmp_path / "a").mkdir() is None else tmp_path, {
        "  fallbacks:\n    - chat: [chat-small]\n": "", "  num_retries: 2 ": "  num_retries: 0 "}))
    busy = load_scenario(copy(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path, {
        "  timeout: 10\n": "  timeout: 10\n  retry_policy: {InternalServerErrorRetries: 4}\n"}))
    for window in (detection_window, recovery_window):
        a, b = window(plain, plain.faults[0]), window(busy, busy.faults[0])
        assert isinstance(a, Window) and isinstance(b, Window)
        assert (a.earliest, a.latest) == (b.earliest, b.latest)


# -- the promised windows, from the file ----------------------------------------------------------

def test_promised_windows_come_from_the_file_with_its_lines() -> None:
    scenario = load_scenario(HERE / "reset.yaml")
    fault = scenario.faults[0]
    detect, recover = detection_window(scenario, fault), recovery_window(scenario, fault)
    assert isinstance(detect, Window) and isinstance(recover, Window)
    # nominal (before a run): a round lasts up to the check timeout 1s + 1.6s; interval 2s; cooldown 4s
    assert recover.latest == pytest.approx(2.6 + 2 + 2.6)
    origin = (f"[from {FIXTURE}: model_list[0] (model_name: chat) at line 5; general_settings.background_health_checks "
              "at line 48, general_settings.health_check_interval at line 49, general_settings.enable_health_check_routing "
              "at line 50, model_list[0].model_info.health_check_timeout at line 11, router_settings.allowed_fails at "
              "line 37, router_settings.cooldown_time at line 38, router_settings.num_retries at line 36, "
              "router_settings.timeout at line 39]")
    assert detect.how.endswith(origin) and recover.how.endswith(origin)
    assert "cooldown: allowed_fails 1, so the 2th failed call" in detect.how


def test_a_longer_cooldown_time_in_the_file_moves_the_promised_recovery(tmp_path: Path) -> None:
    def latest(cooldown: int) -> float:
        folder = tmp_path / str(cooldown)
        folder.mkdir()
        scenario = load_scenario(copy(folder, {"  cooldown_time: 4 ": f"  cooldown_time: {cooldown} "}))
        promise = recovery_window(scenario, scenario.faults[0])
        assert isinstance(promise, Window)
        return promise.latest

    assert latest(2) == pytest.approx(2.6 + 2 + 2.6)       # the check rounds are the latest
    assert latest(9) == pytest.approx(2.6 + 9)             # a failed check's cooldown, set at the round's end


# -- refusals -----------------------------------------------------------------------------------------

def test_a_deployment_without_api_base_goes_off_the_machine_and_is_refused(tmp_path: Path) -> None:
    scenario = copy(tmp_path, {"      api_base: http://127.0.0.1:8101/v1\n": ""})
    assert refusal(scenario) == (
        f"{tmp_path / 'litellm.yaml'}:27: model_list[3].litellm_params (no api_base: openai's public API): sends "
        "traffic to api.openai.com:443, which is not this machine: bind the block it is in to a pool, change it to a "
        "loopback address, or allow it with --allow-host api.openai.com")
    assert load_scenario(scenario, allow_hosts=["api.openai.com"]).gateway.config == str(tmp_path / "litellm.yaml")


def test_a_group_the_file_does_not_have_is_refused(tmp_path: Path) -> None:
    """And the pool is then bound to no group: the file's chat group keeps its addresses, off the machine."""
    scenario = copy(tmp_path)
    scenario.write_text(scenario.read_text().replace("bind: {chat: chat}", "bind: {chat-large: chat}"))
    line = next(i for i, text in enumerate(scenario.read_text().splitlines(), 1) if "bind:" in text)
    file = tmp_path / "litellm.yaml"
    assert refusal(scenario) == "\n".join([
        f"{scenario}:{line}:10: gateway.bind.chat-large: {file} has no model group named 'chat-large' (its model "
        "groups: chat, chat-small)",
        *(f"{file}:{8 + 7 * i}: model_list[{i}].litellm_params.api_base: sends traffic to 10.20.0.1{i + 1}:8000, which "
          f"is not this machine: bind the block it is in to a pool, change it to a loopback address, or allow it "
          f"with --allow-host 10.20.0.1{i + 1}" for i in range(3))])


def test_an_unbound_group_off_the_machine_is_refused(tmp_path: Path) -> None:
    scenario = copy(tmp_path, {"http://127.0.0.1:8101/v1": "http://10.20.0.21:8000/v1"})
    assert refusal(scenario) == (
        f"{tmp_path / 'litellm.yaml'}:29: model_list[3].litellm_params.api_base: sends traffic to 10.20.0.21:8000, "
        "which is not this machine: bind the block it is in to a pool, change it to a loopback address, or allow "
        "it with --allow-host 10.20.0.21")


def test_a_logging_integration_that_sends_data_out_is_refused_naming_it(tmp_path: Path) -> None:
    scenario = copy(tmp_path, {"  set_verbose: false\n": "  set_verbose: false\n  success_callback: [langfuse]\n"})
    assert refusal(scenario) == (
        f"{tmp_path / 'litellm.yaml'}:46: litellm_settings.success_callback[0] (langfuse: sends every call's data "
        "out): sends traffic to cloud.langfuse.com:443, which is not this machine: bind the block it is in to a "
        "pool, change it to a loopback address, or allow it with --allow-host cloud.langfuse.com")


def test_an_integration_chaosgate_does_not_know_is_refused(tmp_path: Path) -> None:
    scenario = copy(tmp_path, {"  set_verbose: false\n": "  set_verbose: false\n  failure_callback: [acme_logs]\n"})
    assert refusal(scenario) == (
        f"{tmp_path / 'litellm.yaml'}:46: litellm_settings.failure_callback[0]: LiteLLM's "
        "'acme_logs' integration: chaosgate does not know where it sends data, so it cannot tell that it stays on "
        "this machine; remove it from the copy you test")


def test_an_api_base_from_an_unset_environment_variable_is_refused(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMALL_MODEL_URL", raising=False)
    scenario = copy(tmp_path, {"http://127.0.0.1:8101/v1": "os.environ/SMALL_MODEL_URL"})
    assert refusal(scenario) == (
        f"{tmp_path / 'litellm.yaml'}:29: model_list[3].litellm_params.api_base: is "
        "os.environ/SMALL_MODEL_URL, and SMALL_MODEL_URL is not set here: chaosgate cannot tell what LiteLLM would "
        "use; set SMALL_MODEL_URL, or write the value in the file")
    monkeypatch.setenv("SMALL_MODEL_URL", "http://127.0.0.1:8101/v1")
    assert read_native("litellm", tmp_path / "litellm.yaml").blocks["chat-small"].endpoints[0].address == \
        "127.0.0.1:8101"


def test_a_file_that_is_not_yaml_is_refused_at_its_line(tmp_path: Path) -> None:
    scenario = copy(tmp_path, {"  timeout: 10\n": "  timeout: [10\n"})
    assert refusal(scenario).startswith(f"{tmp_path / 'litellm.yaml'}:40:")


# -- the rewrite ----------------------------------------------------------------------------------

UPSTREAMS = [UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 20000 + i) for i in range(3)]


def test_the_rewrite_changes_the_bound_groups_api_base_and_adds_the_probe_and_nothing_else(tmp_path: Path) -> None:
    config = read_native("litellm", FIXTURE)
    rewritten = rewrite(config, RewriteJob({"chat": "chat"}, UPSTREAMS, 4000, 4001, "127.0.0.1", tmp_path,
                                           lambda: 4002))
    assert diff(config, rewritten.text, "run/litellm.yaml") == f"""\
--- {FIXTURE}
+++ run/litellm.yaml
@@ -5,21 +5,21 @@
   - model_name: chat
     litellm_params:
       model: openai/llama-3.1-8b-instruct
-      api_base: http://10.20.0.11:8000/v1
+      api_base: http://127.0.0.1:20000/v1
       api_key: os.environ/VLLM_API_KEY
     model_info:
       health_check_timeout: 1  # seconds; vLLM answers a 1-token completion in ~50ms
   - model_name: chat
     litellm_params:
       model: openai/llama-3.1-8b-instruct
-      api_base: http://10.20.0.12:8000/v1
+      api_base: http://127.0.0.1:20001/v1
       api_key: os.environ/VLLM_API_KEY
     model_info:
       health_check_timeout: 1
   - model_name: chat
     litellm_params:
       model: openai/llama-3.1-8b-instruct
-      api_base: http://10.20.0.13:8000/v1
+      api_base: http://127.0.0.1:20002/v1
       api_key: os.environ/VLLM_API_KEY
     model_info:
       health_check_timeout: 1
@@ -43,8 +43,11 @@
 litellm_settings:
   drop_params: true
   set_verbose: false
+  callbacks:
+    - {PROBE_MODULE}.probe
 
 general_settings:
   background_health_checks: true
   health_check_interval: 2
   enable_health_check_routing: true  # a deployment that failed its last check gets no traffic
+  forward_client_headers_to_llm_api: true
"""
    assert rewritten.facts["models"] == {"chat": "chat"}


def test_the_rewrite_keeps_the_users_callbacks_and_drops_the_master_key(tmp_path: Path) -> None:
    (tmp_path / "litellm.yaml").write_text(
        "model_list:\n- model_name: m\n  litellm_params:\n    model: openai/m\n    api_base: http://127.0.0.1:9/v1\n"
        "litellm_settings:\n  callbacks: [my_hooks.handler]\n"
        "general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n")
    config = read_native("litellm", tmp_path / "litellm.yaml")
    rewritten = rewrite(config, RewriteJob({"m": "chat"}, UPSTREAMS[:1], 4000, 4001, "127.0.0.1", tmp_path, lambda: 1))
    assert rewritten.text == (
        "model_list:\n- model_name: m\n  litellm_params:\n    model: openai/m\n    api_base: http://127.0.0.1:20000/v1\n"
        f"litellm_settings:\n  callbacks: [my_hooks.handler, {PROBE_MODULE}.probe]\n"
        "general_settings:\n  forward_client_headers_to_llm_api: true\n")
    assert rewritten.facts["modules"] == [str(tmp_path / "my_hooks.py")]
    assert rewritten.facts["models"] == {"chat": "m"}


def test_an_anthropic_deployments_api_base_is_the_replicas_address_without_v1(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM appends /v1/messages to an anthropic/ deployment's api_base (and /chat/completions to OpenAI's)."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (tmp_path / "litellm.yaml").write_text(
        "model_list:\n- model_name: m\n  litellm_params:\n    model: anthropic/claude-fake\n"
        "    api_base: http://127.0.0.1:9\n")
    config = read_native("litellm", tmp_path / "litellm.yaml")
    claude = [UpstreamAddress("claude", "claude[0]", "127.0.0.1", 20100)]
    rewritten = rewrite(config, RewriteJob({"m": "claude"}, claude, 4000, 4001, "127.0.0.1", tmp_path, lambda: 1))
    assert "    api_base: http://127.0.0.1:20100\n" in rewritten.text
    assert rewritten.facts["env"]["ANTHROPIC_API_KEY"] == "sk-chaosgate-fake"  # no key in the file: a fake one


def test_the_adapter_writes_the_users_file_and_the_load_asks_for_the_bound_group(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    scenario = load_scenario(HERE / "reset.yaml")
    gateway = LitellmGateway(scenario.gateway, 4000, 4001, "chat")
    assert gateway.load_model == "fake-model"
    path = gateway.write_config(UPSTREAMS, tmp_path)
    assert path == tmp_path / "litellm.yaml" and (tmp_path / "litellm.yaml.diff").exists()
    assert (tmp_path / f"{PROBE_MODULE}.py").exists()
    assert gateway.load_model == "chat"
    assert LoadConfig.for_scenario(scenario, gateway.url, gateway.load_model).model == "chat"
    argv = gateway.argv(path)
    assert "VLLM_API_KEY=sk-chaosgate-fake" in argv and "HF_HUB_OFFLINE=1" in argv
    assert argv[argv.index("--port") + 1] == "4000"
    # what the adapter observes by: the file's settings for the load pool's group, not the scenario's defaults
    assert gateway.effective.health_check is not None and gateway.effective.health_check.interval == 2.0


def test_the_load_asks_for_fake_model_unless_told() -> None:
    scenario = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "compare" / "reset.yaml")
    assert LoadConfig.for_scenario(scenario, "http://127.0.0.1:1").model == "fake-model"


# -- chaosgate lint ----------------------------------------------------------------------------------

def lint(*paths: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["lint", *map(str, paths)])
    return result.exit_code, result.stdout, result.stderr


def test_lint_of_the_raw_fixture_finds_nothing_to_change() -> None:
    assert lint(FIXTURE) == (0, "", "1 file, 0 findings\n")


def test_lint_names_the_health_filter_bypass_at_the_checks_line_of_the_users_file(tmp_path: Path) -> None:
    scenario = copy(tmp_path, {"  allowed_fails: 1       #": "  disable_cooldowns: true  #"}, "all-down.yaml")
    scenario.write_text(scenario.read_text() + "  - {kind: all_down_response, status: 429, within: 3s}\n")
    assert lint(scenario) == (0, (
        f"{tmp_path / 'litellm.yaml'}:48: warning [litellm.health-filter-bypass] "
        "general_settings.background_health_checks: without outlier_detection, as the only mechanism for "
        "all_down_response: when LiteLLM's checks fail every deployment it bypasses its health filter and routes to "
        "all of them, so clients get the upstream's error (500 'Connection error.'), not 429 'No deployments "
        "available'; set outlier_detection to get the cooldown answer\n"), "1 file, 1 finding\n")


def test_lint_names_no_health_at_the_model_groups_line(tmp_path: Path) -> None:
    scenario = copy(tmp_path, {"  allowed_fails: 1       #": "  disable_cooldowns: true  #",
                               "background_health_checks: true": "background_health_checks: false"})
    code, out, err = lint(scenario)
    assert (code, err) == (1, "1 file, 3 findings (3 failing)\n")
    first, *others = out.splitlines()
    assert first == (
        f"{tmp_path / 'litellm.yaml'}:5: error [litellm.no-health] model_list[0] (model_name: chat): sets neither "
        "health_check nor outlier_detection: LiteLLM then never takes a deployment out of rotation (cooldowns are "
        "disabled), so clients see every failure; set outlier_detection (cooldowns) or health_check (background "
        "checks)")
    # and the scenario's within: promised, which such a file can never meet
    assert [line.split(" is 'promised'")[0] for line in others] == [
        f"{scenario}:20:51: error [promise.never-under-promised] expect[1].within:",
        f"{scenario}:22:49: error [promise.never-under-promised] expect[3].within:"]
    assert "router_settings.disable_cooldowns at line 37" in others[0]


def test_lint_names_checks_without_routing_where_the_missing_setting_belongs(tmp_path: Path) -> None:
    """LiteLLM's enable_health_check_routing is false unless set: the file's checks then take nothing out."""
    message = ("background health checks without health-check routing: LiteLLM's checks then only report and take "
               "no deployment out (enable_health_check_routing is false unless set); set "
               "general_settings.enable_health_check_routing: true (gateway.litellm.health_check_routing)")
    left_out = TEXT.replace("  enable_health_check_routing: true  # a deployment that failed its last check gets "
                            "no traffic\n", "")
    turned_off = TEXT.replace("enable_health_check_routing: true", "enable_health_check_routing: false")
    assert TEXT not in (left_out, turned_off)
    for name, variant, line, field in (("litellm-prod.yaml", left_out, 47, "general_settings"),
                                       ("litellm.yml", turned_off, 50, "general_settings.enable_health_check_routing")):
        path = tmp_path / name  # a name of litellm's (litellm*.yaml, litellm*.yml)
        path.write_text(variant)
        assert lint(path) == (1, f"{path}:{line}: error [litellm.check-routing-off] {field}: {message}\n",
                              "1 file, 1 finding (1 failing)\n")


def test_a_scenario_whose_name_starts_with_litellm_is_linted_as_a_scenario() -> None:
    trap = Path(__file__).resolve().parents[2] / "scenarios" / "traps" / "litellm-check-routing-off.yaml"
    code, out, err = lint(trap)
    assert (code, err) == (1, "1 file, 1 finding (1 failing)\n")
    assert out.startswith(f"{trap}:23:13: error [litellm.check-routing-off] gateway.litellm.health_check_routing: ")


def test_settings_of_the_wrong_shape_are_refused_each_once_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "litellm-bad.yaml"
    path.write_text("model_list:\n  - model_name: chat\n    litellm_params: {model: openai/x, api_base: "
                    "'http://127.0.0.1:9/v1'}\nrouter_settings: [1, 2]\ngeneral_settings:\n"
                    "  background_health_checks: maybe\n  health_check_interval: 2\n")
    assert lint(path) == (2, "", (
        f"{path}:6: general_settings.background_health_checks: expected true or false, got 'maybe'\n"
        f"{path}:4: router_settings: expected a mapping\n"))


def test_a_bound_group_whose_provider_does_not_speak_openais_api_is_refused(tmp_path: Path) -> None:
    """The pool's replicas answer OpenAI's chat completions: an Azure deployment would get 404 from each."""
    scenario = copy(tmp_path, {"      model: openai/llama-3.1-8b-instruct\n      api_base: http://10.20.0.12":
                               "      model: azure/gpt-4o\n      api_base: http://10.20.0.12"})
    assert refusal(scenario) == (
        f"{tmp_path / 'litellm.yaml'}:14: model_list[1].litellm_params.model: model azure/gpt-4o: LiteLLM calls the "
        "azure provider's own API, and a pool's replicas answer OpenAI's (chat completions) or Anthropic's (messages); "
        "bind a model group whose deployments use an OpenAI-compatible provider (openai/, hosted_vllm/, ...) or "
        "anthropic/")
    # unbound, it is only an address: loopback or allowed, it runs as written
    assert read_native("litellm", tmp_path / "litellm.yaml").blocks["chat"].cannot_bind


def test_an_anthropic_group_binds_to_an_anthropic_pool_only(tmp_path: Path) -> None:
    """LiteLLM calls an anthropic/ deployment with the Messages API, which an anthropic pool's replicas answer."""
    all_claude = {f"      model: openai/llama-3.1-8b-instruct\n      api_base: http://10.20.0.1{i}":
                  f"      model: anthropic/claude-fake\n      api_base: http://10.20.0.1{i}" for i in (1, 2, 3)}
    scenario = copy(tmp_path, all_claude)
    assert read_native("litellm", tmp_path / "litellm.yaml").blocks["chat"].speaks == "anthropic"
    assert refusal(scenario).endswith(
        "model_list[0] (model_name: chat): model group 'chat' calls its endpoints with anthropic's API, and pool "
        "'chat' has kind: openai; bind it to a pool of kind: anthropic")
    scenario.write_text(scenario.read_text().replace("{name: chat, kind: openai, replicas: 3}",
                                                     "{name: chat, kind: anthropic, replicas: 3}"))
    assert "calls its endpoints" not in refusal(scenario)  # (now it is refused for the load having no openai pool)
    mixed = copy(tmp_path, dict(list(all_claude.items())[:1]))
    assert refusal(mixed).startswith(f"{tmp_path / 'litellm.yaml'}:14: model_list[1].litellm_params.model: "
                                     "model openai/llama-3.1-8b-instruct: the group mixes Anthropic's API with OpenAI's, and a "
                                     "pool's replicas answer one of them; give each API a model group of its own")
