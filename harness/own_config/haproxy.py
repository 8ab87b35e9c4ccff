"""The user's own haproxy.cfg (HAProxy 2.6): read into the scenario model, rewritten for one run.

The reading direction is the inverse of harness/gateways/haproxy.py (docs/own-config/haproxy.md):
a backend's ``check`` + ``inter/fall/rise`` + ``timeout check`` + ``option httpchk`` + ``http-check
expect`` are its health_check, ``observe`` + ``error-limit`` + ``on-error`` its outlier_detection
(and gateway.haproxy.observe/on_error), ``retries`` + ``retry-on`` + ``option redispatch`` its retries,
``timeout connect/server`` its timeouts, ``fastinter``/``downinter``/``spread-checks`` gateway.haproxy.
HAProxy's own defaults apply where the file is silent (inter 2s, fall 3, rise 2, error-limit 10,
on-error fail-check, retries 3 on conn-failure, no timeouts), and ``defaults`` sections are inherited
(the last one before a proxy, or the one ``from`` names), ``default-server`` lines too.

The file is read line by line (HAProxy's own syntax: a section keyword starts a section, words are
separated by blanks, ``#`` starts a comment, quotes and backslashes escape); the rewrite edits lines
and keeps every other byte, so the diff shows only what chaosgate changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import Problem
from harness.gateways.base import UPSTREAM_HEADER
from harness.gateways.haproxy import LOG_LINE, RETRY_ON
from harness.own_config.base import (
    Block,
    Endpoint,
    NativeConfig,
    RewriteJob,
    Rewritten,
    Source,
    Unmodelled,
    refuse_all,
)

SECTIONS = frozenset({"global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "mailers",
                      "userlist", "cache", "program", "http-errors", "ring", "fcgi-app", "log-forward"})
PROXIES = frozenset({"frontend", "backend", "listen"})
# HAProxy 2.6's defaults where the file says nothing (its configuration manual, 5.2 and 4.2)
DEFAULT_INTER, DEFAULT_FALL, DEFAULT_RISE, DEFAULT_ERROR_LIMIT = 2.0, 3, 2, 10
DEFAULT_ON_ERROR, DEFAULT_RETRIES, DEFAULT_RETRY_ON = "fail-check", 3, ("conn-failure",)
NO_TIMEOUT = 86400.0  # HAProxy waits forever without `timeout connect`; the model needs a number
NEUTRALISED = "# [chaosgate] "  # the prefix of a line the rewrite turned off (docs/own-config/haproxy.md)

# global keywords the rewrite turns off, and why: chaosgate starts HAProxy as its own child process (in the
# foreground, -db, which also overrides `daemon`) with the privileges of whoever runs chaosgate
RUN_AS_IS = "chaosgate runs HAProxy as the user running chaosgate, without root"
UNPRIVILEGED = {"chroot": RUN_AS_IS, "user": RUN_AS_IS, "group": RUN_AS_IS, "uid": RUN_AS_IS, "gid": RUN_AS_IS,
                "pidfile": "chaosgate knows its child's pid; no file outside the run's folder",
                "master-worker": "chaosgate runs one HAProxy process and watches it (no master forking workers)"}

# Server keywords (HAProxy 2.6, configuration manual 5.2) that take no value, and those that take one.
SERVER_FLAGS = frozenset({
    "agent-check", "allow-0rtt", "backup", "check", "check-send-proxy", "check-ssl", "check-via-socks4",
    "disabled", "enabled", "force-sslv3", "force-tlsv10", "force-tlsv11", "force-tlsv12", "force-tlsv13",
    "no-agent-check", "no-backup", "no-check", "no-check-ssl", "no-send-proxy", "no-send-proxy-v2",
    "no-send-proxy-v2-ssl", "no-send-proxy-v2-ssl-cn", "no-ssl", "no-ssl-reuse", "no-sslv3", "no-tfo",
    "no-tls-tickets", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13", "no-verifyhost", "non-stick",
    "send-proxy", "send-proxy-v2", "send-proxy-v2-ssl", "send-proxy-v2-ssl-cn", "ssl", "ssl-reuse", "stick",
    "tfo", "tls-tickets"})
SERVER_VALUES = frozenset({
    "addr", "agent-addr", "agent-inter", "agent-port", "agent-send", "alpn", "ca-file", "check-alpn",
    "check-proto", "check-sni", "ciphers", "ciphersuites", "cookie", "crl-file", "crt", "curves", "downinter",
    "error-limit", "fall", "fastinter", "id", "init-addr", "inter", "interface", "log-proto", "max-reuse",
    "maxconn", "maxqueue", "minconn", "namespace", "npn", "observe", "on-error", "on-marked-down",
    "on-marked-up", "pool-conn-name", "pool-low-conn", "pool-max-conn", "pool-purge-delay", "port", "proto",
    "proxy-v2-options", "redir", "resolve-net", "resolve-opts", "resolve-prefer", "resolvers", "rise",
    "set-proxy-v2-tlv-fmt", "shard", "sigalgs", "client-sigalgs", "slowstart", "sni", "socks4", "source",
    "ssl-max-ver", "ssl-min-ver", "tcp-ut", "track", "usesrc", "verify", "verifyhost", "weight", "ws"})
# what a server keyword's value must be, for the message refusing one that is not
EXPECTED = {"inter": "a time such as 2s or 500ms", "fastinter": "a time such as 2s or 500ms",
            "downinter": "a time such as 2s or 500ms", "fall": "a number of checks, 1 or more",
            "rise": "a number of checks, 1 or more", "error-limit": "a number of errors, 1 or more",
            "on-error": "fail-check, fastinter, sudden-death or mark-down"}
# What each health-relevant server keyword is in the scenario model (for where it is set)
CHECK_KEYS = ("check", "inter", "fastinter", "downinter", "fall", "rise", "observe", "error-limit", "on-error")
UNIX_PREFIXES = ("/", "unix@", "abns@", "fd@", "sockpair@", "uxst@", "uxdg@")
ADDRESS_PREFIXES = ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@", "udp@", "udp4@", "udp6@", "quic4@", "quic6@")
_TIME = re.compile(r"^(\d+)(us|ms|s|m|h|d)?$")
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1e-3}
BALANCE_EVEN = frozenset({"roundrobin", "static-rr", "leastconn", "random"})


# -- the file as sections of lines ---------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    number: int      # 1-based
    words: tuple[str, ...]
    raw: str         # the line as written, with its line ending


@dataclass
class Section:
    kind: str
    name: str
    header: Line
    lines: list[Line] = field(default_factory=list)
    defaults: Section | None = None  # the defaults section a proxy inherits from

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}".strip()


class _Unparseable(Exception):
    pass


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """A configuration line's words as HAProxy 2.6 splits them (blanks, quotes, backslash, ``#``), each with
    where it is written in the line (start and end offsets, quotes included)."""
    spans: list[tuple[str, int, int]] = []
    word: list[str] = []
    start: int | None = None
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                word.append(text[i])
            else:
                word.append(c)
        elif c in " \t\r\n" or c == "#":
            if start is not None:
                spans.append(("".join(word), start, i))
                word, start = [], None
            if c == "#":
                break
        else:
            if start is None:
                start = i
            if c in "'\"":
                quote = c
            elif c == "\\" and i + 1 < len(text):
                i += 1
                word.append(text[i])
            else:
                word.append(c)
        i += 1
    if quote:
        raise _Unparseable(f"a {quote} quote is not closed")
    if start is not None:
        spans.append(("".join(word), start, len(text)))
    return spans


def split_words(text: str) -> list[str]:
    return [word for word, _, _ in word_spans(text)]


def sections_of(file: str, text: str) -> list[Section]:
    problems: list[Problem] = []
    sections: list[Section] = []
    last_defaults: Section | None = None
    named_defaults: dict[str, Section] = {}
    for number, raw in enumerate(text.splitlines(keepends=True), start=1):
        try:
            words = tuple(split_words(raw))
        except _Unparseable as exc:
            problems.append(Problem(file, number, None, raw.strip()[:40], f"cannot be read: {exc}"))
            continue
        if not words:
            continue
        line = Line(number, words, raw)
        if words[0] in SECTIONS:
            name = words[1] if len(words) > 1 and words[1] != "from" else ""
            section = Section(words[0], name, line)
            if section.kind in PROXIES:
                parent = last_defaults
                if "from" in words:
                    wanted = words[words.index("from") + 1] if words.index("from") + 1 < len(words) else ""
                    parent = named_defaults.get(wanted)
                    if parent is None:
                        problems.append(Problem(file, number, None, f"{section.label} from",
                                                f"no defaults section named {wanted!r} before this line"))
                section.defaults = parent
            elif section.kind == "defaults":
                last_defaults = section
                if name:
                    named_defaults[name] = section
            sections.append(section)
        elif not sections:
            problems.append(Problem(file, number, None, words[0],
                                    f"{words[0]!r} is outside any section (HAProxy's sections: global, defaults, "
                                    "frontend, backend, listen, ...)"))
        else:
            sections[-1].lines.append(line)
    refuse_all(problems)
    return sections


def parse_time(value: str) -> float | None:
    """An HAProxy time ('2s', '500ms', '1500': milliseconds without a unit) in seconds; None if not one."""
    match = _TIME.match(value)
    return None if match is None else int(match.group(1)) * _TIME_UNITS[match.group(2)]


def split_address(address: str) -> tuple[str, int, bool]:
    """(host, port, unix socket) of a server/log/peer address: ``ipv4@``-style prefixes dropped, the port
    after the last colon (0 when there is none or it is an offset such as +1)."""
    if address.startswith(UNIX_PREFIXES):
        return address, 0, True
    for prefix in ADDRESS_PREFIXES:
        if address.startswith(prefix):
            address = address[len(prefix):]
            break
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    elif ":" in address:
        host, _, port = address.rpartition(":")
    else:
        host, port = address, ""
    return host or "0.0.0.0", int(port) if port.isdigit() else 0, False


# -- a backend's servers and settings -------------------------------------------------------------

@dataclass
class Server:
    name: str
    line: Line
    address: str
    options: dict[str, tuple[str, Line]]  # keyword → (value, where set: the server's or a default-server line)
    template: bool = False

    def value(self, key: str) -> tuple[str, Line] | None:
        return self.options.get(key)

    def flag(self, on: str) -> Line | None:
        """Where the flag is set, unless its ``no-`` form (or nothing) has the last word."""
        got = self.options.get(on)
        return got[1] if got is not None and got[0] == on else None


def server_options(words: tuple[str, ...], line: Line, options: dict[str, tuple[str, Line]],
                   unknown: list[tuple[str, Line]]) -> None:
    """Apply a server / default-server line's keywords to ``options`` (later ones override)."""
    i = 0
    while i < len(words):
        word = words[i]
        if word in SERVER_FLAGS:
            if word.startswith("no-") and word[3:] in SERVER_FLAGS:
                options[word[3:]] = (word, line)
            elif word == "disabled":
                options["enabled"] = (word, line)
            else:
                options[word] = (word, line)
            i += 1
        elif word in SERVER_VALUES and i + 1 < len(words):
            options[word] = (words[i + 1], line)
            i += 2
        else:
            unknown.append((word, line))
            i += 1


