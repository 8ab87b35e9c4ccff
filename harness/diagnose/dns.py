"""DNS layer: resolve a DNS cluster's name the way the gateway does (its own resolver if it has
one), with dnspython. Evidence: NXDOMAIN, SERVFAIL, timeout, or the addresses it resolves to.

Only loopback resolvers are queried (the gateway's custom resolver, or the system's if every
nameserver in /etc/resolv.conf is loopback); otherwise /etc/hosts is all that is consulted.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.exception
import dns.resolver

from harness.diagnose.base import LayerResult, ProbeSettings, ProbeTarget, fail, is_loopback, ok, short

HOSTS_FILE = Path("/etc/hosts")


def _from_hosts(name: str) -> list[str]:
    try:
        lines = HOSTS_FILE.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and name in fields[1:]:
            found.append(fields[0])
    return found


class DnsLayer:
    name = "dns"

    def applies(self, target: ProbeTarget) -> bool:
        name = target.host.hostname
        if not name or "via" in target.notes:  # reached through another address: the name is not ours to resolve
            return False
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return True
        return False

    def probe(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        name = str(target.host.hostname)
        resolvers = [r for r in target.cluster.resolvers if is_loopback(r.address)]
        skipped = [f"{r.address}:{r.port}" for r in target.cluster.resolvers if not is_loopback(r.address)]
        if target.cluster.resolvers and not resolvers:
            return fail(self.name, "not_loopback", f"the gateway resolves {name} with {', '.join(skipped)}, "
                        "which diagnose does not query (loopback only)")
        if resolvers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [r.address for r in resolvers]
            resolver.port = resolvers[0].port
            via = ", ".join(f"{r.address}:{r.port}" for r in resolvers)
        else:
            hosts = _from_hosts(name)
            if hosts:
                return self._answer(target, name, hosts, "/etc/hosts")
            resolver = dns.resolver.Resolver()
            if not all(is_loopback(str(ns)) for ns in resolver.nameservers):
                return fail(self.name, "not_loopback", f"{name} is not in /etc/hosts and the system's nameservers "
                            f"({', '.join(map(str, resolver.nameservers))}) are not loopback: not queried")
            via = "the system resolver"
        resolver.lifetime = settings.dns_timeout
        resolver.timeout = settings.dns_timeout
        addresses: list[str] = []
        problems: dict[str, tuple[str, str]] = {}  # family -> (rcode, words)
        for family in ("A", "AAAA"):
            try:
                addresses += [str(r) for r in resolver.resolve(name, family, search=False)]
            except dns.resolver.NXDOMAIN:
                problems[family] = ("NXDOMAIN", "NXDOMAIN (no such name)")
            except dns.resolver.NoAnswer:
                problems[family] = ("NODATA", f"no {family} record")
            except dns.resolver.NoNameservers as exc:
                problems[family] = ("SERVFAIL", f"SERVFAIL/refused ({short(str(exc), 80)})")
            except dns.exception.Timeout:
                problems[family] = ("TIMEOUT", f"no answer within {settings.dns_timeout:g}s")
            except dns.exception.DNSException as exc:
                problems[family] = ("ERROR", str(exc))
        if not addresses:
            words = "; ".join(f"{family}: {text}" for family, (_, text) in problems.items())
            rcode = problems.get("A", next(iter(problems.values())))[0]
            return fail(self.name, "dns_failure", f"{name} via {via}: {words}", rcode=rcode)
        return self._answer(target, name, addresses, via)

    def _answer(self, target: ProbeTarget, name: str, addresses: list[str], via: str) -> LayerResult:
        loopback = [a for a in addresses if is_loopback(a)]
        if not loopback:
            return fail(self.name, "not_loopback", f"{name} resolves to {', '.join(addresses)} via {via}: "
                        "not loopback, not probed", addresses=addresses)
        gateway_has = target.host.address if target.host.resolved else None
        target.address = gateway_has if gateway_has in loopback else loopback[0]
        target.notes["resolved"] = addresses
        extra = "" if gateway_has in (None, *addresses) else f" (the gateway still dials {gateway_has})"
        return ok(self.name, f"{name} → {', '.join(addresses)} via {via}{extra}", addresses=addresses)
