"""Every fault kind: what it asks Toxiproxy to do, in Toxiproxy's units."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from harness import loopback
from harness.errors import FaultError, ScenarioError, StackError
from harness.faults import FAULTS, Fault
from harness.plan import make_plan
from harness.runtimes.base import MEMORY_LIMIT, PROCESS_CONTROL, check_supported, unsupported
from harness.scenario import FaultSpec, parse_scenario

BUILD = TypeAdapter(FaultSpec)


class FakeToxiproxy:
    """Records calls and keeps the state a Toxiproxy server would (a duplicate toxic is a 409)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.toxics: dict[str, dict[str, dict[str, Any]]] = {}
        self.disabled: set[str] = set()

    def add_toxic(self, proxy: str, name: str, toxic_type: str, stream: str, toxicity: float,
                  attributes: dict[str, Any]) -> None:
        self.calls.append(("add_toxic", proxy, name, toxic_type, stream, toxicity, attributes))
        on_proxy = self.toxics.setdefault(proxy, {})
        if name in on_proxy:
            raise FaultError(f"toxiproxy: cannot add {toxic_type} toxic to {proxy}: toxic already exists")
        on_proxy[name] = {"type": toxic_type, "stream": stream, "toxicity": toxicity, "attributes": attributes}

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.calls.append(("remove_toxic", proxy, name))
        self.toxics.get(proxy, {}).pop(name, None)

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        self.calls.append(("set_enabled", proxy, enabled))
        (self.disabled.discard if enabled else self.disabled.add)(proxy)


class FakeContext:
    def __init__(self) -> None:
        self.toxiproxy = FakeToxiproxy()

    def proxy_name(self, replica: str) -> str:
        return f"proxy:{replica}"


def build(kind: str, **params: Any) -> Fault:
    return BUILD.validate_python({"kind": kind, "target": "chat[0]", "at": "1s", "for": "2s", **params})


# kind -> (params, toxic type, attributes Toxiproxy gets); None for faults that are not toxics
CASES: dict[str, tuple[dict[str, Any], str | None, dict[str, Any] | None]] = {
    "latency": ({"latency": "1.5s", "jitter": "100ms"}, "latency", {"latency": 1500, "jitter": 100}),
    "bandwidth": ({"rate_kbps": 64}, "bandwidth", {"rate": 64}),
    "timeout": ({"timeout": "2s"}, "timeout", {"timeout": 2000}),
    "reset_peer": ({"timeout": "250ms"}, "reset_peer", {"timeout": 250}),
    "slow_close": ({"delay": "1s"}, "slow_close", {"delay": 1000}),
    "slicer": ({"average_size": 64, "size_variation": 16, "delay": "10ms"}, "slicer",
               {"average_size": 64, "size_variation": 16, "delay": 10_000}),  # microseconds
    "limit_data": ({"bytes": 1024}, "limit_data", {"bytes": 1024}),
    "down": ({}, None, None),
}


def test_every_fault_kind_is_covered() -> None:
    # cert: test_cert_fault.py; dns: tests/unit/test_dns_pools.py, tests/integration/test_dns_fault_live.py
    assert set(CASES) | set(CONTROL_CASES) | set(PROCESS_CASES) | {"oom", "port_change", "cert", "dns"} == set(FAULTS)


@pytest.mark.parametrize("kind", [k for k, case in CASES.items() if case[1] is not None])
def test_toxic_fault_adds_and_removes_one_downstream_toxic(kind: str) -> None:
    params, toxic_type, attributes = CASES[kind]
    fault = build(kind, **params)
    assert type(fault) is FAULTS[kind]
    ctx = FakeContext()
    fault.inject(ctx, "chat[0]")
    name = f"chaosgate_{kind}_chat_0__downstream"  # from the fault's label, e.g. latency@chat[0]
    assert fault.toxic_name("downstream") == name
    assert ctx.toxiproxy.calls == [("add_toxic", "proxy:chat[0]", name, toxic_type, "downstream", 1.0, attributes)]
    fault.clear(ctx, "chat[0]")
    assert ctx.toxiproxy.calls[1:] == [("remove_toxic", "proxy:chat[0]", name)]
    assert ctx.toxiproxy.toxics == {"proxy:chat[0]": {}}