def proxy_lines(section: Section) -> Iterator[tuple[Line, Section]]:
    """The lines a proxy's settings come from: its defaults section's, then its own."""
    if section.defaults is not None:
        yield from ((line, section.defaults) for line in section.defaults.lines)
    yield from ((line, section) for line in section.lines)


def last_of(section: Section, match: Callable[[tuple[str, ...]], bool]) -> tuple[Line, Section] | None:
    found = None
    for line, owner in proxy_lines(section):
        if match(line.words):
            found = (line, owner)
    return found


@dataclass
class Reading:
    """One block being read: its settings as the scenario model's fields, and where each is set."""

    file: str
    section: Section
    fields: dict[str, Any] = field(default_factory=dict)
    where: dict[tuple[str | int, ...], Source] = field(default_factory=dict)
    unmodelled: list[Unmodelled] = field(default_factory=list)
    cannot_bind: list[Unmodelled] = field(default_factory=list)

    def source(self, line: Line, owner: Section, setting: str) -> Source:
        return Source(self.file, line.number, f"{owner.label}: {setting}")

    def at(self, path: tuple[str | int, ...], line: Line, owner: Section, setting: str) -> None:
        self.where[("gateway", *path)] = self.source(line, owner, setting)

    def unknown(self, line: Line, owner: Section, setting: str, why: str,
                only_for: Callable[[frozenset[int]], bool] | None = None) -> None:
        self.unmodelled.append(Unmodelled(self.source(line, owner, setting), why, only_for))

    def refuse(self, line: Line, setting: str, why: str) -> None:
        """What stops the block from running bound to a pool (refused only when a scenario binds it)."""
        self.cannot_bind.append(Unmodelled(self.source(line, self.section, setting), why))


