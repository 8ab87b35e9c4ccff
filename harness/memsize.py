"""Memory sizes as people write them: ``64Mi``, ``128MB``, ``1Gi``, ``500k``, or a plain byte count."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mi": 1024**2, "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
MIN_BYTES = 16 * 1024**2  # below this a Python fake cannot even start


def parse_memory_size(value: object) -> int:
    """Bytes from ``"64Mi"`` (binary), ``"128MB"`` (decimal), ``"1g"`` or an int; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a memory size such as '64Mi' or '128MB', got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)) and match[2].lower() in _UNITS:
        size = int(float(match[1]) * _UNITS[match[2].lower()])
    else:
        raise ValueError(f"expected a memory size such as '64Mi' or '128MB' (units: k, Ki, M, Mi, G, Gi), got {value!r}")
    if size < MIN_BYTES:
        raise ValueError(f"a memory limit below {MIN_BYTES // 1024**2}Mi cannot run a fake replica, got {value!r}")
    return size


MemorySize = Annotated[int, BeforeValidator(parse_memory_size)]
