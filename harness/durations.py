"""Durations as written in scenario files: ``1.5s``, ``250ms``, ``2m``, or a bare number of seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$"


def parse_duration(value: Any) -> float:
    """Return ``value`` in seconds; raise ValueError with what was expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '1.5s' or '250ms', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration such as '1.5s' or '250ms', got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected a duration such as '1.5s' or '250ms' (a finite number), got {value!r}")
    if seconds < 0:
        raise ValueError(f"expected a duration of zero or more, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds the way a person writes them in a scenario (``1.5s``, ``250ms``)."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:.15g}ms"
    return f"{seconds:.15g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: '1.5s', '250ms', '2m', or a number of seconds.",
        }
    ),
]


PROMISED: Literal["promised"] = "promised"


def parse_bound(value: Any) -> float | Literal["promised"]:
    """A time bound: ``promised`` (the window the gateway's configuration promises) or a duration."""
    if value == PROMISED:
        return PROMISED
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"expected 'promised' or {str(exc).removeprefix('expected ')}") from None


def format_bound(bound: float | Literal["promised"]) -> str:
    return bound if isinstance(bound, str) else format_duration(bound)


DurationOrPromised = Annotated[
    float | Literal["promised"],
    BeforeValidator(parse_bound),
    PlainSerializer(format_bound, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": PROMISED},
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "'promised' (the window the gateway's own configuration promises), or a duration: "
                           "'1.5s', '250ms', '2m', or a number of seconds.",
        }
    ),
]


NEVER: Literal["never"] = "never"


def parse_detection_bound(value: Any) -> float | Literal["promised", "never"]:
    """``never`` (the gateway must not act at all), ``promised`` or a duration."""
    if value == NEVER:
        return NEVER
    try:
        return parse_bound(value)
    except ValueError as exc:
        raise ValueError(f"expected 'never', {str(exc).removeprefix('expected ')}") from None


def format_detection_bound(bound: float | Literal["promised", "never"]) -> str:
    return bound if isinstance(bound, str) else format_duration(bound)


DurationPromisedOrNever = Annotated[
    float | Literal["promised", "never"],
    BeforeValidator(parse_detection_bound),
    PlainSerializer(format_detection_bound, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": PROMISED},
                {"const": NEVER},
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "'promised' (inside the window the gateway's own configuration promises), 'never' (the "
                           "gateway must not act at all), or a duration: '1.5s', '250ms', '2m', or a number of "
                           "seconds.",
        }
    ),
]
