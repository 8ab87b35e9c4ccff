"""nginx's own nginx.conf (harness/own_config/nginx.py): what the reader understands, at which line; what
it refuses, word for word; the rewrite, line for line; the lint and the promises from the user's file."""

from __future__ import annotations

import difflib
import subprocess
from itertools import count
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import ComponentMissing, ScenarioError
from harness.gateways.base import UpstreamAddress
from harness.gateways.nginx import ACCESS_FORMAT, NginxGateway, nginx_binary
from harness.own_config import READERS, kind_of_file, read_native
from harness.own_config.base import NativeConfig, RewriteJob, Source
from harness.promise import detection_window, recovery_window
from harness.promise.window import Never, Unknown, Window
from harness.scenario import load_scenario, parse_scenario
from tests.missing import missing

FIXTURE = Path(__file__).resolve().parent / "nginx"
CONF = FIXTURE / "nginx.conf"
PROXY_CONF = FIXTURE / "conf.d" / "proxy.conf"
READER = READERS["nginx"]

SMALL = """worker_processes 1;
events {}
http {
    upstream chat {
        server 127.0.0.1:8001;
        server 127.0.0.1:8002;
    }
    server {
        listen 8080;
        location / { proxy_pass http://chat; }
    }
}
"""


def read(tmp_path: Path, text: str, name: str = "nginx.conf") -> NativeConfig:
    path = tmp_path / name
    path.write_text(text)
    return READER.read(path, text)


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        read(tmp_path, text)
    return "\n".join(str(p) for p in caught.value.problems).replace(str(tmp_path), "DIR")


# -- reading -----------------------------------------------------------------------------


def test_the_fixture_is_read_with_every_setting_at_its_line() -> None:
    config = read_native("nginx", CONF)
    assert kind_of_file(CONF) == "nginx" and config.block_word == "upstream"
    (block,) = config.blocks.values()
    assert block.name == "llm_backends" and block.source == Source(str(CONF), 28, "upstream llm_backends")
    assert [(e.address, e.source.line) for e in block.endpoints] == [
        ("10.20.0.11:8000", 29), ("10.20.0.12:8000", 30), ("10.20.0.13:8000", 31)]
    assert block.backup == (2,)  # the third server line: replica chat[2]
    s = block.settings
    assert s.kind == "nginx" and s.health_check is None and s.outlier_detection is None
    assert (s.nginx.max_fails, s.nginx.fail_timeout, s.nginx.worker_processes, s.nginx.shared_zone) == (2, 3.0, 2, False)
    assert (s.connect_timeout, s.request_timeout) == (1.0, 5.0)
    assert s.retries is not None
    assert (s.retries.num_retries, s.retries.retry_on, s.retries.per_try_timeout) == (1, ["gateway-error"], 5.0)
    lines = {path: (Path(src.file).name, src.line, src.setting) for path, src in block.where.items()}
    assert lines == {
        ("gateway", "nginx", "max_fails"): ("nginx.conf", 29, "upstream llm_backends: server max_fails"),
        ("gateway", "nginx", "fail_timeout"): ("nginx.conf", 29, "upstream llm_backends: server fail_timeout"),
        ("gateway", "nginx", "worker_processes"): ("nginx.conf", 5, "worker_processes 2"),
        ("gateway", "nginx", "shared_zone"): ("nginx.conf", 28, "upstream llm_backends: no zone"),
        ("gateway", "connect_timeout"): ("proxy.conf", 5, "proxy_connect_timeout 1s"),
        ("gateway", "request_timeout"): ("proxy.conf", 6, "proxy_read_timeout 5s"),
        ("gateway", "retries"): ("nginx.conf", 42, "proxy_next_upstream error timeout http_502 http_503 http_504 "
                                                    "non_idempotent"),
        ("gateway", "retries", "retry_on"): ("nginx.conf", 42, "proxy_next_upstream error timeout http_502 http_503 "
                                                               "http_504 non_idempotent"),
        ("gateway", "retries", "num_retries"): ("nginx.conf", 43, "proxy_next_upstream_tries 2"),
        ("gateway", "retries", "per_try_timeout"): ("proxy.conf", 6, "proxy_read_timeout 5s"),
    }
    assert block.unmodelled == () and config.outbound == ()
    # The adapter's own rendering of these settings gives back what the file says (the reader is its inverse).
    adapter = NginxGateway(s, 0, 0, "chat")
    assert adapter.passive()[:2] == (2, 3.0)
    assert adapter.next_upstream() == (["error", "timeout", "http_502", "http_503", "http_504", "non_idempotent"], 2)


