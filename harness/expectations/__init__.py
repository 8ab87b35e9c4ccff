"""The registry of expectation kinds: one module per kind, one line here per module."""

from __future__ import annotations

from harness.expectations.all_down_response import AllDownResponse
from harness.expectations.base import Expectation, ExplicitWindow, Verdict, WindowSpec
from harness.expectations.diagnosis import Diagnosis
from harness.expectations.error_rate import ErrorRate
from harness.expectations.fallback_within import FallbackWithin
from harness.expectations.gateway_retry_after import GatewayRetryAfter
from harness.expectations.latency import Latency
from harness.expectations.max_request_time import MaxRequestTime
from harness.expectations.no_traffic_to import NoTrafficTo
from harness.expectations.retry_after_honoured import RetryAfterHonoured
from harness.expectations.served_by import ServedBy
from harness.expectations.stall_detected import StallDetected
from harness.expectations.tokens_wasted import TokensWasted
from harness.expectations.traffic_to import TrafficTo
from harness.expectations.upstream_attempts import UpstreamAttempts
from harness.expectations.upstream_healthy import UpstreamHealthy
from harness.expectations.upstream_unhealthy import UpstreamUnhealthy

EXPECTATIONS: dict[str, type[Expectation]] = {
    "upstream_unhealthy": UpstreamUnhealthy,
    "upstream_healthy": UpstreamHealthy,
    "error_rate": ErrorRate,
    "no_traffic_to": NoTrafficTo,
    "traffic_to": TrafficTo,
    "latency": Latency,
    "all_down_response": AllDownResponse,
    "max_request_time": MaxRequestTime,
    "diagnosis": Diagnosis,
    "fallback_within": FallbackWithin,
    "upstream_attempts": UpstreamAttempts,
    "served_by": ServedBy,
    "retry_after_honoured": RetryAfterHonoured,
    "gateway_retry_after": GatewayRetryAfter,
    "tokens_wasted": TokensWasted,
    "stall_detected": StallDetected,
}

__all__ = ["EXPECTATIONS", "Expectation", "ExplicitWindow", "Verdict", "WindowSpec"]
