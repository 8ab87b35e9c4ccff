"""The registry of gateway adapters: one module per gateway, one line here per module.

harness.scenario imports this registry (the kinds a scenario may name, their settings blocks and
checks), so gateway modules import harness.scenario only for type checking.
"""

from __future__ import annotations

from harness.gateways.base import (
    GatewayAdapter,
    GatewayClass,
    HostHealth,
    SettingIssue,
    UpstreamAddress,
    UpstreamTlsTrust,
    not_applicable,
    traps,
)
from harness.gateways.envoy import EnvoyGateway
from harness.gateways.haproxy import HaproxyGateway
from harness.gateways.litellm import LitellmGateway
from harness.gateways.nginx import NginxGateway
from harness.gateways.portkey import PortkeyGateway

GATEWAYS: dict[str, GatewayClass] = {
    "envoy": EnvoyGateway,
    "haproxy": HaproxyGateway,
    "nginx": NginxGateway,
    "litellm": LitellmGateway,
    "portkey": PortkeyGateway,
}

__all__ = ["GATEWAYS", "GatewayAdapter", "GatewayClass", "HostHealth", "SettingIssue", "UpstreamAddress",
           "UpstreamTlsTrust", "not_applicable", "traps"]
