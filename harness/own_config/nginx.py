"""nginx's own nginx.conf: read with crossplane, rewritten by line edits (docs/own-config/nginx.md).

**Read.** crossplane parses the file and every file it includes (with their line numbers); an include
that cannot be resolved, or a file it cannot parse, is refused at its file:line. Every ``upstream``
block is a bindable block; its ``server`` lines, in order, are its endpoints (``backup`` servers too:
endpoint *i* is replica *i*). Its settings are the scenario model's ``Gateway`` block as
harness/gateways/nginx.py renders it, read the other way: ``max_fails``/``fail_timeout`` of its servers
(nginx's defaults 1 and 10s), ``worker_processes`` and a shared ``zone``, and the ``proxy_*`` settings in
force in the location that proxies to it (the one the load's ``/v1/chat/completions`` reaches):
``proxy_next_upstream`` (+ ``_tries``) as retries, ``proxy_connect_timeout``, ``proxy_read_timeout``.
What changes detection but that the promise model does not express (servers of one upstream with
different max_fails/fail_timeout, weights, ``down``/``max_conns``/``slow_start`` servers, hash/ip_hash/
least_conn/random balancing, http_* failure classes other than the sets the adapter renders) is listed
as unmodelled: the promise is then Unknown, naming it. ``Block.backup``: the backup servers' indices
(harness/promise/nginx.py: a backup server gets requests only while every primary is unavailable).

**Rewrite.** Line edits at crossplane's line numbers; every other byte stays as the user wrote it. The
bound upstreams' servers become the replicas' listeners; the load's server listens on the run's port (the
others on free ports) and answers chaosgate's readiness path; logs, pid and temp files go to the run's
folder in the format the adapter's observer reads (harness/gateways/nginx.py); the x-chaosgate-upstream
header is added; nginx stays in the foreground (``daemon off``). Included files that change run from copies
in the run's folder, and relative paths become absolute (nginx resolves them against the main file's folder).
"""

from __future__ import annotations

from types import MappingProxyType

import difflib
import io
import os
import pwd
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crossplane  # type: ignore[import-untyped]
from pydantic import ValidationError
import crossplane.parser  # type: ignore[import-untyped]
from crossplane.lexer import _balance_braces, _lex_file_object  # type: ignore[import-untyped]

from harness.errors import Problem, ScenarioError
from harness.gateways.base import UPSTREAM_HEADER
from harness.gateways.nginx import ACCESS_FORMAT, READY_PATH, NginxOptions
from harness.own_config.base import Block, Endpoint, NativeConfig, RewriteJob, Rewritten, Source, Unmodelled, YamlPath

LOAD_PATH = "/v1/chat/completions"  # what the load asks for (harness/load/worker.py)
PASS_DIRECTIVES = ("proxy_pass", "grpc_pass", "uwsgi_pass", "scgi_pass", "fastcgi_pass", "memcached_pass")
DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}
# Envoy's retry_on words as the adapter renders them (harness/gateways/nginx.py NEXT_UPSTREAM), by the http_*
# classes nginx counts for a POST: only these sets have a scenario field.
HTTP_CLASSES = {frozenset(): ["connect-failure", "reset"],
                frozenset({"http_502", "http_503", "http_504"}): ["gateway-error"],
                frozenset({"http_500", "http_502", "http_503", "http_504"}): ["5xx"]}
# File arguments nginx resolves against the folder of its main file (the rewritten file lives elsewhere).
FILE_DIRECTIVES = frozenset({"include", "ssl_certificate", "ssl_certificate_key", "ssl_trusted_certificate",
                             "ssl_client_certificate", "ssl_dhparam", "auth_basic_user_file",
                             "proxy_ssl_certificate", "proxy_ssl_certificate_key", "proxy_ssl_trusted_certificate"})
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
UNMODELLED_BALANCING = {
    "hash": "hash balancing picks a server by key, not in turn: the promise's rate per server does not hold",
    "ip_hash": "ip_hash picks a server by client address, not in turn: the promise's rate per server does not hold",
    "least_conn": "least_conn picks the server with the fewest connections, not in turn: the promise's rate per "
                  "server does not hold",
    "random": "random balancing does not send each server its turn: the promise's rate per server does not hold",
}
_LEX_LOCK = threading.Lock()


