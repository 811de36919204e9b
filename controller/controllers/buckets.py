"""HeadBucket before a job is paid for, as the passes ask it: shared and cached
(controller/storage/buckets.py), the probe run in the I/O pool."""

from __future__ import annotations

from controller.controllers.ports import ClipStorage, Threads
from controller.decide.scene import BucketSeen
from controller.storage.buckets import BucketChecks


class BucketCheck:
    def __init__(self, checks: BucketChecks, clips: ClipStorage, threads: Threads) -> None:
        self.checks = checks
        self.clips = clips
        self.threads = threads

    async def __call__(self, bucket: str) -> BucketSeen:
        return await self.checks.check(
            bucket, lambda b: self.threads.run(self.clips.bucket_problem, b)
        )
