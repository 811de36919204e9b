"""Liveness means progress: /healthz fails when the workers are stuck.

A worker "progresses" when it starts or finishes a pass. The pod is not alive when work
is queued, every worker is busy, and none has progressed for the threshold: all are held
(e.g. a download that never ends) and nothing queued will ever run. Idle workers with
queued work are a standby's (its queue hands out no key until it leads): alive.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from controller.api.common import Key
from controller.queue.state import Result

Reconciler = Callable[[Key], Awaitable[Result]]


def stall(
    *, queued: int, busy: int, workers: int, last_progress: float, now: float, threshold: float
) -> str | None:
    """Why the workers are stuck, or None. Pure: the health endpoint's decision."""
    if threshold <= 0 or queued <= 0 or busy < workers:
        return None
    quiet = now - last_progress
    if quiet < threshold:
        return None
    return (
        f"no progress for {quiet:.0f}s (limit {threshold:g}s): all {workers} workers busy, "
        f"{queued} keys queued"
    )


class Progress:
    """Counts busy workers and when one last started or finished a pass."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.busy = 0
        self.last = clock()

    def track(self, reconcile: Reconciler) -> Reconciler:
        async def tracked(key: Key) -> Result:
            self.busy += 1
            self.last = self.clock()
            try:
                return await reconcile(key)
            finally:
                self.busy -= 1
                self.last = self.clock()

        return tracked
