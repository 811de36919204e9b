"""Drift's look at a recorded clip (blocking: run in the I/O pool).

A HEAD says whether the object is there with the recorded size and ETag. An ETag is not
the content: a copy of the object onto itself (S3 CopyObject with MetadataDirective
REPLACE) gives it a new ETag on some servers with the very same bytes. So when only the
ETag moved, the bytes are read back and their SHA-256 compared with the one recorded at
upload: the same clip is never paid for again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from controller.api.request import VideoRequest
from controller.api.scene import ClipInfo
from controller.controllers.ports import ClipStorage, Threads
from controller.decide import scene as sc
from controller.media.probe import OutputRules, check_stored, expected_seconds
from controller.observability import metrics as m
from controller.settings import Settings

T = TypeVar("T")


def look_at_clip(clips: Any, clip: ClipInfo) -> sc.ObjectSeen:
    """What is at the clip's key now (see module doc); raises StorageError on S3 errors."""
    fact = counted_s3_op("head", clips.head, clip.bucket, clip.key)
    if fact is None:
        return sc.ObjectSeen(clip.key, None)
    content = None
    if fact.size == clip.size and fact.etag != clip.etag and clip.sha256:
        content = counted_s3_op("get", clips.content_sha256, clip.bucket, clip.key)
        if content is None:  # deleted between the HEAD and the read
            return sc.ObjectSeen(clip.key, None)
    obj = sc.StoredObject(clip.key, fact.size, fact.etag, fact.sha256, content_sha256=content)
    return sc.ObjectSeen(clip.key, obj)


def counted_s3_op(operation: str, call: Callable[..., T], *args: Any) -> T:
    try:
        result = call(*args)
    except Exception:
        m.S3_OPS.labels(operation, "error").inc()
        raise
    m.S3_OPS.labels(operation, "ok").inc()
    return result


class ClipLooks:
    """The Scene pass's looks at S3: HEAD a key (and check an object found is the clip
    asked for), and drift's look at a recorded clip."""

    def __init__(
        self, settings: Settings, clips: ClipStorage, threads: Threads, tmp_dir: str
    ) -> None:
        self.settings = settings
        self.clips = clips
        self.threads = threads
        self.tmp_dir = tmp_dir  # the swept scratch dir: a probe killed mid-way leaks nothing

    async def look_at(
        self, bucket: str, key: str, request: VideoRequest | None = None
    ) -> sc.ObjectSeen:
        """HEAD `key`; with `request`, an object found is also checked to be the clip
        asked for (it may be adopted), by the same rule as a download."""
        try:
            fact = await self.threads.run(self.clips.head, bucket, key)
            m.S3_OPS.labels("head", "ok").inc()
        except Exception:
            m.S3_OPS.labels("head", "error").inc()
            raise
        if fact is None:
            return sc.ObjectSeen(key, None)
        invalid = None
        if request is not None:
            rules = OutputRules.from_settings(self.settings)
            args = (bucket, key, fact.size, expected_seconds(request), rules)
            check = functools.partial(check_stored, tmp_dir=self.tmp_dir)
            invalid = await self.threads.run(check, self.clips, *args)
        return sc.ObjectSeen(
            key, sc.StoredObject(key, fact.size, fact.etag, fact.sha256, invalid=invalid)
        )

    async def recorded(self, clip: ClipInfo) -> sc.ObjectSeen:
        """What is at a recorded clip's key now (look_at_clip, in the I/O pool)."""
        return await self.threads.run(look_at_clip, self.clips, clip)
