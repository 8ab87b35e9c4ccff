"""A bare number is seconds: ``timeout: 1000`` (meant as milliseconds) is 1000 s, silently. Every
duration the file writes as a number (other than 0) is named, with the unit to write instead."""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ValidationError

from harness.durations import parse_bound, parse_detection_bound, parse_duration
from harness.lint.base import Check, Hit
from harness.scenario import Scenario
from harness.yaml_source import Path as YamlPath
from harness.yaml_source import YamlDocument

DURATION_PARSERS = (parse_duration, parse_bound, parse_detection_bound)


def is_duration(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> bool:
    """Whether a field's type is a Duration (harness/durations.py), alone, optional or in a union."""
    if any(isinstance(m, BeforeValidator) and m.func in DURATION_PARSERS for m in metadata):
        return True
    if get_origin(annotation) is Annotated:
        return is_duration(get_args(annotation)[0], annotation.__metadata__)
    return any(is_duration(arg) for arg in get_args(annotation))


def unitless(model: BaseModel, raw: Any, path: YamlPath) -> list[tuple[YamlPath, float]]:
    """Every duration of ``model`` that ``raw`` (the file's mapping for it) writes as a bare number."""
    if not isinstance(raw, dict):
        return []
    found: list[tuple[YamlPath, float]] = []
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        if key not in raw:
            continue
        value, written = getattr(model, name), raw[key]
        if is_duration(field.annotation, field.metadata) and isinstance(written, int | float) \
                and not isinstance(written, bool) and written != 0:
            found.append(((*path, key), written))
        elif isinstance(value, BaseModel):
            found += unitless(value, written, (*path, key))
        elif isinstance(value, list | tuple) and isinstance(written, list):
            for i, (item, item_written) in enumerate(zip(value, written, strict=False)):
                if isinstance(item, BaseModel):
                    found += unitless(item, item_written, (*path, key, i))
    return found


def check(scenario: Scenario, doc: YamlDocument | None) -> list[Hit]:
    if doc is None:
        return []
    try:  # the file as written: every expectation, also those scoped to other gateways
        written = Scenario.model_validate(doc.data)
    except ValidationError:
        written = scenario
    return [Hit(path, f"{number:g} has no unit and is read as {number:g} seconds; write {number:g}s for seconds "
                      f"or {number:g}ms for milliseconds") for path, number in unitless(written, doc.data, ())]


CHECK = Check("scenario.unitless-duration", "warning",
              "a duration written as a bare number (seconds, silently: `timeout: 1000` is 1000 s)", check)
