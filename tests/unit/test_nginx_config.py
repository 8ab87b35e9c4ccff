"""The nginx config rendered from a scenario's gateway block, its field mapping, its log view, its promise
with several workers, and what it cannot honour."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ScenarioError, StackError
from harness.gateways import GATEWAYS, traps
from harness.gateways.base import UPSTREAM_HEADER, UpstreamAddress, UpstreamTlsTrust
from harness.gateways.nginx import NginxGateway, nginx_binary
from harness.promise import detection_window, recovery_window
from harness.promise.envoy import ARRIVAL_SLACK
from harness.promise.load import LoadFacts
from harness.promise.window import Window
from harness.scenario import Gateway, parse_scenario
from tests.unit.test_haproxy_config import installed

REPO = Path(__file__).resolve().parents[2]

PASSIVE: dict[str, Any] = {
    "kind": "nginx",
    "health_check": None,
    "outlier_detection": {"consecutive_5xx": 2, "base_ejection_time": "3s"},
    "panic_threshold": 0,
    "connect_timeout": "750ms",
    "request_timeout": "5s",
    "retries": {"num_retries": 1, "retry_on": ["connect-failure", "reset"]},
}


def upstreams() -> list[UpstreamAddress]:
    return ([UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 21000 + i) for i in range(3)]
            + [UpstreamAddress("embed", f"embed[{i}]", "127.0.0.1", 22000 + i) for i in range(2)])


def gateway(settings: dict[str, Any]) -> NginxGateway:
    return NginxGateway(Gateway.model_validate(settings), 10000, 10001, "chat")


def lines(config: str) -> list[str]:
    return [line.strip() for line in config.splitlines()]


# -- the config ---------------------------------------------------------------------------

def test_registered() -> None:
    assert GATEWAYS["nginx"] is NginxGateway


def test_runs_rootless_in_the_run_folder(tmp_path: Path) -> None:
    config = lines(gateway({"kind": "nginx"}).config(upstreams(), tmp_path))
    prefix = (tmp_path / "nginx").resolve()
    for line in ("daemon off;", "master_process on;", "worker_processes 1;", f"pid {prefix}/nginx.pid;",
                 f"error_log {prefix}/error.log warn;", f"proxy_temp_path {prefix}/tmp/proxy;",
                 f"client_body_temp_path {prefix}/tmp/client_body;", f"access_log {prefix}/access.log chaosgate;"):
        assert line in config


def test_passive_health_from_outlier_detection(tmp_path: Path) -> None:
    config = lines(gateway(PASSIVE).config(upstreams(), tmp_path))
    assert config[config.index("upstream chat {") + 1] == "zone chat 64k;"
    assert "server 127.0.0.1:21000 max_fails=2 fail_timeout=3s;" in config
    assert "server 127.0.0.1:22001 max_fails=2 fail_timeout=3s;" in config
    # consecutive_5xx counts the upstream's 5xx too; retries add non_idempotent (chat completions are POSTs)
    assert "proxy_next_upstream error timeout http_500 http_502 http_503 http_504 non_idempotent;" in config
    assert "proxy_next_upstream_tries 2;" in config
    assert "proxy_next_upstream_timeout 5000ms;" in config
    assert "proxy_connect_timeout 750ms;" in config
    assert "proxy_read_timeout 5000ms;" in config


def test_no_outlier_detection_turns_the_accounting_off(tmp_path: Path) -> None:
    config = lines(gateway({"kind": "nginx", "health_check": None}).config(upstreams(), tmp_path))
    assert "server 127.0.0.1:21000 max_fails=0 fail_timeout=10s;" in config
    assert "proxy_next_upstream error timeout;" in config
    assert "proxy_next_upstream_tries 1;" in config  # no retries unless the scenario asks


def test_gateway_failure_and_nginx_block(tmp_path: Path) -> None:
    config = lines(gateway({"kind": "nginx", "health_check": None, "outlier_detection": {
        "consecutive_5xx": None, "consecutive_gateway_failure": 4}}).config(upstreams(), tmp_path))
    assert "server 127.0.0.1:21000 max_fails=4 fail_timeout=30s;" in config
    # without retries nginx does not count a replica's 5xx answers (measured): no http_5xx classes
    assert "proxy_next_upstream error timeout;" in config
    retried = lines(gateway({"kind": "nginx", "health_check": None, "retries": {}, "outlier_detection": {
        "consecutive_5xx": None, "consecutive_gateway_failure": 4}}).config(upstreams(), tmp_path))
    assert "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;" in retried
    own = lines(gateway({"kind": "nginx", "health_check": None, "nginx": {
        "max_fails": 3, "fail_timeout": "5s", "worker_processes": 2, "shared_zone": False}}).config(upstreams(), tmp_path))
    assert "server 127.0.0.1:21000 max_fails=3 fail_timeout=5s;" in own
    assert "worker_processes 2;" in own and not any(line.startswith("zone ") for line in own)


def test_reuseport_gives_every_worker_its_own_listening_socket(tmp_path: Path) -> None:
    assert "listen 127.0.0.1:10000;" in lines(gateway({"kind": "nginx"}).config(upstreams(), tmp_path))
    spread = lines(gateway({"kind": "nginx", "nginx": {"worker_processes": 4, "reuseport": True}}).config(
        upstreams(), tmp_path))
    assert "listen 127.0.0.1:10000 reuseport;" in spread and "worker_processes 4;" in spread


def test_access_log_names_the_worker(tmp_path: Path) -> None:
    """$pid: which worker proxied each request (without a shared zone each one has its own failure counts)."""
    (log_format,) = [line for line in lines(gateway({"kind": "nginx"}).config(upstreams(), tmp_path))
                     if line.startswith("log_format chaosgate")]
    assert '"pid":$pid,' in log_format


def test_routes_and_upstream_header(tmp_path: Path) -> None:
    config = lines(gateway({"kind": "nginx"}).config(upstreams(), tmp_path))
    assert "listen 127.0.0.1:10000;" in config
    assert "location /embed/ { proxy_pass http://embed/; }" in config
    assert "location / { proxy_pass http://chat; }" in config
    assert f"add_header {UPSTREAM_HEADER} $chaosgate_upstream always;" in config
    assert "proxy_buffering off;" in config  # SSE chunks are not held back


def test_tls_replicas(tmp_path: Path) -> None:
    trust = UpstreamTlsTrust("/run/tls/ca.pem", "chat.upstream.test")
    tls = [UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 21000 + i, tls=trust) for i in range(2)]
    config = lines(gateway({"kind": "nginx"}).config(tls, tmp_path))
    assert ("location / { proxy_pass https://chat; proxy_ssl_verify on; proxy_ssl_trusted_certificate "
            "/run/tls/ca.pem; proxy_ssl_name chat.upstream.test; proxy_ssl_server_name on; "
            "proxy_ssl_protocols TLSv1.2 TLSv1.3; }") in config
    assert any(line.startswith("location /chat/ { proxy_pass https://chat/;") for line in config)
    with pytest.raises(StackError, match="disagree on TLS"):
        gateway({"kind": "nginx"}).config([*tls, UpstreamAddress("chat", "chat[2]", "127.0.0.1", 21002)], tmp_path)


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    installed(nginx_binary)  # gw.argv() runs it
    workers = {"kind": "nginx", "health_check": None, "nginx": {
        "max_fails": 3, "fail_timeout": "7s", "worker_processes": 4, "shared_zone": False, "reuseport": True}}
    for i, settings in enumerate((PASSIVE, {"kind": "nginx", "health_check": None, "request_timeout": 0}, workers)):
        run_dir = tmp_path / str(i)
        run_dir.mkdir()
        gw = gateway(settings)
        path = gw.write_config(upstreams(), run_dir)
        assert path == run_dir / "nginx.conf"
        result = subprocess.run([*gw.argv(path), "-t"], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "test is successful" in result.stderr


# -- its view, from its logs --------------------------------------------------------------------

DISABLED_LINE = ('2026/11/25 16:20:01 [warn] 123#123: *5 upstream server temporarily disabled while reading '
                 'response header from upstream, client: 127.0.0.1, server: , request: "POST /v1/chat/completions '
                 'HTTP/1.1", upstream: "http://127.0.0.1:21000/v1/chat/completions", host: "127.0.0.1:10000"\n')
NO_LIVE_LINE = ('2026/11/25 16:20:02 [error] 123#123: *9 no live upstreams while connecting to upstream, client: '
                '127.0.0.1, server: , request: "POST /v1/chat/completions HTTP/1.1", upstream: '
                '"http://chat/v1/chat/completions", host: "127.0.0.1:10000"\n')


def access(ts: float, addresses: str, statuses: str, rt: float = 0.01) -> str:
    return (f'{{"ts":{ts:.3f},"rt":{rt:.3f},"status":200,"upstream_addr":"{addresses}",'
            f'"upstream_status":"{statuses}","request":"POST /v1/chat/completions"}}\n')


def test_log_view_disabled_then_answered_again(tmp_path: Path) -> None:
    gw = gateway(PASSIVE)
    gw.write_config(upstreams(), tmp_path)
    prefix = tmp_path / "nginx"
    assert all(h.healthy for h in gw.host_health().values())
    with (prefix / "error.log").open("a") as log:
        log.write(DISABLED_LINE)
    seen = time.time()
    health = gw.host_health()
    assert not health["127.0.0.1:21000"].healthy
    assert health["127.0.0.1:21000"].flags == "temporarily disabled (max_fails reached)"
    assert health["127.0.0.1:21001"].healthy
    with (prefix / "access.log").open("a") as log:
        # retried elsewhere, then a request that began before the disabling was seen: not proof of recovery
        log.write(access(seen + 0.5, "127.0.0.1:21000, 127.0.0.1:21001", "502, 200"))
        log.write(access(seen + 0.5, "127.0.0.1:21000", "200", rt=5.0))
    assert not gw.host_health()["127.0.0.1:21000"].healthy
    with (prefix / "error.log").open("a") as log:
        log.write(NO_LIVE_LINE)
    assert gw.host_health()["127.0.0.1:21000"].flags == "temporarily disabled; no live upstreams"
    with (prefix / "access.log").open("a") as log:
        log.write(access(seen + 3.0, "127.0.0.1:21000", "200"))  # nginx's probe after fail_timeout succeeded
    health = gw.host_health()
    assert health["127.0.0.1:21000"].healthy and health["127.0.0.1:21000"].flags == "answered again (200)"


def test_log_view_with_workers_that_count_on_their_own(tmp_path: Path) -> None:
    """Without a shared zone every worker logs its own disabling: unhealthy from the first line, the flags count
    the workers; the first answer, whichever worker asked, makes it healthy, and the count starts over."""
    gw = gateway({"kind": "nginx", "health_check": None, "nginx": {
        "max_fails": 3, "worker_processes": 4, "shared_zone": False, "reuseport": True}})
    gw.write_config(upstreams(), tmp_path)
    errors = tmp_path / "nginx" / "error.log"
    with errors.open("a") as log:
        log.write(DISABLED_LINE)
    first = gw.host_health()["127.0.0.1:21000"]
    assert not first.healthy and first.flags == "temporarily disabled (max_fails reached)"
    with errors.open("a") as log:
        log.write(DISABLED_LINE.replace("123#123", "124#124"))
        log.write(DISABLED_LINE.replace("123#123", "125#125"))
        log.write(DISABLED_LINE.replace("123#123", "124#124"))  # the same worker again: still three
    later = gw.host_health()["127.0.0.1:21000"]
    assert not later.healthy and later.flags == "temporarily disabled (max_fails reached; logged by 3 workers)"
    seen = time.time()
    with (tmp_path / "nginx" / "access.log").open("a") as log:
        log.write(access(seen + 1.0, "127.0.0.1:21000", "200"))
    assert gw.host_health()["127.0.0.1:21000"].healthy
    with errors.open("a") as log:
        log.write(DISABLED_LINE.replace("123#123", "125#125"))
    again = gw.host_health()["127.0.0.1:21000"]
    assert not again.healthy and again.flags == "temporarily disabled (max_fails reached)"


def test_log_view_reads_only_complete_lines(tmp_path: Path) -> None:
    gw = gateway(PASSIVE)
    gw.write_config(upstreams(), tmp_path)
    half = len(DISABLED_LINE) // 2
    with (tmp_path / "nginx" / "error.log").open("a") as log:
        log.write(DISABLED_LINE[:half])
    assert gw.host_health()["127.0.0.1:21000"].healthy
    with (tmp_path / "nginx" / "error.log").open("a") as log:
        log.write(DISABLED_LINE[half:])
    assert not gw.host_health()["127.0.0.1:21000"].healthy


# -- the promise with several workers ----------------------------------------------------------

WORKERS = """\
name: t
gateway:
  kind: nginx
  health_check: null
  nginx: {{max_fails: {max_fails}, fail_timeout: 7s, worker_processes: 4, shared_zone: {shared}}}
