"""``chaosgate diagnose``: name the root cause of an unhealthy upstream, layer by layer.

The gateway's view (clusters, hosts, health flags, health check, TLS, resolver) comes from
Envoy's admin API or config file (envoy_source); each unhealthy host is walked through the
layers of layers.LAYERS (dns → tcp → tls → http_health → protocol → mcp → inference) and the
first that fails names the cause (harness/catalogue.py: CAUSES, after the rows of Table 1), with evidence.
"""

from __future__ import annotations

from harness.diagnose.base import LayerResult, ProbeSettings
from harness.catalogue import CAUSES, Cause
from harness.diagnose.envoy_source import DiagnoseError, from_admin, from_config
from harness.diagnose.layers import LAYERS
from harness.diagnose.model import GatewayView
from harness.diagnose.walk import Diagnosis, HostDiagnosis, diagnose_address, diagnose_view, walk

__all__ = ["CAUSES", "LAYERS", "Cause", "DiagnoseError", "Diagnosis", "GatewayView", "HostDiagnosis", "LayerResult",
           "ProbeSettings", "diagnose_address", "diagnose_view", "from_admin", "from_config", "walk"]
