"""The own-config seam, the same for every gateway (harness/own_config/__init__.py, binding.py): binding
blocks to pools, refusing a file that cannot run here, per-pool settings for promises and lint, and a
journal judged with the file as the run read it. A stub reader stands in for a gateway's: its file is
YAML ``{BLOCK: {endpoints: [HOST:PORT, ...], interval: SECONDS, jitter: true}}``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import own_config
from harness.errors import ScenarioError
from harness.gateways import not_applicable
from harness.lint import lint_native, lint_scenario
from harness.own_config import READERS, Block, Endpoint, NativeConfig, RewriteJob, Rewritten, Source, Unmodelled
from harness.own_config.binding import is_loopback
from harness.promise import detection_window
from harness.promise.window import Unknown, Window
from harness.runtimes.base import unsupported
from harness.scenario import Gateway, HealthCheck, parse_scenario
from harness.yaml_source import load_yaml


class StubReader:
    kind = "envoy"
    file_patterns = ("stub*.yaml",)

    def read(self, path: Path, text: str) -> NativeConfig:
        doc = load_yaml(text, str(path))
        blocks = {}
        for name, spec in doc.data.items():
            line = doc.locate((name,))[0] or 1
            endpoints = tuple(Endpoint(e.rsplit(":", 1)[0], int(e.rsplit(":", 1)[1]),
                                       Source(str(path), doc.locate((name, "endpoints", i))[0] or line,
                                              f"{name}.endpoints[{i}]"))
                              for i, e in enumerate(spec["endpoints"]))
            where = {}
            if "interval" in spec:
                where[("gateway", "health_check", "interval")] = Source(str(path), doc.locate((name, "interval"))[0] or line,
                                                                         f"{name}.interval")
            unmodelled = (Unmodelled(Source(str(path), doc.locate((name, "jitter"))[0] or line, f"{name}.jitter"),
                                     "checks at random intervals"),) if spec.get("jitter") else ()
            settings = Gateway(health_check=HealthCheck(interval=spec.get("interval", 1.0), no_traffic_interval=60.0),
                               panic_threshold=0)
            blocks[name] = Block(name, Source(str(path), line, f"cluster {name}"), endpoints, settings, where, unmodelled)
        return NativeConfig("envoy", path, text, blocks, block_word="cluster")

    def rewrite(self, config: NativeConfig, job: RewriteJob) -> Rewritten:
        return Rewritten(config.text.replace("127.0.0.1:1", f"127.0.0.1:{job.listen_port}"))


@pytest.fixture(autouse=True)
def stub_reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(READERS, "envoy", StubReader())
    yield


STUB = """\
chat_cluster:
  endpoints: [127.0.0.1:1, 127.0.0.1:2]
  interval: 3
auth:
  endpoints: [127.0.0.1:9000]
"""


def scenario_text(gateway: str, replicas: int = 2, pool: str = "chat") -> str:
    return f"""\
name: own
gateway: {gateway}
upstreams:
  - {{name: {pool}, replicas: {replicas}}}
load: {{duration: 20s}}
faults:
  - {{kind: down, target: "{pool}[0]", at: 5s, for: 8s}}
expect:
  - {{kind: upstream_unhealthy, target: "{pool}[0]", within: promised}}
