"""HAProxy as the gateway under test: config rendered from the scenario, health from its stats socket.

Debian 12's HAProxy 2.6. The common gateway fields map onto HAProxy's own knobs (docs/gateways.md):
health_check → ``option httpchk`` + ``check inter/fall/rise`` + ``timeout check``; outlier_detection
→ ``observe layer7 error-limit N on-error mark-down``; retries → ``retries N`` + ``option redispatch 1``
+ ``retry-on``; connect/request timeouts → ``timeout connect/server``. Its view of every server is
read from the runtime API (``show stat`` on the stats socket in the run's folder).
"""

from __future__ import annotations

import csv
import io
import re
import socket
import subprocess
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.durations import Duration
from harness.errors import StackError
from harness.gateways.base import (
    UPSTREAM_HEADER,
    GatewayProcessBase,
    HostHealth,
    SettingIssue,
    UpstreamAddress,
    UpstreamTlsTrust,
    debian_binary,
    explicitly_set,
    fallback_fit_issues,
    milliseconds,
    url_host,
)

if TYPE_CHECKING:
    from harness.scenario import Gateway, Retries, Scenario

MCP_SESSION_HEADER = "mcp-session-id"
LOG_LINE = "log stderr format iso local0 info"  # the global log line: every line begins with its ISO timestamp
# HAProxy's own words when a server changes state, e.g. '2026-12-07T04:48:06.175278+00:00 Server chat/chat-0 is DOWN,
# reason: Layer4 connection problem, ...' (also 'is UP, reason: ...', 'is DOWN (leaving forced maintenance)').
_STATE_LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\S+) Server (?P<backend>[^/\s]+)/(?P<server>\S+) is "
                         r"(?P<state>UP|DOWN)\b[,.]?\s*(?P<why>.*)$")
# Envoy's retry_on words → HAProxy's retry-on keywords (HTTP/1 upstreams; refused-stream is HTTP/2 only).
RETRY_ON = {
    "connect-failure": ["conn-failure"],
    "reset": ["empty-response", "junk-response"],
    "5xx": ["conn-failure", "empty-response", "junk-response", "500", "501", "502", "503", "504"],
    "gateway-error": ["conn-failure", "502", "503", "504"],
}


def retry_on_words(retries: Retries) -> list[str]:
    """HAProxy's ``retry-on`` keywords for the scenario's retries (``response-timeout`` with a per-try timeout)."""
    words = list(dict.fromkeys(w for name in retries.retry_on for w in RETRY_ON.get(name, [])))
    if retries.per_try_timeout is not None:
        words.append("response-timeout")
    return words


class HaproxyOptions(BaseModel):
    """HAProxy settings that have no common gateway field (``gateway.haproxy`` in a scenario)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fastinter: Duration | None = Field(default=None, gt=0, description="Check interval while a server is changing "
                                       "state (HAProxy's default: inter).")
    downinter: Duration | None = Field(default=None, gt=0, description="Check interval while a server is fully "
                                       "down (HAProxy's default: inter).")
    spread_checks: int = Field(default=0, ge=0, le=50, description="Random noise on every check interval, in "
                                                                   "percent (HAProxy's spread-checks).")
    observe: Literal["layer4", "layer7"] = Field(
        default="layer7", description="What outlier_detection watches on live traffic: connection errors only "
                                      "(layer4), or also 500/502/503/504 answers (layer7).")
    on_error: Literal["fail-check", "fastinter", "sudden-death", "mark-down"] = Field(
        default="mark-down", description="What HAProxy does after outlier_detection.consecutive_5xx errors in a "
                                         "row (mark-down: the server is down until it passes `rise` checks).")


def haproxy_binary() -> str:
    """Debian's haproxy; ComponentMissing if set-up has not installed it."""
    return debian_binary("haproxy")


_ms = milliseconds


def _server_name(upstream: UpstreamAddress) -> str:
    return upstream.replica.replace("[", "-").replace("]", "")