@dataclass
class Stmt:
    """One directive, with its file and line, and the statements of its block (includes expanded)."""

    file: str
    line: int
    directive: str
    args: list[str]
    block: list[Stmt] | None = None
    parent: Stmt | None = field(default=None, repr=False)
    included: list[str] = field(default_factory=list)  # an include: the files it brought in, in nginx's order

    @property
    def source(self) -> Source:
        return Source(self.file, self.line, " ".join([self.directive, *self.args]))

    def children(self, directive: str) -> list[Stmt]:
        return [s for s in self.block or [] if s.directive == directive]

    def walk(self) -> Iterator[Stmt]:
        for child in self.block or []:
            yield child
            yield from child.walk()

    def chain(self) -> list[Stmt]:
        """This statement and its enclosing blocks, innermost first."""
        node: Stmt | None = self
        out: list[Stmt] = []
        while node is not None:
            out.append(node)
            node = node.parent
        return out


def _parse(path: Path, text: str) -> Stmt:
    """The file as one tree (includes expanded in place); ScenarioError at file:line for what crossplane refuses."""
    main = str(path)

    def lex(filename: str) -> Iterator[tuple[str, int, bool]]:
        if filename == main:
            yield from _balance_braces(_lex_file_object(io.StringIO(text)), filename)
        else:
            with open(filename, encoding="utf-8", errors="replace") as f:
                yield from _balance_braces(_lex_file_object(f), filename)

    with _LEX_LOCK:
        saved = crossplane.parser.lex
        crossplane.parser.lex = lex
        try:
            payload: dict[str, Any] = crossplane.parse(main, check_ctx=True, check_args=True)
        finally:
            crossplane.parser.lex = saved
    problems: list[Problem] = []
    for error in payload["errors"]:
        message = str(error["error"])
        message = re.sub(r" in \S+:\d+$", "", message)
        if (errno := re.match(r"\[Errno \d+\] (.*?): '(.*)'$", message)) is not None:
            message = f"an include that cannot be resolved: {errno.group(2)} ({errno.group(1).lower()})"
        problems.append(Problem(error["file"], error["line"], None, "include" if errno is not None else "", message))
    if problems:
        raise ScenarioError(problems)
    configs: list[dict[str, Any]] = payload["config"]

    def build(items: list[dict[str, Any]], file: str, parent: Stmt, seen: tuple[int, ...]) -> list[Stmt]:
        out: list[Stmt] = []
        for item in items:
            stmt = Stmt(file, int(item["line"]), str(item["directive"]), [str(a) for a in item["args"]], parent=parent)
            out.append(stmt)  # the include statement itself stays (its line may be edited), followed by its files
            for index in item.get("includes", []):
                stmt.included.append(configs[index]["file"])
                if index in seen:
                    raise ScenarioError([Problem(file, stmt.line, None, "include", "includes itself")])
                out += build(configs[index]["parsed"], configs[index]["file"], parent, (*seen, index))
            if "block" in item:
                stmt.block = build(item["block"], file, stmt, seen)
        return out

    root = Stmt(main, 0, "", [])
    root.block = build(configs[0]["parsed"], main, root, (0,))
    return root


def _refuse(stmt: Stmt, message: str) -> ScenarioError:
    return ScenarioError([Problem(stmt.file, stmt.line, None, " ".join([stmt.directive, *stmt.args]), message)])


def _host_port(address: str, default_port: int) -> tuple[str, int] | None:
    """``host:port`` / ``host`` / ``[v6]:port`` → (host, port); None for ``unix:`` sockets."""
    if address.startswith("unix:"):
        return None
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
    host, _, port = address.rpartition(":")
    if host and port.isdigit():
        return host, int(port)
    if address.isdigit():
        return "*", int(address)
    return address, default_port


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "M": 2592000.0, "y": 31536000.0}


