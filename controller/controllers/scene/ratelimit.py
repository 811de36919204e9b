"""One token bucket per provider and operation: polls and creates stay under the
provider's published limits however many jobs are in flight; a 429 slows the whole
provider down for a while, not just the scene that saw it."""

from __future__ import annotations

import asyncio
import time

from controller.settings import Settings


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._penalty_until = 0.0
        self._lock = asyncio.Lock()

    def _effective_rate(self, now: float) -> float:
        return self.rate / 4 if now < self._penalty_until else self.rate

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: waiters are served in order
            while True:
                now = time.monotonic()
                rate = self._effective_rate(now)
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * rate)
                self._stamp = now
                if now < self._penalty_until and self._tokens > 1:
                    self._tokens = 1
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / rate)

    def slow_down(self, seconds: float | None) -> None:
        """After a 429: a quarter of the rate for `seconds` (Retry-After) or 30 s."""
        self._penalty_until = max(self._penalty_until, time.monotonic() + (seconds or 30.0))
        self._tokens = min(self._tokens, 0.0)


class Limiters:
    """One token bucket per provider for polls (`reads`) and for creates (`creates`), at
    the rate its settings give (`<op>_per_second_<provider>`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tables: dict[str, dict[str, TokenBucket]] = {"reads": {}, "creates": {}}

    def limiter(self, op: str, provider: str) -> TokenBucket:
        table = self._tables["reads" if op == "reads" else "creates"]
        if provider not in table:
            rate = getattr(self.settings, f"{op}_per_second_{provider}", 1000.0)
            table[provider] = TokenBucket(rate)
        return table[provider]
