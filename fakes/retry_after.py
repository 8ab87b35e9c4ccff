"""When to come back, in the header forms providers send: ``retry-after`` as whole seconds or as an
HTTP date (RFC 9110 section 10.2.3), ``retry-after-ms``, and the reset times of rate-limit headers."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Literal


def retry_after(seconds: float, fmt: Literal["seconds", "http_date"], with_ms: bool = False,
                now: float | None = None) -> dict[str, str]:
    """``retry-after`` in ``fmt`` (seconds are rounded up; a date is rounded up to the next whole second,
    the resolution of an HTTP date); ``retry-after-ms`` too when ``with_ms`` and ``fmt`` is seconds."""
    if fmt == "http_date":
        moment = math.ceil((time.time() if now is None else now) + seconds)
        return {"retry-after": formatdate(moment, usegmt=True)}
    headers = {"retry-after": str(math.ceil(seconds))}
    if with_ms:
        headers["retry-after-ms"] = str(round(seconds * 1000))
    return headers


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it: ``120ms``, ``1s``, ``6m0s``, ``1.5s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def rfc3339(seconds_from_now: float, now: float | None = None) -> str:
    """A moment as Anthropic's ``anthropic-ratelimit-*-reset`` headers write it: RFC 3339, UTC, whole seconds."""
    moment = datetime.fromtimestamp(math.ceil((time.time() if now is None else now) + seconds_from_now), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