upstreams:
  - {{name: chat, replicas: 3}}
load: {{users: 9, duration: 20s}}
faults:
  - {{kind: down, target: "chat[0]", at: 3s, for: 6s}}
"""
FACTS = LoadFacts(0.0, 90.0, 9, "measured")


def promised(max_fails: int, shared: bool) -> tuple[Window, Window]:
    scenario = parse_scenario(WORKERS.format(max_fails=max_fails, shared=str(shared).lower()), "s.yaml")
    detect = detection_window(scenario, scenario.faults[0], FACTS)
    readmit = recovery_window(scenario, scenario.faults[0], FACTS)
    assert isinstance(detect, Window) and isinstance(readmit, Window)
    return detect, readmit


def test_workers_without_a_shared_zone_may_need_max_fails_each_before_the_first_disables() -> None:
    """Each of 4 workers counts on its own: the first reaches max_fails 3 by the 4·(3 − 1) + 1 = 9th failure
    overall at the latest (pigeonhole). Readmission is unchanged: every worker's last failure precedes the
    fault's end, and one answer, whichever worker asked, is healthy again."""
    (shared, shared_readmit), (own, own_readmit) = promised(3, True), promised(3, False)
    in_flight, arrival = 9 / 90, ARRIVAL_SLACK * 3 / 90  # users / rate; 2 · k / r per failure
    assert (shared.earliest, shared.latest) == pytest.approx((0.0, in_flight + 3 * arrival))
    assert (own.earliest, own.latest) == pytest.approx((0.0, in_flight + 9 * arrival))
    assert "in one of 4 workers that count on their own (no shared zone): up to 9 over all" in own.how
    assert own_readmit == shared_readmit
    # max_fails 1: the first failure disables it in whichever worker sees it
    assert promised(1, False)[0].latest == pytest.approx(promised(1, True)[0].latest)


