"""The reading and rewriting of the user's own haproxy.cfg (harness/own_config/haproxy.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import ComponentMissing, ScenarioError
from harness.gateways.base import UpstreamAddress
from harness.gateways.haproxy import HaproxyGateway, haproxy_binary
from harness.own_config import Block, RewriteJob, read_native
from harness.own_config.haproxy import NO_TIMEOUT, READER, parse_time, split_address, split_words
from harness.promise import Unknown, Window, detection_window, recovery_window
from harness.scenario import Gateway, Scenario, parse_scenario
from tests.missing import missing

FIXTURE = Path(__file__).resolve().parent / "haproxy"
CFG = FIXTURE / "haproxy.cfg"


def scenario_text(config: str = "haproxy.cfg", bind: str = "{chat_primary: chat}", replicas: int = 3,
                  target: str = "chat[0]", kind: str = "reset_peer") -> str:
    return f"""name: t
gateway: {{kind: haproxy, config: {config}, bind: {bind}}}
upstreams:
  - {{name: chat, kind: openai, replicas: {replicas}}}
load: {{users: 3, duration: 18s, wait: 100ms}}
faults:
  - {{kind: {kind}, target: "{target}", at: 4s, for: 7s}}
expect:
  - {{kind: upstream_unhealthy, target: "{target}", within: promised}}
"""


def scenario_with(tmp_path: Path, cfg: str, **kwargs: object) -> Scenario:
    (tmp_path / "haproxy.cfg").write_text(cfg)
    file = tmp_path / "s.yaml"
    text = scenario_text(**kwargs)  # type: ignore[arg-type]
    file.write_text(text)
    return parse_scenario(text, str(file))


def refused(tmp_path: Path, cfg: str, **kwargs: object) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        scenario_with(tmp_path, cfg, **kwargs)
    return [str(problem).replace(str(tmp_path) + os.sep, "") for problem in caught.value.problems]


# -- reading the fixture: every setting, with its line -------------------------------------------

def test_the_fixture_reads_every_setting_with_its_line() -> None:
    config = read_native("haproxy", CFG)
    assert list(config.blocks) == ["chat_primary"]  # `listen stats` has no servers
    block = config.blocks["chat_primary"]
    assert [(e.address, e.source.line) for e in block.endpoints] == [
        ("10.0.1.11:8000", 41), ("10.0.1.12:8000", 42), ("10.0.1.13:8000", 43)]
    g = block.settings
    assert g.health_check is not None and g.outlier_detection is not None and g.retries is not None
    hc = g.health_check
    assert (hc.path, hc.interval, hc.timeout, hc.unhealthy_threshold, hc.healthy_threshold, hc.expected_statuses) == \
        ("/health", 2.0, 0.5, 3, 2, [200])
    assert g.outlier_detection.consecutive_5xx == 5 and g.outlier_detection.max_ejection_percent == 100
    assert (g.haproxy.observe, g.haproxy.on_error, g.haproxy.fastinter, g.haproxy.downinter) == \
        ("layer7", "mark-down", None, None)
    assert (g.retries.num_retries, g.retries.retry_on, g.retries.per_try_timeout) == (1, ["connect-failure", "reset"], None)
    assert (g.connect_timeout, g.request_timeout, g.panic_threshold) == (1.0, 2.0, 0)
    where = {path[1:]: (source.line, source.setting) for path, source in block.where.items()}
    assert where == {
        ("health_check",): (40, "backend chat_primary: default-server check"),
        ("health_check", "interval"): (23, "defaults: default-server inter 2s"),
        ("health_check", "unhealthy_threshold"): (23, "defaults: default-server fall 3"),
        ("health_check", "healthy_threshold"): (23, "defaults: default-server rise 2"),
        ("health_check", "timeout"): (22, "defaults: timeout check 500ms"),
        ("health_check", "path"): (34, "backend chat_primary: option httpchk GET /health"),
        ("health_check", "expected_statuses"): (35, "backend chat_primary: http-check expect status 200"),
        ("outlier_detection",): (40, "backend chat_primary: default-server observe layer7"),
        ("haproxy", "observe"): (40, "backend chat_primary: default-server observe layer7"),
        ("outlier_detection", "consecutive_5xx"): (40, "backend chat_primary: default-server error-limit 5"),
        ("haproxy", "on_error"): (40, "backend chat_primary: default-server on-error mark-down"),
        ("retries",): (37, "backend chat_primary: retries 1"),
        ("retries", "num_retries"): (37, "backend chat_primary: retries 1"),
        ("retries", "retry_on"): (38, "backend chat_primary: retry-on conn-failure empty-response junk-response"),
        ("connect_timeout",): (19, "defaults: timeout connect 1s"),
        ("request_timeout",): (21, "defaults: timeout server 2s"),
    }
    assert config.outbound == ()  # log /dev/log is a socket on this machine, stderr a stream
    assert config.load_block == "chat_primary" and config.load_source is not None
    assert (config.load_source.line, config.load_source.setting) == (30, "frontend public: default_backend chat_primary")
    assert block.backup == (2,)
    (backup,) = block.unmodelled
    assert (backup.source.line, backup.source.setting) == (43, "backend chat_primary: server chat-spare backup")


def test_haproxy_defaults_where_the_file_is_silent(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("backend b\n    option httpchk GET /ready\n    server s 127.0.0.1:9 check observe layer4\n")
    block = READER.read(cfg, cfg.read_text()).blocks["b"]
    g = block.settings
    assert g.health_check is not None and g.outlier_detection is not None and g.retries is not None
    assert (g.health_check.interval, g.health_check.timeout, g.health_check.unhealthy_threshold,
            g.health_check.healthy_threshold) == (2.0, 2.0, 3, 2)  # no `timeout check`: inter bounds the check
    assert g.health_check.expected_statuses == list(range(200, 400))  # no http-check expect: 2xx and 3xx pass
    assert g.health_check.path == "/ready"
    assert g.outlier_detection.consecutive_5xx == 10 and g.haproxy.on_error == "fail-check"
    assert (g.retries.num_retries, g.retries.retry_on) == (3, ["connect-failure"])  # HAProxy retries 3 times
    assert (g.connect_timeout, g.request_timeout) == (NO_TIMEOUT, 0.0)
    assert ("gateway", "health_check", "interval") not in block.where  # a default: located where checks are on
    assert block.locate(("gateway", "health_check", "interval")).setting == "backend b: server s check"
    assert block.locate(("gateway", "retries")).line == 1  # not in the file at all: the backend's own line
    assert block.unmodelled == ()


def test_named_defaults_from_default_server_overrides_and_rstatus(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("""global
    spread-checks 5
