"""Attach to a running gateway (``chaosgate run --attach``), end to end: the test starts Envoy itself from a
user-style envoy.yaml whose cluster points at the addresses chaosgate printed (read from the run folder's
attach.json), as a platform team's gateway would be reconfigured; chaosgate never starts or stops it. With
--attach-admin the verdicts are those of the managed run of the same scenario; without it, the run is judged
from the clients' side (no health events are journalled) and the gateway outlives the run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.gateways.envoy import envoy_binary
from harness.journal import read_journal
from harness.processes import free_port
from tests.integration.conftest import processes_of_run, require_components
from tests.own_config.servers import ROOT
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "attach"
CHAOSGATE = [sys.executable, "-m", "harness.cli"]

# A user's envoy.yaml: its own names, comments and settings; the endpoints are what chaosgate printed.
USER_ENVOY = """\
# deploy/envoy.yaml of a platform team (the test's stand-in): one listener, one cluster.
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
    - name: public
      address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: public
                route_config:
                  virtual_hosts:
                    - name: models
                      domains: ["*"]
                      routes:
                        - match: {{prefix: /}}
                          route: {{cluster: chat, timeout: 2s}}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: chat
      type: STATIC
      connect_timeout: 1s
      lb_policy: ROUND_ROBIN
      common_lb_config:
        healthy_panic_threshold: {{value: 0}}
        update_merge_window: 0s   # health changes reach the workers at once
      health_checks:
        - timeout: 0.5s
          interval: 1s
          no_traffic_interval: 1s
          unhealthy_threshold: 2
          healthy_threshold: 2
          http_health_check: {{path: /health}}
      load_assignment:
        cluster_name: chat
        endpoints:
          - lb_endpoints:
{endpoints}
"""


def _endpoint(address: str) -> str:
    host, port = address.rsplit(":", 1)
    return f"              - endpoint: {{address: {{socket_address: {{address: {host}, port_value: {port}}}}}}}"


@contextmanager
def user_envoy(config: Path, admin: int) -> Iterator[subprocess.Popen[bytes]]:
    """Envoy started by the test (not by chaosgate) from ``config``; stopped on exit."""
    with (config.parent / "user-envoy.log").open("wb") as log:
        envoy = subprocess.Popen([envoy_binary(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                                  "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{admin}/ready"), 30, "the user's Envoy to be ready")
        yield envoy
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _attached_run(scenario: Path, out: Path, with_admin: bool, tmp: Path) -> tuple[subprocess.CompletedProcess[str],
                                                                                   bool]:
    """``chaosgate run --attach`` of ``scenario``, with the user's Envoy started from the printed addresses; the
    CLI's result, and whether the user's Envoy was still running when the run had ended."""
    port, admin = free_port(), free_port()
    name = scenario.stem
    args = [*CHAOSGATE, "run", str(scenario), "--out", str(out), "--quiet", "--attach", f"http://127.0.0.1:{port}",
            "--attach-wait", "60", *(["--attach-admin", f"http://127.0.0.1:{admin}"] if with_admin else [])]
    run = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    attach_file = out / f"attach-{name}" / "attach.json"
    wait_until(lambda: attach_file.exists() or run.poll() is not None, 60, "chaosgate to print the upstreams")
    assert attach_file.exists(), run.communicate()
    config = _user_config(tmp, json.loads(attach_file.read_text()), port, admin)
    with user_envoy(config, admin) as envoy:
        stdout, stderr = run.communicate(timeout=180)
        still_running = envoy.poll() is None
    return subprocess.CompletedProcess(args, run.returncode, stdout, stderr), still_running


def _user_config(tmp: Path, printed: dict[str, Any], port: int, admin: int) -> Path:
    """The user's envoy.yaml, its cluster's endpoints the addresses chaosgate printed."""
    config = tmp / "envoy.yaml"
    config.write_text(USER_ENVOY.format(admin=admin, port=port,
                                        endpoints="\n".join(_endpoint(a) for a in printed["pools"]["chat"])))
    return config


def _verdicts(run_dir: Path) -> list[tuple[str, bool]]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return [(v["kind"], v["passed"]) for v in summary["expectations"]]


def test_attached_envoy_gets_the_verdicts_of_the_managed_run(tmp_path: Path) -> None:
    require_components()
    scenario = HERE / "reset.yaml"
    managed = subprocess.run([*CHAOSGATE, "run", str(scenario), "--out", str(tmp_path / "managed"), "--quiet"],
                             cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert managed.returncode == 0, managed.stdout + managed.stderr
    attached, still_running = _attached_run(scenario, tmp_path / "attached", True, tmp_path)
    assert attached.returncode == 0, attached.stdout + attached.stderr
    assert still_running  # chaosgate never stops a gateway it did not start
    expected = [("error_rate", True), ("upstream_unhealthy", True), ("no_traffic_to", True),
                ("upstream_healthy", True), ("error_rate", True)]
    assert _verdicts(tmp_path / "managed" / "attach-reset") == expected
    assert _verdicts(tmp_path / "attached" / "attach-reset") == expected
    run_dir = tmp_path / "attached" / "attach-reset"
    events = read_journal(run_dir / "journal.jsonl")
    assert [e["attach"] for e in events if e["type"] == "run.started"] == [
        {"url": json.loads((run_dir / "attach.json").read_text())["gateway"],
         "admin_url": json.loads((run_dir / "attach.json").read_text())["gateway_admin"]}]
    # the gateway's view was read through its admin API: chat[0] went unhealthy and came back
    assert [e["healthy"] for e in events if e["type"] == "health" and e["replica"] == "chat[0]"] == [True, False, True]
    # chaosgate started Envoy in the managed run (its output in logs/envoy.log), and not in the attached one
    assert (tmp_path / "managed" / "attach-reset" / "logs" / "envoy.log").exists()
    assert not (tmp_path / "attached" / "attach-reset" / "logs" / "envoy.log").exists()
    assert "attach: point the gateway's upstreams at chaosgate's Toxiproxy listeners" in attached.stderr


def test_attached_without_admin_is_judged_from_the_clients_side(tmp_path: Path) -> None:
    require_components()
    result, still_running = _attached_run(HERE / "all-down.yaml", tmp_path / "out", False, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert still_running
    run_dir = tmp_path / "out" / "attach-all-down"
    assert _verdicts(run_dir) == [("error_rate", True), ("all_down_response", True), ("max_request_time", True)]
    events = read_journal(run_dir / "journal.jsonl")
    assert not [e for e in events if e["type"] in ("health", "hosts")]  # no view of health was read
    assert "Not read: chaosgate attached to the gateway at http://127.0.0.1:" in (run_dir / "index.html").read_text()
    served = {e["replica"] for e in events if e["type"] == "request" and e.get("error") is None}
    assert served == {"chat[0]", "chat[1]"}


def test_up_attached_prints_the_upstreams_and_the_gateways_view_until_interrupted(tmp_path: Path) -> None:
    require_components()
    port, admin = free_port(), free_port()
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        up = subprocess.Popen([*CHAOSGATE, "up", str(HERE / "reset.yaml"), "--out", str(tmp_path / "up"), "--attach",
                               f"http://127.0.0.1:{port}", "--attach-admin", f"http://127.0.0.1:{admin}"],
                              cwd=ROOT, stdout=stdout, stderr=stderr)
    run_dir = tmp_path / "up" / "attach-reset"
    try:
        wait_until(lambda: (run_dir / "attach.json").exists() or up.poll() is not None, 60, "the printed upstreams")
        assert (run_dir / "attach.json").exists(), err.read_text()
        printed = json.loads((run_dir / "attach.json").read_text())
        with user_envoy(_user_config(tmp_path, printed, port, admin), admin) as envoy:
            wait_until(lambda: out.read_text().rstrip().endswith("}"), 60, "the endpoints")
            endpoints = json.loads(out.read_text())
            assert endpoints["gateway"] == f"http://127.0.0.1:{port}"
            assert endpoints["gateway_admin"] == f"http://127.0.0.1:{admin}"
            assert {name: r["proxy_url"] for name, r in endpoints["replicas"].items()} == \
                {name: f"http://{address}" for name, address in printed["replicas"].items()}
            for replica in ("chat[0]", "chat[1]", "chat[2]"):  # the gateway's view, read at --attach-admin
                wait_until(lambda r=replica: f" {r} healthy" in err.read_text(), 30, f"{replica} reported healthy")
            up.send_signal(signal.SIGINT)
            up.wait(timeout=30)
            assert envoy.poll() is None  # the user's gateway outlives chaosgate's stack
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 130, err.read_text()
    assert "Traceback" not in err.read_text()
    wait_until(lambda: not processes_of_run(run_dir), 5, "every process chaosgate started to end")


# A user's haproxy.cfg: its own frontend and backend names, its servers the addresses chaosgate printed.
USER_HAPROXY = """\
# deploy/haproxy.cfg of a platform team (the test's stand-in)
global
    stats socket ipv4@127.0.0.1:{admin} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 1h
    timeout server 2s
    timeout check 500ms
    retries 0