"""


def write(tmp_path: Path, stub: str = STUB) -> Path:
    (tmp_path / "stub.yaml").write_text(stub)
    return tmp_path / "scenario.yaml"


def problems(text: str, file: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, str(file), **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_a_bound_file_loads_with_its_path_resolved_beside_the_scenario(tmp_path: Path) -> None:
    file = write(tmp_path)
    scenario = parse_scenario(scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}"), str(file))
    assert scenario.gateway.config == str(tmp_path / "stub.yaml")
    own = own_config.for_pool(scenario, "chat")
    assert own.gateway.health_check is not None and own.gateway.health_check.interval == 3.0
    assert own.gateway.config == scenario.gateway.config  # the kind and the file stay


def test_a_pool_without_a_block_is_refused_naming_the_blocks(tmp_path: Path) -> None:
    file = write(tmp_path)
    assert problems(scenario_text("{config: stub.yaml}"), file) == [
        f"{file}:4:6: upstreams[0].name: {tmp_path / 'stub.yaml'} has no cluster named 'chat' (its clusters: "
        "chat_cluster, auth); bind one to this pool: gateway.bind: {CLUSTER: chat}"]


def test_a_bind_to_a_missing_block_or_pool_is_refused_at_its_line(tmp_path: Path) -> None:
    file = write(tmp_path)
    assert problems(scenario_text("{config: stub.yaml, bind: {chat_clustr: chat, auth: nope}}"), file) == [
        f"{file}:2:37: gateway.bind.chat_clustr: {tmp_path / 'stub.yaml'} has no cluster named 'chat_clustr' "
        "(its clusters: chat_cluster, auth)",
        f"{file}:2:56: gateway.bind.auth: no upstream pool named 'nope' (pools: chat)"]


def test_a_block_with_another_number_of_endpoints_is_refused_at_the_block(tmp_path: Path) -> None:
    file = write(tmp_path)
    assert problems(scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}", replicas=3), file) == [
        f"{tmp_path / 'stub.yaml'}:1: cluster chat_cluster: cluster 'chat_cluster' has 2 endpoint(s) and pool 'chat' "
        "has 3 replica(s): each endpoint becomes one replica, so set replicas: 2 on upstream 'chat'"]


def test_an_address_off_this_machine_is_refused_unless_allowed(tmp_path: Path) -> None:
    file = write(tmp_path, STUB.replace("127.0.0.1:9000", "api.openai.com:443"))
    text = scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}")
    assert problems(text, file) == [
        f"{tmp_path / 'stub.yaml'}:5: auth.endpoints[0]: sends traffic to api.openai.com:443, which is not this "
        "machine: bind the block it is in to a pool, change it to a loopback address, or allow it with "
        "--allow-host api.openai.com"]
    assert parse_scenario(text, str(file), allow_hosts=["api.openai.com"]).gateway.config is not None


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "scenario.yaml"
    assert problems(scenario_text("{config: nowhere.yaml}"), file) == [
        f"{tmp_path / 'nowhere.yaml'}: gateway.config: cannot read the gateway's file: No such file or directory"]


def test_gateway_config_from_the_command_line_overrides_the_scenario(tmp_path: Path) -> None:
    file = write(tmp_path)
    other = tmp_path / "other" / "stub-prod.yaml"
    other.parent.mkdir()
    other.write_text(STUB.replace("chat_cluster", "chat"))
    scenario = parse_scenario(scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}").replace(
        "bind: {chat_cluster: chat}", "bind: {}"), str(file), gateway_config=other)
    assert scenario.gateway.config == str(other)


def test_loopback_is_only_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("10.0.0.5", "0.0.0.0", "api.openai.com", "localhost.evil.test", "::"))


def test_the_promise_is_computed_from_the_block_and_says_where_each_setting_is(tmp_path: Path) -> None:
    file = write(tmp_path)
    scenario = parse_scenario(scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}"), str(file))
    promise = detection_window(scenario, scenario.faults[0])
    assert isinstance(promise, Window)
    # interval 3s read from the file: two failed checks 3s apart at the earliest (Envoy's formula)
    assert promise.earliest == pytest.approx(3.0)
    assert f"[from {tmp_path / 'stub.yaml'}: cluster chat_cluster at line 1; chat_cluster.interval at line 3]" \
        in promise.how
    rendered = parse_scenario(scenario_text("{health_check: {interval: 1s}}"), str(file))
    assert detection_window(rendered, rendered.faults[0]).earliest == pytest.approx(1.0)  # type: ignore[union-attr]


def test_a_setting_the_model_does_not_understand_makes_the_promise_unknown_naming_it(tmp_path: Path) -> None:
    file = write(tmp_path, STUB.replace("  interval: 3\n", "  interval: 3\n  jitter: true\n"))
    scenario = parse_scenario(scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}"), str(file))
    promise = detection_window(scenario, scenario.faults[0])
    assert promise == Unknown(f"{tmp_path / 'stub.yaml'}:4 (chat_cluster.jitter): checks at random intervals")


def test_traps_are_located_in_the_users_file(tmp_path: Path) -> None:
    file = write(tmp_path)
    text = scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}")
    scenario = parse_scenario(text, str(file))
    findings = lint_scenario(scenario, load_yaml(text, str(file)), str(file))
    traps = {(f.trap, f.file, f.line, f.field) for f in findings}
    # no_traffic_interval is a default of the block: it belongs on the block's line
    assert ("envoy.no-traffic-interval", str(tmp_path / "stub.yaml"), 1, "cluster chat_cluster") in traps


def test_lint_of_a_raw_file_supposes_a_fault_per_block(tmp_path: Path) -> None:
    write(tmp_path)
    findings = lint_native(tmp_path / "stub.yaml", "envoy")
    assert {(f.trap, f.line, f.field) for f in findings} == {
        ("envoy.no-traffic-interval", 1, "cluster chat_cluster"), ("envoy.no-traffic-interval", 4, "cluster auth")}
    assert all(f.file == str(tmp_path / "stub.yaml") for f in findings)


def test_the_scenarios_own_gateway_fields_are_said_to_be_unused(tmp_path: Path) -> None:
    file = write(tmp_path)
    scenario = parse_scenario(scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}, panic_threshold: 0}"),
                              str(file))
    assert not_applicable(scenario) == [
        f"gateway.panic_threshold: not used: the gateway's settings come from {tmp_path / 'stub.yaml'}"]


def test_only_the_local_runtime_runs_a_users_file(tmp_path: Path) -> None:
    file = write(tmp_path)
    scenario = parse_scenario(scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}"), str(file))
    assert "gateway.config (the gateway's own file) runs on the local runtime only, not docker" in \
        unsupported(scenario, "docker", frozenset())
    assert unsupported(scenario, "local", frozenset()) == []


def test_a_journal_is_judged_with_the_file_as_the_run_read_it(tmp_path: Path) -> None:
    file = write(tmp_path)
    config = tmp_path / "stub.yaml"
    run_text = config.read_text()
    config.write_text(STUB.replace("interval: 3", "interval: 9"))  # changed after the run
    own_config.pin_text(str(config), run_text)
    scenario = parse_scenario(scenario_text("{config: stub.yaml, bind: {chat_cluster: chat}}"), str(file),
                              gateway_config=config)
    assert own_config.for_pool(scenario, "chat").gateway.health_check.interval == 3.0  # type: ignore[union-attr]


def test_chaosgate_lint_takes_a_gateways_own_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    write(tmp_path)
    result = CliRunner().invoke(main, ["lint", str(tmp_path / "stub.yaml")])
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert lines[0].startswith(f"{tmp_path / 'stub.yaml'}:1: warning [envoy.no-traffic-interval] cluster chat_cluster: "
                               "is 60s, longer than the interval")
    assert lines[-1] == "1 file, 2 findings"


def test_compare_takes_a_file_per_gateway(tmp_path: Path) -> None:
    import click

    from harness.cli import _gateway_configs
    from harness.compare import GatewayFiles

    file = write(tmp_path)
    file.write_text(scenario_text("{bind: {chat_cluster: chat}}"))
    stub = tmp_path / "stub.yaml"
    assert _gateway_configs((f"envoy={stub}",)) == {"envoy": stub}
    assert _gateway_configs((str(stub),)) == {"envoy": stub}  # stub*.yaml is the stub reader's pattern
    files = GatewayFiles(_gateway_configs((str(stub),)))
    assert files.load(file, "envoy").gateway.config == str(stub)
    assert files.load(file, "haproxy").gateway.config is None  # rendered from the scenario, as before
    with pytest.raises(click.BadParameter, match="expected KIND=PATH with KIND one of envoy, haproxy, litellm, nginx"):
        _gateway_configs((f"kong={stub}",))
    with pytest.raises(click.BadParameter, match="two files for envoy"):
        _gateway_configs((str(stub), f"envoy={stub}"))


def test_a_traps_advice_is_also_said_in_the_files_own_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = StubReader()
    reader.spelling = {("gateway", "health_check", "no_traffic_interval"): "the stub's no_traffic knob"}  # type: ignore[attr-defined]
    monkeypatch.setitem(READERS, "envoy", reader)
    write(tmp_path)
    findings = lint_native(tmp_path / "stub.yaml", "envoy")
    assert findings and all(f.message.endswith("(in this file: the stub's no_traffic knob)") for f in findings)
