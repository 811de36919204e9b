"""Pacing of Project status writes: what changes at once, what may wait.

A Project's status is a recount of its Scenes. Each Scene moves three times (marker, job
id, Completed), and the Scenes of one Project start and finish spread over the whole run
when job slots are shared fairly, so a write per recount cost ~1.5 API writes per Scene
(benchmark, 1,000 Scenes at concurrency 100). What users and tools act on (phase,
conditions' status and reason, errors, the plan, the final video, the Scene count, the
budget counter of a capped Project) is written at once; a change of progress counters
alone (Scenes per phase, usage, condition messages such as "8 of 10 clips ready") waits
until PROGRESS_SECONDS have passed since the Project's last status write, and is then
written in one patch with everything else that moved meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.informer.cache import Key

PROGRESS_SECONDS = 10.0
# Recounts of Scenes: they may wait. generationsUsed too, unless a budget cap reads it.
PROGRESS_FIELDS = frozenset(
    {"pendingScenes", "processingScenes", "completedScenes", "failedScenes", "usage"}
)


def essentials(status: dict[str, Any], *, capped: bool) -> dict[str, Any]:
    """The status without what may wait: progress counters, condition messages."""
    skip = PROGRESS_FIELDS if capped else PROGRESS_FIELDS | {"generationsUsed"}
    out = {k: val for k, val in status.items() if k not in skip and k != "conditions"}
    out["conditions"] = sorted(
        (
            str(c.get("type")),
            str(c.get("status")),
            str(c.get("reason")),
            c.get("observedGeneration"),
        )
        for c in status.get("conditions") or []
        if isinstance(c, dict)
    )
    return out


def progress_only(old: dict[str, Any], new: dict[str, Any], *, capped: bool) -> bool:
    """Whether `new` differs from `old` only in what may wait."""
    return essentials(old, capped=capped) == essentials(new, capped=capped)


class Pacer:
    """When each Project's status was last written (this process), on the queue's clock."""

    def __init__(self, clock: Callable[[], float], interval: float = PROGRESS_SECONDS) -> None:
        self.clock = clock
        self.interval = interval
        self.written: dict[Key, float] = {}

    def wait(self, key: Key) -> float | None:
        """Seconds a progress-only write of `key` must still wait (None: write now)."""
        last = self.written.get(key)
        if last is None:
            return None
        left = last + self.interval - self.clock()
        return left if left > 0 else None

    def wrote(self, key: Key) -> None:
        self.written[key] = self.clock()

    def forget(self, key: Key) -> None:
        self.written.pop(key, None)