def nginx_time(value: str) -> float | None:
    """nginx's time syntax (``10s``, ``1m30s``, ``500ms``, ``30``: seconds) in seconds; None if not one."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|M|y)?", value)
    if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
        return None
    return sum(int(n) * _UNITS[u or "s"] for n, u in parts)


def _location_matches(args: list[str], path: str) -> tuple[int, int] | None:
    """How a location matches the load's path (higher first), or None: exact, ^~ prefix, regex, prefix."""
    if len(args) == 2 and args[0] == "=":
        return (4, 0) if args[1] == path else None
    if len(args) == 2 and args[0] in ("~", "~*"):
        return (2, 0) if re.search(args[1], path, re.IGNORECASE if args[0] == "~*" else 0) else None
    prefix = args[1] if len(args) == 2 and args[0] == "^~" else args[0] if len(args) == 1 else None
    if prefix is None or prefix.startswith("@") or not path.startswith(prefix):
        return None
    return (3 if args[0] == "^~" else 1, len(prefix))


@dataclass
class _Read:
    root: Stmt
    http: Stmt | None
    upstreams: dict[str, Stmt]
    routes: dict[str, list[Stmt]]  # upstream → the proxy_pass statements that send traffic to it
    servers: list[Stmt]            # the http server blocks, in file order


def _survey(root: Stmt) -> _Read:
    http = next((s for s in root.block or [] if s.directive == "http"), None)
    upstreams = {s.args[0]: s for s in http.children("upstream")} if http is not None else {}
    servers = http.children("server") if http is not None else []
    routes: dict[str, list[Stmt]] = {name: [] for name in upstreams}
    for stmt in root.walk():
        if stmt.directive in PASS_DIRECTIVES and stmt.args:
            target = re.sub(r"^[a-z]+://", "", stmt.args[0]).split("/", 1)[0]
            if target in upstreams:
                routes[target].append(stmt)
    return _Read(root, http, upstreams, routes, servers)


def _in_force(stmt: Stmt, directive: str) -> Stmt | None:
    """The ``directive`` in force where ``stmt`` is: the innermost enclosing block that sets it."""
    for block in stmt.chain()[1:]:
        found = block.children(directive)
        if found:
            return found[-1]
    return None


def _route_for_load(routes: list[Stmt]) -> Stmt | None:
    """Of the proxy_pass statements to one upstream, the one whose location the load's path reaches."""
    best: tuple[tuple[int, int], Stmt] | None = None
    for route in routes:
        location = next((b for b in route.chain()[1:] if b.directive == "location"), None)
        rank = _location_matches(location.args, LOAD_PATH) if location is not None else (0, 0)
        if rank is not None and (best is None or rank > best[0]):
            best = (rank, route)
    return best[1] if best is not None else (routes[0] if routes else None)