def server_setting(line: Line, setting: str) -> str:
    """A server keyword as the line that sets it names it: 'default-server inter 2s', 'server chat-a inter 2s'."""
    return f"{line.words[0]} {line.words[1]} {setting}" if line.words[0] == "server" else f"{line.words[0]} {setting}"


def owner_of(line: Line, section: Section) -> Section:
    return section.defaults if section.defaults is not None and line in section.defaults.lines else section


class HaproxyReader:
    """haproxy.cfg ↔ the scenario model (docs/own-config/haproxy.md)."""

    kind = "haproxy"
    file_patterns: tuple[str, ...] = ("haproxy*.cfg",)

    # -- read ---------------------------------------------------------------------------------
    def read(self, path: Path, text: str) -> NativeConfig:
        file = str(path)
        sections = sections_of(file, text)
        problems: list[Problem] = []
        spread = self._spread_checks(sections)
        blocks: dict[str, Block] = {}
        for section in sections:
            if section.kind in ("backend", "listen"):
                block = self._block(file, section, spread)
                if block is not None:
                    blocks[section.name] = block
        first = first_frontend(sections)
        if first is not None:
            mode = last_of(first, lambda w: w[:1] == ("mode",))
            bind = next(line for line in first.lines if line.words[0] == "bind")
            if "ssl" in bind.words[2:]:
                problems.append(Problem(file, bind.number, None, f"{first.label}: bind {bind.words[1]} ssl",
                                        "the first bind of the first frontend, where chaosgate's load goes, takes TLS: "
                                        "the load speaks plain HTTP; put a plain bind first"))
            if mode is None:
                problems.append(Problem(file, first.header.number, None, f"{first.label}: mode",
                                        "the first frontend runs in mode tcp (HAProxy's default without `mode http`): "
                                        "chaosgate's load and its x-chaosgate-upstream header need mode http"))
            elif mode[0].words[1:2] != ("http",):
                problems.append(Problem(file, mode[0].number, None, f"{first.label}: mode",
                                        f"the first frontend runs in mode {' '.join(mode[0].words[1:2])}: chaosgate's "
                                        "load and its x-chaosgate-upstream header need mode http"))
        refuse_all(problems)
        load_block, load_source = load_route(file, first, sections)
        return NativeConfig(self.kind, path, text, blocks, tuple(outbound(file, sections)), "backend",
                            load_block=load_block, load_source=load_source)

    @staticmethod
    def _spread_checks(sections: list[Section]) -> tuple[int, Line | None]:
        found: tuple[int, Line | None] = (0, None)
        for section in sections:
            if section.kind == "global":
                for line in section.lines:
                    if line.words[0] == "spread-checks" and len(line.words) > 1 and line.words[1].isdigit():
                        found = (min(int(line.words[1]), 50), line)
        return found

    def _block(self, file: str, section: Section, spread: tuple[int, Line | None]) -> Block | None:
        reading = Reading(file, section)
        defaults: dict[str, tuple[str, Line]] = {}
        unknown: list[tuple[str, Line]] = []
        servers: list[Server] = []
        for line, owner in proxy_lines(section):
            words = line.words
            if words[0] == "default-server":
                server_options(words[1:], line, defaults, unknown)
            elif words[0] in ("server", "server-template") and owner is section:
                servers.append(self._server(reading, line, defaults))
        if not servers:
            return None
        own = Source(file, section.header.number, section.label)
        endpoints: list[Endpoint] = []
        for server in servers:
            host, port, unix = split_address(server.address)
            setting = f"{section.label}: {server.line.words[0]} {server.name}"
            if server.template:
                reading.refuse(server.line, f"server-template {server.name}",
                               "a server template's addresses come from DNS discovery: chaosgate puts one "
                               "Toxiproxy listener in front of each replica, so bind a backend of `server` lines")
            elif unix:
                reading.refuse(server.line, f"server {server.name}",
                               f"{server.address} is a socket, not a TCP address: chaosgate's replicas are TCP listeners")
            elif (resolvers := server.value("resolvers")) is not None:
                reading.refuse(resolvers[1], f"server {server.name} resolvers",
                               f"the server's address is discovered through resolvers {resolvers[0]} (DNS): chaosgate "
                               "puts one Toxiproxy listener in front of each replica; remove resolvers")
            else:
                if (tls := server.value("ssl")) is not None and tls[0] == "ssl":
                    reading.refuse(tls[1], f"server {server.name} ssl",
                                   "the server speaks TLS, and chaosgate's replicas behind Toxiproxy speak plain HTTP "
                                   "(a pool's tls uses chaosgate's test CA, which this file does not trust): "
                                   "bind a backend whose servers speak HTTP")
                for key in ("addr", "port", "agent-addr"):
                    if (got := server.value(key)) is not None:
                        reading.refuse(got[1], f"server {server.name} {key}",
                                       f"{key} {got[0]} sends its health checks elsewhere than the server's address, "
                                       "past the replica's Toxiproxy listener, so faults would not reach them")
            words = server.line.words
            count = min(int(words[2]), 64) if server.template and len(words) > 2 and words[2].isdigit() else 1
            endpoints += [Endpoint(host, port, Source(file, server.line.number, setting))] * count
        for word, line in unknown:
            reading.refuse(line, f"default-server {word}", "not a server keyword of HAProxy 2.6 (its configuration "
                                                           "manual, 5.2)")
        self._health(reading, servers, spread)
        self._retries(reading)
        self._timeouts(reading)
        self._backups(reading, servers)
        from harness.scenario import Gateway

        try:
            settings = Gateway.model_validate({"kind": "haproxy", "panic_threshold": 0, **reading.fields})
        except ValidationError as exc:  # a value the model cannot hold (none is expected: the reader checks them)
            reading.refuse(section.header, "", f"cannot be read into chaosgate's model: {exc.errors()[0]['msg']}")
            settings = Gateway.model_validate({"kind": "haproxy", "panic_threshold": 0})
        backup = tuple(i for i, server in enumerate(servers) if server.flag("backup") is not None)
        block = Block(section.name, own, tuple(endpoints), settings, reading.where, tuple(reading.unmodelled),
                      backup=backup, cannot_bind=tuple(reading.cannot_bind))
        return block

    def _server(self, reading: Reading, line: Line, defaults: dict[str, tuple[str, Line]]) -> Server:
        words = line.words
        template = words[0] == "server-template"
        need = 4 if template else 3
        if len(words) < need:
            reading.refuse(line, words[0], f"expected `{words[0]} NAME {'NUM ' if template else ''}ADDRESS[:PORT] "
                                           "[options]`")
            return Server(words[1] if len(words) > 1 else "?", line, "0.0.0.0:0", dict(defaults), template)
        options = dict(defaults)
        unknown: list[tuple[str, Line]] = []
        server_options(words[need:], line, options, unknown)
        if unknown:
            reading.refuse(line, f"server {words[1]}", f"unknown keyword(s) {', '.join(w for w, _ in unknown)} "
                                                       "(HAProxy 2.6's server keywords are in its configuration manual, 5.2)")
        return Server(words[1], line, words[need - 1], options, template)

    # -- health checks: check, inter, fall, rise, httpchk, observe --------------------------------
    def _health(self, reading: Reading, servers: list[Server], spread: tuple[int, Line | None]) -> None:
        section = reading.section
        per_server = [tuple((s.options.get(k) or ("", None))[0] for k in CHECK_KEYS) for s in servers]
        for server, values in zip(servers, per_server):
            if values != per_server[0]:
                differs = next(k for k, a, b in zip(CHECK_KEYS, values, per_server[0]) if a != b)
                got = server.value(differs)
                line = got[1] if got is not None else server.line
                reading.unknown(line, owner_of(line, section), f"server {server.name} {differs}",
                                f"{differs} differs between the servers of {section.label}: the promise model has one "
                                "health check per pool")
                break
        first = servers[0]
        checked = first.flag("check")
        for server in servers:
            for key, on, why in (("agent-check", "agent-check", "an agent check can mark the server down or set its weight"),
                                 ("track", None, "its health is the tracked server's, not its own checks'"),
                                 ("enabled", "disabled", "the server starts in maintenance (disabled)"),
                                 ("weight", "0", "weight 0: the server gets no requests, so observe hears nothing of it")):
                got = server.value(key)
                if got is not None and (on is None or got[0] == on):
                    flag = key in SERVER_FLAGS or got[0] in SERVER_FLAGS
                    reading.unknown(got[1], owner_of(got[1], section),
                                    f"server {server.name} {got[0] if flag else f'{key} {got[0]}'}", why)
        if checked is None:
            reading.fields["health_check"] = None
            return
        hc: dict[str, Any] = {}
        reading.at(("health_check",), checked, owner_of(checked, section), server_setting(checked, "check"))

        def take(key: str, path: tuple[str, ...], convert: Callable[[str], Any], default: Any,
                 into: dict[str, Any], name: str) -> Any:
            got = first.value(key)
            if got is None:
                into[name] = default
                return default
            value = convert(got[0])
            if not value:  # None: not one; 0: HAProxy refuses a zero interval or count too
                reading.refuse(got[1], key, f"{key} {got[0]}: expected {EXPECTED[key]}")
                into[name] = default
                return default
            into[name] = value
            reading.at(path, got[1], owner_of(got[1], section), server_setting(got[1], f"{key} {got[0]}"))
            return value

        inter = take("inter", ("health_check", "interval"), parse_time, DEFAULT_INTER, hc, "interval")
        take("fall", ("health_check", "unhealthy_threshold"), _count, DEFAULT_FALL, hc, "unhealthy_threshold")
        take("rise", ("health_check", "healthy_threshold"), _count, DEFAULT_RISE, hc, "healthy_threshold")
        haproxy: dict[str, Any] = {"spread_checks": spread[0]}
        if spread[1] is not None:
            reading.where[("gateway", "haproxy", "spread_checks")] = Source(reading.file, spread[1].number,
                                                                           f"global: spread-checks {spread[0]}")
        take("fastinter", ("haproxy", "fastinter"), parse_time, None, haproxy, "fastinter")
        take("downinter", ("haproxy", "downinter"), parse_time, None, haproxy, "downinter")
        timeout = last_of(section, lambda w: w[:2] == ("timeout", "check"))
        hc["timeout"] = inter  # without `timeout check`, inter bounds the whole check
        if timeout is not None:
            value = parse_time(timeout[0].words[2]) if len(timeout[0].words) > 2 else None
            if value:
                hc["timeout"] = value
                reading.at(("health_check", "timeout"), timeout[0], timeout[1], f"timeout check {timeout[0].words[2]}")
        self._httpchk(reading, hc)
        reading.fields["health_check"] = hc
        observe = first.value("observe")
        if observe is not None:
            if observe[0] not in ("layer4", "layer7"):
                reading.refuse(observe[1], "observe", f"observe {observe[0]}: expected layer4 or layer7")
            else:
                haproxy["observe"] = observe[0]
                for path in (("outlier_detection",), ("haproxy", "observe")):
                    reading.at(path, observe[1], owner_of(observe[1], section),
                               server_setting(observe[1], f"observe {observe[0]}"))
                od: dict[str, Any] = {"max_ejection_percent": 100}
                take("error-limit", ("outlier_detection", "consecutive_5xx"), _count, DEFAULT_ERROR_LIMIT, od,
                     "consecutive_5xx")
                take("on-error", ("haproxy", "on_error"), _on_error, DEFAULT_ON_ERROR, haproxy, "on_error")
                reading.fields["outlier_detection"] = od
                self._even_spread(reading)
        reading.fields["haproxy"] = {k: v for k, v in haproxy.items() if v is not None}

    def _httpchk(self, reading: Reading, hc: dict[str, Any]) -> None:
        section = reading.section
        httpchk = last_of(section, lambda w: w[:2] in (("option", "httpchk"), ("no", "option")) and "httpchk" in w)
        if httpchk is None or httpchk[0].words[0] == "no":
            line = httpchk[0] if httpchk else section.header
            reading.unknown(line, httpchk[1] if httpchk else section, "check",
                            "a TCP connect check (no option httpchk): the promise model checks with an HTTP GET")
            return
        line, owner = httpchk
        args = line.words[2:]
        method, uri = ("OPTIONS", "/") if not args else ("OPTIONS", args[0]) if len(args) == 1 else (args[0], args[1])
        # HAProxy 2.6 inherits the defaults section's http-check rules only when the proxy has none of its own
        rules = [(ln, section) for ln in section.lines if ln.words[0] == "http-check"] or \
            [(ln, o) for ln, o in proxy_lines(section) if ln.words[0] == "http-check"]
        sends = [(ln, o) for ln, o in rules if ln.words[1:2] == ("send",)]
        if other := next(((ln, o) for ln, o in rules if ln.words[1:2] not in (("send",), ("expect",))), None):
            reading.unknown(other[0], other[1], " ".join(other[0].words[:2]),
                            "the promise model knows a check of one request (http-check send) and its status")
        for send_line, send_owner in sends:
            words = send_line.words
            if "meth" in words and words.index("meth") + 1 < len(words):
                method = words[words.index("meth") + 1]
            if "uri" in words and words.index("uri") + 1 < len(words):
                uri = words[words.index("uri") + 1]
                line, owner = send_line, send_owner
        if method.upper() not in ("GET", "HEAD"):
            reading.unknown(line, owner, f"option httpchk {method}", f"the health check sends {method} {uri}: the "
                            "promise model checks with GET")
        hc["path"] = uri
        reading.at(("health_check", "path"), line, owner, " ".join(line.words))
        expects = [(ln, o) for ln, o in rules if ln.words[1:2] == ("expect",)]
        if len(expects) > 1:
            reading.unknown(expects[1][0], expects[1][1], "http-check expect",
                            "several http-check expect rules: the promise model knows one list of statuses")
            return
        if not expects:
            hc["expected_statuses"] = list(range(200, 400))  # HAProxy passes a check on 2xx and 3xx
            return
        expect, owner = expects[0]
        words = expect.words[2:]
        if words[:1] == ("!",) or len(words) < 2 or words[0] not in ("status", "rstatus"):
            reading.unknown(expect, owner, f"http-check expect {' '.join(words)}",
                            "the promise model knows checks that expect a status (status or rstatus)")
            return
        statuses = _statuses(words[0], words[1])
        if not statuses:
            reading.refuse(expect, "http-check expect", f"{words[0]} {words[1]} matches no HTTP status "
                                                        "(expected e.g. `status 200`, `status 200-299` or `rstatus ^2`)")
            return
        hc["expected_statuses"] = statuses
        reading.at(("health_check", "expected_statuses"), expect, owner, f"http-check expect {words[0]} {words[1]}")

    def _even_spread(self, reading: Reading) -> None:
        """``observe`` hears of a server's errors from the traffic it gets: the promise model spreads it evenly."""
        section = reading.section
        balance = last_of(section, lambda w: w[:1] == ("balance",))
        if balance is not None and balance[0].words[1:2] and balance[0].words[1] not in BALANCE_EVEN:
            reading.unknown(balance[0], balance[1], f"balance {balance[0].words[1]}",
                            "observe counts the errors of the requests a server gets, and the promise model "
                            "spreads them evenly over the servers (roundrobin, leastconn, random)")
        stick = next(((ln, o) for ln, o in proxy_lines(section) if ln.words[0] in ("stick", "stick-table")), None)
        if stick is not None:
            reading.unknown(stick[0], stick[1], stick[0].words[0], "a stick table pins clients to servers: observe "
                            "counts errors of the requests a server gets, which the promise model spreads evenly")

    # -- retries and timeouts ---------------------------------------------------------------------
    def _retries(self, reading: Reading) -> None:
        section = reading.section
        retries = last_of(section, lambda w: w[:1] == ("retries",))
        count = DEFAULT_RETRIES
        if retries is not None:
            value = _count(retries[0].words[1]) if len(retries[0].words) > 1 else None
            if value is None and retries[0].words[1:2] != ("0",):
                reading.refuse(retries[0], "retries", "expected a number of retries")
            count = value or 0
        retry_on = last_of(section, lambda w: w[:1] == ("retry-on",))
        words = tuple(retry_on[0].words[1:]) if retry_on is not None else DEFAULT_RETRY_ON
        if count == 0 or words == ("none",):
            reading.fields["retries"] = None
            if retries is not None:
                reading.at(("retries",), retries[0], retries[1], f"retries {count}")
            return
        observed = ("outlier_detection" in reading.fields) and reading.fields.get("haproxy", {}).get("on_error") \
            == "mark-down"
        wanted = set(words) - {"response-timeout"}
        if "all-retryable-errors" in wanted:
            wanted = (wanted - {"all-retryable-errors"}) | {"conn-failure", "empty-response", "junk-response",
                                                           "500", "502", "503", "504"}
        wanted.discard("0rtt-rejected")  # only with allow-0rtt over TLS, which the replicas do not speak
        envoy_words = _envoy_words(wanted)
        model: dict[str, Any] = {"num_retries": min(count, 10), "retry_on": envoy_words or ["connect-failure"]}
        where = retry_on or retries or (section.header, section)
        if retries is not None:
            reading.at(("retries",), retries[0], retries[1], f"retries {count}")
            reading.at(("retries", "num_retries"), retries[0], retries[1], f"retries {count}")
        if retry_on is not None:
            reading.at(("retries", "retry_on"), retry_on[0], retry_on[1], "retry-on " + " ".join(words))
        if "response-timeout" in words or "all-retryable-errors" in words:
            server = last_of(section, lambda w: w[:2] == ("timeout", "server"))
            limit = parse_time(server[0].words[2]) if server is not None and len(server[0].words) > 2 else None
            if limit:
                model["per_try_timeout"] = limit
        reading.fields["retries"] = model
        if observed and envoy_words is None:
            reading.unknown(where[0], where[1], "retry-on " + " ".join(words),
                            "observe hears only a request's last try, and these retry-on conditions are not ones the "
                            "promise model knows (conn-failure, empty-response, junk-response, 500-504, "
                            "response-timeout)")
        if observed and count > 10:
            reading.unknown(where[0], where[1], f"retries {count}", "the promise model knows up to 10 retries")
        l7 = wanted - {"conn-failure"}
        if observed and l7:
            redispatch = last_of(section, lambda w: "redispatch" in w and w[:2] in (("option", "redispatch"),
                                                                                      ("no", "option")))
            interval = None
            if redispatch is not None and redispatch[0].words[0] != "no":
                args = redispatch[0].words[2:]
                interval = int(args[0]) if args and args[0].lstrip("-").isdigit() else -1
            if not (interval == 1 or (interval == -1 and count == 1)):
                line, owner = redispatch or where
                reading.unknown(line, owner, "option redispatch" if redispatch else "retry-on",
                                "observe hears only a request's last try, and where a retry goes decides that try: "
                                "the promise model knows retries on another server each time (option redispatch 1)")

    def _timeouts(self, reading: Reading) -> None:
        section = reading.section
        for name, path, default in (("connect", "connect_timeout", NO_TIMEOUT), ("server", "request_timeout", 0.0)):
            found = last_of(section, lambda w, n=name: w[:2] == ("timeout", n))  # type: ignore[misc]
            value = parse_time(found[0].words[2]) if found is not None and len(found[0].words) > 2 else None
            if found is not None and value is None:
                reading.refuse(found[0], f"timeout {name}", "expected a time such as 2s or 500ms")
            if found is not None and value is not None:
                reading.fields[path] = value or default
                reading.at((path,), found[0], found[1], f"timeout {name} {found[0].words[2]}")
            else:
                reading.fields[path] = default

    def _backups(self, reading: Reading, servers: list[Server]) -> None:
        """A backup server gets traffic only once every primary is DOWN: what ``observe`` hears then differs
        from the even spread the promise model assumes, for a fault on a backup or on every primary but not
        every server. Active checks treat backups as any server."""
        backups = frozenset(i for i, s in enumerate(servers) if s.flag("backup") is not None)
        if not backups or "outlier_detection" not in reading.fields:
            return
        primaries = frozenset(range(len(servers))) - backups
        everything = frozenset(range(len(servers)))

        def matters(hit: frozenset[int]) -> bool:
            return hit != everything and (bool(hit & backups) or primaries <= hit)

        index = min(backups)
        got = servers[index].value("backup")
        line = got[1] if got is not None else servers[index].line
        reading.unknown(line, owner_of(line, reading.section), f"server {servers[index].name} backup",
                        "a backup server gets requests only once every primary is DOWN, so observe hears of its "
                        "errors (and of every primary's, retried) unlike the promise model's even spread; modelled "
                        "for faults on some primaries, or on every server", only_for=matters)

    # -- rewrite ------------------------------------------------------------------------------------
    def rewrite(self, config: NativeConfig, job: RewriteJob) -> Rewritten:
        sections = sections_of(config.file, config.text)
        lines = config.text.splitlines(keepends=True)
        changed: dict[int, str] = {}  # 0-based line → its new text
        added: dict[int, list[str]] = {}  # 0-based line → lines added after it
        facts: dict[tuple[str, str], str] = {}

        def indent(line: Line) -> str:
            return line.raw[: len(line.raw) - len(line.raw.lstrip())]

        def ending(line: Line) -> str:
            return line.raw[len(line.raw.rstrip("\r\n")):] or "\n"

        def replace_word(line: Line, index: int, new: str) -> None:
            _, start, end = word_spans(line.raw)[index]
            changed[line.number - 1] = line.raw[:start] + new + line.raw[end:]

        def neutralise(line: Line, why: str) -> None:
            stripped = line.raw.rstrip("\r\n")
            changed[line.number - 1] = f"{indent(line)}{NEUTRALISED}{stripped.strip()}  # {why}{ending(line)}"

        for section in sections:
            if section.kind not in ("backend", "listen") or section.name not in job.binding:
                continue
            replicas = job.replicas_of(section.name)
            servers = [line for line in section.lines if line.words[0] == "server"]
            for line, replica in zip(servers, replicas):
                if len(line.words) < 3:
                    continue  # refused when read (a server without an address)
                replace_word(line, 2, f"{replica.host}:{replica.port}")
                facts[(section.name, line.words[1])] = f"{replica.host}:{replica.port}"
        first = first_frontend(sections)
        for section in sections:
            if section.kind in ("frontend", "listen"):
                binds = [line for line in section.lines if line.words[0] == "bind"]
                for i, line in enumerate(binds):
                    if len(line.words) < 2:
                        continue  # HAProxy refuses a bind without an address itself
                    port = job.listen_port if section is first and i == 0 else job.free_port()
                    replace_word(line, 1, f"{job.bind_address}:{port}")
                if section is first and binds:
                    header = [f'http-after-response set-header {UPSTREAM_HEADER} "%si:%sp"',
                              f"http-after-response del-header {UPSTREAM_HEADER} if "
                              f"{{ res.hdr({UPSTREAM_HEADER}) -m str : }}"]
                    added[binds[-1].number - 1] = [f"{indent(binds[-1])}{h}{ending(binds[-1])}" for h in header]
            if section.kind == "global":
                sockets = [line for line in section.lines if line.words[:2] == ("stats", "socket")]
                ours = f"stats socket ipv4@127.0.0.1:{job.admin_port} level admin"
                # HAProxy's own stamp of each server going DOWN or UP, on its stderr (harness/gateways/haproxy.py)
                log = [] if any(line.words == tuple(LOG_LINE.split()) for line in section.lines) else [LOG_LINE]
                if sockets:
                    changed[sockets[0].number - 1] = f"{indent(sockets[0])}{ours}{ending(sockets[0])}"
                    added[sockets[0].number - 1] = [f"{indent(sockets[0])}{extra}{ending(sockets[0])}" for extra in log]
                    for line in sockets[1:]:
                        neutralise(line, "chaosgate's stats socket is the one above")
                else:
                    added[section.header.number - 1] = [f"    {extra}\n" for extra in (ours, *log)]
                for line in section.lines:
                    if line.words[0] in UNPRIVILEGED:
                        neutralise(line, UNPRIVILEGED[line.words[0]])
        out: list[str] = []
        if not any(s.kind == "global" for s in sections):
            out.append(f"global\n    stats socket ipv4@127.0.0.1:{job.admin_port} level admin\n    {LOG_LINE}\n")
        for i, text in enumerate(lines):
            out.append(changed.get(i, text))
            out += added.get(i, [])
        return Rewritten("".join(out), {"addresses": facts})