defaults base
    timeout check 300ms
    default-server inter 1s fall 2
    retries 0
defaults other
    timeout check 9s
backend b from base
    option httpchk
    http-check send meth HEAD uri /live
    http-check expect rstatus ^(200|204)$
    default-server inter 500ms fastinter 250ms downinter 3s
    server s1 127.0.0.1:9 check rise 4
    server s2 127.0.0.1:10 check rise 4
""")
    block = READER.read(cfg, cfg.read_text()).blocks["b"]
    hc = block.settings.health_check
    assert hc is not None
    assert (hc.path, hc.interval, hc.timeout, hc.unhealthy_threshold, hc.healthy_threshold, hc.expected_statuses) == \
        ("/live", 0.5, 0.3, 2, 4, [200, 204])
    assert (block.settings.haproxy.fastinter, block.settings.haproxy.downinter,
            block.settings.haproxy.spread_checks) == (0.25, 3.0, 5)
    assert block.settings.retries is None and block.unmodelled == ()
    assert block.where[("gateway", "health_check", "healthy_threshold")].setting == "backend b: server s1 rise 4"
    assert block.where[("gateway", "health_check", "path")].line == 11
    assert block.where[("gateway", "haproxy", "spread_checks")].line == 2


def test_words_times_and_addresses() -> None:
    assert split_words('  http-check send hdr Host "a b" # comment\n') == ["http-check", "send", "hdr", "Host", "a b"]
    assert split_words("log-format %ci\\ %b\n") == ["log-format", "%ci %b"]
    assert (parse_time("1500"), parse_time("2s"), parse_time("1m"), parse_time("2x")) == (1.5, 2.0, 60.0, None)
    assert split_address("ipv4@10.0.0.1:80") == ("10.0.0.1", 80, False)
    assert split_address("::1:8080") == ("::1", 8080, False)
    assert split_address("backend.local") == ("backend.local", 0, False)
    assert split_address("/run/app.sock") == ("/run/app.sock", 0, True)


# -- what the promise model does not cover: Unknown, naming the line ------------------------------

UNMODELLED = [
    ("    server s1 127.0.0.1:9 check inter 1s\n    server s2 127.0.0.1:10 check inter 3s\n",
     "haproxy.cfg:7 (backend chat_primary: server s2 inter): inter differs between the servers of backend "
     "chat_primary: the promise model has one health check per pool"),
    ("    server s1 127.0.0.1:9 check agent-check agent-port 7000\n    server s2 127.0.0.1:10 check\n",
     "haproxy.cfg:6 (backend chat_primary: server s1 agent-check): an agent check can mark the "
     "server down or set its weight"),
    ("    server s1 127.0.0.1:9 check\n    server s2 127.0.0.1:10 check track chat_primary/s1\n",
     "haproxy.cfg:7 (backend chat_primary: server s2 track chat_primary/s1): its health is the tracked "
     "server's, not its own checks'"),
]


@pytest.mark.parametrize(("servers", "why"), UNMODELLED)
def test_unmodelled_settings_make_the_promise_unknown(tmp_path: Path, servers: str, why: str) -> None:
    cfg = "frontend f\n    mode http\n    bind :80\n    default_backend chat_primary\nbackend chat_primary\n" + servers + "    option httpchk GET /health\n"
    scenario = scenario_with(tmp_path, cfg, replicas=2)
    promise = detection_window(scenario, scenario.faults[0])
    assert isinstance(promise, Unknown)
    assert promise.why.replace(str(tmp_path) + os.sep, "") == why


def test_a_tcp_check_is_unknown(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path, "backend chat_primary\n    server s1 127.0.0.1:9 check\n", replicas=1)
    promise = detection_window(scenario, scenario.faults[0])
    assert isinstance(promise, Unknown)
    assert promise.why.endswith("haproxy.cfg:1 (backend chat_primary: check): a TCP connect check (no option "
                                "httpchk): the promise model checks with an HTTP GET")


def test_l7_retries_without_redispatch_are_unknown_with_observe(tmp_path: Path) -> None:
    cfg = ("backend chat_primary\n    option httpchk GET /health\n    retry-on 503\n"
           "    default-server check observe layer7 on-error mark-down\n"
           "    server s1 127.0.0.1:9\n    server s2 127.0.0.1:10\n")
    scenario = scenario_with(tmp_path, cfg, replicas=2)
    promise = detection_window(scenario, scenario.faults[0])
    assert isinstance(promise, Unknown) and "haproxy.cfg:3 (backend chat_primary: retry-on)" in promise.why
    assert "option redispatch 1" in promise.why


def test_the_backup_server_matters_only_for_faults_it_changes(tmp_path: Path) -> None:
    (tmp_path / "haproxy.cfg").write_text(CFG.read_text())
    for target, modelled in (("chat[0]", True), ("chat[1]", True), ("chat[*]", True), ("chat[2]", False)):
        text = scenario_text(target=target)
        scenario = parse_scenario(text, str(tmp_path / "s.yaml"))
        promise = detection_window(scenario, scenario.faults[0])
        assert isinstance(promise, Window) is modelled, (target, promise)
        if not modelled:
            assert isinstance(promise, Unknown)
            assert "haproxy.cfg:43 (backend chat_primary: server chat-spare backup): a backup server gets requests " \
                   "only once every primary is DOWN" in promise.why


def test_promised_windows_come_from_the_file() -> None:
    scenario = parse_scenario((FIXTURE / "reset.yaml").read_text(), str(FIXTURE / "reset.yaml"))
    detect, recover = detection_window(scenario, scenario.faults[0]), recovery_window(scenario, scenario.faults[0])
    assert isinstance(detect, Window) and isinstance(recover, Window)
    assert (detect.earliest, detect.latest, recover.earliest, recover.latest) == (4.0, 6.06, 2.0, 4.04)
    assert f"[from {CFG}: backend chat_primary at line 32; backend chat_primary: default-server check at line 40, " \
           "defaults: default-server inter 2s at line 23, defaults: default-server fall 3 at line 23" in detect.how


# -- the rewrite ----------------------------------------------------------------------------------

EXPECTED_DIFF = f"""--- {CFG}
+++ run/haproxy.cfg
@@ -3,11 +3,12 @@
 global
     log /dev/log local0
     log stderr format raw local0 info
