"""Attach (``--attach URL [--attach-admin URL]``): every refusal quoted, what chaosgate prints and writes for the
gateway to use, the rewritten file's ports, and the wait for the gateway to answer through the upstreams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.attach import (Attach, AttachedGateway, AttachError, announce, attached_gateway, needs_gateway_view,
                            parse_attach, wait_served)
from harness.cli import main
from harness.errors import ScenarioError, StackError, StartupTimeout
from harness.gateways.base import UpstreamAddress
from harness.own_config import READERS, Block, NativeConfig, RewriteJob, Rewritten, Source
from harness.own_config.base import Endpoint
from harness.processes import free_port
from harness.runtimes.base import Replica
from harness.scenario import Gateway, parse_scenario

SCENARIO = """\
name: t
upstreams:
  - {name: chat, replicas: 2}
load: {duration: 20s}
faults:
  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}
expect:
  - {kind: error_rate, window: baseline, max: 0.0}
  - {kind: upstream_unhealthy, target: "chat[0]", within: 3s}
  - {kind: no_traffic_to, target: "chat[0]"}
  - {kind: upstream_healthy, target: "chat[0]", within: promised}
  - {kind: error_rate, window: after_detection, max: 0.0}
  - {kind: diagnosis, target: "chat[0]", cause: connection_reset}
  - {kind: all_down_response, status: 503, within: 3s}
  - {kind: traffic_to, target: "chat[1]", window: fault, min_share: 0.3}
