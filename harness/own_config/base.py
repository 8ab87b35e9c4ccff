"""The own-config seam: a user's native gateway file, read and rewritten (docs/own-config.md).

One module per gateway (``harness/own_config/<kind>.py``), one line per module in ``READERS``
(harness/own_config/__init__.py). A reader does two things with a file the user wrote:

* **read** it (the reading direction): every bindable block (Envoy cluster, HAProxy backend, nginx
  upstream block, LiteLLM model group) with its endpoints, and the settings the promise and lint
  modules reason about as the scenario model's ``Gateway`` block, each field with the file:line it
  came from (``Block.where``). What the promise model does not understand is listed with its place
  (``Block.unmodelled``): a promise for that block is then Unknown, naming it, never a wrong window.
  Every address the file sends traffic to outside its blocks is listed (``NativeConfig.outbound``),
  so the core can refuse a file that would send traffic off the machine.
* **rewrite** it for one run: the bound blocks' endpoints become the Toxiproxy listeners (one per
  replica, in order), listener and admin ports move to the run's free local ports, and what the
  observer needs is added. Nothing else changes: the diff against the user's file shows every change.

A file the reader cannot use (not parseable, EDS/xDS endpoints, an include that cannot be resolved)
raises ScenarioError with file:line and why. Binding (which block is which pool) and the off-machine
check are the core's (harness/own_config/binding.py), the same for every gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import Problem, ScenarioError, location

if TYPE_CHECKING:
    from harness.gateways.base import UpstreamAddress
    from harness.scenario import Gateway

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    """Where a setting lives in the user's file: the line, and the setting as the file names it."""

    file: str
    line: int
    setting: str  # e.g. 'clusters[chat].health_checks[0].interval', 'backend chat: default-server inter'

    def __str__(self) -> str:
        return f"{location(self.file, self.line, None)} ({self.setting})"


@dataclass(frozen=True)
class Endpoint:
    """One address the file sends traffic to: ``host:port`` (an ``api_base`` URL's host and port)."""

    host: str
    port: int
    source: Source

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Unmodelled:
    """A setting of a block that changes when its gateway detects or readmits a replica, but that the
    promise model does not understand: the block's promises are Unknown, naming it."""

    source: Source
    why: str  # what it does that the formulas do not account for
    # which faults it matters for, by the indices of the block's endpoints a fault hits (None: every fault);
    # e.g. an HAProxy backup server matters for a fault on it, not for one on some primaries
    only_for: Callable[[frozenset[int]], bool] | None = None

    def matters(self, hit: frozenset[int]) -> bool:
        return self.only_for is None or self.only_for(hit)


@dataclass(frozen=True)
class Block:
    """One bindable block of the user's file: what its endpoints are and how its gateway checks them."""

    name: str                      # the cluster / backend / upstream / model_name as the file names it
    source: Source                 # the block's own line: where a setting the file leaves out belongs
    endpoints: tuple[Endpoint, ...]
    settings: Gateway              # the settings the promise and lint modules reason about, read from the file
    # scenario field path (('gateway', 'health_check', 'interval')) → where the file sets it; a field the
    # file does not set (a default) is not here, and is located at ``source``
    where: Mapping[YamlPath, Source] = field(default_factory=dict)
    unmodelled: tuple[Unmodelled, ...] = ()
    # the indices of endpoints the gateway sends requests to only while the others are unavailable (nginx's and
    # HAProxy's ``backup`` servers): what that means for a promise is the gateway's promise module's business
    backup: tuple[int, ...] = ()
    # why the block cannot be bound to a pool (the replicas cannot answer what it sends them: a LiteLLM deployment
    # of a provider whose API is not OpenAI's; an HAProxy server template or unix socket), each at its place:
    # refused when a scenario binds it
    cannot_bind: tuple[Unmodelled, ...] = ()
    # the API its endpoints must answer, when the gateway speaks one to them (a LiteLLM deployment: openai for
    # chat completions, anthropic for the Messages API): only a pool of that kind can be bound to it
    speaks: str | None = None

    def locate(self, path: YamlPath) -> Source:
        """Where the file sets ``path`` (or its deepest ancestor it sets); else the block's own line."""
        for end in range(len(path), 0, -1):
            if (found := self.where.get(tuple(path[:end]))) is not None:
                return found
        return self.source


@dataclass(frozen=True)
class NativeConfig:
    """A user's gateway file as read: its blocks, and every other address it sends traffic to."""

    kind: str                      # the gateway kind (harness/gateways/)
    path: Path
    text: str
    blocks: Mapping[str, Block]    # every bindable block, by its name, in file order
    outbound: tuple[Endpoint, ...] = ()  # addresses outside the blocks (a log server, an auth service, ...)
    block_word: str = "block"      # what the gateway calls a block: 'cluster', 'backend', 'upstream', 'model group'
    # where the load's chat requests (/v1/chat/completions on the first listener) go, when the reader knows:
    # ``load_source`` the route's line (or the listener's when none takes them), ``load_block`` its block (None:
    # no route takes them); the core refuses a scenario whose load pool is bound to another block
    load_block: str | None = None
    load_source: Source | None = None

    @property
    def file(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class RewriteJob:
    """What one run asks of the rewrite."""

    binding: Mapping[str, str]        # block name → scenario pool
    upstreams: list[UpstreamAddress]  # every replica's Toxiproxy listener, in pool order
    listen_port: int                  # the first listener (the one the load goes to) binds here
    admin_port: int                   # the admin interface / stats socket / observer endpoint
    bind_address: str                 # where listeners bind (127.0.0.1 on the local runtime)
    run_dir: Path                     # where the observer's files go (event logs, probe module)
    free_port: Callable[[], int]      # one more free local port (a second listener, a second admin)

    def replicas_of(self, block: str) -> list[UpstreamAddress]:
        """The replicas the block's endpoints become, in the pool's order."""
        pool = self.binding[block]
        return [u for u in self.upstreams if u.pool == pool]


@dataclass(frozen=True)
class Rewritten:
    """The file as it runs, and what the adapter needs to know about it."""

    text: str
    facts: Mapping[str, Any] = field(default_factory=dict)  # adapter-specific (HAProxy: server → address)


class NativeReader(Protocol):
    """One gateway's reader and rewriter of its native configuration file."""

    kind: str
    file_patterns: tuple[str, ...]  # fnmatch patterns of file names that mean this kind (`chaosgate lint FILE`)

    def read(self, path: Path, text: str) -> NativeConfig:
        """Parse the file (``text``: its content); ScenarioError with file:line for a file that cannot be used.
        Files it includes are read from disk, relative to ``path``'s folder."""

    def rewrite(self, config: NativeConfig, job: RewriteJob) -> Rewritten:
        """The file as one run uses it (see the module docstring: only what must change)."""


def refuse(file: str, line: int | None, setting: str, message: str) -> ScenarioError:
    """A file that cannot be used, at the line that says why."""
    return ScenarioError([Problem(file, line, None, setting, message)])


def refuse_all(problems: list[Problem]) -> None:
    if problems:
        raise ScenarioError(problems)