-    chroot /var/lib/haproxy
-    stats socket /run/haproxy/admin.sock mode 660 level admin
+    # [chaosgate] chroot /var/lib/haproxy  # chaosgate runs HAProxy as the user running chaosgate, without root
+    stats socket ipv4@127.0.0.1:9101 level admin
+    log stderr format iso local0 info
     stats timeout 30s
-    user haproxy
-    group haproxy
+    # [chaosgate] user haproxy  # chaosgate runs HAProxy as the user running chaosgate, without root
+    # [chaosgate] group haproxy  # chaosgate runs HAProxy as the user running chaosgate, without root
     daemon
     maxconn 2000
 
@@ -24,8 +25,10 @@
     errorfile 503 /etc/haproxy/errors/503.http
 
 frontend public
-    bind 10.0.0.5:80
-    bind 10.0.0.5:8080
+    bind 127.0.0.1:9100
+    bind 127.0.0.1:9200
+    http-after-response set-header x-chaosgate-upstream "%si:%sp"
+    http-after-response del-header x-chaosgate-upstream if {{ res.hdr(x-chaosgate-upstream) -m str : }}
     http-request set-header X-Forwarded-Proto http
     default_backend chat_primary
 
@@ -38,12 +41,12 @@
     retry-on conn-failure empty-response junk-response
     option redispatch 1
     default-server check observe layer7 error-limit 5 on-error mark-down
