"""The registry of fault kinds: one module per kind, one line here per module."""

from __future__ import annotations

from harness.faults.anthropic_mode import AnthropicFault
from harness.faults.bandwidth import Bandwidth
from harness.faults.cert import Cert
from harness.faults.base import ControlFault, Fault, FaultContext, ToxicFault
from harness.faults.dns import Dns
from harness.faults.down import Down
from harness.faults.latency import Latency
from harness.faults.limit_data import LimitData
from harness.faults.llm_mode import LlmFault
from harness.faults.mcp_mode import McpFault
from harness.faults.oom import Oom
from harness.faults.port_change import PortChange
from harness.faults.process_freeze import ProcessFreeze
from harness.faults.process_kill import ProcessKill
from harness.faults.process_restart import ProcessRestart
from harness.faults.reset_peer import ResetPeer
from harness.faults.slicer import Slicer
from harness.faults.slow_close import SlowClose
from harness.faults.timeout import Timeout

FAULTS: dict[str, type[Fault]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slow_close": SlowClose,
    "slicer": Slicer,
    "limit_data": LimitData,
    "down": Down,
    "llm_fault": LlmFault,
    "anthropic_fault": AnthropicFault,
    "mcp_fault": McpFault,
    "cert": Cert,
    "process_kill": ProcessKill,
    "process_freeze": ProcessFreeze,
    "process_restart": ProcessRestart,
    "oom": Oom,
    "port_change": PortChange,
    "dns": Dns,
}

__all__ = ["FAULTS", "ControlFault", "Fault", "FaultContext", "ToxicFault"]
