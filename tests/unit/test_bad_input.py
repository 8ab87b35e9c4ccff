"""Bad input never gets a traceback: property-based tests of `chaosgate validate` and `chaosgate report`.

Random mutations of every shipped scenario (values of other types, keys deleted or added, YAML
text cut or broken) go to `chaosgate validate`, and random corruptions of a real run's journal
(tests/data/fuzz-reset.journal.jsonl, recorded once from tests/data/fuzz-reset.yaml) go to
`chaosgate report`, both through the command line's own ``main`` in this process. Each must end
with a documented exit code (0 when the mutation is harmless), never with a traceback, and every
error must name the file and the line. Exit code 3 is documented too, but it means a bug in
chaosgate: bad input that reaches it fails these tests.

The examples are derandomized (the same ones on every run) and bounded, so this stays a unit test;
CHAOSGATE_FUZZ_EXAMPLES=5000 searches longer, with new random examples each time.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import EXIT_BUG, EXIT_FAILED, EXIT_PASSED, EXIT_UNRUNNABLE, main
from harness.gateways import GATEWAYS

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted([*REPO.glob("scenarios/*.yaml"), *REPO.glob("scenarios/compare/*.yaml"),
                    *REPO.glob("scenarios/traps/*.yaml"), REPO / "tests/data/fuzz-reset.yaml"])
JOURNAL = REPO / "tests/data/fuzz-reset.journal.jsonl"
DOCUMENTED = {EXIT_PASSED, EXIT_FAILED, EXIT_UNRUNNABLE, EXIT_BUG}

SEARCH = int(os.environ.get("CHAOSGATE_FUZZ_EXAMPLES", "0"))
EXAMPLES = settings(max_examples=SEARCH or 150, deadline=None, derandomize=not SEARCH, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values a hand-edited file may hold in the wrong place: JSON of every type, and words that mean something here.
WORDS = st.sampled_from(["1s", "500ms", "0s", "-1s", "10", "1e9", "chat[0]", "chat[*]", "chat[99]", "tools", "envoy",
                         "haproxy", "promised", "fault", "after_detection", "128Mi", "reset_peer", "complete", ""])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=10), WORDS)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.one_of(st.text(max_size=8), WORDS), inner, max_size=3), max_leaves=6)
YAML_BITS = st.sampled_from([":", ": ", "- ", "{", "}", "[", "]", ",", "&a ", "*a", "!!int ", "!tag ", "\t", "'", '"',
                             "? ", "#", "%", "|", ">", "\n  ", "\n- ", "---\n", "...\n", "\x07", "\\", "<<: "])


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"chaosgate {' '.join(args)} raised {result.exception!r}") from result.exception
    return result


def assert_documented(result: Result, file: Path) -> None:
    """A documented exit code that is not a bug, no traceback, and every error naming ``file`` and a line."""
    output = result.output + result.stderr
    assert "Traceback" not in output, output
    assert result.exit_code in DOCUMENTED, (result.exit_code, output)
    assert result.exit_code != EXIT_BUG, f"bad input reached a bug in chaosgate:\n{output}"
    if result.exit_code == EXIT_UNRUNNABLE:
        errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("  ")]
        assert errors, output
        assert re.match(rf"{re.escape(str(file))}:\d+", errors[0]), output
        assert all(line.startswith(f"{file}:") for line in errors), output


# -- scenarios ----------------------------------------------------------------------------------

def places(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a parsed YAML document."""
    found = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            found += places(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += places(value, (*at, index))
    return found


def mutate_data(data: Any, draw: st.DrawFn) -> Any:
    """One structural change: a value of another type, a key deleted, a key (or item) added."""
    at = draw(st.sampled_from(places(data)))
    if not at:
        return draw(VALUES)
    parent = data
    for part in at[:-1]:
        parent = parent[part]
    change = draw(st.sampled_from(["replace", "delete", "add"]))
    if change == "replace":
        parent[at[-1]] = draw(VALUES)
    elif change == "delete":
        del parent[at[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.one_of(WORDS, st.sampled_from(sorted(KEYS)), st.text(max_size=8)))] = draw(VALUES)
    else:
        parent.insert(at[-1], draw(VALUES))
    return data


def mutate_text(text: str, draw: st.DrawFn) -> str:
    """One textual change: the file cut short, a YAML token inserted, a stretch deleted."""
    at = draw(st.integers(0, len(text)))
    change = draw(st.sampled_from(["cut", "insert", "delete"]))
    if change == "cut":
        return text[:at]
    if change == "insert":
        return text[:at] + draw(YAML_BITS) + text[at:]
    return text[:at] + text[at + draw(st.integers(1, 40)):]


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {str(k) for k in node} | {k for v in node.values() for k in _keys(v)}
    return {k for v in node for k in _keys(v)} if isinstance(node, list) else set()


KEYS = {key for file in SCENARIOS for key in _keys(yaml.safe_load(file.read_text(encoding="utf-8")))}


@st.composite
def broken_scenarios(draw: st.DrawFn) -> tuple[str, str]:
    """(the name of the shipped scenario it came from, the mutated file's text)."""
    source = draw(st.sampled_from(SCENARIOS))
    text = source.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            text = mutate_text(text, draw)
        else:
            try:
                data = yaml.safe_load(text)
            except Exception:  # noqa: BLE001 - an earlier change broke the YAML (PyYAML raises several kinds)
                continue
            text = yaml.safe_dump(mutate_data(data, draw), sort_keys=False, allow_unicode=True)
    return source.name, text


@EXAMPLES
@given(broken=broken_scenarios(), gateway=st.sampled_from([None, *GATEWAYS]))
def test_a_mutated_scenario_gets_messages_with_file_and_line_never_a_traceback(
        broken: tuple[str, str], gateway: str | None) -> None:
    name, text = broken
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / name
        file.write_text(text, encoding="utf-8")
        result = invoke("validate", str(file), *(["--gateway", gateway] if gateway else []))
        assert_documented(result, file)
        assert result.exit_code in (EXIT_PASSED, EXIT_UNRUNNABLE)


# -- journals -----------------------------------------------------------------------------------

LINES = JOURNAL.read_text(encoding="utf-8").splitlines()


def mutate_event(event: Any, draw: st.DrawFn) -> Any:
    """A field of another type, deleted or added; or (half the time) another value of the same type,
    which gets past the types to what judging makes of the values."""
    if not isinstance(event, dict) or not event:
        return draw(VALUES)
    if draw(st.booleans()):
        return mutate_data(event, draw)
    at = draw(st.sampled_from(places(event)[1:]))
    parent = event
    for part in at[:-1]:
        parent = parent[part]
    parent[at[-1]] = draw(same_type(parent[at[-1]], at[-1]))
    return event


def same_type(value: Any, key: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if key == "ts" and isinstance(value, float):  # a time that a run can have, moved a little or a lot
        return st.floats(-3600, 3600).map(lambda delta: value + delta)
    if isinstance(value, int):
        return st.integers(-1000, 1000)
    if isinstance(value, float):
        return st.floats(0, 100)
    if isinstance(value, str):
        return st.one_of(WORDS, st.text(max_size=12), st.just(value[: len(value) // 2]))
    if isinstance(value, list):
        return st.lists(st.one_of(WORDS, st.text(max_size=6)), max_size=3)
    if isinstance(value, dict):
        return st.dictionaries(st.one_of(WORDS, st.text(max_size=6)), st.one_of(WORDS, SCALARS), max_size=3)
    return VALUES


@st.composite
def broken_journals(draw: st.DrawFn) -> str:
    """The recorded journal with one to three lines changed: a field of another type, deleted or added,
    a line cut short, deleted, duplicated, moved, or a foreign line inserted."""
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1)) if lines else 0
        change = draw(st.sampled_from(["field", "field", "field", "cut", "delete", "duplicate", "move", "insert"]))
        if change == "insert" or not lines:
            lines.insert(at, draw(st.one_of(VALUES.map(json.dumps), st.text(max_size=20))).replace("\n", " "))
        elif change == "field":
            try:
                event = json.loads(lines[at])
            except ValueError:
                continue
            lines[at] = json.dumps(mutate_event(event, draw))
        elif change == "cut":
            lines[at] = lines[at][:draw(st.integers(0, max(0, len(lines[at]) - 1)))]
        elif change == "delete":
            del lines[at]
        elif change == "duplicate":
            lines.insert(at, lines[at])
        else:
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(at))
    return "\n".join(lines) + "\n"


@EXAMPLES
@given(text=broken_journals())
def test_a_corrupted_journal_gets_messages_with_file_and_line_never_a_traceback(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        journal = Path(folder) / "run" / "journal.jsonl"
        journal.parent.mkdir()
        journal.write_text(text, encoding="utf-8")
        result = invoke("report", str(journal), "--out", str(Path(folder) / "out"))
        assert_documented(result, journal)
        if result.exit_code == EXIT_UNRUNNABLE:
            assert result.stderr.rstrip().endswith(f"{journal}: not judged (its report was not rewritten)")
            assert not (Path(folder) / "out").exists()  # nothing was judged from it


@EXAMPLES
@given(cut=st.integers(len(LINES[0].encode()) + 1, len(JOURNAL.read_bytes()) - 1))
def test_a_journal_cut_anywhere_after_its_header_is_judged_as_a_killed_run(cut: int) -> None:
    data = JOURNAL.read_bytes()[:cut]
    last = data.rsplit(b"\n", 1)[-1]
    try:
        json.loads(last or b"{}")
        torn = False
    except ValueError:
        torn = True
    with tempfile.TemporaryDirectory() as folder:
        journal = Path(folder) / "journal.jsonl"
        journal.write_bytes(data)
        result = invoke("report", str(journal), "--out", str(Path(folder) / "out"))
        assert_documented(result, journal)
        assert result.exit_code in (EXIT_PASSED, EXIT_FAILED), result.stderr
        number = data.count(b"\n") + 1
        assert (f"{journal}:{number}: warning: the last line is cut short" in result.stderr) is torn, result.stderr
        summary = json.loads((Path(folder) / "out" / "summary.json").read_text())
        assert summary["outcome"] == ("complete" if b'"type":"run.finished"' in data and not torn else "killed")
