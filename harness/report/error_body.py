"""The gist of a failed answer's body, for a reader: an OpenAI- or Anthropic-shaped JSON error as its
type and message, an HTML error page as its text, anything else as its first line, all trimmed.

The journal keeps only the first characters of a body (harness/load/worker.py), so a JSON error is
often cut short: its fields are then read from the text that is there.
"""

from __future__ import annotations

import json
import re

MAX_MESSAGE = 60
_STRING = r'"((?:[^"\\]|\\.)*)(?:"|$)'          # a JSON string, possibly cut off at the end of the text
_ERROR_OBJECT = re.compile(r'"error"\s*:\s*\{')
_FIELD = {name: re.compile(rf'"{name}"\s*:\s*{_STRING}', re.S) for name in ("type", "message", "code")}
_TAG = re.compile(r"<[^>]*>")


def gist(body: str | None) -> str:
    """``type: message`` of a JSON error body, else an HTML page's text or the body's first line; a message
    longer than 60 characters is cut with an ellipsis."""
    text = (body or "").strip()
    if not text:
        return ""
    if text.startswith("{") and (error := _json_error(text)) is not None:
        kind, message = error
        return f"{kind}: {_trim(message)}" if kind and message else _trim(kind or message)
    if text.startswith("<"):
        return _trim(_TAG.sub(" ", text))
    return _trim(text.splitlines()[0])


def _json_error(text: str) -> tuple[str, str] | None:
    """(type, message) of ``{"error": {"type", "message", ...}}`` (OpenAI; Anthropic wraps the same in
    ``{"type": "error", "error": {...}}``) or ``{"error": "message"}``; None if it is no such body."""
    try:
        document, _ = json.JSONDecoder().raw_decode(text)  # what follows the JSON value does not matter
    except ValueError:
        return _cut_json_error(text)
    if not isinstance(document, dict) or "error" not in document:
        return None
    error = document["error"]
    if isinstance(error, str):
        return "", error
    if not isinstance(error, dict):
        return None
    kind = error.get("type") or error.get("code") or ""
    return str(kind), str(error.get("message") or "")


def _cut_json_error(text: str) -> tuple[str, str] | None:
    """The same from a body cut short: the fields of the error object that made it into the text."""
    start = _ERROR_OBJECT.search(text)
    if start is None:
        return None
    inner = text[start.end():]
    fields = {name: _unescape(m.group(1)) for name, pattern in _FIELD.items() if (m := pattern.search(inner))}
    if not fields:
        return None
    return fields.get("type") or fields.get("code", ""), fields.get("message", "")


def _unescape(raw: str) -> str:
    try:
        return str(json.loads(f'"{raw}"'))
    except ValueError:  # cut inside an escape
        return raw.replace('\\"', '"').replace("\\n", "\n")


def _trim(text: str) -> str:
    line = " ".join(text.split("\n\n")[0].split())
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 1].rstrip() + "…"