def test_nginx_defaults_when_the_file_sets_nothing(tmp_path: Path) -> None:
    (block,) = read(tmp_path, SMALL).blocks.values()
    s = block.settings
    assert (s.nginx.max_fails, s.nginx.fail_timeout, s.connect_timeout, s.request_timeout) == (1, 10.0, 60.0, 60.0)
    # proxy_next_upstream's default "error timeout" with unlimited tries: one retry on the other server
    assert s.retries is not None and (s.retries.num_retries, s.retries.retry_on) == (1, ["connect-failure", "reset"])
    assert set(block.where) == {("gateway", "nginx", "worker_processes"), ("gateway", "nginx", "shared_zone")}


def test_the_location_the_load_reaches_gives_the_settings(tmp_path: Path) -> None:
    text = SMALL.replace("location / { proxy_pass http://chat; }",
                         "location / { proxy_pass http://chat; proxy_next_upstream off; }\n"
                         "        location /v1/ { proxy_pass http://chat; proxy_next_upstream_tries 3;\n"
                         "            proxy_read_timeout 1m30s; }")
    (block,) = read(tmp_path, text).blocks.values()
    assert block.settings.retries is not None and block.settings.retries.num_retries == 2
    assert block.settings.request_timeout == 90.0 and block.where[("gateway", "request_timeout")].line == 12
    no_retries = text.replace("proxy_next_upstream_tries 3;", "proxy_next_upstream off;")
    (block,) = read(tmp_path, no_retries).blocks.values()
    assert block.settings.retries is None


def test_what_the_promise_does_not_model_is_listed_at_its_line(tmp_path: Path) -> None:
    text = SMALL.replace("server 127.0.0.1:8001;", "least_conn;\n        server 127.0.0.1:8001 weight=2 max_fails=3;") \
        .replace("server 127.0.0.1:8002;", "server 127.0.0.1:8002 down max_conns=10;") \
        .replace("proxy_pass http://chat;", "proxy_pass http://chat; proxy_next_upstream error http_429 non_idempotent;")
    (block,) = read(tmp_path, text).blocks.values()
    assert [(u.source.line, u.why) for u in block.unmodelled] == [
        (5, "least_conn picks the server with the fewest connections, not in turn: the promise's rate per server does "
            "not hold"),
        (7, "a server marked down never gets a request, so the replica bound to it is never tried"),
        (7, "a server at max_conns is skipped as a failed one is"),
        (4, "its servers have different weights ([1, 2]): the promise assumes each server gets an equal turn"),
        (7, "max_fails=1 fail_timeout=10s differ from the first server's (3, 10s): the promise has one pair per "
            "upstream"),
        (11, "nginx counts http_429 answers as failures: the promise knows http_502 http_503 http_504 and http_500 "
             "http_502 http_503 http_504"),
    ]


def test_values_beyond_the_promise_model_are_unmodelled_not_clipped_silently(tmp_path: Path) -> None:
    text = SMALL.replace("server 127.0.0.1:8001;", "server 127.0.0.1:8001 max_fails=500 fail_timeout=0s;") \
        .replace("server 127.0.0.1:8002;", "server 127.0.0.1:8002 max_fails=500 fail_timeout=0s;")
    (block,) = read(tmp_path, text).blocks.values()
    assert [(u.source.line, u.why) for u in block.unmodelled] == [
        (5, "fail_timeout 0s: the promise's formulas take whole seconds from 1s"),
        (5, "max_fails 500: the promise's formulas go up to 100")]


