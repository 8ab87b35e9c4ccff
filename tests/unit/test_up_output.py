"""What `chaosgate up` prints as the gateway's view of a replica changes: the gateway's own words for why."""

from __future__ import annotations

from harness.cli import health_line
from harness.gateways import HostHealth

DOWN = HostHealth(False, "DOWN 1/2 L4CON", "Layer4 connection problem: Connection refused")


def test_a_replica_that_becomes_unhealthy_is_printed_with_the_gateway_s_flags_and_detail() -> None:
    assert health_line(None, HostHealth(True, "")) == "healthy"
    assert health_line(None, HostHealth(True, "healthy")) == "healthy", "LiteLLM's word for no flag is not repeated"
    assert health_line(HostHealth(True, ""), HostHealth(False, "/failed_active_hc")) == "UNHEALTHY (/failed_active_hc)"
    assert health_line(HostHealth(True, "UP L7OK"), DOWN) == \
        "UNHEALTHY (DOWN 1/2 L4CON; Layer4 connection problem: Connection refused)"
    assert health_line(DOWN, HostHealth(True, "UP L7OK", "Layer7 check passed: OK")) == \
        "healthy (UP L7OK; Layer7 check passed: OK)"


def test_a_new_reason_while_unhealthy_gets_a_line_and_nothing_else_does() -> None:
    assert health_line(DOWN, DOWN) is None
    assert health_line(HostHealth(True, "UP L7OK"), HostHealth(True, "UP 1/3 L4CON")) is None, "still routed to"
    assert health_line(DOWN, HostHealth(False, "DOWN L7STS", "Layer7 wrong status: 503")) == \
        "UNHEALTHY (DOWN L7STS; Layer7 wrong status: 503)"
