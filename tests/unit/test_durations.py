"""Durations as written in scenario files: parsing, rejection messages, formatting."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ValidationError

from harness.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("2m", 120.0),
        ("1h", 3600.0),
        (" 3 s ", 3.0),
        ("0s", 0.0),
        (3, 3.0),
        (0.5, 0.5),
        (0, 0.0),
    ],
)
def test_parse_duration_accepts(given: object, seconds: float) -> None:
    value = parse_duration(given)
    assert isinstance(value, float)
    assert value == pytest.approx(seconds)


@pytest.mark.parametrize("given", ["fast", -1, True, False, "1 parsec", "", "1.5", "-2s", "1,5s", None, [1], "s"])
def test_parse_duration_rejects_with_what_was_expected(given: object) -> None:
    with pytest.raises(ValueError, match="expected a duration") as info:
        parse_duration(given)
    assert repr(given) in str(info.value)  # the message names what was given


def test_parse_duration_rejects_nan() -> None:
    # YAML's `.nan` is a float; NaN compares False with everything, so it would slip past
    # every `at + for <= load.duration` check and schedule a fault at no time at all.
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(math.nan)


@pytest.mark.parametrize("seconds", [0.0, 0.001, 0.02, 0.25, 0.5, 0.999, 1.0, 1.5, 2.0, 10.0, 59.5, 60.0, 120.0, 3600.0])
def test_format_duration_round_trips(seconds: float) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("seconds", "text"), [(1.5, "1.5s"), (0.25, "250ms"), (0.0, "0s"), (2.0, "2s"), (120.0, "120s")])
def test_format_duration_is_written_like_a_person_would(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


class _Holder(BaseModel):
    d: Duration


def test_duration_field_validates_and_serializes() -> None:
    assert _Holder.model_validate({"d": "250ms"}).d == pytest.approx(0.25)
    assert _Holder.model_validate({"d": "250ms"}).model_dump(mode="json") == {"d": "250ms"}
    with pytest.raises(ValidationError, match="expected a duration"):
        _Holder.model_validate({"d": "soon"})