-    server chat-a 10.0.1.11:8000 maxconn 100
-    server chat-b 10.0.1.12:8000 maxconn 100
-    server chat-spare 10.0.1.13:8000 maxconn 100 backup
+    server chat-a 127.0.0.1:8000 maxconn 100
+    server chat-b 127.0.0.1:8001 maxconn 100
+    server chat-spare 127.0.0.1:8002 maxconn 100 backup
 
 listen stats
-    bind 127.0.0.1:8404
+    bind 127.0.0.1:9201
     stats enable
     stats uri /stats
     stats refresh 10s
"""


def replicas() -> list[UpstreamAddress]:
    return [UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 8000 + i) for i in range(3)]


def test_the_rewrite_changes_only_what_it_must(tmp_path: Path) -> None:
    from harness.own_config import diff

    config = read_native("haproxy", CFG)
    ports = iter([9200, 9201])
    rewritten = READER.rewrite(config, RewriteJob({"chat_primary": "chat"}, replicas(), 9100, 9101, "127.0.0.1",
                                                  tmp_path, lambda: next(ports)))
    assert diff(config, rewritten.text, "run/haproxy.cfg") == EXPECTED_DIFF
    assert rewritten.facts == {"addresses": {("chat_primary", "chat-a"): "127.0.0.1:8000",
                                             ("chat_primary", "chat-b"): "127.0.0.1:8001",
                                             ("chat_primary", "chat-spare"): "127.0.0.1:8002"}}


def test_the_adapter_writes_the_users_file_and_learns_its_servers(tmp_path: Path) -> None:
    settings = Gateway(kind="haproxy", config=str(CFG), bind={"chat_primary": "chat"})
    gateway = HaproxyGateway(settings, 9100, 9101, "chat")
    path = gateway.write_config(replicas(), tmp_path)
    assert path == tmp_path / "haproxy.cfg"
    assert "    server chat-b 127.0.0.1:8001 maxconn 100\n" in path.read_text()
    assert (tmp_path / "haproxy.cfg.diff").read_text().startswith(f"--- {CFG}\n+++ {path}\n")
    assert gateway._addresses == {("chat_primary", "chat-a"): "127.0.0.1:8000",
                                  ("chat_primary", "chat-b"): "127.0.0.1:8001",
                                  ("chat_primary", "chat-spare"): "127.0.0.1:8002"}


def test_a_file_without_global_gets_one_for_the_stats_socket(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("frontend f\n    mode http\n    bind *:80\n    default_backend b\nbackend b\n    server s 10.1.1.1:80\n")
    config = READER.read(cfg, cfg.read_text())
    text = READER.rewrite(config, RewriteJob({"b": "chat"}, replicas()[:1], 9100, 9101, "127.0.0.1", tmp_path,
                                             lambda: 9300)).text
    assert text == ("global\n    stats socket ipv4@127.0.0.1:9101 level admin\n"
                    "    log stderr format iso local0 info\n"
                    "frontend f\n    mode http\n    bind 127.0.0.1:9100\n"
                    '    http-after-response set-header x-chaosgate-upstream "%si:%sp"\n'
                    "    http-after-response del-header x-chaosgate-upstream if "
                    "{ res.hdr(x-chaosgate-upstream) -m str : }\n"
                    "    default_backend b\nbackend b\n    server s 127.0.0.1:8000\n")


# -- refusals, each message quoted -----------------------------------------------------------------

BASE = "defaults\n    mode http\nfrontend f\n    bind :80\n    default_backend chat_primary\n"
REFUSALS = [
    (BASE + "backend chat_primary\n    server-template chat 3 chat.service.local:8000 check\n",
     ["haproxy.cfg:7: backend chat_primary: server-template chat: a server template's addresses come from DNS "
      "discovery: chaosgate puts one Toxiproxy listener in front of each replica, so bind a backend of `server` lines"]),
    (BASE + "resolvers dns\n    nameserver ns1 127.0.0.53:53\nbackend chat_primary\n"
            "    server a chat.local:8000 resolvers dns\n    server b 10.0.0.2:8000\n    server c 10.0.0.3:8000\n",
     ["haproxy.cfg:9: backend chat_primary: server a resolvers: the server's address is discovered through "
      "resolvers dns (DNS): chaosgate puts one Toxiproxy listener in front of each replica; remove resolvers"]),
    (BASE + "backend chat_primary\n    server a /run/chat.sock\n    server b 10.0.0.2:8000\n    server c 10.0.0.3:8000\n",
     ["haproxy.cfg:7: backend chat_primary: server a: /run/chat.sock is a socket, not a TCP address: chaosgate's "
      "replicas are TCP listeners"]),
    (BASE + "backend chat_primary\n    server a 10.0.0.1:8000 check port 8081\n    server b 10.0.0.2:8000\n"
            "    server c 10.0.0.3:8000\n",
     ["haproxy.cfg:7: backend chat_primary: server a port: port 8081 sends its health checks elsewhere than the "
      "server's address, past the replica's Toxiproxy listener, so faults would not reach them"]),
    (BASE + "backend chat_primary\n    server a 10.0.0.1:8000 chekc\n    server b 10.0.0.2:8000\n"
            "    server c 10.0.0.3:8000\n",
     ["haproxy.cfg:7: backend chat_primary: server a: unknown keyword(s) chekc (HAProxy 2.6's server keywords are "
      "in its configuration manual, 5.2)"]),
    (BASE + "backend chat_primary\n    default-server chek inter 1s\n    server a 10.0.0.1:8000\n"
            "    server b 10.0.0.2:8000\n    server c 10.0.0.3:8000\n",
     ["haproxy.cfg:7: backend chat_primary: default-server chek: not a server keyword of HAProxy 2.6 (its "
      "configuration manual, 5.2)"]),
    (BASE + "backend chat_primary\n    default-server inter 0 fall x on-error panic\n    server a 10.0.0.1:8000 check "
            "observe layer7\n    server b 10.0.0.2:8000\n    server c 10.0.0.3:8000\n",
     ["haproxy.cfg:7: backend chat_primary: inter: inter 0: expected a time such as 2s or 500ms",
      "haproxy.cfg:7: backend chat_primary: fall: fall x: expected a number of checks, 1 or more",
      "haproxy.cfg:7: backend chat_primary: on-error: on-error panic: expected fail-check, fastinter, sudden-death "
      "or mark-down"]),
    (BASE + "backend chat_primary from prod\n    server a 10.0.0.1:8000\n",
     ["haproxy.cfg:6: backend chat_primary from: no defaults section named 'prod' before this line"]),
    (BASE + 'backend chat_primary\n    http-request set-header X "unclosed\n',
     ["haproxy.cfg:7: http-request set-header X \"unclosed: cannot be read: a \" quote is not closed"]),
    ("    maxconn 10\n" + BASE,
     ["haproxy.cfg:1: maxconn: 'maxconn' is outside any section (HAProxy's sections: global, defaults, frontend, "
      "backend, listen, ...)"]),
    ("defaults\n    mode tcp\nfrontend f\n    bind :80\nbackend chat_primary\n    server a 10.0.0.1:8000\n",
     ["haproxy.cfg:2: frontend f: mode: the first frontend runs in mode tcp: chaosgate's load and its "
      "x-chaosgate-upstream header need mode http"]),
    ("frontend f\n    bind :80\nbackend chat_primary\n    server a 10.0.0.1:8000\n",
     ["haproxy.cfg:1: frontend f: mode: the first frontend runs in mode tcp (HAProxy's default without `mode "
      "http`): chaosgate's load and its x-chaosgate-upstream header need mode http"]),
    (BASE + "backend chat_primary\n    server a 10.0.0.1:8000\n    server b 10.0.0.2:8000\n"
            "    server c 10.0.0.3:8000\nbackend auth\n    server x 10.9.9.9:80\n",
     ["haproxy.cfg:11: backend auth: server x: sends traffic to 10.9.9.9:80, which is not this machine: bind the "
      "block it is in to a pool, change it to a loopback address, or allow it with --allow-host 10.9.9.9"]),
    ("global\n    log 10.0.0.9 local0\n" + BASE + "peers mesh\n    peer lb2 10.0.0.7:10000\n"
     "mailers ops\n    mailer smtp 192.0.2.25:25\nresolvers dns\n    nameserver ns1 10.0.0.53:53\n"
     "backend chat_primary\n    server a 10.0.0.1:8000\n    server b 10.0.0.2:8000\n    server c 10.0.0.3:8000\n",
     [f"haproxy.cfg:{line}: {setting}: sends traffic to {address}, which is not this machine: bind the block it is "
      f"in to a pool, change it to a loopback address, or allow it with --allow-host {address.split(':')[0]}"
      for line, setting, address in ((2, "global: log 10.0.0.9", "10.0.0.9:514"),
                                     (9, "peers mesh: peer lb2", "10.0.0.7:10000"),
                                     (11, "mailers ops: mailer smtp", "192.0.2.25:25"),
                                     (13, "resolvers dns: nameserver ns1", "10.0.0.53:53"))]),
    (BASE + "backend chat_primary\n    server a 10.0.0.1:8000\n",
     ["haproxy.cfg:6: backend chat_primary: backend 'chat_primary' has 1 endpoint(s) and pool 'chat' has 3 "
      "replica(s): each endpoint becomes one replica, so set replicas: 1 on upstream 'chat'"]),
]


@pytest.mark.parametrize(("cfg", "messages"), REFUSALS)
def test_refusals_name_the_line_and_why(tmp_path: Path, cfg: str, messages: list[str]) -> None:
    assert refused(tmp_path, cfg) == messages


def test_a_server_template_in_an_unbound_backend_runs_as_written(tmp_path: Path) -> None:
    cfg = (BASE + "backend chat_primary\n    server a 10.0.0.1:8000\n    server b 10.0.0.2:8000\n"
                  "    server c 10.0.0.3:8000\nbackend local\n    server-template w 2 localhost:9000\n")
    assert scenario_with(tmp_path, cfg).gateway.config == str(tmp_path / "haproxy.cfg")


def test_a_bind_to_a_missing_backend_is_refused_at_the_scenarios_line(tmp_path: Path) -> None:
    assert refused(tmp_path, CFG.read_text(), bind="{chat: chat}") == [
        "s.yaml:2:54: gateway.bind.chat: haproxy.cfg has no backend named 'chat' (its backends: chat_primary)",
        *[f"haproxy.cfg:{41 + i}: backend chat_primary: server {name}: sends traffic to 10.0.1.{11 + i}:8000, which is "
          "not this machine: bind the block it is in to a pool, change it to a loopback address, or allow it with "
          f"--allow-host 10.0.1.{11 + i}" for i, name in enumerate(["chat-a", "chat-b", "chat-spare"])]]


# -- chaosgate lint, verbatim ----------------------------------------------------------------------

def lint(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["lint", *args])
    return result.exit_code, result.output


def test_lint_of_the_raw_file_finds_the_retries_that_hide_resets_from_observe() -> None:
    """`chaosgate lint haproxy.cfg` supposes each backend's first server down for 10s, then resetting for 10s
    (harness/lint/__init__.py): a refused connection reaches observe before its retry, but a reset is retried
    (retry-on empty-response) and never counted, at the line of the backend's retry-on."""
    assert lint(str(CFG)) == (1, (
        f"{CFG}:38: error [haproxy.observe-retries] backend chat_primary: retry-on conn-failure empty-response "
        "junk-response: covers empty-response: chat_primary-first-endpoint-reset makes every try on the replica fail "
        "(the connection is reset after 0s); HAProxy retries each on another server and, as 2.6 reports only a "
        "request's last try to observe, never counts it, so observe never marks the replica DOWN (error-limit 5 is "
        "never reached; HAProxy issue #2679, fixed in 3.1); rely on an active check that sees the fault (path: "
        "/health/deep), or leave this failure out of retry_on\n"
        "1 file, 1 finding (1 failing)\n"))