def first_frontend(sections: list[Section]) -> Section | None:
    """The frontend (or listen section) the load goes to: the first one in the file with a bind line."""
    return next((s for s in sections if s.kind in ("frontend", "listen")
                 and any(line.words[0] == "bind" for line in s.lines)), None)


def load_route(file: str, first: Section | None, sections: list[Section]) -> tuple[str | None, Source | None]:
    """Where the load's requests go, when the file says so without conditions: the first frontend's
    ``default_backend`` (a ``listen`` section: its own servers). (None, None) when it cannot be told
    without evaluating ACLs (``use_backend`` rules) or there is no frontend."""
    if first is None or any(line.words[0] in ("use_backend", "use-server") for line in first.lines):
        return None, None
    if first.kind == "listen" and any(line.words[0] == "server" for line in first.lines):
        return first.name, Source(file, first.header.number, first.label)
    found = last_of(first, lambda w: w[:1] == ("default_backend",) and len(w) > 1)
    if found is None:
        return None, Source(file, first.header.number, first.label)
    line, owner = found
    backend = line.words[1]
    is_block = any(s.kind in ("backend", "listen") and s.name == backend for s in sections)
    return (backend if is_block else None), Source(file, line.number, f"{owner.label}: default_backend {backend}")


def outbound(file: str, sections: list[Section]) -> Iterator[Endpoint]:
    """Every address the file sends traffic to outside its backends' servers: log servers, peers,
    mailers, resolvers' nameservers, health checks sent to another address."""
    for section in sections:
        for line in section.lines:
            words = line.words
            address = None
            if words[0] == "log" and len(words) > 1 and words[1] not in ("global", "stdout", "stderr") \
                    and not words[1].startswith(("ring@", "fd@")):
                address = words[1]
                setting = f"{section.label}: log {address}"
            elif section.kind in ("peers", "mailers", "resolvers") and words[0] in ("peer", "mailer", "nameserver",
                                                                                     "server") and len(words) > 2:
                address = words[2]
                setting = f"{section.label}: {words[0]} {words[1]}"
            elif words[0] in ("server", "default-server") and section.kind in ("backend", "listen"):
                for key in ("addr", "agent-addr"):
                    if key in words and words.index(key) + 1 < len(words):
                        host, port, unix = split_address(words[words.index(key) + 1])
                        if not unix:
                            yield Endpoint(host, port, Source(file, line.number, f"{section.label}: {words[0]} {key}"))
            if address is not None:
                host, port, unix = split_address(address)
                if not unix:
                    yield Endpoint(host, port or 514, Source(file, line.number, setting))