class NginxReader:
    """nginx.conf (nginx 1.22 OSS) → upstream blocks and their settings; rewritten for one run."""

    kind: str = "nginx"
    file_patterns: tuple[str, ...] = ("nginx*.conf",)
    block_word = "upstream"
    # the scenario fields whose name the lint's advice uses, in nginx's words
    spelling: Mapping[YamlPath, str] = MappingProxyType({
        ("gateway", "nginx", "shared_zone"): "a `zone NAME 64k;` directive in the upstream block",
    })

    def read(self, path: Path, text: str) -> NativeConfig:
        root = _parse(path, text)
        survey = _survey(root)
        outbound = self._outbound(survey)
        blocks = {name: self._block(name, stmt, survey) for name, stmt in survey.upstreams.items()}
        return NativeConfig("nginx", path, text, blocks, tuple(outbound), self.block_word)

    # -- reading ---------------------------------------------------------------------
    def _outbound(self, survey: _Read) -> list[Endpoint]:
        out: list[Endpoint] = []
        # TCP/UDP proxying (stream): its upstreams are not bindable, so every server of theirs is outbound
        stream = [u for s in survey.root.children("stream") for u in s.children("upstream")]
        for upstream in stream:
            for server in upstream.children("server"):
                if (found := _host_port(server.args[0], 80)) is not None:
                    out.append(Endpoint(*found, Source(server.file, server.line,
                                                       f"stream upstream {upstream.args[0]}: server {server.args[0]}")))
        stream_names = {u.args[0] for u in stream}
        for stmt in survey.root.walk():
            if stmt.directive in PASS_DIRECTIVES and stmt.args:
                url = stmt.args[0]
                if "$" in url:
                    raise _refuse(stmt, "an address in variables is resolved per request, so chaosgate cannot tell "
                                        "where it sends traffic; proxy to an upstream block")
                scheme, _, rest = url.rpartition("://")
                address = rest.split("/", 1)[0]
                in_stream = any(b.directive == "stream" for b in stmt.chain())
                if address in (stream_names if in_stream else survey.upstreams):
                    continue
                found = _host_port(address, DEFAULT_PORTS.get(scheme or "http", 80))
                if found is not None:
                    out.append(Endpoint(*found, stmt.source))
            elif stmt.directive == "resolver":
                for arg in stmt.args:
                    if "=" not in arg and (found := _host_port(arg, 53)) is not None:
                        out.append(Endpoint(*found, stmt.source))
            elif stmt.directive in ("access_log", "error_log") and stmt.args and stmt.args[0].startswith("syslog:"):
                target = re.search(r"server=([^,]+)", stmt.args[0])
                if target is not None and (found := _host_port(target.group(1), 514)) is not None:
                    out.append(Endpoint(*found, stmt.source))
        return out

    def _block(self, name: str, upstream: Stmt, survey: _Read) -> Block:
        where: dict[YamlPath, Source] = {}
        unmodelled: list[Unmodelled] = []
        endpoints: list[Endpoint] = []
        backup: list[int] = []
        passive: list[tuple[int, float, Stmt, bool, bool]] = []  # max_fails, fail_timeout, line, set here?
        weights: set[int] = set()
        for stmt in upstream.block or []:
            if stmt.directive in UNMODELLED_BALANCING:
                unmodelled.append(Unmodelled(stmt.source, UNMODELLED_BALANCING[stmt.directive]))
            elif stmt.directive == "state":
                raise _refuse(stmt, "the servers come from a file NGINX Plus's API rewrites, not from this "
                                    "upstream block; chaosgate binds server lines it can replace")
        for stmt in upstream.children("server"):
            address = stmt.args[0]
            params = stmt.args[1:]
            found = _host_port(address, 80)
            if found is None:
                raise _refuse(stmt, "a unix socket cannot become a replica's listener; chaosgate binds servers "
                                    "with a host:port")
            if "resolve" in params:
                raise _refuse(stmt, "the server's addresses come from DNS at run time (dynamic), so chaosgate "
                                    "cannot replace them with the replicas' listeners")
            values = dict(p.split("=", 1) for p in params if "=" in p)
            flags = {p for p in params if "=" not in p}
            index = len(endpoints)
            endpoints.append(Endpoint(*found, Source(stmt.file, stmt.line, f"upstream {name}: server {address}")))
            if "backup" in flags:
                backup.append(index)
            else:
                weights.add(int(values.get("weight", "1")) if values.get("weight", "1").isdigit() else 1)
            if "down" in flags:
                unmodelled.append(Unmodelled(stmt.source, "a server marked down never gets a request, so the "
                                                          "replica bound to it is never tried"))
            for param, why in (("max_conns", "a server at max_conns is skipped as a failed one is"),
                               ("slow_start", "slow_start readmits a server at a lower weight")):
                if param in values:
                    unmodelled.append(Unmodelled(stmt.source, why))
            max_fails = int(values["max_fails"]) if values.get("max_fails", "").isdigit() else 1
            timeout = nginx_time(values["fail_timeout"]) if "fail_timeout" in values else 10.0
            if timeout is None:
                raise _refuse(stmt, f"fail_timeout={values['fail_timeout']}: expected an nginx time in seconds such as 10s")
            passive.append((max_fails, timeout, stmt, "max_fails" in values, "fail_timeout" in values))
        if len(weights) > 1:
            unmodelled.append(Unmodelled(upstream.source, f"its servers have different weights ({sorted(weights)}): "
                                                          "the promise assumes each server gets an equal turn"))
        max_fails, fail_timeout = (passive[0][0], passive[0][1]) if passive else (1, 10.0)
        for mf, ft, stmt, _, _ in passive:
            if (mf, ft) != (max_fails, fail_timeout):
                unmodelled.append(Unmodelled(Source(stmt.file, stmt.line, f"upstream {name}: server max_fails/"
                                                    "fail_timeout"),
                                             f"max_fails={mf} fail_timeout={ft:g}s differ from the first server's "
                                             f"({max_fails}, {fail_timeout:g}s): the promise has one pair per upstream"))
                break
        set_here = next((p for p in passive if p[3]), None)
        if set_here is not None:
            where[("gateway", "nginx", "max_fails")] = Source(set_here[2].file, set_here[2].line,
                                                              f"upstream {name}: server max_fails")
        set_here = next((p for p in passive if p[4]), None)
        if set_here is not None:
            where[("gateway", "nginx", "fail_timeout")] = Source(set_here[2].file, set_here[2].line,
                                                                 f"upstream {name}: server fail_timeout")
        workers = 1
        if (wp := next(iter(survey.root.children("worker_processes")), None)) is not None:
            workers = (os.cpu_count() or 1) if wp.args[0] == "auto" else int(wp.args[0]) if wp.args[0].isdigit() else 1
            where[("gateway", "nginx", "worker_processes")] = wp.source
        zone = next(iter(upstream.children("zone")), None)
        where[("gateway", "nginx", "shared_zone")] = zone.source if zone is not None else \
            Source(upstream.file, upstream.line, f"upstream {name}: no zone")  # where the missing zone belongs
        first_server = passive[0][2].source if passive else upstream.source
        if fail_timeout < 1:
            unmodelled.append(Unmodelled(first_server, f"fail_timeout {fail_timeout:g}s: the promise's formulas take "
                                                       "whole seconds from 1s"))
        if max_fails > 100:
            unmodelled.append(Unmodelled(first_server, f"max_fails {max_fails}: the promise's formulas go up to 100"))
        options = NginxOptions(max_fails=min(max_fails, 100), fail_timeout=max(fail_timeout, 1.0),
                               worker_processes=min(max(workers, 1), 8), shared_zone=zone is not None)
        settings: dict[str, Any] = {"kind": "nginx", "health_check": None, "outlier_detection": None,
                                    "panic_threshold": 0.0, "nginx": options}
        route = _route_for_load(survey.routes[name])
        anchor = route if route is not None else (survey.http or upstream)

        def in_force(directive: str) -> Stmt | None:
            return _in_force(anchor, directive) if route is not None else \
                next(iter(survey.http.children(directive)), None) if survey.http is not None else None

        def seconds(directive: str, default: float) -> tuple[float, Stmt | None]:
            stmt = in_force(directive)
            if stmt is None:
                return default, None
            value = nginx_time(stmt.args[0])
            if value is None:
                raise _refuse(stmt, "expected an nginx time such as 60s")
            return value, stmt

        connect, connect_at = seconds("proxy_connect_timeout", 60.0)
        read_timeout, read_at = seconds("proxy_read_timeout", 60.0)
        settings["connect_timeout"] = max(connect, 0.001)
        settings["request_timeout"] = read_timeout
        if connect_at is not None:
            where[("gateway", "connect_timeout")] = connect_at.source
        if read_at is not None:
            where[("gateway", "request_timeout")] = read_at.source
        next_at = in_force("proxy_next_upstream")
        classes = set(next_at.args) if next_at is not None else {"error", "timeout"}
        tries_at = in_force("proxy_next_upstream_tries")
        tries = int(tries_at.args[0]) if tries_at is not None and tries_at.args[0].isdigit() else 0
        tries = tries or len(endpoints)  # 0: as many tries as servers
        if "off" not in classes and tries > 1:
            counted = frozenset(c for c in classes if c.startswith("http_") and c not in ("http_403", "http_404")) \
                if "non_idempotent" in classes else frozenset()  # the load's POSTs: retried (and counted) only so
            retry_on = HTTP_CLASSES.get(counted)
            if retry_on is None:
                assert next_at is not None
                unmodelled.append(Unmodelled(next_at.source, f"nginx counts {' '.join(sorted(counted))} answers as "
                                             "failures: the promise knows http_502 http_503 http_504 and http_500 "
                                             "http_502 http_503 http_504"))
                retry_on = ["5xx"]
            settings["retries"] = {"num_retries": min(tries - 1, 10), "retry_on": retry_on,
                                   "per_try_timeout": read_timeout or None}
            if next_at is not None:
                where[("gateway", "retries")] = next_at.source
                where[("gateway", "retries", "retry_on")] = next_at.source
            if tries_at is not None:
                where[("gateway", "retries", "num_retries")] = tries_at.source
            if read_at is not None:
                where[("gateway", "retries", "per_try_timeout")] = read_at.source
        from harness.scenario import Gateway  # harness.scenario imports this package's registry

        try:
            model = Gateway.model_validate(settings)
        except ValidationError as exc:  # a value the scenario model cannot hold: said at the block, never a traceback
            error = exc.errors()[0]
            raise _refuse(upstream, f"{'.'.join(map(str, error['loc']))}: {error['msg']} (read from this upstream's "
                                    "settings)") from None
        return Block(name, Source(upstream.file, upstream.line, f"upstream {name}"), tuple(endpoints),
                     model, where, tuple(unmodelled), backup=tuple(backup))

    # -- rewriting -------------------------------------------------------------------
    def rewrite(self, config: NativeConfig, job: RewriteJob) -> Rewritten:
        root = _parse(config.path, config.text)
        survey = _survey(root)
        prefix = (job.run_dir / "nginx").resolve()
        edits = _Edits(config.file, config.text)
        folder = config.path.resolve().parent
        # Relative file arguments: nginx resolves them against its main file's folder, which is now the run's
        # (includes: below, once it is known which included files change).
        for stmt in root.walk():
            if stmt.directive in FILE_DIRECTIVES - {"include"} and stmt.args and not os.path.isabs(stmt.args[0]):
                edits.replace_arg(stmt, stmt.args[0], str(folder / stmt.args[0]))
        # The bound upstreams' servers → the replicas' listeners, each server's own parameters kept.
        for block, _pool in job.binding.items():
            replicas = job.replicas_of(block)
            for stmt, replica in zip(survey.upstreams[block].children("server"), replicas):
                edits.replace_arg(stmt, stmt.args[0], f"{replica.host}:{replica.port}")
        # Listeners: the load's is the first listen of the server that proxies the load's path to a bound upstream
        # (else of the first server); every other one moves to a free local port.
        routes = [r for block in job.binding for r in [_route_for_load(survey.routes[block])] if r is not None]
        load_server = next((b for b in routes[0].chain() if b.directive == "server"), None) if routes else None
        if load_server is None:
            load_server = next(iter(survey.servers), None)
        if load_server is None:
            raise ScenarioError([Problem(config.file, None, None, "server", "no server block: nothing listens for "
                                                                            "the load's requests")])
        for server in survey.servers:
            found = server.children("listen")
            first = server is load_server
            if not found:
                port = job.listen_port if first else job.free_port()
                edits.insert_into(server, f"listen {job.bind_address}:{port};  # chaosgate: "
                                          "not port 80 (no listen: nginx's default)")
                continue
            # the load speaks plain HTTP: its port goes to the server's first listen without ssl
            plain = next((listen for listen in found if "ssl" not in listen.args[1:]), None) if first else None
            if first and plain is None:
                raise ScenarioError([Problem(found[0].file, found[0].line, None, " ".join(["listen", *found[0].args]),
                                             "the load sends plain HTTP, and every listen of the server that "
                                             "proxies its path serves TLS (ssl): add a plain listen to that server")])
            for listen in found:
                v6 = listen.args[0].startswith("[")
                load = listen is plain
                port = job.listen_port if load else job.free_port()
                address = f"{job.bind_address}:{port}" if load or not v6 else f"[::1]:{port}"
                edits.replace_arg(listen, listen.args[0], address)
                if load and v6:
                    for arg in listen.args[1:]:
                        if arg.startswith("ipv6only="):
                            edits.replace_arg(listen, arg, "")
        ready_server = load_server
        # Logs, pid, foreground: what the adapter reads and how it starts nginx.
        error_log = f"{prefix}/error.log warn"
        access_log = f"{prefix}/access.log chaosgate"
        main_set: set[str] = set()
        # the blocks requests to a bound upstream go through: the observer needs them logged
        proxying = [b for block in job.binding for r in survey.routes[block] for b in r.chain()[1:]]
        for stmt in root.walk():
            if stmt.directive == "error_log":
                edits.replace_statement(stmt, f"error_log {error_log};")
                main_set.add("error_log" if stmt.parent is root else "")
            elif stmt.directive == "access_log" and (stmt.args[0] != "off" or stmt.parent is survey.http
                                                     or (stmt.parent is not None and stmt.parent.directive == "server")
                                                     or stmt.parent in proxying):
                edits.replace_statement(stmt, f"access_log {access_log};")
            elif stmt.directive == "pid":
                edits.replace_statement(stmt, f"pid {prefix}/nginx.pid;")
                main_set.add("pid")
            elif stmt.directive == "daemon":
                edits.replace_statement(stmt, "daemon off;")
                main_set.add("daemon")
            elif stmt.directive == "user" and stmt.args and not _user_exists(stmt.args[0]):
                edits.replace_statement(stmt, f"# {' '.join(['user', *stmt.args])};  # chaosgate: no such user here")
        added = [line for key, line in (("daemon", "daemon off;"), ("pid", f"pid {prefix}/nginx.pid;"),
                                        ("error_log", f"error_log {error_log};")) if key not in main_set]
        if added:
            edits.append(["# Added by chaosgate for this run: in the foreground, its pid and error log in the run's "
                          "folder.", *added])
        if survey.http is None:
            raise ScenarioError([Problem(config.file, None, None, "http", "no http block: nothing proxies requests")])
        http_lines = [f"log_format chaosgate escape=json '{ACCESS_FORMAT}';"]
        if not survey.http.children("access_log"):
            http_lines.append(f"access_log {access_log};")
        http_lines += ["map $upstream_addr $chaosgate_upstream {",
                       '    "~(?<last>[0-9a-fA-F.:\\[\\]]+:[0-9]+)$" $last;',
                       '    default "";',
                       "}",
                       f"add_header {UPSTREAM_HEADER} $chaosgate_upstream always;",
                       *[f"{kind}_temp_path {prefix}/tmp/{kind};" for kind in TEMP_PATHS
                         if not survey.http.children(f"{kind}_temp_path")]]
        edits.insert_into(survey.http, "# Added by chaosgate: the observer's log format, and the picked replica's address "
                                       "as a header.", http_lines)
        # add_header is inherited only by blocks that set none of their own: those get the header too.
        for stmt in root.walk():
            if stmt.block is not None and stmt is not survey.http and stmt.children("add_header"):
                edits.insert_into(stmt, f"add_header {UPSTREAM_HEADER} $chaosgate_upstream always;  # chaosgate")
        # last: its statements must not be taken for the user's by the edits above on the same line
        edits.insert_into(ready_server, f"location = {READY_PATH} {{ access_log off; return 204; }}  # chaosgate: "
                                        "readiness")
        copies = _point_includes_at_copies(root, edits, folder, prefix / "conf")
        for original, copy in copies.items():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(edits.text(original), encoding="utf-8")
            before = Path(original).read_text(encoding="utf-8", errors="replace")
            copy.with_name(copy.name + ".diff").write_text("".join(difflib.unified_diff(
                before.splitlines(keepends=True), edits.text(original).splitlines(keepends=True), fromfile=original,
                tofile=str(copy))), encoding="utf-8")
        return Rewritten(edits.text(), {"prefix": str(prefix), "error_log": f"{prefix}/error.log",
                                        "access_log": f"{prefix}/access.log",
                                        "included": {original: str(copy) for original, copy in copies.items()}})