def test_lint_of_the_scenarios_places_file_traps_in_the_file_and_fault_traps_in_the_scenario(tmp_path: Path) -> None:
    code, output = lint(str(FIXTURE / "reset.yaml"))
    assert output == (
        f"{CFG}:38: error [haproxy.observe-retries] backend chat_primary: retry-on conn-failure empty-response "
        "junk-response: covers empty-response: reset_peer@chat[0] makes every try on the replica fail (the "
        "connection is reset after 0s); HAProxy retries each on another server and, as 2.6 reports only a "
        "request's last try to observe, never counts it, so observe never marks the replica DOWN (error-limit 5 is "
        "never reached; HAProxy issue #2679, fixed in 3.1); rely on an active check that sees the fault (path: "
        "/health/deep), or leave this failure out of retry_on\n"
        "1 file, 1 finding (1 failing)\n")
    assert code == 1
    early = tmp_path / "early.yaml"
    early.write_text((FIXTURE / "all-down.yaml").read_text().replace("haproxy.cfg", str(CFG)).replace("at: 4s", "at: 1s"))
    code, output = lint(str(early))
    assert output == (
        f"{early}:23:37: warning [haproxy.startup-state] faults[0].at: down@chat[*] starts 1s into the load, maybe "
        "before HAProxy's first check of the replica (started within inter 2s of HAProxy's start, ended by 3s; the "
        "stack may be ready just as the load starts): HAProxy 2.6 starts servers UP with health = rise, so it "
        "routes to the broken replica until that check and then marks it DOWN after one failed check, not fall 3; "
        "start the fault at 3s or later\n"
        "1 file, 1 finding\n")
    assert code == 0