def test_every_address_outside_the_upstreams_is_outbound(tmp_path: Path) -> None:
    text = SMALL.replace("location / {", "resolver 10.0.0.2 valid=30s;\n        access_log syslog:server=10.1.1.1:5140,"
                         "tag=gw;\n        location /auth { proxy_pass http://10.9.9.9:9000/check; }\n        location / {")
    config = read(tmp_path, text)
    assert [(e.address, e.source.line, e.source.setting) for e in config.outbound] == [
        ("10.0.0.2:53", 10, "resolver 10.0.0.2 valid=30s"),
        ("10.1.1.1:5140", 11, "access_log syslog:server=10.1.1.1:5140,tag=gw"),
        ("10.9.9.9:9000", 12, "proxy_pass http://10.9.9.9:9000/check"),
    ]
    stream = text + ("stream {\n    upstream db { server 10.5.0.1:5432; }\n    server { listen 5432; proxy_pass db; }\n"
                     "    server { listen 6379; proxy_pass cache.internal:6379; }\n}\n")
    config = read(tmp_path, stream)
    assert [(e.address, e.source.line, e.source.setting) for e in config.outbound if e.source.line > 12] == [
        ("10.5.0.1:5432", 17, "stream upstream db: server 10.5.0.1:5432"),
        ("cache.internal:6379", 19, "proxy_pass cache.internal:6379"),
    ]
    assert len(config.outbound) == 5


def test_max_fails_0_turns_detection_off_and_the_promise_says_so(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "proxy.conf").write_text(PROXY_CONF.read_text())
    (tmp_path / "nginx.conf").write_text(CONF.read_text().replace("max_fails=2", "max_fails=0"))
    (tmp_path / "reset.yaml").write_text((FIXTURE / "reset.yaml").read_text())
    scenario = load_scenario(tmp_path / "reset.yaml")
    never = detection_window(scenario, scenario.faults[0])
    assert isinstance(never, Never) and never.why.startswith("max_fails 0 turns nginx's failure accounting off [from ")


# -- refusals, word for word ---------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "message"), [
    ("listen 8080;", "listen 8080", 'DIR/nginx.conf:9: directive "listen" is not terminated by ";"'),
    ("worker_processes 1;", "worker_processes 1;\ninclude missing.conf;",
     "DIR/nginx.conf:2: include: an include that cannot be resolved: DIR/missing.conf (no such file or directory)"),
    ("server 127.0.0.1:8002;", "server unix:/run/llm.sock;",
     "DIR/nginx.conf:6: server unix:/run/llm.sock: a unix socket cannot become a replica's listener; chaosgate binds "
     "servers with a host:port"),
    ("server 127.0.0.1:8002;", "server llm.internal:8002 resolve;",
     "DIR/nginx.conf:6: server llm.internal:8002 resolve: the server's addresses come from DNS at run time "
     "(dynamic), so chaosgate cannot replace them with the replicas' listeners"),
    ("proxy_pass http://chat;", "proxy_pass http://$backend;",
     "DIR/nginx.conf:10: proxy_pass http://$backend: an address in variables is resolved per request, so chaosgate "
     "cannot tell where it sends traffic; proxy to an upstream block"),
    ("server 127.0.0.1:8002;", "server 127.0.0.1:8002;\n        state /var/lib/nginx/chat.state;",
     "DIR/nginx.conf:7: state /var/lib/nginx/chat.state: the servers come from a file NGINX Plus's API rewrites, "
     "not from this upstream block; chaosgate binds server lines it can replace"),
    ("server 127.0.0.1:8002;", "server 127.0.0.1:8002 fail_timeout=soon;",
     "DIR/nginx.conf:6: server 127.0.0.1:8002 fail_timeout=soon: fail_timeout=soon: expected an nginx time in "
     "seconds such as 10s"),
])
def test_a_file_that_cannot_be_used_is_refused_at_its_line(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in SMALL
    assert refusal(tmp_path, SMALL.replace(old, new)) == message


def test_a_scenario_whose_file_sends_traffic_off_the_machine_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(SMALL.replace("    server {", "    upstream embeddings {\n"
                                                       "        server 10.3.0.7:9000;\n    }\n    server {"))
    text = "name: x\ngateway: {kind: nginx, config: nginx.conf}\nupstreams: [{name: chat, replicas: 2}]\n" \
           "load: {duration: 5s}\n"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, str(tmp_path / "s.yaml"))
    assert [str(p).replace(str(tmp_path), "DIR") for p in caught.value.problems] == [
        "DIR/nginx.conf:9: upstream embeddings: server 10.3.0.7:9000: sends traffic to 10.3.0.7:9000, which is not "
        "this machine: bind the block it is in to a pool, change it to a loopback address, or allow it with "
        "--allow-host 10.3.0.7"]


# -- the rewrite ------------------------------------------------------------------------------


