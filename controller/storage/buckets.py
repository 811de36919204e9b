"""Is a bucket there and ours to write, before a job is paid for?

One HeadBucket per bucket, shared by every Scene and Project that asks at the same time,
and remembered for a while: a healthy bucket costs one HEAD a minute, a missing or
denied one is looked at again sooner so a fix is noticed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from controller.decide.scene import BucketSeen

OK_SECONDS = 60.0
PROBLEM_SECONDS = 10.0

Probe = Callable[[str], Awaitable[str | None]]  # the bucket's problem, or None


@dataclass
class BucketChecks:
    ok_seconds: float = OK_SECONDS
    problem_seconds: float = PROBLEM_SECONDS
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    _asking: dict[str, asyncio.Future[str | None]] = field(default_factory=dict)

    def cached(self, bucket: str) -> BucketSeen | None:
        seen = self._seen.get(bucket)
        if seen is None or self.clock() >= seen[0]:
            return None
        return BucketSeen(seen[1])

    async def check(self, bucket: str, probe: Probe) -> BucketSeen:
        cached = self.cached(bucket)
        if cached is not None:
            return cached
        asking = self._asking.get(bucket)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(bucket, probe))
            self._asking[bucket] = asking
        return BucketSeen(await asyncio.shield(asking))

    async def _ask(self, bucket: str, probe: Probe) -> str | None:
        try:
            problem = await probe(bucket)
        except Exception as e:  # any failure to look is a reason not to pay
            problem = f"bucket {bucket!r} could not be checked: {e}"[:500]
        finally:
            self._asking.pop(bucket, None)
        ttl = self.problem_seconds if problem else self.ok_seconds
        self._seen[bucket] = (self.clock() + ttl, problem)
        return problem