@pytest.mark.parametrize("kind", [k for k, case in CASES.items() if case[1] is not None])
def test_direction_both_adds_an_upstream_and_a_downstream_toxic(kind: str) -> None:
    params, toxic_type, attributes = CASES[kind]
    fault = build(kind, direction="both", toxicity=0.25, **params)
    ctx = FakeContext()
    fault.inject(ctx, "chat[2]")
    assert sorted((c[4], c[5], tuple(sorted(c[6].items()))) for c in ctx.toxiproxy.calls) == [
        ("downstream", 0.25, tuple(sorted(attributes.items()))),
        ("upstream", 0.25, tuple(sorted(attributes.items()))),
    ]
    assert {c[1] for c in ctx.toxiproxy.calls} == {"proxy:chat[2]"}
    assert len(ctx.toxiproxy.toxics["proxy:chat[2]"]) == 2
    fault.clear(ctx, "chat[2]")
    assert [c[0] for c in ctx.toxiproxy.calls[2:]] == ["remove_toxic", "remove_toxic"]
    assert ctx.toxiproxy.toxics["proxy:chat[2]"] == {}


def test_upstream_direction_and_toxicity_pass_through() -> None:
    ctx = FakeContext()
    build("latency", latency="200ms", direction="upstream", toxicity=0.5).inject(ctx, "chat[1]")
    assert ctx.toxiproxy.calls == [("add_toxic", "proxy:chat[1]", "chaosgate_latency_chat_0__upstream", "latency",
                                    "upstream", 0.5, {"latency": 200, "jitter": 0})]


def test_down_disables_then_enables_the_proxy() -> None:
    fault = build("down")
    ctx = FakeContext()
    fault.inject(ctx, "chat[1]")
    assert ctx.toxiproxy.calls == [("set_enabled", "proxy:chat[1]", False)]
    fault.clear(ctx, "chat[1]")
    assert ctx.toxiproxy.calls == [("set_enabled", "proxy:chat[1]", False), ("set_enabled", "proxy:chat[1]", True)]
    assert ctx.toxiproxy.disabled == set()


def test_clear_is_safe_when_the_fault_is_not_active() -> None:
    ctx = FakeContext()
    for kind, (params, _, _) in CASES.items():
        build(kind, **params).clear(ctx, "chat[0]")  # must not raise
    assert ctx.toxiproxy.disabled == set()


@pytest.mark.parametrize(("kind", "params", "attributes"), [
    ("latency", {"latency": 0.0004}, {"latency": 0, "jitter": 0}),      # rounds to whole ms
    ("latency", {"latency": "2m"}, {"latency": 120_000, "jitter": 0}),
    ("timeout", {}, {"timeout": 0}),                                    # 0: hang forever
    ("reset_peer", {}, {"timeout": 0}),                                 # 0: reset at once
    ("slicer", {"average_size": 1, "delay": "1.5ms"}, {"average_size": 1, "size_variation": 0, "delay": 1500}),
])
def test_attribute_units(kind: str, params: dict[str, Any], attributes: dict[str, Any]) -> None:
    assert build(kind, **params).attributes() == attributes  # type: ignore[attr-defined]


def test_labels() -> None:
    assert build("down").label == "down@chat[0]"
    assert build("down", name="outage").label == "outage"


@pytest.mark.parametrize(("kind", "params"), [
    ("latency", {}),                        # latency is required
    ("bandwidth", {"rate_kbps": -1}),
    ("slicer", {"average_size": 0}),
    ("limit_data", {}),
    ("latency", {"latency": "1s", "toxicity": 1.5}),
    ("latency", {"latency": "1s", "direction": "sideways"}),
    ("down", {"latency": "1s"}),            # down has no parameters
])
def test_invalid_fault_params_are_rejected(kind: str, params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        build(kind, **params)


@pytest.mark.parametrize(("kind", "params"), [("latency", "latency: 1s"), ("down", "")], ids=["latency", "down"])
def test_overlapping_faults_of_one_kind_on_one_replica(kind: str, params: str) -> None:
    # A pool-wide fault plus a shorter one of the same kind on one of its replicas. Either the
    # scenario is rejected, or each fault's clear must leave the other one in force. Today both
    # toxics get the same name (`chaosgate_latency_downstream`), so the second inject is a 409
    # from Toxiproxy and the run fails; and clearing the inner `down` re-enables chat[0] while
    # the pool-wide one is still meant to be active.
    extra = f", {params}" if params else ""
    text = ("name: t\nupstreams:\n  - {name: chat, replicas: 2}\nload: {duration: 20s}\nfaults:\n"
            f'  - {{name: wide, kind: {kind}, target: "chat[*]", at: 2s, for: 10s{extra}}}\n'
            f'  - {{name: inner, kind: {kind}, target: "chat[0]", at: 4s, for: 2s{extra}}}\n')
    try:
        scenario = parse_scenario(text, "x.yaml")
    except ScenarioError as exc:
        assert "inner" in str(exc) or "faults[1]" in str(exc)
        return
    ctx = FakeContext()
    tp = ctx.toxiproxy
    wide = scenario.faults[0]
    for action in make_plan(scenario).actions:
        for replica in action.replicas:
            (action.fault.inject if action.start else action.fault.clear)(ctx, replica)
        if action.fault.label == "inner" and not action.start:  # the inner fault just ended
            if kind == "down":
                assert "proxy:chat[0]" in tp.disabled, "chat[0] came back up while 'wide' is still active"
            else:
                assert any(t["attributes"] == wide.attributes() for t in tp.toxics["proxy:chat[0]"].values()), (
                    "chat[0] lost the toxic of 'wide' while 'wide' is still active")
    assert tp.disabled == set()
    assert all(not toxics for toxics in tp.toxics.values())


# -- faults set through a fake's control API ---------------------------------------------------

# kind -> (scenario fields, the body PUT /fault gets)
CONTROL_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "llm_fault": ({"mode": "error_status", "status": 429, "retry_after": "2500ms", "rate": 0.25},
                  {"mode": "error_status", "status": 429, "retry_after": "2.5s", "rate": 0.25}),
    "mcp_fault": ({"mode": "tools_disappear", "tools": ["lookup"]},
                  {"mode": "tools_disappear", "tools": ["lookup"], "rate": 1.0}),
    "anthropic_fault": ({"mode": "anthropic_error", "error": "rate_limit_error", "retry_after": "30s",
                         "retry_after_format": "http_date"},
                        {"mode": "anthropic_error", "error": "rate_limit_error", "retry_after": "30s",
                         "retry_after_format": "http_date", "rate": 1.0}),
}


