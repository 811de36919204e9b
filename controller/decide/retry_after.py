"""Bounds on how long a server may ask the operator to wait (Retry-After), in one place.

A Retry-After is honoured, never trusted without limit: a provider or an API server
answering "come back in a day" (or a date years away) must not park a Scene, a worker or
a provider's whole rate limiter for that long.
"""

from __future__ import annotations

import math

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
