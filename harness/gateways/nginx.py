"""nginx OSS as the gateway under test: config rendered from the scenario, health read from its logs.

Debian 12's nginx 1.22. nginx OSS has no active health checks (``health_check`` is NGINX Plus
only) and no API: it marks a server down after ``max_fails`` failed requests within
``fail_timeout`` and tries it again with one request after ``fail_timeout``. So:

* a scenario that sets ``gateway.health_check`` is refused for nginx (there is no honest mapping
  of an active check onto failed requests); passive health comes from ``outlier_detection``
  (consecutive_5xx / consecutive_gateway_failure → ``max_fails`` plus the http_5xx classes of
  ``proxy_next_upstream``; base_ejection_time → ``fail_timeout``) or ``gateway.nginx``;
* its view of every server is read from its own logs: the ``[warn] upstream server temporarily
  disabled`` lines of the error log (unhealthy from then on), and the access log (``$upstream_addr``
  / ``$upstream_status``): a server is healthy again when a request that started after it was
  disabled got an answer from it (nginx's probe after fail_timeout succeeded);
* each change is stamped with nginx's own moment of it (``_Stamps``, harness/gateway_events.py): the end of
  the failed try the ``[warn]`` line names (paired by worker pid, client connection and second with the access
  log's ``$msec`` and ``$upstream_response_time``, milliseconds; the error log's own time has whole seconds
  only), and the end of the answer that readmitted it.

With several ``worker_processes`` and no shared ``zone`` each worker keeps its own failure counts
(the trap ``nginx.worker-state``): the view is unhealthy from the first worker's ``[warn]`` line
(``flags`` counts the workers that logged one since), although the others may go on sending the
server requests, and healthy again at the first answer from it, whichever worker asked.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from harness import loopback
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
)
from harness.gateways.haproxy import _panic_issues

if TYPE_CHECKING:
    from harness.scenario import Scenario

DISABLED = re.compile(r'\[warn\] (\d+)#.*upstream server temporarily disabled.*?upstream: "[a-z]+://([^/"]+)')
# The same line as the stamps read it: its time (whole seconds, local time), worker pid, connection serial, server.
DISABLED_LINE = re.compile(r'^\d{4}/\d\d/\d\d \d\d:(\d\d):(\d\d) \[warn\] (\d+)#\d+: \*(\d+) upstream server '
                           r'temporarily disabled.*?upstream: "[a-z]+://([^/"]+)')
KEEP_UNPAIRED = 1000  # failed tries and answers kept per server until a [warn] line pairs with them
NO_LIVE = re.compile(r"\[error\].*no live upstreams")
# A failed try, e.g. '[error] 12#12: *4 upstream prematurely closed connection while reading response header
# from upstream, client: ..., upstream: "http://127.0.0.1:21000/..."': what nginx says went wrong, and where.
FAILED_TRY = re.compile(r'\[error\] \d+#\d+: (?:\*\d+ )?(.*?), client: .*?upstream: "[a-z]+://([^/"]+)')
# ``conn``: the client connection's serial number, the ``*N`` of the error log's lines about the same request
ACCESS_FORMAT = ('{"ts":$msec,"rt":$request_time,"pid":$pid,"conn":$connection,"status":$status,'
                 '"upstream_addr":"$upstream_addr",'
                 '"upstream_status":"$upstream_status","upstream_response_time":"$upstream_response_time",'
                 '"request_id":"$http_x_chaosgate_request","request":"$request_method $request_uri"}')
# Envoy's retry_on words → nginx's proxy_next_upstream classes (error covers refused and reset alike).
NEXT_UPSTREAM = {
    "connect-failure": ["error"],
    "reset": ["error"],
    "5xx": ["error", "timeout", "http_500", "http_502", "http_503", "http_504"],
    "gateway-error": ["error", "timeout", "http_502", "http_503", "http_504"],
}
READY_PATH = "/.chaosgate/ready"  # answered by nginx itself: ready without asking (or failing on) a replica
NO_TIMEOUT = 86400.0  # request_timeout 0 (none): nginx has no "off", so one day


class NginxOptions(BaseModel):
    """nginx settings that have no common gateway field (``gateway.nginx`` in a scenario)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_fails: int | None = Field(default=None, ge=0, le=100, description="Failed requests within fail_timeout "
                                  "that mark a server down, when outlier_detection is not set (nginx's default: 1; "
                                  "0 turns the accounting off).")
    fail_timeout: Duration | None = Field(default=None, ge=1, description="How long a server stays down (and the "
                                          "window max_fails counts in), whole seconds (nginx's default: 10s).")
    worker_processes: int = Field(default=1, ge=1, le=8, description="nginx worker processes.")
    shared_zone: bool = Field(default=True, description="Keep the upstream's failure state in a shared memory zone, "
                                                        "so every worker sees the same (without it, each worker "
                                                        "counts failures on its own).")
    reuseport: bool = Field(default=False, description="`listen ... reuseport`: one listening socket per worker, "
                                                       "the kernel spreads client connections over them (without "
                                                       "it, one worker tends to accept them all).")