def test_the_shipped_example_is_the_tested_fixture() -> None:
    """scenarios/own-config/haproxy/ is the fixture whose all-down run tests/own_config/test_haproxy_runs.py passes."""
    example = FIXTURE.parents[2] / "scenarios" / "own-config" / "haproxy"
    assert sorted(p.name for p in example.iterdir()) == ["all-down.yaml", "haproxy.cfg"]
    for name in ("all-down.yaml", "haproxy.cfg"):
        assert (example / name).read_bytes() == (FIXTURE / name).read_bytes()
    code, output = lint(str(example / "all-down.yaml"))
    assert (code, output) == (0, "1 file, 0 findings\n")


def read_backend(tmp_path: Path, body: str) -> Block:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("backend b\n" + body)
    return READER.read(cfg, cfg.read_text()).blocks["b"]


@pytest.mark.parametrize(("retry_on", "words"), [
    ("conn-failure", ["connect-failure"]),
    ("conn-failure 502 503 504", ["gateway-error"]),
    ("all-retryable-errors", ["5xx"]),  # 501 aside (observe does not count it), and 0rtt-rejected
    ("conn-failure empty-response junk-response 500 502 503 504 response-timeout", ["5xx"]),
])
def test_retry_on_becomes_the_model_words_whose_haproxy_words_it_is(tmp_path: Path, retry_on: str,
                                                                    words: list[str]) -> None:
    block = read_backend(tmp_path, f"    option httpchk GET /h\n    timeout server 3s\n    retries 2\n"
                                   f"    retry-on {retry_on}\n    option redispatch 1\n"
                                   "    server s 127.0.0.1:9 check observe layer7 on-error mark-down\n")
    assert block.unmodelled == ()
    retries = block.settings.retries
    assert retries is not None and retries.retry_on == words
    assert retries.per_try_timeout == (3.0 if "response-timeout" in retry_on or "all-" in retry_on else None)