class ControlApi:
    """Stands in for the loopback client's request: records calls, answers like a fake's control API."""

    def __init__(self, status: int = 200, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.status, self.error = status, error

    def __call__(self, method: str, url: str, json: Any = None, timeout: float | None = None) -> httpx.Response:
        assert timeout is not None and timeout > 0
        self.calls.append((method, url, json))
        if self.error is not None:
            raise self.error
        body = {"error": "mode: Input tag 'x' found using 'mode' does not match"} if self.status != 200 else {}
        return httpx.Response(self.status, json=body)


class ControlContext(FakeContext):
    def control_url(self, replica: str) -> str:
        return f"http://control/{replica}"


@pytest.mark.parametrize("kind", sorted(CONTROL_CASES))
def test_control_fault_puts_its_mode_and_deletes_it(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fields, body = CONTROL_CASES[kind]
    fault = build(kind, **fields)
    assert isinstance(fault, FAULTS[kind]) and fault.exclusive
    api = ControlApi()
    monkeypatch.setattr(loopback.client(), "request", api)
    fault.inject(ControlContext(), "chat[0]")
    fault.clear(ControlContext(), "chat[0]")
    assert api.calls == [("PUT", "http://control/chat[0]/fault", body), ("DELETE", "http://control/chat[0]/fault", None)]
    assert fault.label == f"{kind}:{fields['mode']}@chat[0]"


@pytest.mark.parametrize(("api", "message"), [
    (ControlApi(status=422), r"chat\[0\]: control API PUT http://control/chat\[0\]/fault answered 422: mode: Input tag"),
    (ControlApi(error=httpx.ConnectError("refused")), r"chat\[0\]: control API PUT .* failed: refused"),
])
def test_control_fault_failures_are_fault_errors(api: ControlApi, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loopback.client(), "request", api)
    with pytest.raises(FaultError, match=message):
        build("llm_fault", mode="inference_fail").inject(ControlContext(), "chat[0]")


@pytest.mark.parametrize(("kind", "params", "field"), [
    ("llm_fault", {"mode": "explode"}, None),
    ("llm_fault", {}, None),
    ("llm_fault", {"mode": "error_status", "status": 404}, "status"),
    ("llm_fault", {"mode": "slow_ttft", "ttft": "soon"}, "ttft"),
    ("llm_fault", {"mode": "cpu_burn", "rate": 0.5}, "rate"),      # not per request: no rate
    ("llm_fault", {"mode": "stall_stream", "status": 503}, "status"),  # another mode's parameter
    ("mcp_fault", {"mode": "input_schema_not_object", "tool": "hammer"}, "tool"),
    ("mcp_fault", {"mode": "session_expiry", "rate": 1.5}, "rate"),
])
def test_invalid_control_fault_params_are_rejected(kind: str, params: dict[str, Any], field: str | None) -> None:
    with pytest.raises(ValidationError) as raised:
        build(kind, **params)
    if field is not None:
        assert raised.value.errors()[0]["loc"][-1] == field


# -- process faults: through the runtime's process control -------------------------------------

class Processes:
    """Stands in for a runtime's ProcessControl: records signals and restarts."""

    def __init__(self, running: bool = True) -> None:
        self.calls: list[tuple[str, str, int | None]] = []
        self.running = running

    def pid(self, replica: str) -> int | None:
        return 42 if self.running else None

    def send(self, replica: str, sig: int) -> int:
        self.calls.append(("send", replica, sig))
        if not self.running:
            raise FaultError(f"{replica} is not running")
        return 42

    def restart(self, replica: str, port: int | None = None) -> int:
        self.calls.append(("restart", replica, port))
        return 43

    def home_port(self, replica: str) -> int:
        return 40000


class ProcessContext(ControlContext):
    def __init__(self, processes: Processes) -> None:
        super().__init__()
        self._processes = processes

    def processes(self) -> Processes:
        return self._processes


PROCESS_CASES: dict[str, list[tuple[str, str, int | None]]] = {
    # kind -> calls after inject, then clear
    "process_kill": [("send", "chat[0]", signal.SIGKILL)],
    "process_freeze": [("send", "chat[0]", signal.SIGSTOP), ("send", "chat[0]", signal.SIGCONT)],
    "process_restart": [("restart", "chat[0]", None)],
}


@pytest.mark.parametrize("kind", sorted(PROCESS_CASES))
def test_process_fault_signals_through_the_runtime(kind: str) -> None:
    fault = build(kind)
    assert fault.needs == {"process_control"} and fault.exclusive
    processes = Processes()
    fault.inject(ProcessContext(processes), "chat[0]")
    fault.clear(ProcessContext(processes), "chat[0]")
    assert processes.calls == PROCESS_CASES[kind]


def test_freeze_clear_is_safe_when_the_replica_died_meanwhile() -> None:
    build("process_freeze").clear(ProcessContext(Processes(running=False)), "chat[0]")  # must not raise


def test_port_change_moves_the_replica_away_and_back() -> None:
    fault = build("port_change")
    processes = Processes()
    fault.inject(ProcessContext(processes), "chat[0]")
    fault.clear(ProcessContext(processes), "chat[0]")
    (_, _, away), back = processes.calls[0], processes.calls[1]
    assert away is not None and away != 40000
    assert back == ("restart", "chat[0]", 40000)


def test_oom_switches_on_unbounded_memory_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    fault = build("oom", mb_per_s=300)
    assert fault.needs == {"process_control", "memory_limit"}
    api = ControlApi()
    monkeypatch.setattr(loopback.client(), "request", api)
    fault.inject(ProcessContext(Processes()), "chat[0]")
    fault.clear(ProcessContext(Processes()), "chat[0]")
    assert api.calls == [("PUT", "http://control/chat[0]/fault", {"mode": "memory_growth", "mb_per_s": 300.0,
                                                                    "max_mb": 65536}),
                         ("DELETE", "http://control/chat[0]/fault", None)]


def test_oom_clear_tolerates_a_replica_that_is_dead_and_not_yet_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loopback.client(), "request", ControlApi(error=httpx.ConnectError("refused")))
    build("oom").clear(ProcessContext(Processes(running=False)), "chat[0]")  # the new process has no mode
    with pytest.raises(FaultError, match="refused"):  # but a running replica that does not answer is an error
        build("oom").clear(ProcessContext(Processes(running=True)), "chat[0]")


def test_oom_needs_a_memory_limit_on_its_pool() -> None:
    text = ("name: t\nupstreams:\n  - {name: chat, replicas: 2}\nload: {duration: 20s}\nfaults:\n"
            '  - {kind: oom, target: "chat[0]", at: 2s, for: 5s}\n')
    with pytest.raises(ScenarioError, match="set memory_limit on upstream 'chat'"):
        parse_scenario(text, "x.yaml")
    parse_scenario(text.replace("replicas: 2}", "replicas: 2, memory_limit: 128Mi}"), "x.yaml")


def test_a_runtime_without_a_capability_refuses_the_scenario_plainly() -> None:
    text = ("name: t\nupstreams:\n  - {name: chat, replicas: 2, memory_limit: 64Mi}\nload: {duration: 20s}\nfaults:\n"
            '  - {kind: process_freeze, target: "chat[0]", at: 2s, for: 5s}\n'
            '  - {kind: latency, target: "chat[1]", at: 2s, for: 5s, latency: 1s}\n')
    scenario = parse_scenario(text, "x.yaml")
    assert unsupported(scenario, "local", frozenset({PROCESS_CONTROL, MEMORY_LIMIT})) == []
    assert unsupported(scenario, "docker", frozenset()) == [
        "fault 'process_freeze@chat[0]' (process_freeze) needs process_control, which the docker runtime does not offer",
        "upstream 'chat' sets memory_limit, which the docker runtime does not enforce"]
    with pytest.raises(StackError, match="scenario 't' cannot run on the docker runtime: fault 'process_freeze"):
        check_supported(scenario, "docker", frozenset())
