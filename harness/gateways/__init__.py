"""The registry of gateway adapters: one module per gateway, one line here per module."""

from __future__ import annotations

from harness.gateways.base import GatewayAdapter, HostHealth, UpstreamAddress, UpstreamTlsTrust, traps
from harness.gateways.envoy import EnvoyGateway

GATEWAYS: dict[str, type[EnvoyGateway]] = {
    "envoy": EnvoyGateway,
}

__all__ = ["GATEWAYS", "GatewayAdapter", "HostHealth", "UpstreamAddress", "UpstreamTlsTrust", "traps"]
