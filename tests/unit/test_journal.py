"""The run journal: JSON lines written by JournalWriter, read back by read_journal."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from harness.errors import JournalError
from harness.journal import EVENT_TYPES, JournalWriter, read_journal
from harness.journal_events import event_types


def write_run(path: Path) -> list[dict]:
    writer = JournalWriter(path)
    written = [
        writer.write("run.started", ts=100.0, scenario="t", file="x.yaml", text="name: t\n", replicas=["chat[0]"]),
        writer.write("load.started", ts=101.0),
        writer.write("request", ts=101.5, kind="chat", latency=0.05, status=200, error=None, replica="chat[0]"),
        writer.write("run.finished", ts=110.0, outcome="complete"),
    ]
    writer.close()
    return written


def test_writer_writes_json_lines_that_read_back(tmp_path: Path) -> None:
    path = tmp_path / "run" / "journal.jsonl"  # the parent folder is created
    written = write_run(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    assert [json.loads(line) for line in lines] == written
    assert read_journal(path) == written
    assert written[2] == {"type": "request", "ts": 101.5, "kind": "chat", "latency": 0.05, "status": 200,
                          "error": None, "replica": "chat[0]"}


def test_writer_stamps_the_time_and_stringifies_odd_values(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path)
    event = writer.write("run.started", file=tmp_path / "x.yaml", text="")
    writer.close()
    assert isinstance(event["ts"], float) and event["ts"] > 1_600_000_000
    (line,) = read_journal(path)
    assert line["file"] == str(tmp_path / "x.yaml")


def test_writer_flushes_each_event_at_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path)
    writer.write("run.started", ts=1.0, text="", file="x.yaml")
    assert read_journal(path)[0]["type"] == "run.started"  # readable before close (crash safety)
    writer.close()


def test_writing_after_close_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path)
    writer.write("run.started", ts=1.0, text="", file="x.yaml")
    writer.close()
    writer.write("warning", ts=2.0, message="late")
    assert [e["type"] for e in read_journal(path)] == ["run.started"]


def test_writer_is_safe_from_several_threads(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path)
    writer.write("run.started", ts=0.0, text="x" * 1000, file="x.yaml")

    def spam(n: int) -> None:
        for i in range(200):
            writer.write("request", ts=float(i + 1), kind="chat", latency=0.1, worker=n, padding="y" * 200)

    threads = [threading.Thread(target=spam, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    events = read_journal(path)
    assert len(events) == 1 + 4 * 200
    assert sorted(sum(1 for e in events if e.get("worker") == n) for n in range(4)) == [200] * 4


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    written = write_run(path)
    with path.open("a", encoding="utf-8") as f:
        f.write('{"type":"request","ts":111.0,"kind":"ch')  # crash mid-write
    said: list[str] = []
    events = read_journal(path, warn=said.append)
    warning = f"{path}:5: warning: the last line is cut short (the run was killed while writing it); skipped"
    assert said == [warning]
    assert events == [*written, {"type": "warning", "ts": 110.0, "message": warning}]  # the report shows it too


def test_corrupt_middle_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_run(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:20]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(JournalError, match=rf"^{re.escape(str(path))}:3: not a JSON event: .*; "
                                           "expected one JSON object per line$"):
        read_journal(path)


HEADER = '{"type":"run.started","ts":1,"text":"","file":"x.yaml"}'


def test_unknown_event_type_and_non_objects_are_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(f'{HEADER}\n{{"type":"bogus","ts":2}}\n{{"type":"run.finished","ts":3}}\n')
    with pytest.raises(JournalError, match=rf"^{re.escape(str(path))}:2: type: unknown event type 'bogus'; "
                                           "expected one of run.started, stack.ready, request, "):
        read_journal(path)
    path.write_text(f'{HEADER}\n[1, 2]\n{{"type":"run.finished","ts":3}}\n')
    with pytest.raises(JournalError, match=rf"^{re.escape(str(path))}:2: expected a JSON object \(one event per line\), "
                                           "got a list$"):
        read_journal(path)


def test_every_malformed_line_is_named_with_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text("\n".join([
        HEADER,
        '{"type":"load.started","ts":"2"}',
        '{"type":"request","ts":3,"kind":"chat","latency":"0.05","status":200}',
        '{"type":"health","ts":4,"healthy":1}',
        '{"type":"fault.started","ts":5,"fault":"f","kind":"reset_peer","target":"chat[0]","replicas":"chat[0]"}',
        '{"type":"run.finished","ts":6,"outcome":"complete"}',
    ]) + "\n")
    with pytest.raises(JournalError) as raised:
        read_journal(path)
    assert str(raised.value).splitlines() == [
        f"{path}:2: load.started: ts: expected a number (the event's Unix time in seconds), got the string '2'",
        f"{path}:3: request: latency: expected a number (seconds until the response ended), got the string '0.05'",
        f"{path}:4: health: replica: required field is missing; expected the replica's name",
        f"{path}:4: health: healthy: expected true or false, got the number 1",
        f"{path}:5: fault.started: replicas: expected a list (the replicas it acted on), got the string 'chat[0]'",
    ]


def test_times_no_run_can_have_are_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(f'{HEADER}\n{{"type":"load.started","ts":1e12}}\n')
    with pytest.raises(JournalError, match=rf"^{re.escape(str(path))}:2: load.started: ts: expected a Unix time from "
                                           r"-59.000 to 86401.000 \(within a day of the run's start"):
        read_journal(path)
    path.write_text(f'{HEADER}\n{{"type":"load.started","ts":NaN}}\n')
    with pytest.raises(JournalError, match="ts: expected a finite number"):
        read_journal(path)


def test_the_event_models_cover_every_event_type() -> None:
    assert set(event_types()) == EVENT_TYPES


def test_journal_without_header_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"type":"load.started","ts":1}\n{"type":"run.finished","ts":3}\n')
    with pytest.raises(JournalError, match=rf"^{re.escape(str(path))}:1: load.started: expected the run.started header "
                                           "first"):
        read_journal(path)


def test_empty_journal_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text("")
    with pytest.raises(JournalError, match=rf"^{re.escape(str(path))}: not a chaosgate journal \(no run.started header\)"):
        read_journal(path)
    path.write_text("\n\n")
    with pytest.raises(JournalError, match="no run.started header"):
        read_journal(path)


def test_missing_journal_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot read journal"):
        read_journal(tmp_path / "absent.jsonl")


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(f'{HEADER}\n\n{{"type":"run.finished","ts":3}}\n')
    assert [e["type"] for e in read_journal(path)] == ["run.started", "run.finished"]


def test_event_types_are_the_documented_ones() -> None:
    assert EVENT_TYPES == {"run.started", "stack.ready", "load.started", "request", "attempt", "attempt.answer", "health", "gateway.health", "hosts",
                           "fault.started", "fault.cleared", "diagnosis", "process.exited", "process.restarted", "process.ready",
                           "gateway.exited", "gateway.health_rounds", "load.master", "load.worker", "load.worker_lost", "load.finished",
                           "warning", "run.finished"}
