"""The attempt logs into the journal: the collector's tail of each file, and each gateway's log lines."""

from __future__ import annotations

import json
from pathlib import Path

from harness.attempts import (AttemptCollector, AttemptSource, gateway_attempt_log, prepare_attempts_dir,
                              replica_attempts_file, replica_line, sources_for)
from harness.gateways.envoy import EnvoyGateway
from harness.gateways.haproxy import HaproxyGateway
from harness.gateways.nginx import NginxGateway
from harness.journal import JournalWriter, read_journal
from harness.timeline import build_timeline


def test_replica_files_are_named_after_the_replica(tmp_path: Path) -> None:
    assert replica_attempts_file(tmp_path, "chat[0]") == tmp_path / "attempts" / "chat-0.jsonl"
    old = replica_attempts_file(tmp_path, "chat[0]")
    old.parent.mkdir()
    old.write_text("{}\n")
    folder = prepare_attempts_dir(tmp_path)  # a new run into the same folder starts empty
    assert list(folder.iterdir()) == [] and folder.stat().st_mode & 0o002 == 0
    assert prepare_attempts_dir(tmp_path, any_user=True).stat().st_mode & 0o777 == 0o777  # the containers' nobody


def test_a_source_reads_complete_lines_only_and_goes_on_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    source = AttemptSource(path, replica_line)
    assert source.new_events() == []  # no file yet
    line = {"ts": 10.5, "replica": "chat[0]", "method": "POST", "path": "/v1/chat/completions", "request_id": "r-1",
            "health": False}
    text = json.dumps(line) + "\n"
    path.write_text(text + text[:20])  # a line and a torn one (its writer is mid-write)
    assert [e["request_id"] for e in source.new_events()] == ["r-1"]
    with path.open("a") as file:
        file.write(text[20:] + "not json\n" + json.dumps({"no": "ts"}) + "\n")
    assert [(e["ts"], e["source"], e["replica"]) for e in source.new_events()] == [(10.5, "replica", "chat[0]")]
    assert source.new_events() == []


def test_envoys_upstream_log_lines_become_tries_named_by_replica(tmp_path: Path) -> None:
    log = tmp_path / "envoy-upstream.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        {"start": "100.250000", "upstream": "127.0.0.1:31000", "request_id": "r-1", "status": 0, "flags": "UF"},
        {"start": "100.300000", "upstream": "127.0.0.1:31001", "request_id": "r-1", "status": 200, "flags": "-"},
        {"start": "100.400000", "upstream": "-", "request_id": "r-2", "status": 503, "flags": "UH"},  # no host: no try
    ]) + "\n")
    gateway = EnvoyGateway.__new__(EnvoyGateway)
    sources = sources_for(tmp_path, ["chat[0]"], gateway, {"127.0.0.1:31000": "chat[0]", "127.0.0.1:31001": "chat[1]"})
    assert [s.path.name for s in sources] == ["chat-0.jsonl", "envoy-upstream.jsonl"]
    events = sources[1].new_events()
    assert events == [
        {"ts": 100.25, "upstream": "127.0.0.1:31000", "request_id": "r-1", "status": None, "flags": "UF",
         "source": "gateway", "replica": "chat[0]"},
        {"ts": 100.3, "upstream": "127.0.0.1:31001", "request_id": "r-1", "status": 200, "flags": None,
         "source": "gateway", "replica": "chat[1]"}]


def test_nginx_access_log_lines_give_one_try_per_server_tried() -> None:
    tries = NginxGateway.parse_upstream_attempts({
        "ts": 100.5, "rt": 0.5, "upstream_addr": "127.0.0.1:1, 127.0.0.1:2", "upstream_status": "502, 200",
        "upstream_response_time": "0.100, 0.300", "request_id": "r-1"})
    assert [(t["ts"], t["upstream"], t["status"], t["request_id"]) for t in tries] == [
        (100.0, "127.0.0.1:1", 502, "r-1"), (100.1, "127.0.0.1:2", 200, "r-1")]
    assert NginxGateway.parse_upstream_attempts({"ts": 1, "rt": 0, "upstream_addr": "chat", "upstream_status": "502",
                                                 "upstream_response_time": "0.000", "request_id": ""}) == []


