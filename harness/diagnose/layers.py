"""The registry of diagnose layers, in the order they are walked: the first that fails names the cause."""

from __future__ import annotations

from harness.diagnose.anthropic_inference import AnthropicInferenceLayer
from harness.diagnose.base import Layer
from harness.diagnose.dns import DnsLayer
from harness.diagnose.http_health import HttpHealthLayer
from harness.diagnose.inference import InferenceLayer
from harness.diagnose.mcp import McpLayer
from harness.diagnose.protocol import ProtocolLayer
from harness.diagnose.tcp import TcpLayer
from harness.diagnose.tls import TlsLayer

LAYERS: list[Layer] = [
    DnsLayer(),
    TcpLayer(),
    TlsLayer(),
    HttpHealthLayer(),
    ProtocolLayer(),
    McpLayer(),
    InferenceLayer(),
    AnthropicInferenceLayer(),
]