def _point_includes_at_copies(root: Stmt, edits: _Edits, folder: Path, copies_dir: Path) -> dict[str, Path]:
    """Included files that change are run from copies (``copies_dir``, each with its diff beside it); so is every
    file with an include to change (one that is relative, or brings in a copied file), up to the main file.
    Every include that changes names its files one by one, absolute: the original, or its copy."""
    includes = [s for s in root.walk() if s.directive == "include" and s.args]
    changed = set(edits.included_changes())
    while True:
        grow = {inc.file for inc in includes if inc.file != edits.file
                and (not os.path.isabs(inc.args[0]) or any(f in changed for f in inc.included))}
        if grow <= changed:
            break
        changed |= grow
    copies = {name: copies_dir / f"{i}-{Path(name).name}" for i, name in enumerate(sorted(changed))}
    for inc in includes:
        if os.path.isabs(inc.args[0]) and not any(f in copies for f in inc.included):
            continue
        targets = [str(copies.get(f, Path(f))) for f in inc.included] or [str(folder / inc.args[0])]
        edits.replace_statement(inc, " ".join(f"include {target};" for target in targets))
    return copies


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass
class _Lines:
    """One file's lines as edited, and the lines added after some of them."""

    lines: list[str]
    after: dict[int, list[str]] = field(default_factory=dict)
    changed: bool = False

    def text(self) -> str:
        out: list[str] = []
        for i, line in enumerate(self.lines):
            out.append(line)
            out += self.after.get(i, [])
        return "".join(out)


