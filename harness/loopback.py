"""One HTTP client for the harness's own calls on this machine: readiness probes and the fakes' control APIs.

``httpx.get`` builds a client per call, and with it a TLS context that loads the CA bundle: about 20 ms of
CPU each time, for a plain ``http://127.0.0.1`` URL. Start-up polls several components every few
milliseconds, so that was a large share of a 2-core machine's start-up; a fault applied through a
control API started that much late. The shared client keeps no idle connections: a replica restarted
on the same port never meets a connection to its predecessor.
"""

from __future__ import annotations

import functools

import httpx


@functools.cache
def client() -> httpx.Client:
    """The shared client (thread-safe; made on first use, so importing this costs nothing)."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