def nginx_binary() -> str:
    """Debian's nginx; ComponentMissing if set-up has not installed it."""
    return debian_binary("nginx")


_ms = milliseconds


@dataclass
class _LogTail:
    """Reads the lines appended to a file since the last call."""

    path: Path
    offset: int = 0
    partial: str = ""

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StackError(f"cannot read nginx's log {self.path}: {exc}") from exc
        self.offset += len(data)
        text = self.partial + data.decode(errors="replace")
        lines = text.split("\n")
        self.partial = lines.pop()
        return lines


@dataclass
class _Peer:
    disabled_at: float | None = None  # when its disabling was seen (None: in service)
    flags: str = ""
    workers: set[str] = field(default_factory=set)  # pids of the workers that logged its disabling since then
    last_error: str = ""  # nginx's error log about its latest failed try (what went wrong, in nginx's words)
    detail: str = ""      # last_error as it was when the server was disabled

    def disabled(self, at: float, worker: str) -> None:
        """A worker logged it disabled. Without a shared zone each worker disables it on its own, and the
        first line is when nginx (one worker of it) stopped using it: the view stays unhealthy from there."""
        self.workers.add(worker)
        self.disabled_at = at
        self.detail = self.last_error
        self.flags = "temporarily disabled (max_fails reached)"
        if len(self.workers) > 1:  # e.g. each worker on its own, or another worker's failed probe
            self.flags = f"temporarily disabled (max_fails reached; logged by {len(self.workers)} workers)"


@dataclass
class _LogView:
    """nginx's view of its servers, rebuilt from what its logs have said so far."""

    errors: _LogTail
    access: _LogTail
    peers: dict[str, _Peer] = field(default_factory=dict)

    def update(self) -> None:
        now = time.time()
        for line in self.errors.new_lines():
            if (match := DISABLED.search(line)) and match.group(2) in self.peers:
                self.peers[match.group(2)].disabled(now, match.group(1))
            elif (failed := FAILED_TRY.search(line)) and failed.group(2) in self.peers:
                self.peers[failed.group(2)].last_error = f"error log: {failed.group(1)}"
            elif NO_LIVE.search(line):
                for peer in self.peers.values():
                    if peer.disabled_at is not None:
                        peer.flags = "temporarily disabled; no live upstreams"
        for line in self.access.new_lines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            started = float(record.get("ts", 0)) - float(record.get("rt", 0))
            tried = [a.strip() for a in str(record.get("upstream_addr", "")).split(",")]
            answers = [s.strip() for s in str(record.get("upstream_status", "")).split(",")]
            for address, status in zip(tried, answers):
                back = self.peers.get(address)
                if back is None or back.disabled_at is None or started < back.disabled_at:
                    continue
                if status.isdigit() and int(status) < 500:  # it answered a request sent after its disabling
                    back.disabled_at, back.flags, back.detail = None, f"answered again ({status})", ""
                    back.workers.clear()


@dataclass(frozen=True)
class _Try:
    """One try of a request at one server, on nginx's own clock: ``end`` is when the try ended (the request's
    ``$msec`` less the ``$upstream_response_time`` of the tries after it), ``start`` less its own."""

    address: str
    start: float
    end: float
    status: str
    key: tuple[str, str, str, str]  # (worker pid, connection, address, the second of its end within 15 minutes)


def _second_key(pid: str, connection: str, address: str, minute: int, second: int) -> tuple[str, str, str, str]:
    """The second of a moment within its quarter hour (the error log writes local time; every time zone is a whole
    number of quarter hours from UTC, so this is the same on either clock)."""
    return (pid, connection, address, f"{minute % 15:02d}:{second:02d}")


