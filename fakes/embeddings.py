"""Deterministic fake embeddings: the same input and seed always give the same unit vector.

Vectors are float32 (what the API sends), so the ``float`` and ``base64`` encodings of one
input decode to exactly the same numbers. ``base64`` is little-endian float32, the way the
official client decodes it (it asks for base64 by default).
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from typing import Any

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 4096


def vector(text: str, seed: int, dimensions: int) -> list[float]:
    """A unit-length vector for ``text``, rounded to float32."""
    digest = hashlib.sha256(f"{seed}\0{text}".encode()).digest()
    rng = random.Random(digest)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(x / norm for x in raw))))


def encode(values: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")
    return values


def inputs_of(value: Any) -> list[str] | None:
    """The texts of an embeddings ``input``: a string, a list of strings, or token arrays
    (a list of ints, or a list of lists of ints); None if it is none of these or empty."""
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(item, str) and item for item in value):
        return list(value)
    if all(_is_tokens(item) for item in value):
        return [" ".join(map(str, item)) for item in value]
    if _is_tokens(value):
        return [" ".join(map(str, value))]
    return None


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
