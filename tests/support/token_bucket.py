"""A token bucket, for the local provider servers' optional rate limits (Replicate answers
429 with Retry-After beyond its per-account limits: 600 creates/min, 3,000 reads/min)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; starts full. Not thread-safe on
    its own: the server calls it under its lock."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = burst
        self.stamp = clock()

    @classmethod
    def per_minute(cls, limit: float, burst_seconds: float = 1.0, **kw: object) -> TokenBucket:
        """`limit` per minute, with a burst of `burst_seconds` worth of it (at least 1)."""
        rate = limit / 60.0
        return cls(rate, max(1.0, rate * burst_seconds), **kw)  # type: ignore[arg-type]

    def take(self) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is available."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def retry_after_header(wait: float) -> str:
    """Retry-After in whole seconds (HTTP's delta-seconds), never 0 for a refusal."""
    return str(max(1, math.ceil(wait)))