def _tries(record: dict[str, Any]) -> list[_Try]:
    """Every try of one access-log line on nginx's own clock, from the last backwards (see _Try)."""
    try:
        end = float(record["ts"])
    except (KeyError, TypeError, ValueError):
        return []
    pid, connection = str(record.get("pid", "")), str(record.get("conn", ""))
    tried = _log_list(record.get("upstream_addr"))
    statuses = _log_list(record.get("upstream_status"))
    times = _log_list(record.get("upstream_response_time"))
    out: list[_Try] = []
    for i in reversed(range(len(tried))):
        took = times[i] if i < len(times) else ""
        took_s = float(took) if took.replace(".", "", 1).isdigit() else 0.0
        if ":" in tried[i]:  # (the upstream's name: no live server was left to try)
            ended = round(end, 3)  # (nginx's clocks are in milliseconds)
            moment = time.localtime(ended)
            out.append(_Try(tried[i], round(end - took_s, 3), ended, statuses[i] if i < len(statuses) else "",
                            _second_key(pid, connection, tried[i], moment.tm_min, moment.tm_sec)))
        end -= took_s
    return out[::-1]


@dataclass
class _Stamps:
    """nginx's own moment of each change of a server's state, from its two logs (``gateway.health`` events).

    A server is disabled in the worker's call that ends a failed try (``ngx_http_upstream_free_round_robin_peer``,
    which logs the ``[warn]``); the try's end is on the access log's own clock (``$msec`` less the later tries'
    ``$upstream_response_time``, milliseconds). The ``[warn]`` line has whole seconds only, so it is paired with
    the failed tries of the same worker pid, client connection (``*N``, ``$connection``), server and second. nginx
    logs the line at every failure from the ``max_fails``-th on, so ``k`` lines name the last ``k`` of those
    tries; they are paired once the connection has logged a request begun after that second (its requests come one
    at a time: every try of that second is in the log by then). More lines than tries stamp nothing (the poll keeps
    its time). A disabled server is back when it answers (status below 500) a try that began after it was
    disabled: stamped by that answer's end."""

    addresses: set[str]
    warns: dict[tuple[str, str, str, str], int] = field(default_factory=dict)  # [warn] lines not yet paired
    # failed tries not yet paired, by (pid, connection, server, the whole second of their end)
    failed: dict[tuple[str, str, str, int], list[_Try]] = field(default_factory=dict)
    latest: dict[tuple[str, str], float] = field(default_factory=dict)  # (pid, connection) -> its latest request's start
    answers: dict[str, list[_Try]] = field(default_factory=dict)  # recent answers, by server
    disabled: dict[str, float] = field(default_factory=dict)  # server -> the stamp of its last disabling

    def read(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        if "line" in record:
            match = DISABLED_LINE.match(str(record["line"]))
            if match is None or match[5] not in self.addresses:
                return []
            key = _second_key(match[3], match[4], match[5], int(match[1]), int(match[2]))
            self.warns[key] = self.warns.get(key, 0) + 1
            return self._pair()
        events: list[dict[str, Any]] = []
        for attempt in _tries(record):
            if attempt.address not in self.addresses:
                continue
            if attempt.status.isdigit() and int(attempt.status) < 500:
                answers = self.answers.setdefault(attempt.address, [])
                answers.append(attempt)
                del answers[:-KEEP_UNPAIRED]
                events += self._readmit(attempt.address)
            else:
                failed = self.failed.setdefault((*attempt.key[:3], int(attempt.end)), [])
                failed.append(attempt)
        try:
            connection = (str(record["pid"]), str(record["conn"]))
            self.latest[connection] = max(self.latest.get(connection, 0.0), float(record["ts"]) - float(record["rt"]))
        except (KeyError, TypeError, ValueError):
            pass
        if len(self.failed) > KEEP_UNPAIRED:  # the oldest seconds of failures no [warn] line named
            for group in sorted(self.failed, key=lambda g: g[3])[:len(self.failed) - KEEP_UNPAIRED]:
                del self.failed[group]
        return events + self._pair()

    def _pair(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for group in sorted(self.failed, key=lambda g: g[3]):
            pid, connection, address, second = group
            if self.latest.get((pid, connection), 0.0) < second + 1:
                continue  # a request of that second may still be under way on this connection
            tries = sorted(self.failed[group], key=lambda a: a.end)
            warned = self.warns.get(tries[0].key, 0)
            if not warned or warned > len(tries):
                continue  # nothing disabled that second (yet: a [warn] line may come), or which try is not known
            del self.failed[group], self.warns[tries[0].key]
            for attempt in tries[-warned:]:
                self.disabled[attempt.address] = attempt.end
                events.append({"ts": attempt.end, "address": address, "healthy": False,
                               "what": f"temporarily disabled (a try ended {attempt.status or 'without an answer'})"})
                events += self._readmit(address)
        return events

    def _readmit(self, address: str) -> list[dict[str, Any]]:
        since = self.disabled.get(address)
        after = [a for a in self.answers.get(address, []) if since is not None and a.start >= since]
        if not after:
            return []
        first = min(after, key=lambda a: a.end)
        del self.disabled[address]
        self.answers[address] = [a for a in self.answers[address] if a.end > first.end]
        return [{"ts": first.end, "address": address, "healthy": True, "what": f"answered again ({first.status})"}]


def _log_list(value: object) -> list[str]:
    """One value per try of an nginx ``$upstream_*`` variable (``, `` between tries, `` : `` between groups)."""
    return [part.strip() for part in re.split(r",|\s:\s", str(value or "")) if part.strip()]


def _location(prefix: str, pool: str, rewrite: str, trust: UpstreamTlsTrust | None) -> str:
    """``location <prefix>`` proxying to ``pool`` (``rewrite`` "/" strips the prefix); over TLS when the pool
    serves it: the test CA as the only trust anchor, SNI, and the name required in the certificate."""
    if trust is None:
        return f"        location {prefix} {{ proxy_pass http://{pool}{rewrite}; }}"
    return (f"        location {prefix} {{ proxy_pass https://{pool}{rewrite}; proxy_ssl_verify on; "
            f"proxy_ssl_trusted_certificate {trust.ca_file}; proxy_ssl_name {trust.server_name}; "
            "proxy_ssl_server_name on; proxy_ssl_protocols TLSv1.2 TLSv1.3; }")


class NginxGateway(GatewayProcessBase):
    """nginx OSS 1.22 configured from a scenario's ``gateway`` block."""

    kind = "nginx"
    config_name = "nginx.conf"
    runtimes = frozenset({"local"})

    def _init_state(self) -> None:
        """``admin_port`` is unused: nginx OSS has no API; it is observed through its logs."""
        self.prefix: Path | None = None
        self._view: _LogView | None = None
        self._stamps: _Stamps | None = None  # its own stamps of each change, read from both logs (gateway_events.py)

    @property
    def admin_url(self) -> str | None:
        return None

    # -- configuration -------------------------------------------------------------
    def passive(self) -> tuple[int, float, list[str]]:
        """max_fails, fail_timeout and the proxy_next_upstream classes that count as failures."""
        s, o = self.settings, self.settings.nginx
        classes = ["error", "timeout"]  # always counted by nginx
        if (od := s.outlier_detection) is not None:
            if od.consecutive_5xx:
                return od.consecutive_5xx, od.base_ejection_time, [*classes, "http_500", "http_502", "http_503",
                                                                    "http_504"]
            if od.consecutive_gateway_failure:
                return od.consecutive_gateway_failure, od.base_ejection_time, [*classes, "http_502", "http_503",
                                                                                "http_504"]
        max_fails = o.max_fails if o.max_fails is not None else (1 if s.outlier_detection is not None else 0)
        return max_fails, o.fail_timeout or 10.0, classes

    def next_upstream(self) -> tuple[list[str], int]:
        """``proxy_next_upstream`` (the failures nginx passes to the next server, and counts toward max_fails)
        and ``proxy_next_upstream_tries``. Without retries nginx still counts refused/reset connections and
        timeouts, but a replica's 5xx answer counts only when nginx retries it (ngx_http_upstream_test_next():
        tries left, the http_5xx class listed, and non_idempotent for POSTs; measured on 1.22), so the http_5xx
        classes go in only with retries."""
        s = self.settings
        next_upstream = ["error", "timeout"]
        if (retries := s.retries) is None:
            return next_upstream, 1
        next_upstream += self.passive()[2]
        next_upstream += [w for name in retries.retry_on for w in NEXT_UPSTREAM.get(name, [])]
        next_upstream.append("non_idempotent")  # chat completions are POSTs; Envoy retries them too
        return list(dict.fromkeys(next_upstream)), retries.num_retries + 1

    def config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> str:
        s, o = self.settings, self.settings.nginx
        prefix = self.prefix = (run_dir / "nginx").resolve()
        pools = list(dict.fromkeys(u.pool for u in upstreams))
        max_fails, fail_timeout, _ = self.passive()
        next_upstream, tries = self.next_upstream()
        retries = s.retries
        read_timeout = s.request_timeout or NO_TIMEOUT
        if retries is not None and retries.per_try_timeout is not None:
            read_timeout = retries.per_try_timeout
        lines = [
            "# Rendered by chaosgate from the scenario's gateway block (harness/gateways/nginx.py).",
            f"worker_processes {o.worker_processes};",
            "daemon off;",
            "master_process on;",
            f"pid {prefix}/nginx.pid;",
            f"error_log {prefix}/error.log warn;",  # 'temporarily disabled' is a warn line
            "events { worker_connections 1024; }",
            "http {",
            *[f"    {kind}_temp_path {prefix}/tmp/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                       "scgi")],
            f"    log_format chaosgate escape=json '{ACCESS_FORMAT}';",
            f"    access_log {prefix}/access.log chaosgate;",
            # The address of the last server tried (the one that answered, or failed last).
            "    map $upstream_addr $chaosgate_upstream {",
            '        "~(?<last>[0-9a-fA-F.:\\[\\]]+:[0-9]+)$" $last;',
            '        default "";',
            "    }",
            "    proxy_http_version 1.1;",
            '    proxy_set_header Connection "";',
            "    proxy_buffering off;",  # stream SSE chunks as they come
            f"    proxy_connect_timeout {_ms(s.connect_timeout)};",
            f"    proxy_read_timeout {_ms(read_timeout)};",
            f"    proxy_send_timeout {_ms(read_timeout)};",
            f"    proxy_next_upstream {' '.join(dict.fromkeys(next_upstream))};",
            f"    proxy_next_upstream_tries {tries};",
            *([f"    proxy_next_upstream_timeout {_ms(s.request_timeout)};"]
              if retries is not None and s.request_timeout > 0 else []),
        ]
        trust: dict[str, UpstreamTlsTrust | None] = {}
        for pool in pools:
            tls = {u.tls for u in upstreams if u.pool == pool}
            if len(tls) > 1:
                raise StackError(f"the replicas of {pool!r} disagree on TLS: {sorted(map(str, tls))}")
            trust[pool] = tls.pop()
            lines += [f"    upstream {pool} {{", *([f"        zone {pool} 64k;"] if o.shared_zone else [])]
            # the replicas of the pool's fallback pool: backup servers, passed requests while every other server
            # of the upstream is unavailable (and as the next upstream of a failed try, when tries are left)
            fallback = next((u.fallback for u in upstreams if u.pool == pool), None)
            backups = [u for u in upstreams if fallback is not None and u.pool == fallback]
            if {u.tls for u in backups} - {trust[pool]}:
                raise StackError(f"the replicas of {pool!r} and of its fallback {fallback!r} disagree on TLS")
            lines += [f"        server {u.host}:{u.port} max_fails={max_fails} fail_timeout={round(fail_timeout)}s"
                      f"{' backup' if u.pool != pool else ''};"
                      for u in [*(u for u in upstreams if u.pool == pool), *backups]]
            lines.append("    }")
        lines += [
            "    server {",
            f"        listen {self.bind_address}:{self.listen_port}{' reuseport' if o.reuseport else ''};",
            f"        add_header {UPSTREAM_HEADER} $chaosgate_upstream always;",
            f"        location = {READY_PATH} {{ access_log off; return 204; }}",  # readiness, without a replica
            *[_location(f"/{pool}/", pool, "/", trust[pool]) for pool in pools],
            _location("/", self.load_pool, "", trust.get(self.load_pool)),
            "    }",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def write_config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> Path:
        if self.settings.config is not None:  # the user's own nginx.conf (harness/own_config/nginx.py)
            path = self.write_own_config(upstreams, run_dir, self.config_name)
            self.prefix = Path(self.own_facts["prefix"])
            self._start_logs(upstreams)
            return path
        text = self.config(upstreams, run_dir)
        self._start_logs(upstreams)
        path = run_dir / self.config_name
        path.write_text(text)
        return path

    def _start_logs(self, upstreams: list[UpstreamAddress]) -> None:
        """nginx's own prefix (its temp files) and the logs the view reads, empty."""
        assert self.prefix is not None
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        for log in ("error.log", "access.log"):
            (self.prefix / log).write_text("")
        self._view = _LogView(_LogTail(self.prefix / "error.log"), _LogTail(self.prefix / "access.log"),
                              {f"{u.host}:{u.port}": _Peer() for u in upstreams})
        self._stamps = _Stamps({f"{u.host}:{u.port}" for u in upstreams})

    # -- its own stamps of each health change (harness/gateway_events.py) ---------------
    def health_event_logs(self, run_dir: Path) -> list[tuple[Path, bool]]:
        """Its error log (plain text: the ``[warn]`` lines) and its access log (JSON lines: each try's end)."""
        prefix = self.prefix if self.prefix is not None else run_dir / "nginx"
        return [(prefix / "error.log", True), (prefix / "access.log", False)]

    def parse_health_event(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """A server disabled, stamped by the end of the failed try its ``[warn]`` line names, or back, stamped by
        the end of its first answer to a try begun after that (``_Stamps``)."""
        if self._stamps is None:
            self._stamps = _Stamps(set(self._view.peers) if self._view is not None else set())
        return self._stamps.read(record)

    # -- the tries it made ------------------------------------------------------------
    def upstream_attempts(self, run_dir: Path) -> Path:
        """The access log: its ``$upstream_addr`` lists every server a request was tried on, in order."""
        return run_dir / "nginx" / "access.log"

    @staticmethod
    def parse_upstream_attempts(record: dict[str, Any]) -> list[dict[str, Any]]:
        """The tries of one access-log line, one ``attempt`` event each: try *i* starts when the request
        started plus the time the tries before it took (``$upstream_response_time``; nginx logs when the
        request ended, not when each try began)."""
        try:
            start = float(record["ts"]) - float(record["rt"])
        except (KeyError, TypeError, ValueError):
            return []
        tried = _log_list(record.get("upstream_addr"))
        statuses = _log_list(record.get("upstream_status"))
        times = _log_list(record.get("upstream_response_time"))
        request_id = record.get("request_id") or None
        events: list[dict[str, Any]] = []
        for i, address in enumerate(tried):
            if ":" not in address:  # the upstream's name: no live server was left to try
                continue
            status = statuses[i] if i < len(statuses) else ""
            events.append({"ts": start, "upstream": address, "request_id": request_id,
                           "status": int(status) if status.isdigit() else None, "flags": None})
            took = times[i] if i < len(times) else ""
            start += float(took) if took.replace(".", "", 1).isdigit() else 0.0
        return events

    def argv(self, config: Path) -> list[str]:
        # -p: its own prefix in the run's folder; -e: the start-up error log there too (not /var/log).
        assert self.prefix is not None
        return [nginx_binary(), "-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c",
                str(config.resolve())]

    # -- observation ----------------------------------------------------------------
    def is_ready(self) -> bool:
        try:
            return loopback.client().get(f"{self.url}{READY_PATH}", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False

    def host_health(self) -> dict[str, HostHealth]:
        if self._view is None:
            raise StackError("nginx has no config yet (write_config was not called)")
        self._view.update()
        return {address: HostHealth(peer.disabled_at is None, peer.flags, peer.detail)
                for address, peer in self._view.peers.items()}

    def version(self) -> str:
        out = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, check=False).stderr
        return out.strip().split("/")[-1] if "/" in out else out.strip()

    # -- what the configuration means ------------------------------------------------
    @staticmethod
    def settings_issues(scenario: Scenario) -> list[SettingIssue]:
        g = scenario.gateway
        o = g.nginx
        gw = ("gateway",)
        issues: list[SettingIssue] = []
        if g.health_check is not None:
            issues.append(SettingIssue((*gw, "health_check"),
                                       "nginx OSS has no active health checks (health_check is NGINX Plus only); it "
                                       "marks a server down only after failed requests (outlier_detection or "
                                       "gateway.nginx max_fails/fail_timeout)", error=False))
        if (od := g.outlier_detection) is not None:
            if od.consecutive_5xx and od.consecutive_gateway_failure:
                issues.append(SettingIssue((*gw, "outlier_detection", "consecutive_gateway_failure"),
                                           "nginx has one failure count per server (max_fails); set "
                                           "consecutive_5xx or consecutive_gateway_failure, not both"))
            if od.base_ejection_time != round(od.base_ejection_time) or od.base_ejection_time < 1:
                issues.append(SettingIssue((*gw, "outlier_detection", "base_ejection_time"),
                                           "becomes nginx's fail_timeout, which has 1s resolution: expected whole "
                                           f"seconds, got {od.base_ejection_time:g}s"))
            if (od.consecutive_5xx or od.consecutive_gateway_failure) and g.retries is None:
                issues.append(SettingIssue((*gw, "outlier_detection"),
                                           "without retries nginx counts only refused or reset connections and "
                                           "timeouts toward max_fails; a replica's 5xx answers go to the client "
                                           "uncounted (nginx counts them only when it may retry them: set retries)",
                                           error=False))
            elif od.consecutive_5xx or od.consecutive_gateway_failure:
                issues.append(SettingIssue((*gw, "retries", "retry_on"),
                                           "nginx retries every failure it counts: with outlier_detection the "
                                           "replicas' 5xx answers are retried too, whatever retry_on says",
                                           error=False))
            issues.append(SettingIssue((*gw, "outlier_detection", "interval"),
                                       "nginx disables a server at its max_fails-th failure within fail_timeout "
                                       "(not consecutive: successes in between do not reset the count); there is "
                                       "no review interval", error=False))
            if explicitly_set(g, "outlier_detection", "max_ejection_percent") and od.max_ejection_percent < 100:
                issues.append(SettingIssue((*gw, "outlier_detection", "max_ejection_percent"),
                                           "nginx has no cap on how many servers it disables (it behaves as "
                                           "max_ejection_percent: 100)"))
            elif not explicitly_set(g, "outlier_detection", "max_ejection_percent"):
                issues.append(SettingIssue((*gw, "outlier_detection", "max_ejection_percent"),
                                           "nginx has no cap on how many servers it disables (as 100)", error=False))
            for name in ("max_fails", "fail_timeout"):
                if getattr(o, name) is not None:
                    issues.append(SettingIssue((*gw, "nginx", name),
                                               f"outlier_detection already sets nginx's {name}; set one of them"))
        if o.fail_timeout is not None and o.fail_timeout != round(o.fail_timeout):
            issues.append(SettingIssue((*gw, "nginx", "fail_timeout"),
                                       f"nginx's fail_timeout has 1s resolution: expected whole seconds, got "
                                       f"{o.fail_timeout:g}s"))
        issues += _panic_issues(g, "nginx")
        if (retries := g.retries) is not None:
            if retries.retriable_status_codes:
                issues.append(SettingIssue((*gw, "retries", "retriable_status_codes"), "the nginx adapter "
                                           "renders no per-status retries yet (Envoy's retriable-status-codes)"))
            if "refused-stream" in retries.retry_on:
                issues.append(SettingIssue((*gw, "retries", "retry_on"),
                                           "refused-stream is an HTTP/2 condition; nginx speaks HTTP/1.1 to the "
                                           "replicas (use connect-failure, reset, 5xx or gateway-error)"))
            elif {"connect-failure", "reset"} & set(retries.retry_on) != {"connect-failure", "reset"} and \
                    not {"5xx", "gateway-error"} & set(retries.retry_on):
                issues.append(SettingIssue((*gw, "retries", "retry_on"),
                                           "nginx's `error` class retries refused connections and resets before "
                                           "the response headers alike", error=False))
        if g.request_timeout == 0:
            issues.append(SettingIssue((*gw, "request_timeout"), "nginx cannot turn its read timeout off: "
                                       f"{NO_TIMEOUT:g}s is used", error=False))
        for i, pool in enumerate(scenario.upstreams):
            if pool.kind == "mcp":
                issues.append(SettingIssue(("upstreams", i, "kind"),
                                           "nginx OSS cannot pin an MCP session to the replica that created it "
                                           f"(sticky sessions are NGINX Plus only); {pool.name!r} is {pool.kind!r}"))
            if getattr(pool, "dns", None) is not None:
                issues.append(SettingIssue(("upstreams", i, "dns"),
                                           "the nginx adapter reaches replicas by address only (no DNS resolution yet)"))
        issues += fallback_fit_issues(scenario, "nginx", "upstream block (as backup servers)", levels=1)
        return issues
