"""The user's own gateway file as the thing under test (``gateway.config``; docs/own-config.md).

``READERS``: one reader per gateway kind (harness/own_config/<kind>.py, one line here per module).
``native_config(scenario)`` reads the scenario's file once per content; ``for_pool`` is the scenario
as the promise and lint modules see it for one pool (its ``gateway`` block read from the file);
``write_native`` writes the rewritten file and its diff against the user's into a run's folder.
"""

from __future__ import annotations

import difflib
import hashlib
import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import Problem, ScenarioError, not_utf8
from harness.own_config.base import (
    Block,
    Endpoint,
    NativeConfig,
    NativeReader,
    RewriteJob,
    Rewritten,
    Source,
    Unmodelled,
)
from harness.own_config.binding import binding_of, block_of, effective_binding, is_loopback
from harness.own_config.envoy import EnvoyReader
from harness.own_config.haproxy import HaproxyReader
from harness.own_config.litellm import LitellmReader
from harness.own_config.nginx import NginxReader

if TYPE_CHECKING:
    from harness.gateways.base import UpstreamAddress
    from harness.scenario import Gateway, Scenario

READERS: dict[str, NativeReader] = {
    "envoy": EnvoyReader(),
    "nginx": NginxReader(),
    "litellm": LitellmReader(),
    "haproxy": HaproxyReader(),
}

DIFF_SUFFIX = ".diff"  # the rewritten file's diff against the user's, beside it in the run's folder
_CACHE: dict[tuple[str, str, str], NativeConfig] = {}
_PINNED: dict[str, str] = {}


def reader_for(kind: str, file: str = "") -> NativeReader:
    reader = READERS.get(kind)
    if reader is None:
        raise ScenarioError([Problem(file, None, None, "gateway.config", f"chaosgate cannot read {kind}'s own "
                                     f"configuration files yet (it reads: {', '.join(READERS) or 'none'})")])
    return reader


def kind_of_file(path: Path) -> str | None:
    """The gateway kind a file name means (``chaosgate lint FILE``), or None."""
    for kind, reader in READERS.items():
        if any(fnmatch.fnmatch(path.name.lower(), pattern) for pattern in reader.file_patterns):
            return kind
    return None


def read_native(kind: str, path: Path) -> NativeConfig:
    """The file as its gateway's reader reads it (once per content): the text a journal recorded for it
    (``pin_text``) when it has one, so a report judges what ran even after the file changed."""
    text = _PINNED.get(str(path))
    if text is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ScenarioError([Problem(str(path), None, None, "gateway.config",
                                         f"cannot read the gateway's file: {exc.strerror}")]) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column, message = not_utf8(data, exc)
            raise ScenarioError([Problem(str(path), line, column, "", message)]) from None
    key = (kind, str(path), hashlib.sha256(text.encode()).hexdigest())
    if key not in _CACHE:
        _CACHE[key] = reader_for(kind, str(path)).read(path, text)
    return _CACHE[key]


def pin_text(path: str, text: str) -> None:
    """Read ``path`` as ``text`` from now on (a journal's copy of the file the run used)."""
    _PINNED[path] = text


def native_config(scenario: Scenario) -> NativeConfig | None:
    """The scenario's own gateway file, read; None when chaosgate renders the gateway's config."""
    gateway = scenario.gateway
    return None if gateway.config is None else read_native(gateway.kind, Path(gateway.config))


def for_pool(scenario: Scenario, pool: str) -> Scenario:
    """The scenario with the gateway settings of the block bound to ``pool`` (as read from the file)."""
    config = native_config(scenario)
    block = block_of(scenario, config, pool) if config is not None else None
    if block is None:
        return scenario
    settings = block.settings.model_copy(update={"kind": scenario.gateway.kind, "config": scenario.gateway.config,
                                                 "bind": scenario.gateway.bind})
    return scenario.model_copy(update={"gateway": settings})


def pool_block(scenario: Scenario, pool: str) -> Block | None:
    config = native_config(scenario)
    return block_of(scenario, config, pool) if config is not None else None


def write_native(settings: Gateway, upstreams: list[UpstreamAddress], run_dir: Path, config_name: str, *,
                 listen_port: int, admin_port: int, bind_address: str,
                 free_port: Callable[[], int]) -> tuple[Path, dict[str, Any]]:
    """Rewrite the user's file for this run into ``run_dir/config_name`` (and its diff beside it)."""
    assert settings.config is not None
    config = read_native(settings.kind, Path(settings.config))
    pools = list(dict.fromkeys(u.pool for u in upstreams))
    binding = binding_of(settings.bind, pools, config)
    rewritten = READERS[settings.kind].rewrite(config, RewriteJob(binding, upstreams, listen_port, admin_port,
                                                                   bind_address, run_dir, free_port))
    path = run_dir / config_name
    path.write_text(rewritten.text, encoding="utf-8")
    (run_dir / f"{config_name}{DIFF_SUFFIX}").write_text(diff(config, rewritten.text, str(path)), encoding="utf-8")
    return path, dict(rewritten.facts)


def diff(config: NativeConfig, rendered: str, rendered_name: str) -> str:
    """A unified diff of the user's file against the file as it runs."""
    return "".join(difflib.unified_diff(config.text.splitlines(keepends=True), rendered.splitlines(keepends=True),
                                        fromfile=config.file, tofile=rendered_name))


__all__ = ["DIFF_SUFFIX", "READERS", "Block", "Endpoint", "NativeConfig", "NativeReader", "RewriteJob", "Rewritten",
           "Source", "Unmodelled", "effective_binding", "for_pool", "is_loopback", "kind_of_file", "native_config",
           "pin_text", "pool_block", "read_native", "reader_for", "write_native"]
