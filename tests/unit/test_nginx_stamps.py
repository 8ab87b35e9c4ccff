"""nginx's own moment of each change of a server's state (harness/gateways/nginx.py ``_Stamps``): a server
disabled at the end of the failed try its ``[warn]`` line names (paired by worker pid, client connection, server
and second), back at the end of its first answer to a try begun after that."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.gateways.base import UpstreamAddress
from harness.gateways.nginx import ACCESS_FORMAT, NginxGateway, _Stamps
from harness.scenario import Gateway

A, B = "127.0.0.1:38285", "127.0.0.1:44693"


def warn(at: float, address: str = A, pid: int = 22260, connection: int = 4) -> dict[str, Any]:
    """The [warn] line nginx writes when a failed try disables ``address`` (local time, whole seconds)."""
    return {"line": f"{time.strftime('%Y/%m/%d %H:%M:%S', time.localtime(at))} [warn] {pid}#{pid}: *{connection} "
                    'upstream server temporarily disabled while reading response header from upstream, client: '
                    '127.0.0.1, server: , request: "POST /v1/chat/completions HTTP/1.1", upstream: '
                    f'"http://{address}/v1/chat/completions", host: "127.0.0.1:19866"'}


def access(end: float, tried: str, statuses: str, times: str, pid: int = 22260, connection: int = 4,
           rt: float = 0.07) -> dict[str, Any]:
    return {"ts": end, "rt": rt, "pid": pid, "conn": connection, "status": int(statuses.split(", ")[-1]),
            "upstream_addr": tried, "upstream_status": statuses, "upstream_response_time": times}


def test_the_access_log_names_the_connection_the_error_log_names() -> None:
    assert '"pid":$pid,"conn":$connection,' in ACCESS_FORMAT


def later(end: float, connection: int = 4) -> dict[str, Any]:
    """The connection's next request, begun in the next second: every request of that second is logged by then."""
    return access(float(int(end)) + 1.1, B, "200", "0.05", connection=connection, rt=0.05)


def test_a_disabling_is_stamped_by_the_end_of_the_failed_try_its_warn_line_names() -> None:
    stamps = _Stamps({A, B})
    end = 1796638769.821  # the request ended when its only try failed: nginx's $msec
    assert stamps.read(warn(end)) == []  # read before the access line: it waits for it
    assert stamps.read(access(end, A, "502", "0.062")) == []  # another request may still be under way on it
    assert stamps.read(later(end)) == [
        {"ts": end, "address": A, "healthy": False, "what": "temporarily disabled (a try ended 502)"}]


def test_a_retried_try_ends_before_the_tries_after_it() -> None:
    stamps = _Stamps({A, B})
    end = 1796638770.500  # the failed try on A, then 0.120 s on B: A's try ended at 770.380
    assert stamps.read(access(end, f"{A}, {B}", "502, 200", "0.010, 0.120")) == []
    assert stamps.read(later(end)) == []  # no [warn] line yet: it may still come
    assert stamps.read(warn(end - 0.120)) == [
        {"ts": 1796638770.380, "address": A, "healthy": False, "what": "temporarily disabled (a try ended 502)"}]


def test_the_warn_lines_of_a_second_name_its_last_failed_tries() -> None:
    # max_fails 3 (measured, passive-retries): two failures on connection 3 within one second, the second of them
    # the third failure of the server: nginx logs one [warn] line, for the later try, while the earlier request's
    # line is already in the access log and the later one's not yet
    stamps = _Stamps({A, B})
    assert stamps.read(access(1796638843.284, f"{A}, {B}", "500, 200", "0.007, 0.062", connection=3)) == []
    assert stamps.read(warn(1796638843.387, connection=3)) == []  # the later request is still under way
    assert stamps.read(access(1796638843.449, f"{A}, {B}", "500, 200", "0.001, 0.062", connection=3)) == []
    assert [e["ts"] for e in stamps.read(later(1796638843.449, connection=3))] == [1796638843.387]


def test_a_warn_line_that_names_another_connection_or_second_stamps_nothing() -> None:
    stamps = _Stamps({A, B})
    stamps.read(access(1796638769.821, A, "502", "0.062"))
    stamps.read(later(1796638769.821))
    assert stamps.read(warn(1796638769.821, connection=5)) == []
    assert stamps.read(warn(1796638770.821)) == []
    assert stamps.read(warn(1796638769.821, pid=22261)) == []


def test_more_warn_lines_than_failed_tries_stamp_nothing() -> None:
    stamps = _Stamps({A, B})
    stamps.read(warn(1796638769.100))
    stamps.read(warn(1796638769.200))
    stamps.read(access(1796638769.200, A, "502", "0.002"))
    assert stamps.read(later(1796638769.200)) == []


def test_readmitted_by_the_first_answer_to_a_try_begun_after_the_disabling() -> None:
    stamps = _Stamps({A, B})
    stamps.read(access(1796638769.821, A, "502", "0.062"))
    stamps.read(warn(1796638769.821))
    stamps.read(later(1796638769.821))
    # a request already on A when it was disabled answers: not a readmission (it began before)
    assert stamps.read(access(1796638769.900, A, "200", "0.150", connection=6)) == []
    assert stamps.read(access(1796638771.870, B, "200", "0.050")) == []  # another server
    assert stamps.read(access(1796638771.880, A, "200", "0.060", connection=7)) == [
        {"ts": 1796638771.880, "address": A, "healthy": True, "what": "answered again (200)"}]
    assert stamps.read(access(1796638771.990, A, "200", "0.060")) == []  # already back


def test_the_adapter_reads_both_of_nginxs_logs(tmp_path: Path) -> None:
    gateway = NginxGateway(Gateway(kind="nginx", outlier_detection={"consecutive_gateway_failure": 1}), 1, 2, "chat")
    gateway.write_config([UpstreamAddress("chat", "chat[0]", "127.0.0.1", 38285)], tmp_path)
    assert gateway.health_event_logs(tmp_path) == [(tmp_path.resolve() / "nginx" / "error.log", True),
                                                   (tmp_path.resolve() / "nginx" / "access.log", False)]
    line = json.loads(json.dumps(access(1796638769.821, A, "502", "0.062")))
    assert gateway.parse_health_event(line) == []
    assert gateway.parse_health_event(warn(1796638769.821)) == []
    assert gateway.parse_health_event(later(1796638769.821))[0]["ts"] == 1796638769.821