# -- what nginx cannot honour -------------------------------------------------------------------

SCENARIO = """\
name: t
gateway:
  kind: nginx
  health_check: null
{gateway}
upstreams:
  - {{name: chat, replicas: 3}}
load: {{duration: 20s}}
"""


def problems(text: str, gateway: str | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml", gateway)
    return [str(p) for p in caught.value.problems]


def test_active_health_check_is_a_note_for_nginx() -> None:
    """A file written for gateways with active checks still runs on nginx (the comparison suite's files do):
    the check is listed as not applicable, and nginx's passive health does the work."""
    scenario = parse_scenario(REPO.joinpath("scenarios", "replica-reset.yaml").read_text(), "s.yaml", "nginx")
    assert any(n.startswith("gateway.health_check: not applicable to nginx: nginx OSS has no active health checks")
               for n in traps(scenario))


def test_counting_5xx_needs_retries_note() -> None:
    scenario = parse_scenario(SCENARIO.format(gateway="  outlier_detection: {consecutive_5xx: 2}"), "s.yaml")
    assert any(n.startswith("gateway.outlier_detection: not applicable to nginx: without retries nginx counts only")
               for n in traps(scenario))
    retried = parse_scenario(SCENARIO.format(gateway="  outlier_detection: {consecutive_5xx: 2}\n  retries: {}"),
                             "s.yaml")
    assert any("5xx answers are retried too" in n for n in traps(retried))


def test_unset_health_check_is_a_note() -> None:
    scenario = parse_scenario("name: t\ngateway: {kind: nginx}\nupstreams: [{name: chat, replicas: 2}]\n"
                              "load: {duration: 5s}\n", "s.yaml")
    assert any(n.startswith("gateway.health_check: not applicable to nginx") for n in traps(scenario))


@pytest.mark.parametrize(("block", "line", "field", "words"), [
    ("  outlier_detection: {base_ejection_time: 1500ms}", 5, "gateway.outlier_detection.base_ejection_time",
     "whole seconds"),
    ("  outlier_detection: {consecutive_5xx: 2, consecutive_gateway_failure: 2}", 5,
     "gateway.outlier_detection.consecutive_gateway_failure", "not both"),
    ("  outlier_detection: {max_ejection_percent: 50}", 5, "gateway.outlier_detection.max_ejection_percent", "no cap"),
    ("  outlier_detection: {}\n  nginx: {max_fails: 2}", 6, "gateway.nginx.max_fails", "set one of them"),
    ("  panic_threshold: 30", 5, "gateway.panic_threshold", "no panic mode"),
    ("  retries: {retry_on: [refused-stream]}", 5, "gateway.retries.retry_on", "HTTP/2"),
], ids=["ejection-ms", "both-counters", "ejection-cap", "two-sources", "panic", "refused-stream"])
def test_fields_nginx_cannot_honour(block: str, line: int, field: str, words: str) -> None:
    (problem,) = problems(SCENARIO.format(gateway=block))
    assert problem.startswith(f"s.yaml:{line}:") and f"{field}: nginx cannot honour this" in problem
    assert words in problem


def test_mcp_pool_is_an_error() -> None:
    found = problems("name: t\ngateway: {kind: nginx, health_check: null}\nupstreams:\n  - {name: chat}\n"
                     "  - {name: tools, kind: mcp}\nload: {duration: 5s}\n")
    assert any("upstreams[name='tools'].kind" in p and "sticky sessions are NGINX Plus only" in p for p in found)


def test_another_gateways_block_is_listed_for_the_gateway_that_runs() -> None:
    scenario = parse_scenario("name: t\ngateway: {kind: envoy, panic_threshold: 0, nginx: {max_fails: 2}}\n"
                              "upstreams: [{name: chat, replicas: 3}]\nload: {duration: 5s}\n", "s.yaml")
    assert "gateway.nginx: not applicable to envoy: these are nginx's own settings" in traps(scenario)


def test_log_view_says_what_went_wrong_in_nginx_s_own_words(tmp_path: Path) -> None:
    """The detail of a disabled server is the error line of its failed try, as `chaosgate up` prints it."""
    gw = gateway(PASSIVE)
    gw.write_config(upstreams(), tmp_path)
    failed = DISABLED_LINE.replace("[warn]", "[error]").replace(
        "upstream server temporarily disabled while reading", "upstream prematurely closed connection while reading")
    with (tmp_path / "nginx" / "error.log").open("a") as log:
        log.write(failed.replace("21000", "21001"))  # another server's failure is not this one's
        log.write(failed)
        log.write(DISABLED_LINE)
    health = gw.host_health()["127.0.0.1:21000"]
    assert health.flags == "temporarily disabled (max_fails reached)"
    assert health.detail == "error log: upstream prematurely closed connection while reading response header from upstream"
    assert health.why == f"{health.flags}; {health.detail}"
    with (tmp_path / "nginx" / "access.log").open("a") as log:
        log.write(access(time.time() + 1.0, "127.0.0.1:21000", "200"))
    assert gw.host_health()["127.0.0.1:21000"].detail == "", "answered again: no failure to tell"