class HaproxyGateway(GatewayProcessBase):
    """HAProxy 2.6 configured from a scenario's ``gateway`` block."""

    kind = "haproxy"
    config_name = "haproxy.cfg"
    runtimes = frozenset({"local"})

    def _init_state(self) -> None:
        """HAProxy's runtime API (the stats socket, level admin) listens on ``admin_port`` on 127.0.0.1: a
        TCP socket, because a unix socket's path is limited to about 100 bytes and run folders can be deeper."""
        self._addresses: dict[tuple[str, str], str] = {}  # (backend, server) -> host:port

    @property
    def admin_url(self) -> str | None:
        return f"tcp://{url_host(self.published_host)}:{self.published_admin_port}"

    # -- configuration -------------------------------------------------------------
    def config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> str:
        s = self.settings
        pools = list(dict.fromkeys(u.pool for u in upstreams))
        lines = [
            "# Rendered by chaosgate from the scenario's gateway block (harness/gateways/haproxy.py).",
            "global",
            f"    stats socket ipv4@{self.bind_address}:{self.admin_port} level admin",
            # ISO timestamps with microseconds: its own stamp of each server going DOWN or UP (harness/gateway_events.py)
            f"    {LOG_LINE}",
            *([f"    spread-checks {s.haproxy.spread_checks}"] if s.haproxy.spread_checks else []),
            "defaults",
            "    mode http",
            "    log global",
            "    option httplog",
            f"    timeout connect {_ms(s.connect_timeout)}",
            "    timeout client 1h",
            *self._server_timeout(),
            *([f"    timeout check {_ms(s.health_check.timeout)}"] if s.health_check else []),
            *self._retries(),
            "frontend ingress",
            f"    bind {self.bind_address}:{self.listen_port}",
            # The replica's address on every answer, HAProxy's own error pages included.
            f'    http-after-response set-header {UPSTREAM_HEADER} "%si:%sp"',
            f"    http-after-response del-header {UPSTREAM_HEADER} if {{ res.hdr({UPSTREAM_HEADER}) -m str : }}",
            *[f"    use_backend {pool} if {{ path_beg /{pool}/ }}" for pool in pools],
            f"    default_backend {self.load_pool}",
        ]
        fallback_of = {u.pool: u.fallback for u in upstreams}
        for pool in pools:
            lines += self._backend(pool, [u for u in upstreams if u.pool == pool],
                                   [u for u in upstreams if fallback_of[pool] is not None and u.pool == fallback_of[pool]])
        return "\n".join(lines) + "\n"

    def _server_timeout(self) -> list[str]:
        s = self.settings
        if s.retries is not None and s.retries.per_try_timeout is not None:
            return [f"    timeout server {_ms(s.retries.per_try_timeout)}"]  # HAProxy's timeout is per try
        # HAProxy's server timeout is an inactivity timeout (0: none; HAProxy warns about it).
        return [f"    timeout server {_ms(s.request_timeout)}" if s.request_timeout > 0 else "    timeout server 0"]

    def _retries(self) -> list[str]:
        retries = self.settings.retries
        if retries is None:
            return ["    retries 0"]  # HAProxy retries 3 times by default; the scenario says none
        return [f"    retries {retries.num_retries}",
                "    option redispatch 1",  # every retry goes to another server, as Envoy's previous_hosts
                f"    retry-on {' '.join(retry_on_words(retries))}"]

    def _backend(self, pool: str, upstreams: list[UpstreamAddress],
                 backups: list[UpstreamAddress] | None = None) -> list[str]:
        """The pool's backend; the replicas of its fallback pool (``backups``) are its ``backup`` servers, which
        HAProxy uses, all of them (``option allbackups``), only while every other server of the backend is DOWN."""
        s, o = self.settings, self.settings.haproxy
        backups = backups or []
        lines = ["", f"backend {pool}", "    balance roundrobin",
                 f"    http-request set-path %[path,regsub(^/{pool}/,/)] if {{ path_beg /{pool}/ }}"]
        if any(u.kind == "mcp" for u in upstreams):
            # An MCP session lives in one replica: learn which from the session id it hands out, and send
            # every request carrying that id back to it (to another, which answers 404, if it is DOWN).
            lines += ["    stick-table type string len 128 size 100k expire 1h",
                      f"    stick on req.hdr({MCP_SESSION_HEADER})",
                      f"    stick store-response res.hdr({MCP_SESSION_HEADER})"]
        server_opts: list[str] = []
        if (hc := s.health_check) is not None:
            statuses = "|".join(str(code) for code in hc.expected_statuses)
            lines += [f"    option httpchk GET {hc.path}", f"    http-check expect rstatus ^({statuses})$"]
            server_opts += ["check", f"inter {_ms(hc.interval)}", f"fall {hc.unhealthy_threshold}",
                            f"rise {hc.healthy_threshold}"]
            if o.fastinter is not None:
                server_opts.append(f"fastinter {_ms(o.fastinter)}")
            if o.downinter is not None:
                server_opts.append(f"downinter {_ms(o.downinter)}")
            if (od := s.outlier_detection) is not None and od.consecutive_5xx:
                server_opts += [f"observe {o.observe}", f"error-limit {od.consecutive_5xx}", f"on-error {o.on_error}"]
        if server_opts:
            lines.append(f"    default-server {' '.join(server_opts)}")
        if backups:
            lines.append("    option allbackups")
        tls = {u.tls for u in [*upstreams, *backups]}
        if len(tls) > 1:
            raise StackError(f"the replicas of {pool!r} disagree on TLS: {sorted(map(str, tls))}")
        trust = tls.pop() if tls else None
        for u in [*upstreams, *backups]:
            self._addresses[(pool, _server_name(u))] = f"{u.host}:{u.port}"
            backup = " backup" if u.pool != pool else ""
            lines.append(f"    server {_server_name(u)} {u.host}:{u.port}{backup}{_server_tls(trust)}")
        return lines

    def write_config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> Path:
        if self.settings.config is not None:  # the user's own haproxy.cfg (harness/own_config/haproxy.py)
            path = self.write_own_config(upstreams, run_dir, self.config_name)
            # which server of which backend is which replica, for host_health (show stat names them)
            self._addresses = dict(self.own_facts.get("addresses", {}))
            return path
        text = self.config(upstreams, run_dir)
        path = run_dir / self.config_name
        path.write_text(text)
        return path

    def argv(self, config: Path) -> list[str]:
        # -db: foreground, no daemon; one process, its log on stderr (the run's logs/haproxy.log).
        return [haproxy_binary(), "-db", "-f", str(config)]

    # -- its own stamps of each health change (harness/gateway_events.py) ---------------
    @staticmethod
    def health_event_logs(run_dir: Path) -> list[tuple[Path, bool]]:
        """HAProxy's log (its stderr: the run's logs/haproxy.log), plain text with ISO timestamps."""
        return [(run_dir / "logs" / "haproxy.log", True)]

    def parse_health_event(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """A 'Server B/S is DOWN|UP' line, with HAProxy's own timestamp (microseconds)."""
        match = _STATE_LINE.match(str(record.get("line", "")))
        if match is None or (address := self._addresses.get((match["backend"], match["server"]))) is None:
            return []
        try:
            ts = datetime.fromisoformat(match["ts"]).timestamp()
        except ValueError:
            return []
        return [{"ts": ts, "address": address, "healthy": match["state"] == "UP",
                 "what": f"{match['state']} {match['why'].split(', ')[0].removeprefix('reason: ')}".strip()}]

    # -- observation ----------------------------------------------------------------
    def _command(self, command: str) -> str:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect((self.published_host, self.published_admin_port))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise StackError(f"haproxy's stats socket {self.admin_url} did not answer: {exc}") from exc
        return b"".join(chunks).decode(errors="replace")

    def is_ready(self) -> bool:
        try:
            return "Name: HAProxy" in self._command("show info")
        except StackError:
            return False

    def host_health(self) -> dict[str, HostHealth]:
        """``show stat``: a server is healthy while its status is UP (also 'UP 1/3', going down but
        still routed) or 'no check'; DOWN (also 'DOWN 1/2', coming back), MAINT, DRAIN/NOLB are not."""
        rows = csv.DictReader(io.StringIO(self._command("show stat").removeprefix("# ")))
        health: dict[str, HostHealth] = {}
        for row in rows:
            address = self._addresses.get((row.get("pxname", ""), row.get("svname", "")))
            if address is None and not self._addresses and row.get("svname") not in ("FRONTEND", "BACKEND"):
                address = row.get("addr") or None  # a file chaosgate did not write (--attach): the server's address
            if address is None:
                continue
            status = row.get("status", "")
            healthy = status.startswith("UP") or status == "no check"
            flags = " ".join(part for part in (status, row.get("check_status", "")) if part)
            # e.g. 'Layer4 connection problem: Connection refused', 'Layer7 wrong status: HTTP status check returned code <3C>503<3E>'
            detail = ": ".join(part for part in (row.get("check_desc", ""), row.get("last_chk", "")) if part)
            health[address] = HostHealth(healthy, flags, detail)
        if not health:
            raise StackError("haproxy's show stat listed none of the configured servers")
        return health

    def version(self) -> str:
        out = subprocess.run([haproxy_binary(), "-v"], capture_output=True, text=True, check=False).stdout
        first = out.splitlines()[0] if out else ""
        return first.split()[2] if first.startswith("HAProxy version") else first.strip()

    # -- what the configuration means ------------------------------------------------
    @staticmethod
    def settings_issues(scenario: Scenario) -> list[SettingIssue]:
        g = scenario.gateway
        issues: list[SettingIssue] = []
        gw = ("gateway",)
        if g.health_check is not None and getattr(g.health_check, "mcp", None) is not None:
            issues.append(SettingIssue((*gw, "health_check", "mcp"),
                                       "the haproxy adapter checks replicas with a GET of health_check.path only"))
        if g.health_check is not None:
            issues.append(SettingIssue((*gw, "health_check", "no_traffic_interval"),
                                       "HAProxy checks every `inter` whether or not the backend carried traffic",
                                       error=False))
        if (od := g.outlier_detection) is not None:
            if g.health_check is None:
                issues.append(SettingIssue((*gw, "outlier_detection"),
                                           "HAProxy's passive checks (observe) need active health checks: a server "
                                           "they mark down comes back only by passing `rise` checks; set health_check"))
            if od.consecutive_gateway_failure is not None:
                issues.append(SettingIssue((*gw, "outlier_detection", "consecutive_gateway_failure"),
                                           "HAProxy's observe cannot count 502/503/504 apart from other errors; "
                                           "use consecutive_5xx (observe layer7 error-limit N)"))
            issues.append(SettingIssue((*gw, "outlier_detection", "interval"),
                                       "HAProxy acts on the Nth error in a row at once; there is no review interval",
                                       error=False))
            issues.append(SettingIssue((*gw, "outlier_detection", "base_ejection_time"),
                                       "a server marked down by observe comes back when it passes `rise` health "
                                       "checks, not after an ejection time", error=False))
            if explicitly_set(g, "outlier_detection", "max_ejection_percent") and od.max_ejection_percent < 100:
                issues.append(SettingIssue((*gw, "outlier_detection", "max_ejection_percent"),
                                           "HAProxy has no cap on how many servers observe marks down (it behaves "
                                           "as max_ejection_percent: 100)"))
            elif not explicitly_set(g, "outlier_detection", "max_ejection_percent"):
                issues.append(SettingIssue((*gw, "outlier_detection", "max_ejection_percent"),
                                           "HAProxy has no cap on how many servers observe marks down (as 100)",
                                           error=False))
        issues += _panic_issues(g, "HAProxy")
        if (retries := g.retries) is not None:
            if retries.retriable_status_codes:
                issues.append(SettingIssue((*gw, "retries", "retriable_status_codes"), "the haproxy adapter "
                                           "renders no per-status retries yet (Envoy's retriable-status-codes)"))
            if "refused-stream" in retries.retry_on:
                issues.append(SettingIssue((*gw, "retries", "retry_on"),
                                           "refused-stream is an HTTP/2 condition; HAProxy speaks HTTP/1.1 to the "
                                           "replicas (use connect-failure, reset, 5xx or gateway-error)"))
            if retries.per_try_timeout is not None:
                issues.append(SettingIssue((*gw, "request_timeout"),
                                           "with retries.per_try_timeout, HAProxy's `timeout server` is per try and "
                                           "nothing limits the whole request", error=False))
        for i, pool in enumerate(scenario.upstreams):
            if getattr(pool, "dns", None) is not None:
                issues.append(SettingIssue(("upstreams", i, "dns"),
                                           "the haproxy adapter reaches replicas by address only (no DNS resolution yet)"))
        issues += fallback_fit_issues(scenario, "HAProxy", "backend (as backup servers)", levels=1)
        return issues



def _server_tls(trust: UpstreamTlsTrust | None) -> str:
    """TLS to a replica: the test CA as the only trust anchor, SNI and the expected name, for requests and
    health checks alike (checks go over TLS when the server has ``ssl``; ``check-sni`` is their SNI)."""
    if trust is None:
        return ""
    return (f" ssl verify required ca-file {trust.ca_file} sni str({trust.server_name}) verifyhost {trust.server_name}"
            f" check-sni {trust.server_name} alpn http/1.1 ssl-min-ver TLSv1.2")


def _panic_issues(g: Gateway, product: str) -> list[SettingIssue]:
    """Neither HAProxy nor nginx has a panic mode: they never route to servers they marked down."""
    if explicitly_set(g, "panic_threshold"):
        if g.panic_threshold > 0:
            return [SettingIssue(("gateway", "panic_threshold"),
                                 f"{product} has no panic mode: it never routes to servers it marked down "
                                 "(it behaves as panic_threshold: 0); set panic_threshold: 0 or leave it out")]
        return []
    return [SettingIssue(("gateway", "panic_threshold"),
                         f"{product} has no panic mode (it behaves as panic_threshold: 0)", error=False)]
