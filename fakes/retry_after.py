"""When to come back, in the header forms providers send: ``retry-after`` as whole seconds or as an
HTTP date (RFC 9110 section 10.2.3), ``retry-after-ms``, and the reset times of rate-limit headers."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
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


def retry_after_seconds(retry_after_value: str | None, retry_after_ms: str | None, now: float) -> float | None:
    """How long an answer asked its client to wait, from its headers as sent at ``now`` (Unix time):
    ``retry-after-ms`` when present and a number (the official OpenAI clients read it first), else
    ``retry-after`` as seconds or as an HTTP date (from ``now``; a date in the past is 0). None: nothing
    was asked (no header, or one that is neither)."""
    if retry_after_ms is not None:
        try:
            ms = float(retry_after_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000
    if retry_after_value is None:
        return None
    text = retry_after_value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110: an HTTP date is GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)