class _Edits:
    """Line edits keyed on crossplane's line numbers: of the main file, and of the files it includes (those
    that change are written as copies into the run's folder, and the includes point at the copies)."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.files: dict[str, _Lines] = {file: self._lines(text)}
        self.tail: list[str] = []

    @staticmethod
    def _lines(text: str) -> _Lines:
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return _Lines(lines)

    def _check(self, stmt: Stmt, what: str) -> tuple[_Lines, int]:
        if stmt.file not in self.files:
            self.files[stmt.file] = self._lines(Path(stmt.file).read_text(encoding="utf-8", errors="replace"))
        lines = self.files[stmt.file]
        lines.changed = True
        return lines, stmt.line - 1

    def replace_arg(self, stmt: Stmt, old: str, new: str) -> None:
        file, index = self._check(stmt, f"{stmt.directive} {old}")
        line = file.lines[index]
        at = line.find(stmt.directive)
        found = line.find(old, at + len(stmt.directive)) if at >= 0 else -1
        if found < 0:
            raise ScenarioError([Problem(stmt.file, stmt.line, None, stmt.directive,
                                         f"chaosgate must change {old!r} and cannot find it on this line (a directive "
                                         "split over lines?): put it on the directive's line")])
        if new == "":  # drop the argument and the blank before it
            start = found - 1 if found > 0 and line[found - 1] == " " else found
            file.lines[index] = line[:start] + line[found + len(old):]
        else:
            file.lines[index] = line[:found] + new + line[found + len(old):]

    def replace_statement(self, stmt: Stmt, new: str) -> None:
        file, index = self._check(stmt, stmt.directive)
        line = file.lines[index]
        match = re.search(rf"\b{re.escape(stmt.directive)}" + "".join(rf"\s+{re.escape(a)}" for a in stmt.args)
                          + r"\s*;", line)  # this statement, not one added to the line before
        if match is None:
            match = re.compile(rf"\b{re.escape(stmt.directive)}\b[^;]*;").search(line)
        if match is None:
            raise ScenarioError([Problem(stmt.file, stmt.line, None, stmt.directive,
                                         f"chaosgate must change this {stmt.directive} and cannot find its end on "
                                         "this line: put it on one line")])
        file.lines[index] = line[:match.start()] + new + line[match.end():]

    def insert_into(self, block: Stmt, first: str, more: list[str] | None = None) -> None:
        """Lines at the start of ``block`` (after its ``{``), indented one level deeper than it."""
        file, index = self._check(block, f"{block.directive} block")
        line = file.lines[index]
        indent = re.match(r"\s*", line)
        base = indent.group(0) if indent else ""
        inner = base + "    "
        text = "".join(f"{inner}{piece}\n" for piece in [first, *(more or [])])
        opening = re.search(rf"\b{re.escape(block.directive)}" + "".join(rf"\s+{re.escape(a)}" for a in block.args)
                            + r"\s*\{", line)  # the block's own brace, not one of a block added to the line before
        brace = opening.end() - 1 if opening is not None else line.find("{", line.find(block.directive))
        if brace < 0:
            raise ScenarioError([Problem(block.file, block.line, None, block.directive,
                                         "chaosgate adds lines to this block and expects its { on the same line")])
        rest = line[brace + 1:].strip()
        if rest and not rest.startswith("#"):  # the block goes on on the same line: the lines go right after the {
            file.lines[index] = line[:brace + 1] + "\n" + text + inner + line[brace + 1:].lstrip()
            return
        file.after.setdefault(index, []).append(text)

    def append(self, lines: list[str]) -> None:
        self.tail += [f"{line}\n" for line in lines]

    def included_changes(self) -> list[str]:
        """The included files that changed."""
        return [name for name, lines in self.files.items() if name != self.file and lines.changed]

    def text(self, file: str | None = None) -> str:
        lines = self.files[file or self.file]
        tail = ["\n", *self.tail] if self.tail and (file is None or file == self.file) else []
        return lines.text() + "".join(tail)