def test_gateways_that_log_only_the_last_try_have_no_attempt_log(tmp_path: Path) -> None:
    assert gateway_attempt_log(HaproxyGateway.__new__(HaproxyGateway), tmp_path) is None
    assert gateway_attempt_log(EnvoyGateway.__new__(EnvoyGateway), tmp_path) == tmp_path / "envoy-upstream.jsonl"


def test_the_collector_journals_attempt_events_on_the_files_time_base(tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path / "journal.jsonl")
    journal.write("run.started", ts=99.0, replicas=["chat[0]"], text="name: t\n", file="t.yaml")
    journal.write("stack.ready", ts=99.5, endpoints={"replicas": {}}, attempt_logs={"replica": True, "gateway": None})
    journal.write("load.started", ts=100.0)
    path = replica_attempts_file(tmp_path, "chat[0]")
    prepare_attempts_dir(tmp_path)
    collector = AttemptCollector(journal, [AttemptSource(path, replica_line)], interval=0.01)
    collector.start()
    path.write_text(json.dumps({"ts": 101.25, "replica": "chat[0]", "method": "GET", "path": "/health",
                                "request_id": None, "health": True}) + "\n")
    with path.open("a") as file:
        file.write(json.dumps({"ts": 102.0, "replica": "chat[0]", "method": "POST", "path": "/v1/chat/completions",
                               "request_id": "r-9", "health": False}) + "\n")
    collector.stop()  # what is left is read at the stop
    journal.close()
    timeline = build_timeline(read_journal(tmp_path / "journal.jsonl"))
    assert collector.count == 2
    assert [(a.t, a.replica, a.health, a.client, a.request_id) for a in timeline.attempts] == [
        (1.25, "chat[0]", True, False, None), (2.0, "chat[0]", False, True, "r-9")]
    assert timeline.attempt_logs == {"replica": True, "gateway": None}


def test_a_fakes_answer_line_is_journalled_as_an_attempt_answer(tmp_path: Path) -> None:
    journal = JournalWriter(tmp_path / "journal.jsonl")
    journal.write("run.started", ts=99.0, replicas=["chat[0]"], text="name: t\n", file="t.yaml")
    journal.write("stack.ready", ts=99.5, endpoints={"replicas": {}}, attempt_logs={"replica": True, "gateway": None})
    journal.write("load.started", ts=100.0)
    path = replica_attempts_file(tmp_path, "chat[0]")
    prepare_attempts_dir(tmp_path)
    collector = AttemptCollector(journal, [AttemptSource(path, replica_line)], interval=0.01)
    collector.start()
    path.write_text(json.dumps({"ts": 101.0, "replica": "chat[0]", "method": "POST", "path": "/v1/chat/completions",
                                "request_id": "r-1", "health": False}) + "\n"
                    + json.dumps({"type": "answer", "ts": 101.5, "ended": 101.75, "replica": "chat[0]",
                                  "path": "/v1/chat/completions", "request_id": "r-1", "status": 429,
                                  "retry_after": 2.0, "retry_after_header": "2", "retry_after_ms_header": "2000",
                                  "tokens": 0, "model": None}) + "\n")
    collector.stop()
    journal.close()
    events = read_journal(tmp_path / "journal.jsonl")
    assert collector.count == 1  # tries, not answers
    (answered,) = [e for e in events if e["type"] == "attempt.answer"]
    assert answered == {"type": "attempt.answer", "ts": 101.5, "replica": "chat[0]", "request_id": "r-1",
                        "status": 429, "retry_after": 2.0, "tokens": 0, "ended": 101.75}
    (answer,) = build_timeline(events).answers
    assert (answer.t, answer.retry_after, answer.until, answer.ended, answer.tokens) == (1.5, 2.0, 3.5, 1.75, 0)