frontend public
    bind 127.0.0.1:{port}
    default_backend models
backend models
    balance roundrobin
    option httpchk GET /health
    default-server check inter 1s fall 2 rise 2
{servers}
"""


def test_attached_haproxy_is_observed_through_its_stats_socket(tmp_path: Path) -> None:
    """HAProxy's view of a file chaosgate did not write, read at --attach-admin tcp://HOST:PORT: its servers have
    the user's names, and are matched to replicas by the address they dial."""
    require_components("haproxy")
    from harness.gateways.haproxy import haproxy_binary

    port, admin = free_port(), free_port()
    out = tmp_path / "out"
    args = [*CHAOSGATE, "run", str(HERE / "reset.yaml"), "--gateway", "haproxy", "--out", str(out), "--quiet",
            "--attach", f"http://127.0.0.1:{port}", "--attach-admin", f"tcp://127.0.0.1:{admin}", "--attach-wait", "60"]
    run = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    attach_file = out / "attach-reset" / "attach.json"
    wait_until(lambda: attach_file.exists() or run.poll() is not None, 60, "chaosgate to print the upstreams")
    assert attach_file.exists(), run.communicate()
    printed = json.loads(attach_file.read_text())
    config = tmp_path / "haproxy.cfg"
    config.write_text(USER_HAPROXY.format(admin=admin, port=port, servers="\n".join(
        f"    server gpu-{i} {address}" for i, address in enumerate(printed["pools"]["chat"]))))
    with (tmp_path / "user-haproxy.log").open("wb") as log:
        haproxy = subprocess.Popen([haproxy_binary(), "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        stdout, stderr = run.communicate(timeout=180)
        still_running = haproxy.poll() is None
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
    assert run.returncode == 0, stdout + stderr
    assert still_running
    assert _verdicts(out / "attach-reset") == [("error_rate", True), ("upstream_unhealthy", True),
                                               ("no_traffic_to", True), ("upstream_healthy", True),
                                               ("error_rate", True)]
    events = read_journal(out / "attach-reset" / "journal.jsonl")
    flags = [e["flags"] for e in events if e["type"] == "health" and e["replica"] == "chat[0]"]
    assert len(flags) == 3 and flags[1].startswith("DOWN")  # HAProxy's own words, from its stats socket


# The team files of tests/own_config/<kind>/ (gateway.config), each run managed and attached: the scenario,
# its run folder's name, whether the view is read at --attach-admin (Envoy's admin) or from the logs the
# rewritten file makes the gateway keep (nginx), and the verdicts both runs must reach.
OWN_FILES = {
    "envoy": ("own-envoy-reset", True, [("error_rate", True), ("upstream_unhealthy", True), ("no_traffic_to", True),
                                        ("upstream_healthy", True)]),
    "nginx": ("own-nginx-reset", False, [("error_rate", True), ("upstream_unhealthy", True), ("error_rate", True),
                                         ("no_traffic_to", True), ("upstream_healthy", True)]),
}


@pytest.mark.parametrize("kind", list(OWN_FILES))
def test_an_attached_gateway_running_the_rewritten_file_gets_the_verdicts_of_the_managed_run(
        kind: str, tmp_path: Path) -> None:
    """The issue's attach test with the user's own file: tests/own_config/<kind>/reset.yaml names a team's file
    (gateway.config). Managed, chaosgate starts the gateway from the rewritten file; attached, the test starts
    the gateway itself with the rewritten file and the command line chaosgate printed (attach.json), and
    chaosgate reads its view at --attach-admin (Envoy) or from the logs the file makes it keep (nginx). Both runs
    reach the same verdicts."""
    require_components(kind)
    name, with_admin, expected = OWN_FILES[kind]
    scenario = ROOT / "tests" / "own_config" / kind / "reset.yaml"
    managed = subprocess.run([*CHAOSGATE, "run", str(scenario), "--out", str(tmp_path / "managed"), "--quiet"],
                             cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert managed.returncode == 0, managed.stdout + managed.stderr
    port, admin = free_port(), free_port()
    out = tmp_path / "attached"
    run = subprocess.Popen([*CHAOSGATE, "run", str(scenario), "--out", str(out), "--quiet", "--attach",
                            f"http://127.0.0.1:{port}", "--attach-wait", "60",
                            *(["--attach-admin", f"http://127.0.0.1:{admin}"] if with_admin else [])],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    attach_file = out / name / "attach.json"
    wait_until(lambda: attach_file.exists() or run.poll() is not None, 60, "chaosgate to print the upstreams")
    assert attach_file.exists(), run.communicate()
    printed = json.loads(attach_file.read_text())
    assert printed["config"] and Path(printed["config"]).parent == out / name and printed["command"]
    with (tmp_path / f"user-{kind}.log").open("wb") as log:
        gateway = subprocess.Popen(printed["command"], stdout=log, stderr=subprocess.STDOUT)
    try:
        stdout, stderr = run.communicate(timeout=180)
        still_running = gateway.poll() is None
    finally:
        if kind == "nginx":
            subprocess.run([*printed["command"], "-s", "stop"], capture_output=True, timeout=30)
        else:
            gateway.terminate()
        gateway.wait(timeout=30)
    assert run.returncode == 0, stdout + stderr
    assert still_running  # chaosgate never stops a gateway it did not start
    # chaosgate started the gateway in the managed run (its output in logs/<kind>.log), and not in the attached one
    assert (tmp_path / "managed" / name / "logs" / f"{kind}.log").exists()
    assert not (out / name / "logs" / f"{kind}.log").exists()
    assert _verdicts(tmp_path / "managed" / name) == expected
    assert _verdicts(out / name) == expected
    events = read_journal(out / name / "journal.jsonl")
    assert [e["healthy"] for e in events if e["type"] == "health" and e["replica"] == "chat[0]"][:2] == [True, False]