def job(tmp_path: Path, binding: dict[str, str], replicas: int = 3) -> RewriteJob:
    ports = count(30000)
    upstreams = [UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 21000 + i) for i in range(replicas)]
    return RewriteJob(binding, upstreams, 18080, 0, "127.0.0.1", tmp_path, lambda: next(ports))


def changes(before: str, after: str) -> list[str]:
    return [line.rstrip("\n") for line in difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_the_rewrite_changes_only_what_it_must(tmp_path: Path) -> None:
    config = read_native("nginx", CONF)
    rewritten = READER.rewrite(config, job(tmp_path, {"llm_backends": "chat"}))
    p = tmp_path.resolve() / "nginx"
    assert changes(config.text, rewritten.text) == [
        "-pid /run/nginx.pid;",
        "-error_log /var/log/nginx/error.log;",
        f"+pid {p}/nginx.pid;",
        f"+error_log {p}/error.log warn;",
        "+    # Added by chaosgate: the observer's log format, and the picked replica's address as a header.",
        f"+    log_format chaosgate escape=json '{ACCESS_FORMAT}';",
        "+    map $upstream_addr $chaosgate_upstream {",
        '+        "~(?<last>[0-9a-fA-F.:\\[\\]]+:[0-9]+)$" $last;',
        '+        default "";',
        "+    }",
        "+    add_header x-chaosgate-upstream $chaosgate_upstream always;",
        *[f"+    {kind}_temp_path {p}/tmp/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")],
        "-    access_log /var/log/nginx/access.log main;",
        f"+    access_log {p}/access.log chaosgate;",
        "-    include conf.d/proxy.conf;",
        f"+    include {FIXTURE}/conf.d/proxy.conf;",
        "-        server 10.20.0.11:8000 max_fails=2 fail_timeout=3s;",
        "-        server 10.20.0.12:8000 max_fails=2 fail_timeout=3s;",
        "-        server 10.20.0.13:8000 max_fails=2 fail_timeout=3s backup;",
        "+        server 127.0.0.1:21000 max_fails=2 fail_timeout=3s;",
        "+        server 127.0.0.1:21001 max_fails=2 fail_timeout=3s;",
        "+        server 127.0.0.1:21002 max_fails=2 fail_timeout=3s backup;",
        "-        listen 80 default_server;",
        "-        listen [::]:80 default_server;",
        "+        location = /.chaosgate/ready { access_log off; return 204; }  # chaosgate: readiness",
        "+        listen 127.0.0.1:18080 default_server;",
        "+        listen [::1]:30000 default_server;",
        "+",
        "+# Added by chaosgate for this run: in the foreground, its pid and error log in the run's folder.",
        "+daemon off;",
    ]
    assert rewritten.facts == {"prefix": str(p), "error_log": f"{p}/error.log", "access_log": f"{p}/access.log",
                               "included": {}}


def test_blocks_on_one_line_and_servers_without_listen_are_rewritten(tmp_path: Path) -> None:
    text = ("events {}\nhttp {\n    upstream chat { server 10.0.0.1:80; server 10.0.0.2:80 weight=3; }\n"
            "    server { location / { add_header x-team llm; proxy_pass http://chat; access_log off; } }\n"
            "    server { listen 9001; location / { access_log off; return 204; } }\n"
            "    server { listen 9000; return 404; }\n}\n")
    config = read(tmp_path, text)
    rewritten = READER.rewrite(config, job(tmp_path, {"chat": "chat"}, 2))
    lines = rewritten.text.splitlines()
    assert "    upstream chat { server 127.0.0.1:21000; server 127.0.0.1:21001 weight=3; }" in lines
    # the server that proxies the load's path listens on the load's port (without listen it would take port 80),
    # with the readiness location; every other listener moves to a free port
    assert lines[lines.index("    server {") + 1:lines.index("    server {") + 5] == [
        "        location = /.chaosgate/ready { access_log off; return 204; }  # chaosgate: readiness",
        "        listen 127.0.0.1:18080;  # chaosgate: not port 80 (no listen: nginx's default)",
        "        location / {",
        # a block with add_header of its own does not inherit the http one: it gets the header too
        "        add_header x-chaosgate-upstream $chaosgate_upstream always;  # chaosgate"]
    assert "    server { listen 127.0.0.1:30001; return 404; }" in lines
    # the observer needs the proxied requests logged; a location that proxies nothing may stay silent
    assert f"        add_header x-team llm; proxy_pass http://chat; access_log {tmp_path}/nginx/access.log chaosgate; }} }}" \
        in lines
    assert "    server { listen 127.0.0.1:30000; location / { access_log off; return 204; } }" in lines