"""


def test_expectations_that_need_the_gateways_view_are_refused_without_attach_admin() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(SCENARIO, "x.yaml", gateway_view=False)
    tail = "which chaosgate reads only with --attach-admin URL; give it, or judge this run without this expectation"
    assert str(info.value).splitlines() == [
        f"x.yaml:9:5: expect[1]: upstream_unhealthy needs the gateway's view of health (it is judged from the "
        f"gateway's view of health), {tail}",
        f"x.yaml:10:5: expect[2]: no_traffic_to needs the gateway's view of health (its window after_detection begins "
        f"when the gateway marks the replica unhealthy), {tail}",
        f"x.yaml:11:5: expect[3]: upstream_healthy needs the gateway's view of health (it is judged from the gateway's "
        f"view of health), {tail}",
        f"x.yaml:12:5: expect[4]: error_rate needs the gateway's view of health (its window after_detection begins "
        f"when the gateway marks the replica unhealthy), {tail}",
        f"x.yaml:13:5: expect[5]: diagnosis needs the gateway's view of health (chaosgate diagnose reads the gateway's "
        f"admin view), {tail}"]
    parse_scenario(SCENARIO, "x.yaml")  # with the gateway's view (managed, or --attach-admin), all of them are judged
    kept = parse_scenario("\n".join(SCENARIO.splitlines()[:8] + SCENARIO.splitlines()[13:]) + "\n", "x.yaml",
                          gateway_view=False)
    assert [e.kind for e in kept.expect] == ["error_rate", "all_down_response", "traffic_to"]
    assert [needs_gateway_view(e) for e in kept.expect] == [None, None, None]


@pytest.mark.parametrize(("url", "admin", "kind", "message"), [
    ("127.0.0.1:8080", None, "envoy", "cannot attach: --attach 127.0.0.1:8080: expected http://HOST:PORT"),
    ("http://127.0.0.1:8080/v1", None, "envoy", "cannot attach: --attach http://127.0.0.1:8080/v1: expected "
                                                "http://HOST:PORT"),
    ("http://gw.internal:8080", None, "envoy", "cannot attach: --attach http://gw.internal:8080: gw.internal is not "
     "this machine; chaosgate sends load only to loopback addresses unless you name the host with --allow-host "
     "gw.internal"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:9901", "nginx", "cannot attach: --attach-admin: chaosgate cannot read "
     "a running nginx's view of health through an address (it reads nginx's logs: with gateway.config, those of the "
     "file chaosgate writes, which nginx must run); attach without --attach-admin"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:9999", "haproxy", "cannot attach: --attach-admin http://127.0.0.1:9999: "
     "expected tcp://HOST:PORT (HAProxy's stats socket (level admin) as tcp://HOST:PORT)"),
    ("http://127.0.0.1:8080", "tcp://127.0.0.1", "haproxy", "cannot attach: --attach-admin tcp://127.0.0.1: expected a "
     "port (tcp://HOST:PORT)"),
    ("http://127.0.0.1:8080", "http://10.1.2.3:9901", "envoy", "cannot attach: --attach-admin http://10.1.2.3:9901: "
     "10.1.2.3 is not this machine; chaosgate sends load only to loopback addresses unless you name the host with "
     "--allow-host 10.1.2.3"),
])
def test_attach_options_that_cannot_be_used_are_refused(url: str, admin: str | None, kind: str, message: str) -> None:
    with pytest.raises(AttachError) as info:
        parse_attach(url, admin, kind)
    assert str(info.value) == message


def test_attach_options_accepted() -> None:
    attach = parse_attach("http://localhost:8080/", "http://127.0.0.1:9901", "envoy")
    assert (attach.url, attach.host, attach.port, attach.admin_port, attach.gateway_view) == \
        ("http://localhost:8080", "localhost", 8080, 9901, True)
    assert parse_attach("http://gw.internal:8080", None, "envoy", ("gw.internal",)).admin_url is None
    assert parse_attach("http://[::1]:8080", "tcp://127.0.0.1:9999", "haproxy").admin_port == 9999
    with pytest.raises(AttachError) as info:
        parse_attach("http://127.0.0.1:8080", None, "envoy", wait=0)
    assert str(info.value) == "cannot attach: --attach-wait: expected a number of seconds above 0, got 0"


def _scenario_file(tmp_path: Path, text: str = SCENARIO, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("command", ["run", "up"])
def test_attach_admin_without_attach_is_refused(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [command, str(_scenario_file(tmp_path)), "--attach-admin", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "--attach-admin needs --attach URL (the gateway chaosgate attaches to)"


@pytest.mark.parametrize("command", ["run", "up"])
def test_attach_on_the_docker_runtime_is_refused(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [command, str(_scenario_file(tmp_path)), "--attach", "http://127.0.0.1:1",
                                       "--attach-admin", "http://127.0.0.1:2", "--runtime", "docker"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "--attach runs on the local runtime only: the docker runtime's Toxiproxy listens on the run's network, which "
        "a gateway chaosgate did not start cannot reach; use --runtime local")


def test_attach_runs_one_scenario_at_a_time(tmp_path: Path) -> None:
    files = [str(_scenario_file(tmp_path, name=f"{n}.yaml")) for n in ("a", "b")]
    result = CliRunner().invoke(main, ["run", *files, "--attach", "http://127.0.0.1:1", "--attach-admin",
                                       "http://127.0.0.1:2"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("--attach runs one scenario at a time (the gateway must be pointed at each run's "
                                     "upstreams); give one scenario file")


def test_run_attach_without_admin_names_the_expectations_it_cannot_judge(tmp_path: Path) -> None:
    file = _scenario_file(tmp_path)
    result = CliRunner().invoke(main, ["run", str(file), "--attach", "http://127.0.0.1:1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[1:3] for line in lines] == [
        ["expect[1]", "upstream_unhealthy needs the gateway's view of health (it is judged from the gateway's view of "
                      "health), which chaosgate reads only with --attach-admin URL; give it, or judge this run without "
                      "this expectation"],
        ["expect[2]", "no_traffic_to needs the gateway's view of health (its window after_detection begins when the "
                      "gateway marks the replica unhealthy), which chaosgate reads only with --attach-admin URL; give "
                      "it, or judge this run without this expectation"],
        ["expect[3]", "upstream_healthy needs the gateway's view of health (it is judged from the gateway's view of "
                      "health), which chaosgate reads only with --attach-admin URL; give it, or judge this run without "
                      "this expectation"],
        ["expect[4]", "error_rate needs the gateway's view of health (its window after_detection begins when the "
                      "gateway marks the replica unhealthy), which chaosgate reads only with --attach-admin URL; give "
                      "it, or judge this run without this expectation"],
        ["expect[5]", "diagnosis needs the gateway's view of health (chaosgate diagnose reads the gateway's admin "
                      "view), which chaosgate reads only with --attach-admin URL; give it, or judge this run without "
                      "this expectation"]]
    assert all(line.startswith(f"{file}:") for line in lines)
    assert not (tmp_path / "o").exists()  # refused before anything started


def _replicas() -> dict[str, Replica]:
    return {"chat[0]": Replica("chat[0]", "chat", 5000, "chat-0", 6000, 5100),
            "chat[1]": Replica("chat[1]", "chat", 5001, "chat-1", 6001, 5101)}


def test_announce_prints_and_writes_what_the_gateway_must_use(tmp_path: Path) -> None:
    lines: list[str] = []
    attach = Attach("http://127.0.0.1:8080", "http://127.0.0.1:9901", 30)
    addresses = {"chat[0]": "127.0.0.1:6000", "chat[1]": "127.0.0.1:6001"}
    written = tmp_path / "envoy.yaml"
    command = ["envoy", "-c", str(written), "--concurrency", "1"]
    path = announce(_replicas(), addresses, attach, tmp_path, written, lines.append, command)
    assert json.loads(path.read_text()) == {
        "gateway": "http://127.0.0.1:8080", "gateway_admin": "http://127.0.0.1:9901",
        "replicas": {"chat[0]": "127.0.0.1:6000", "chat[1]": "127.0.0.1:6001"},
        "pools": {"chat": ["127.0.0.1:6000", "127.0.0.1:6001"]}, "config": str(written), "command": command}
    assert lines == [
        f"attach: point the gateway's upstreams at chaosgate's Toxiproxy listeners (also in {tmp_path / 'attach.json'}):",
        "attach:   pool chat: 127.0.0.1:6000, 127.0.0.1:6001",
        f"attach: load this file into the gateway: {written} (its changes: {written}.diff)",
        f"attach: as chaosgate would start it: envoy -c {written} --concurrency 1",
        "attach: waiting up to 30s for http://127.0.0.1:8080 to answer through them"]
    lines.clear()
    announce(_replicas(), addresses, Attach("http://127.0.0.1:8080"), tmp_path, None, lines.append)
    assert lines[-1] == "attach: waiting up to 120s for http://127.0.0.1:8080 to answer through them"
    assert len(lines) == 3 and json.loads(path.read_text())["config"] is None  # no file to load: only the addresses


def test_waiting_for_a_gateway_that_never_answers_ends_with_a_clear_message() -> None:
    port = free_port()  # nothing listens there
    attach = Attach(f"http://127.0.0.1:{port}", None, 0.5)
    with pytest.raises(StartupTimeout) as info:
        wait_served(attach, "", _replicas(), {"chat[0]": "127.0.0.1:6000", "chat[1]": "127.0.0.1:6001"})
    assert str(info.value) == (
        f"the gateway at http://127.0.0.1:{port} did not answer through chaosgate's upstreams within 0.5s (last: "
        f"ConnectError: [Errno 111] Connection refused); point its upstreams at the addresses printed above (or load "
        f"the file printed above), or give it longer with --attach-wait")


class _StubReader:
    """A reader of a one-cluster file (only inside this test): it records the rewrite job it was given."""

    kind = "envoy"
    file_patterns = ("stub-envoy*.yaml",)
    jobs: list[RewriteJob] = []

    def read(self, path: Path, text: str) -> NativeConfig:
        source = Source(str(path), 1, "clusters[chat]")
        endpoints = tuple(Endpoint("10.0.0.1", 8000 + i, Source(str(path), 2 + i, "endpoint")) for i in range(2))
        return NativeConfig("envoy", path, text, {"chat": Block("chat", source, endpoints, Gateway())},
                            block_word="cluster")

    def rewrite(self, config: NativeConfig, job: RewriteJob) -> Rewritten:
        self.jobs.append(job)
        lines = [f"listen {job.bind_address}:{job.listen_port}", f"admin {job.admin_port}",
                 *(f"endpoint {u.host}:{u.port}" for u in job.replicas_of("chat"))]
        return Rewritten("\n".join(lines) + "\n")


def test_the_rewritten_file_listens_on_the_attach_port_and_answers_admin_on_the_attach_admin_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = _StubReader()
    monkeypatch.setitem(READERS, "envoy", reader)
    (tmp_path / "user-envoy.yaml").write_text("cluster chat\n  10.0.0.1:8000\n  10.0.0.1:8001\n")
    scenario = parse_scenario(SCENARIO.replace("name: t\n", "name: t\ngateway: {config: user-envoy.yaml}\n"),
                              str(tmp_path / "s.yaml"))
    gateway = attached_gateway(scenario, Attach("http://localhost:8080", "http://127.0.0.1:9901"), free_port)
    upstreams = [UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 6000 + i) for i in range(2)]
    written = gateway.write_config(upstreams, tmp_path)
    assert written == tmp_path / "envoy.yaml" == gateway.written
    assert written.read_text() == "listen 127.0.0.1:8080\nadmin 9901\nendpoint 127.0.0.1:6000\nendpoint 127.0.0.1:6001\n"
    assert (tmp_path / "envoy.yaml.diff").read_text().startswith(f"--- {tmp_path / 'user-envoy.yaml'}\n")
    assert gateway.upstream_attempts(tmp_path) == tmp_path / "envoy-upstream.jsonl"  # its try log, as the file says
    assert callable(gateway.health_event_logs)  # and its health event logs
    without_admin = attached_gateway(scenario, Attach("http://127.0.0.1:8080"), lambda: 4242)
    without_admin.write_config(upstreams, tmp_path)
    assert reader.jobs[-1].admin_port == 4242  # a free port: the file needs one, chaosgate does not read it


def test_an_attached_gateway_is_never_started_and_has_no_view_without_admin(tmp_path: Path) -> None:
    scenario = parse_scenario(SCENARIO, "x.yaml")
    gateway = attached_gateway(scenario, Attach("http://127.0.0.1:8080"), free_port)
    assert isinstance(gateway, AttachedGateway) and gateway.url == "http://127.0.0.1:8080" and gateway.admin_url is None
    with pytest.raises(StackError) as info:
        gateway.argv(tmp_path / "envoy.yaml")
    assert str(info.value) == "chaosgate does not start an attached gateway (http://127.0.0.1:8080)"
    with pytest.raises(StackError) as view:
        gateway.host_health()
    assert str(view.value) == "the gateway's view of health is not read (attached without --attach-admin)"
    # no file was written: the gateway keeps no try log or health event log of ours
    assert not hasattr(gateway, "upstream_attempts") and not hasattr(gateway, "health_event_logs")
    assert gateway.version() == "attached at http://127.0.0.1:8080"


def test_litellm_attach_admin_needs_the_file_chaosgate_writes(tmp_path: Path) -> None:
    file = _scenario_file(tmp_path, "\n".join(SCENARIO.splitlines()[:8]) + "\n")
    result = CliRunner().invoke(main, ["run", str(file), "--gateway", "litellm", "--attach", "http://127.0.0.1:1",
                                       "--attach-admin", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "cannot attach: --attach-admin: a LiteLLM proxy's view of health is read through chaosgate's probe callback "
        "(/chaosgate/deployments), which the proxy loads only from the file chaosgate writes: set gateway.config (or "
        "--gateway-config) to your config.yaml and load the rewritten file chaosgate prints")


@pytest.mark.parametrize(("kind", "admin", "view_at"), [
    ("envoy", "http://gw.internal:9901", "http://gw.internal:9901"),
    ("haproxy", "tcp://[::1]:9999", "tcp://[::1]:9999"),
    ("litellm", "http://127.0.0.1:4000", "http://127.0.0.1:4000/chaosgate/deployments"),
])
def test_the_adapter_reads_the_gateways_view_at_attach_admin(kind: str, admin: str, view_at: str) -> None:
    scenario = parse_scenario("\n".join(SCENARIO.splitlines()[:8]) + "\n", "x.yaml", gateway=kind)
    attach = parse_attach("http://127.0.0.1:8080", admin, kind, ("gw.internal",))
    gateway = attached_gateway(scenario, attach, free_port)
    assert gateway.url == "http://127.0.0.1:8080"  # where the load goes
    assert gateway.inner.admin_url == view_at     # where the adapter reads the gateway's view


def test_haproxy_attached_to_a_file_of_the_users_maps_servers_by_their_address() -> None:
    """A haproxy.cfg chaosgate did not write has its own backend and server names: ``show stat``'s addr column
    (the Toxiproxy listener the server dials) says which replica each server is."""
    import socket
    import threading

    stat = ("# pxname,svname,status,check_status,check_desc,last_chk,addr,\n"
            "public,FRONTEND,OPEN,,,,,\n"
            "models,gpu-a,UP,L7OK,Layer7 check passed,,127.0.0.1:6000,\n"
            "models,gpu-b,DOWN,L4CON,Layer4 connection problem,Connection refused,127.0.0.1:6001,\n"
            "models,BACKEND,UP,,,,,\n")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(100)
            connection.sendall(stat.encode())

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    scenario = parse_scenario("\n".join(SCENARIO.splitlines()[:8]) + "\n", "x.yaml", gateway="haproxy")
    attach = parse_attach("http://127.0.0.1:8080", f"tcp://127.0.0.1:{server.getsockname()[1]}", "haproxy")
    health = attached_gateway(scenario, attach, free_port).host_health()
    thread.join(timeout=5)
    server.close()
    assert {address: (h.healthy, h.flags) for address, h in health.items()} == {
        "127.0.0.1:6000": (True, "UP L7OK"), "127.0.0.1:6001": (False, "DOWN L4CON")}


def test_what_counts_as_served_through_chaosgates_upstreams() -> None:
    import httpx

    from harness.attach import served_by

    addresses = {"chat[0]": "127.0.0.1:6000", "chat[1]": "127.0.0.1:6001"}

    def answer(status: int = 200, **headers: str) -> httpx.Response:
        return httpx.Response(status, headers=headers)

    fakes = _replicas()
    assert served_by(answer(**{"x-chaosgate-replica": "chat[1]"}), fakes, addresses) == "chat[1]"
    assert served_by(answer(**{"x-chaosgate-upstream": "127.0.0.1:6000"}), fakes, addresses) == "chat[0]"
    assert served_by(answer(**{"x-chaosgate-replica": "chat[7]"}), fakes, addresses) is None  # another run's
    assert served_by(answer(), fakes, addresses) is None  # a 200 from somewhere else (the gateway's old upstreams)
    assert served_by(answer(503, **{"x-chaosgate-upstream": "127.0.0.1:6000"}), fakes, addresses) is None
    real = {name: Replica(r.name, r.pool, r.port, r.proxy_name, r.proxy_port, None, real=True)
            for name, r in fakes.items()}
    assert served_by(answer(), real, addresses) == "chat[0]"  # the user's servers stamp nothing: any 200 counts


def test_up_attach_refuses_a_port(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["up", str(_scenario_file(tmp_path)), "--attach", "http://127.0.0.1:1",
                                       "--attach-admin", "http://127.0.0.1:2", "--port", "8080"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("--port sets where a gateway chaosgate starts listens; with --attach, the gateway "
                                     "listens where you started it (the port of --attach)")


def test_the_journal_checks_what_it_says_of_the_attached_gateway() -> None:
    from harness.journal_events import check_event

    good = {"type": "run.started", "ts": 1.0, "text": "", "file": "s.yaml",
            "attach": {"url": "http://127.0.0.1:8080", "admin_url": None}}
    assert check_event(good) == []
    assert check_event({**good, "attach": {"url": 8080}}) == [
        "attach.url: expected a string (the running gateway the run attached to (--attach)), got the number 8080"]
