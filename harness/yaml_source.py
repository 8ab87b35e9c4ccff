"""Read YAML while remembering where each value came from (line and column).

pydantic reports errors by path (``("faults", 0, "at")``); this module maps such a path
back to the line in the file, so that every error can name file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from harness.errors import Problem, ScenarioError, position

Path = tuple[str | int, ...]
_SCALARS = yaml.SafeLoader("")  # only its constructor is used, to turn scalar nodes into values


@dataclass
class YamlDocument:
    """A parsed YAML document plus the 1-based (line, column) of every node by path."""

    file: str
    data: Any
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[int | None, int | None]:
        """The position of the deepest node on ``path`` that exists in the file."""
        for end in range(len(path), -1, -1):
            if (mark := self.marks.get(tuple(path[:end]))) is not None:
                return mark
        return None, None


def _dotted(path: Path) -> str:
    """``faults[0].at``: how messages name a place in the file."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{key_text(part)}" for part in path).lstrip(".")


def key_text(key: object) -> str:
    """A key as a message shows it: as written, or quoted when it is empty, spaced or not printable."""
    text = str(key)
    return text if text and text.isprintable() and text.strip() == text else repr(text)


MAX_NODES = 100_000  # a scenario is a few hundred values; aliases that expand past this are refused


def _construct(node: yaml.Node, path: Path, marks: dict[Path, tuple[int, int]], active: tuple[yaml.Node, ...] = ()) -> Any:
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    marks[path] = (line, column)
    field = _dotted(path)
    if any(node is outer for outer in active):
        raise ScenarioError([Problem("", line, column, field, "an alias refers to a node that contains it; "
                                     "expected a value that ends")])
    if len(marks) > MAX_NODES:
        raise ScenarioError([Problem("", line, column, field, f"aliases expand to more than {MAX_NODES} values; "
                                     "expected a scenario of ordinary size")])
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ScenarioError([Problem("", key_node.start_mark.line + 1, key_node.start_mark.column + 1, field,
                                             f"expected a field name as the key, got a "
                                             f"{'mapping' if isinstance(key_node, yaml.MappingNode) else 'list'}")])
            key = key_node.value
            if key in result:
                raise ScenarioError(
                    [Problem("", key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                             _dotted((*path, key)), "duplicate key")]
                )
            result[key] = _construct(value_node, (*path, key), marks, (*active, node))
            # Errors about a field point at its key, not at its value.
            marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), marks, (*active, node)) for i, item in enumerate(node.value)]
    try:
        return _SCALARS.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, OverflowError) as exc:  # a tag it cannot build
        problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
        raise ScenarioError([Problem("", line, column, field, f"cannot read {node.value!r} as "
                                     f"{node.tag.replace('tag:yaml.org,2002:', '!!')}: {problem}; "
                                     "expected a plain value (no YAML tag)")]) from None


def load_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; syntax errors become a ScenarioError naming the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise ScenarioError([Problem(file, line, column, "", f"invalid YAML: {exc.problem}")]) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: its place is an offset
        line, column = position(text, exc.position)
        raise ScenarioError([Problem(file, line, column, "", f"invalid YAML: the character U+{ord(str(exc.character)) if isinstance(exc.character, str) else exc.character:04X} "
                                     "is not allowed (a control character); expected printable text")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(file, 1, None, "", f"invalid YAML: {exc}")]) from exc
    if node is None:
        raise ScenarioError([Problem(file, 1, 1, "", "the file is empty; expected a scenario mapping")])
    marks: dict[Path, tuple[int, int]] = {}
    try:
        data = _construct(node, (), marks)
    except ScenarioError as exc:
        raise ScenarioError([Problem(file, p.line, p.column, p.field, p.message) for p in exc.problems]) from None
    return YamlDocument(file=file, data=data, marks=marks)