def test_more_unmodelled_and_modelled_server_settings(tmp_path: Path) -> None:
    block = read_backend(tmp_path, "    option httpchk GET /h\n    http-check connect\n"
                                   "    server s1 127.0.0.1:9 check disabled slowstart 10s on-marked-down "
                                   "shutdown-sessions\n    server s2 127.0.0.1:10 check weight 0\n")
    assert [(u.source.line, u.source.setting) for u in block.unmodelled] == [
        (4, "backend b: server s1 disabled"), (5, "backend b: server s2 weight 0"),
        (3, "backend b: http-check connect")]


def test_tls_where_the_load_or_the_replicas_speak_http_is_refused(tmp_path: Path) -> None:
    cfg = BASE + ("backend chat_primary\n    server a 10.0.0.1:8443 ssl verify required ca-file /etc/ca.pem\n"
                  "    server b 10.0.0.2:8000\n    server c 10.0.0.3:8000\n")
    assert refused(tmp_path, cfg) == [
        "haproxy.cfg:7: backend chat_primary: server a ssl: the server speaks TLS, and chaosgate's replicas behind "
        "Toxiproxy speak plain HTTP (a pool's tls uses chaosgate's test CA, which this file does not trust): bind "
        "a backend whose servers speak HTTP"]
    assert refused(tmp_path, BASE.replace("bind :80", "bind :443 ssl crt /etc/site.pem")) == [
        "haproxy.cfg:4: frontend f: bind :443 ssl: the first bind of the first frontend, where chaosgate's load "
        "goes, takes TLS: the load speaks plain HTTP; put a plain bind first"]


