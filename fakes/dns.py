"""A fake authoritative DNS server for the gateway's resolver, with fault modes per name.

Run it as ``python -m fakes.dns --port P --control-port C --record chat-0.chaosgate.test=127.0.0.1 ...``.
It answers A and AAAA queries over UDP and TCP on ``--host:--port`` from the records given at
start-up (every answer carries ``--ttl``); an unknown name is NXDOMAIN. The wire format is
dnspython's. The control API (plain HTTP on ``--control-host:--control-port``) switches one
name at a time into a fault mode (fakes/dns_modes.py) and counts queries::

    GET    /fault            every name's mode and record: {"names": {name: {"mode": ..., "addresses": [...], "ttl": N}}}
    GET    /fault?name=N     one name's mode, or {"mode": "none"}
    PUT    /fault            {"name": N, "mode": "nxdomain"}; {"name": N, "mode": "none"} clears it
    DELETE /fault[?name=N]   back to the records, for one name or for all (idempotent)
    GET    /modes            the JSON Schema of every mode
    GET    /stats            queries per name and type, answers per name and rcode, drops
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import socket
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.dns_modes import DNS_MODES, LOOPBACK_ONLY, Address, NoAnswer, Nxdomain, Servfail, Ttl
from fakes.serving import CONTROL_HOST, bind_socket, server_config

log = logging.getLogger("fakes.dns")
ModeT = Nxdomain | Servfail | NoAnswer | Address | Ttl
NONE = {"mode": "none"}


def normalize(name: str) -> str:
    """``Chat-0.Example.`` -> ``chat-0.example``: how names are keyed in records, modes and stats."""
    return dns.name.from_text(name).to_text(omit_final_dot=True).lower()


@dataclass
class Zone:
    """The records, each name's fault mode, and the counters; answers one wire-format query."""

    records: dict[str, list[str]]
    ttl: int  # of every answer, unless ``ttls`` has the name's own
    ttls: dict[str, int] = field(default_factory=dict)
    modes: dict[str, ModeT] = field(default_factory=dict)
    queries: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    answers: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    last_query: dict[str, float] = field(default_factory=dict)
    malformed: int = 0

    def answer(self, wire: bytes) -> bytes | None:
        """The response to ``wire``, or None to drop it (the ``no_answer`` mode, or garbage)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - dnspython raises many types for malformed packets
            self.malformed += 1
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name, qtype = normalize(question.name.to_text()), dns.rdatatype.to_text(question.rdtype)
        self.queries[name][qtype] += 1
        self.last_query[name] = time.time()
        mode = self.modes.get(name)
        if isinstance(mode, NoAnswer):
            self.answers[name]["dropped"] += 1
            return None
        if name not in self.records or isinstance(mode, Nxdomain):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif isinstance(mode, Servfail):
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            addresses = mode.addresses if isinstance(mode, Address) else self.records[name]
            ttl = mode.ttl if isinstance(mode, (Address, Ttl)) and mode.ttl is not None else self.ttl_of(name)
            family = {"A": 4, "AAAA": 6}.get(qtype)
            matching = [a for a in addresses if ipaddress.ip_address(a).version == family]
            if matching:
                response.answer.append(dns.rrset.from_text_list(question.name, ttl, dns.rdataclass.IN,
                                                                question.rdtype, matching))
        self.answers[name][dns.rcode.to_text(response.rcode())] += 1
        return response.to_wire()

    def ttl_of(self, name: str) -> int:
        return self.ttls.get(name, self.ttl)

    def describe(self, name: str) -> dict[str, Any]:
        mode = self.modes.get(name)
        return dict(NONE) if mode is None else mode.model_dump(mode="json")

    def stats(self) -> dict[str, Any]:
        return {"queries": {n: dict(c) for n, c in self.queries.items()},
                "answers": {n: dict(c) for n, c in self.answers.items()},
                "last_query": dict(self.last_query), "malformed": self.malformed,
                "total": sum(sum(c.values()) for c in self.queries.values())}


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: Any = None  # asyncio's selector transport is no DatagramTransport subclass

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        reply = self.zone.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _tcp_client(zone: Zone, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """DNS over TCP: two-byte length, message; a dropped query closes the connection."""
    try:
        while True:
            size = int.from_bytes(await reader.readexactly(2), "big")
            reply = zone.answer(await reader.readexactly(size))
            if reply is None:
                break
            writer.write(len(reply).to_bytes(2, "big") + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def create_control_app(zone: Zone) -> Starlette:
    """The control API over ``zone`` (see the module docstring)."""

    def known(name: str | None) -> str | None:
        return None if name is None else normalize(name)

    async def get_fault(request: Request) -> Response:
        name = known(request.query_params.get("name"))
        if name is not None:
            return JSONResponse(zone.describe(name))
        return JSONResponse({"names": {n: {**zone.describe(n), "addresses": a, "ttl": zone.ttl_of(n)}
                                       for n, a in zone.records.items()}})

    async def put_fault(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            name = normalize(body.pop("name"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": 'the body must be JSON with a name, e.g. {"name": "a.test", "mode": "nxdomain"}'},
                                400)
        if name not in zone.records:
            return JSONResponse({"error": f"no record for {name!r} (names: {', '.join(sorted(zone.records))})"}, 404)
        if body == NONE:
            zone.modes.pop(name, None)
        else:
            try:
                zone.modes[name] = DNS_MODES.validate_python(body)
            except ValidationError as exc:
                return JSONResponse({"error": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                        for e in exc.errors())}, 422)
        log.warning("fault mode of %s: %s", name, json.dumps(zone.describe(name)))
        return JSONResponse(zone.describe(name))

    async def delete_fault(request: Request) -> Response:
        name = known(request.query_params.get("name"))
        if name is None:
            zone.modes.clear()
        else:
            zone.modes.pop(name, None)
        log.warning("fault mode of %s: none", name or "every name")
        return JSONResponse(dict(NONE))

    async def modes(request: Request) -> Response:
        return JSONResponse(DNS_MODES.json_schema())

    async def get_stats(request: Request) -> Response:
        return JSONResponse({**zone.stats(), "faults": {n: zone.describe(n) for n in zone.modes}})

    return Starlette(routes=[
        Route("/fault", get_fault, methods=["GET"]),
        Route("/fault", put_fault, methods=["PUT"]),
        Route("/fault", delete_fault, methods=["DELETE"]),
        Route("/modes", modes, methods=["GET"]),
        Route("/stats", get_stats, methods=["GET"]),
    ])


async def serve(zone: Zone, host: str, port: int, control: socket.socket | None, tcp: bool = True) -> None:
    """Answer DNS on ``host:port`` (UDP, and TCP) and the control API on ``control`` until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(zone), local_addr=(host, port), family=family)
    tcp_server = await asyncio.start_server(lambda r, w: _tcp_client(zone, r, w), host, port) if tcp else None
    log.warning("answering %d names on %s port %d (udp%s)", len(zone.records), host, port, "+tcp" if tcp else "")
    try:
        server = uvicorn.Server(server_config(create_control_app(zone)))
        if control is not None:
            await server.serve(sockets=[control])
        else:
            await asyncio.Event().wait()
    finally:
        transport.close()
        if tcp_server is not None:
            tcp_server.close()