def _count(value: str) -> int | None:
    return int(value) if value.isdigit() and int(value) >= 1 else None


def _on_error(value: str) -> str | None:
    return value if value in ("fail-check", "fastinter", "sudden-death", "mark-down") else None


def _statuses(kind: str, pattern: str) -> list[int]:
    """The HTTP statuses an ``http-check expect status|rstatus`` accepts."""
    codes = range(100, 600)
    if kind == "rstatus":
        try:
            regex = re.compile(pattern)
        except re.error:
            return []
        return [code for code in codes if regex.search(str(code))]
    accepted: set[int] = set()
    for part in pattern.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return []
        accepted.update(range(int(low), int(high or low) + 1))
    return [code for code in codes if code in accepted]


def _envoy_words(wanted: set[str]) -> list[str] | None:
    """The scenario model's retry_on words whose HAProxy keywords (harness/gateways/haproxy.py RETRY_ON) are
    exactly ``wanted``; None when no set of them is."""
    names = [name for name in RETRY_ON if name != "refused-stream"]
    for size in range(1, len(names) + 1):
        for chosen in combinations(names, size):
            # 501 aside: observe does not count it, so whether it is retried changes nothing the model says
            if {w for name in chosen for w in RETRY_ON[name]} - {"501"} == wanted - {"501"}:
                return list(chosen)
    return None


READER = HaproxyReader()

__all__ = ["READER", "HaproxyReader", "parse_time", "split_address", "split_words"]