def test_the_load_gets_a_plain_listener(tmp_path: Path) -> None:
    text = SMALL.replace("listen 8080;", "listen 443 ssl http2;\n        listen 8080 reuseport;")
    lines = READER.rewrite(read(tmp_path, text), job(tmp_path, {"chat": "chat"}, 2)).text.splitlines()
    assert lines[lines.index("    server {") + 2:lines.index("    server {") + 4] == [
        "        listen 127.0.0.1:30000 ssl http2;", "        listen 127.0.0.1:18080 reuseport;"]
    tls_only = SMALL.replace("listen 8080;", "listen 443 ssl;")
    with pytest.raises(ScenarioError) as caught:
        READER.rewrite(read(tmp_path, tls_only), job(tmp_path, {"chat": "chat"}, 2))
    assert [str(p).replace(str(tmp_path), "DIR") for p in caught.value.problems] == [
        "DIR/nginx.conf:9: listen 443 ssl: the load sends plain HTTP, and every listen of the server that proxies its "
        "path serves TLS (ssl): add a plain listen to that server"]


def test_included_files_that_change_run_from_copies(tmp_path: Path) -> None:
    """Debian's layout: the server blocks in sites-enabled/ (a glob include), snippets included relatively."""
    (tmp_path / "sites-enabled").mkdir()
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "proxy.conf").write_text("proxy_read_timeout 5s;\n")
    (tmp_path / "sites-enabled" / "a-static").write_text("server {\n    listen 8081;\n    return 404;\n}\n")
    (tmp_path / "sites-enabled" / "llm").write_text(
        "server {\n    listen 80;\n    location / {\n        include snippets/proxy.conf;\n"
        "        proxy_pass http://chat;\n    }\n}\n")
    config = read(tmp_path, SMALL.replace("    server {\n        listen 8080;\n        location / { proxy_pass "
                                          "http://chat; }\n    }\n", "    include sites-enabled/*;\n"))
    assert config.blocks["chat"].settings.request_timeout == 5.0
    out = tmp_path / "run"
    rewritten = READER.rewrite(config, job(out, {"chat": "chat"}, 2))
    conf = out.resolve() / "nginx" / "conf"
    copies = {f"{tmp_path}/sites-enabled/a-static": f"{conf}/0-a-static", f"{tmp_path}/sites-enabled/llm": f"{conf}/1-llm"}
    assert rewritten.facts["included"] == copies
    assert f"    include {conf}/0-a-static; include {conf}/1-llm;\n" in rewritten.text
    assert (conf / "1-llm").read_text() == (
        "server {\n"
        "    location = /.chaosgate/ready { access_log off; return 204; }  # chaosgate: readiness\n"
        "    listen 127.0.0.1:18080;\n"  # the server that proxies the load's path: the load's port
        "    location / {\n"
        f"        include {tmp_path}/snippets/proxy.conf;\n"  # relative to the main file's folder, as nginx reads it
        "        proxy_pass http://chat;\n    }\n}\n")
    assert "    listen 127.0.0.1:30000;\n" in (conf / "0-a-static").read_text()
    assert (conf / "1-llm.diff").read_text().startswith(f"--- {tmp_path}/sites-enabled/llm\n+++ {conf}/1-llm\n")
    assert (tmp_path / "snippets" / "proxy.conf").read_text() == "proxy_read_timeout 5s;\n"  # the user's files: as written
    # nginx takes it: the whole rewritten configuration passes its own test
    (out / "nginx" / "tmp").mkdir(parents=True)
    (out / "nginx.conf").write_text(rewritten.text)
    try:
        nginx = nginx_binary()
    except ComponentMissing as exc:
        missing(str(exc))
    checked = subprocess.run([nginx, "-t", "-p", str(out / "nginx"), "-e", str(out / "nginx" / "error.log"), "-c",
                              str(out / "nginx.conf")], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


# -- lint and promises from the user's file ------------------------------------------------------


def test_lint_names_the_traps_of_the_raw_file_at_their_lines() -> None:
    result = CliRunner().invoke(main, ["lint", str(CONF)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{CONF}:28: warning [nginx.worker-state] upstream llm_backends: no zone: is false with worker_processes 2: "
        "each worker counts failures on its own, so a broken server is marked down once per worker and keeps getting "
        "requests from the workers that have not seen max_fails failures yet; set shared_zone: true "
        "(in this file: a `zone NAME 64k;` directive in the upstream block)\n")
    assert "1 file, 1 finding" in result.stderr


def test_the_promised_windows_come_from_the_file_with_their_lines() -> None:
    scenario = load_scenario(FIXTURE / "reset.yaml")
    fault = scenario.faults[0]
    detect, recover = detection_window(scenario, fault), recovery_window(scenario, fault)
    assert isinstance(detect, Window) and isinstance(recover, Window)
    # max_fails 2 in one of 2 workers without a zone: up to 3 failures, on one of the 2 primaries (not the backup)
    assert "up to 3 over all" in detect.how and "on one of 2 servers" in detect.how
    assert recover.latest == pytest.approx(3 + 1 + 3 / 18 + 2 * 2 / 18 + (recover.latest - 3 - 1 - 3 / 18 - 4 / 18))
    assert "fail_timeout 3s" in recover.how
    origin = (f"[from {CONF}: upstream llm_backends at line 28; upstream llm_backends: server max_fails at line 29, "
              "upstream llm_backends: server fail_timeout at line 29, worker_processes 2 at line 5, upstream "
              f"llm_backends: no zone at line 28, proxy_connect_timeout 1s at {PROXY_CONF}:5, proxy_read_timeout 5s "
              f"at {PROXY_CONF}:6, proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent at "
              "line 42, proxy_next_upstream_tries 2 at line 43]")
    assert detect.how.endswith(origin) and recover.how.endswith(origin)


def test_backup_servers_in_promises() -> None:
    scenario = load_scenario(FIXTURE / "reset.yaml")
    on_backup = scenario.faults[0].model_copy(update={"target": "chat[2]"})
    never = detection_window(scenario, on_backup)
    assert isinstance(never, Never) and never.why.startswith(
        f"chat[2] is a backup server ({CONF}:31 (upstream llm_backends: server 10.20.0.13:8000)): nginx sends it "
        "requests only while every primary server is unavailable, and the fault leaves 2 primary server(s) serving")
    all_down = load_scenario(FIXTURE / "all-down.yaml")
    detect = detection_window(all_down, all_down.faults[0])
    assert isinstance(detect, Window) and "on one of 3 servers" in detect.how  # the backup is in turn once all fail
    recover = recovery_window(all_down, all_down.faults[0])
    assert recover == Unknown(
        "chat[*] includes backup server(s) [2]: nginx sends a backup requests only while every primary server is "
        "unavailable, so once a primary is readmitted it may never try the backup again, and nothing shows it "
        "readmitted")


def test_an_unmodelled_setting_makes_the_promise_unknown_naming_it(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "proxy.conf").write_text(PROXY_CONF.read_text())
    (tmp_path / "nginx.conf").write_text(CONF.read_text().replace("    upstream llm_backends {\n",
                                                                  "    upstream llm_backends {\n        ip_hash;\n"))
    (tmp_path / "reset.yaml").write_text((FIXTURE / "reset.yaml").read_text())
    scenario = load_scenario(tmp_path / "reset.yaml")
    assert detection_window(scenario, scenario.faults[0]) == Unknown(
        f"{tmp_path}/nginx.conf:29 (ip_hash): ip_hash picks a server by client address, not in turn: the promise's "
        "rate per server does not hold")


def test_the_shipped_example_is_the_fixture() -> None:
    """scenarios/own-config/nginx/ is this fixture's reset run, unchanged, so what the integration tests run
    (tests/own_config/test_nginx_live.py) is what the example shows."""
    shipped = FIXTURE.parents[2] / "scenarios" / "own-config" / "nginx"
    for name in ("nginx.conf", "conf.d/proxy.conf"):
        assert (shipped / name).read_bytes() == (FIXTURE / name).read_bytes(), name
    ours, theirs = (FIXTURE / "reset.yaml").read_text(), (shipped / "reset.yaml").read_text()
    assert ours.split("\n", 1)[1] == theirs.split("\n", 1)[1]
    assert load_scenario(shipped / "reset.yaml").gateway.config == str(shipped / "nginx.conf")