def test_master_worker_is_turned_off(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("global\n    master-worker\n    pidfile /run/haproxy.pid\n" + BASE + "backend chat_primary\n"
                   "    server a 10.0.0.1:8000\n")
    config = READER.read(cfg, cfg.read_text())
    text = READER.rewrite(config, RewriteJob({"chat_primary": "chat"}, replicas()[:1], 9100, 9101, "127.0.0.1",
                                             tmp_path, lambda: 9300)).text
    assert text.splitlines()[:5] == [
        "global", "    stats socket ipv4@127.0.0.1:9101 level admin", "    log stderr format iso local0 info",
        "    # [chaosgate] master-worker  # chaosgate runs one HAProxy process and watches it (no master forking workers)",
        "    # [chaosgate] pidfile /run/haproxy.pid  # chaosgate knows its child's pid; no file outside the run's folder"]


LISTEN = """global
    log stderr format raw local0 info
    master-worker
listen app
    mode http
    bind 192.0.2.1:80
    balance leastconn
    option httpchk HEAD /health
    server a 192.0.2.10:8000 check inter 1s
    server b 192.0.2.11:8000 check inter 1s
"""


def test_a_listen_section_is_both_the_frontend_and_the_bound_block(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(LISTEN)
    config = READER.read(cfg, LISTEN)
    hc = config.blocks["app"].settings.health_check
    assert hc is not None and (hc.interval, hc.path) == (1.0, "/health")
    text = READER.rewrite(config, RewriteJob({"app": "chat"}, replicas()[:2], 9100, 9101, "127.0.0.1", tmp_path,
                                             lambda: 9300)).text
    assert text.splitlines()[1:] == [
        "    stats socket ipv4@127.0.0.1:9101 level admin",
        "    log stderr format iso local0 info",
        "    log stderr format raw local0 info",
        "    # [chaosgate] master-worker  # chaosgate runs one HAProxy process and watches it (no master forking workers)",
        "listen app", "    mode http", "    bind 127.0.0.1:9100",
        '    http-after-response set-header x-chaosgate-upstream "%si:%sp"',
        "    http-after-response del-header x-chaosgate-upstream if { res.hdr(x-chaosgate-upstream) -m str : }",
        "    balance leastconn", "    option httpchk HEAD /health",
        "    server a 127.0.0.1:8000 check inter 1s", "    server b 127.0.0.1:8001 check inter 1s"]


@pytest.mark.parametrize("source", ["fixture", "listen"])
def test_haproxy_accepts_the_rewritten_files(tmp_path: Path, source: str) -> None:
    try:
        binary = haproxy_binary()
    except ComponentMissing as exc:
        missing(str(exc))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(CFG.read_text() if source == "fixture" else LISTEN)
    config = READER.read(cfg, cfg.read_text())
    binding = {"chat_primary": "chat"} if source == "fixture" else {"app": "chat"}
    ports = iter(range(9200, 9210))
    job = RewriteJob(binding, replicas()[:len(config.blocks[next(iter(binding))].endpoints)], 9100, 9101,
                     "127.0.0.1", tmp_path, lambda: next(ports))
    (tmp_path / "run.cfg").write_text(READER.rewrite(config, job).text)
    checked = subprocess.run([binary, "-c", "-f", str(tmp_path / "run.cfg")], capture_output=True, text=True,
                             timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout


def mutations(text: str) -> list[str]:
    """The fixture with each line dropped, cut to each of its words, or given a stray word or quote."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for i, line in enumerate(lines):
        words = line.split()
        variants = [""] + [" ".join(words[:n]) + "\n" for n in range(1, len(words))]
        variants += [line.rstrip("\n") + " 0\n", line.rstrip("\n") + ' "\n', line.replace(":", " "),
                     line.replace("server ", "server-template ")]
        out += ["".join(lines[:i] + [variant] + lines[i + 1:]) for variant in variants]
    return out


def test_no_mutation_of_the_fixture_gets_a_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    outcomes = {"read": 0, "refused": 0}
    for text in mutations(CFG.read_text()):
        try:
            config = READER.read(cfg, text)
        except ScenarioError as exc:
            assert all(p.file == str(cfg) and p.message for p in exc.problems)
            outcomes["refused"] += 1
            continue
        outcomes["read"] += 1
        for name, block in config.blocks.items():
            job = RewriteJob({name: "chat"}, replicas()[:len(block.endpoints)], 9100, 9101, "127.0.0.1", tmp_path,
                             lambda: 9300)
            READER.rewrite(config, job)
    assert outcomes["read"] > 100 and outcomes["refused"] > 10, outcomes


def test_a_load_pool_bound_to_a_backend_the_frontend_does_not_reach_is_refused(tmp_path: Path) -> None:
    cfg = BASE + ("backend chat_primary\n    server a 10.0.0.1:8000\n    server b 10.0.0.2:8000\n"
                  "    server c 10.0.0.3:8000\nbackend other\n    server x 10.0.0.9:8000\n")
    assert refused(tmp_path, cfg, bind="{other: chat}", replicas=1) == [
        "haproxy.cfg:5: frontend f: default_backend chat_primary: the load's /v1/chat/completions goes to backend "
        "'chat_primary', but its pool 'chat' is bound to backend 'other': route it there, or bind 'chat' to the "
        "backend it reaches",
        *[f"haproxy.cfg:{7 + i}: backend chat_primary: server {name}: sends traffic to 10.0.0.{1 + i}:8000, which is "
          "not this machine: bind the block it is in to a pool, change it to a loopback address, or allow it with "
          f"--allow-host 10.0.0.{1 + i}" for i, name in enumerate("abc")]]
    routed = BASE.replace("    default_backend chat_primary\n", "    use_backend chat_primary if { path_beg /v1 }\n")
    assert scenario_with(tmp_path, routed + "backend chat_primary\n    server a 127.0.0.1:8000\n",
                         replicas=1).gateway.config is not None  # a use_backend rule: not judged