def parse_record(text: str) -> tuple[str, list[str], int | None]:
    """``name=addr[,addr][@ttl]`` -> (normalized name, addresses, ttl or None); ValueError unless loopback."""
    name, sep, rest = text.partition("=")
    addresses, at, ttl = rest.partition("@")
    if not sep or not name or not addresses or (at and not ttl.isdigit()):
        raise ValueError(f"--record {text!r}: expected NAME=ADDRESS[,ADDRESS][@TTL]")
    parsed = [str(ipaddress.ip_address(a.strip())) for a in addresses.split(",")]
    for address in parsed:
        if address not in LOOPBACK_ONLY:
            raise ValueError(f"--record {text!r}: only {' and '.join(LOOPBACK_ONLY)} may be answered")
    return normalize(name), parsed, int(ttl) if at else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.dns", description="Fake DNS server for chaosgate.")
    parser.add_argument("--host", default="127.0.0.1", help="address DNS is answered on (UDP and TCP)")
    parser.add_argument("--port", type=int, required=True, help="DNS port")
    parser.add_argument("--control-port", type=int, default=None, help="control API port (on --control-host)")
    parser.add_argument("--control-host", default=CONTROL_HOST, help="address of the control API (default 127.0.0.1)")
    parser.add_argument("--record", action="append", default=[], metavar="NAME=ADDR[,ADDR][@TTL]",
                        help="a name, its addresses (127.0.0.1 and/or ::1) and its own TTL; repeat for more names")
    parser.add_argument("--ttl", type=int, default=5, help="TTL of every answer, seconds (default 5)")
    parser.add_argument("--no-tcp", action="store_true", help="answer over UDP only")
    args = parser.parse_args(argv)
    try:
        parsed = [parse_record(r) for r in args.record]
        ipaddress.ip_address(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.ttl <= 86400:
        parser.error("--ttl: expected 0..86400 seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fakes.dns: %(message)s")
    try:
        control = bind_socket(args.control_host, args.control_port) if args.control_port is not None else None
        zone = Zone({n: a for n, a, _ in parsed}, args.ttl, {n: t for n, _, t in parsed if t is not None})
        asyncio.run(serve(zone, args.host, args.port, control, tcp=not args.no_tcp))
    except OSError as exc:
        print(f"fakes.dns: cannot bind {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
