"""Distributed load's pure parts: merging shards by time, the clock offset and its bound, the settings and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main as cli
from harness.errors import ScenarioError
from harness.journal_events import check_event
from harness.load.clock import BOUND_SHARE, ClockSample, best, offset_bound, offset_problem, tightest_window
from harness.load.config import Distribution, LoadConfig, address
from harness.load.records import RecordBuffer, merge, read_shard, tagged, write_shard
from harness.scenario import Scenario, parse_scenario

REPO = Path(__file__).resolve().parents[2]
REPLICA_RESET = (REPO / "scenarios" / "replica-reset.yaml").read_text(encoding="utf-8")


def _scenario(text: str = REPLICA_RESET) -> Scenario:
    return parse_scenario(text, "s.yaml")


def _with_load(line: str) -> str:
    old = "load: {users: 8, spawn_rate: 8, duration: 20s, mix: {chat: 0.8, chat_stream: 0.2}}"
    assert old in REPLICA_RESET
    return REPLICA_RESET.replace(old, line)


# ---- records: buffers, shards, merge ---------------------------------------------------------------------------

def test_merge_orders_every_shard_by_start_time() -> None:
    # shards are written as requests end: each is out of start order on its own
    a = [{"ts": 3.0, "id": "a3"}, {"ts": 1.0, "id": "a1"}, {"ts": 5.0, "id": "a5"}]
    b = [{"ts": 2.0, "id": "b2"}, {"ts": 4.0, "id": "b4"}]
    merged = merge([a, b])
    assert [r["id"] for r in merged] == ["a1", "b2", "a3", "b4", "a5"]


def test_merge_keeps_shard_order_at_equal_times_and_loses_nothing() -> None:
    a = [{"ts": 1.0, "id": "a"}]
    b = [{"ts": 1.0, "id": "b"}]
    assert [r["id"] for r in merge([a, b])] == ["a", "b"]
    assert merge([[], []]) == []


def test_shards_round_trip_and_a_cut_line_is_left_out(tmp_path: Path) -> None:
    shard = tmp_path / "w0.jsonl"
    written = write_shard(shard, tagged([{"ts": 2.0, "id": "x"}, {"ts": 1.0, "id": "y"}], "worker-0"))
    assert written == shard.stat().st_size
    with shard.open("a", encoding="utf-8") as file:
        file.write('{"ts": 3.0, "id": "cut')  # a worker killed mid-write
    records = read_shard(shard)
    assert [(r["id"], r["worker"]) for r in records] == [("x", "worker-0"), ("y", "worker-0")]
    assert [r["id"] for r in merge([records])] == ["y", "x"]


def test_buffer_drains_what_was_added_once() -> None:
    buffer = RecordBuffer()
    buffer.add({"ts": 1.0})
    buffer.add({"ts": 2.0})
    assert len(buffer) == 2
    assert buffer.drain() == [{"ts": 1.0}, {"ts": 2.0}]
    assert buffer.drain() == []


# ---- clock offset and its bound --------------------------------------------------------------------------------

def test_offset_is_the_workers_clock_minus_the_midpoint_of_the_round_trip() -> None:
    sample = ClockSample(sent=100.0, worker=100.55, received=100.1)
    assert sample.rtt == pytest.approx(0.1)
    assert sample.offset == pytest.approx(0.5)


def test_the_round_trip_with_the_shortest_rtt_is_kept() -> None:
    slow = ClockSample(100.0, 100.9, 101.0)
    fast = ClockSample(200.0, 200.0105, 200.001)
    assert best([slow, fast]) is fast
    with pytest.raises(ValueError, match="no round trip"):
        best([])


def test_bound_is_a_tenth_of_the_tightest_window() -> None:
    scenario = _scenario()  # within: 3s is the tightest (fault for 8s, load 20s)
    assert tightest_window(scenario) == 3.0
    assert offset_bound(scenario) == pytest.approx(3.0 * BOUND_SHARE)


def test_an_explicit_window_can_be_the_tightest() -> None:
    text = REPLICA_RESET.replace("  - {kind: error_rate, window: baseline, max: 0.0}",
                                 "  - {kind: error_rate, window: {from: 1s, to: 1.5s}, max: 0.0}")
    assert tightest_window(_scenario(text)) == 0.5
    assert offset_bound(_scenario(text)) == pytest.approx(0.05)


def test_a_clock_within_the_bound_passes_and_one_beyond_fails_with_the_figure() -> None:
    assert offset_problem("worker-1", ClockSample(0.0, 0.2995, 0.001), 0.3) is None
    problem = offset_problem("worker-1", ClockSample(0.0, -0.4115, 0.003), 0.3)
    assert problem is not None
    assert "worker worker-1's clock is -413.0 ms off" in problem
    assert "300 ms" in problem and "round trip 3.0 ms" in problem


# ---- settings: the scenario, the command line, and their errors -------------------------------------------------

def test_load_workers_defaults_to_one_process() -> None:
    scenario = _scenario()
    assert scenario.load.workers is None
    config = LoadConfig.for_scenario(scenario, "")
    assert not config.distributed
    assert config.max_clock_offset == pytest.approx(0.3)


def test_command_line_workers_override_the_scenario() -> None:
    scenario = _scenario(_with_load("load: {workers: 4, users: 8, spawn_rate: 8, duration: 20s}"))
    assert scenario.load.workers == 4
    assert LoadConfig.for_scenario(scenario, "").workers == 4
    assert LoadConfig.for_scenario(scenario, "", distribution=Distribution(workers=0)).workers == 0
    remote = LoadConfig.for_scenario(_scenario(), "", distribution=Distribution(remote_workers=1, join_timeout=5))
    assert remote.distributed and remote.workers == 0 and remote.remote_workers == 1 and remote.join_timeout == 5


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "load.workers: Input should be greater than or equal to 0, got -1"),
    ("65", "load.workers: Input should be less than or equal to 64, got 65"),
    ("many", "load.workers: Input should be a valid integer"),
])
def test_a_bad_workers_value_is_named_with_its_file_line_and_field(value: str, message: str) -> None:
    text = _with_load(f"load:\n  users: 8\n  duration: 20s\n  workers: {value}")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    line = text.splitlines().index(f"  workers: {value}") + 1
    assert f"s.yaml:{line}:" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize("text", ["foo", "host:", ":5557", "host:0", "host:70000", "host:port"])
def test_a_master_address_must_be_host_and_port(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        address(text)


def test_master_addresses_parse() -> None:
    assert address("10.0.0.5:5557") == ("10.0.0.5", 5557)
    assert address("[::1]:5557") == ("::1", 5557)


def test_cli_refuses_bad_distribution_options() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["worker", "--master", "nowhere"])
    assert result.exit_code == 2 and "expected HOST:PORT" in result.output
    result = runner.invoke(cli, ["run", str(REPO / "scenarios" / "replica-reset.yaml"), "--workers", "-1"])
    assert result.exit_code == 2 and "--workers" in result.output
    result = runner.invoke(cli, ["run", str(REPO / "scenarios" / "replica-reset.yaml"), "--join-timeout", "0"])
    assert result.exit_code == 2 and "--join-timeout" in result.output


def test_worker_events_in_the_journal_are_checked() -> None:
    good = {"type": "load.worker", "ts": 1.0, "id": "worker-0", "offset": 0.0001, "rtt": 0.0002}
    assert check_event(good) == []
    problems = check_event({**good, "offset": "0.1"})
    assert problems and problems[0].startswith("offset: expected a number")
    assert check_event({"type": "load.worker_lost", "ts": 1.0, "id": "worker-1", "how": "exited"}) == []
