"""Bounds on how long a server may ask the operator to wait (Retry-After), in one place.

A Retry-After is honoured, never trusted without limit: a provider or an API server
answering "come back in a day" (or a date years away) must not park a Scene, a worker or
a provider's whole rate limiter for that long.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

PROVIDER_MAX_SECONDS = 300.0
"""The longest a provider's Retry-After may hold a Scene or slow its rate limiter."""
KUBE_MAX_SECONDS = 10.0
"""The longest one Kubernetes API retry waits (the request holds a worker meanwhile)."""


def bounded(seconds: float | None, cap: float = PROVIDER_MAX_SECONDS) -> float | None:
    """`seconds` within [0, cap]; None stays None (no Retry-After was given), and a value
    that is not a finite number counts as absent."""
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return None
    if math.isnan(value):
        return None
    return min(max(value, 0.0), cap)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date, counted from `now`,
    default the wall clock); None if absent or unreadable."""
    if not value or not (value := value.strip()):
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
