"""Drift's look at a recorded clip (blocking: run in the I/O pool).

A HEAD says whether the object is there with the recorded size and ETag. An ETag is not
the content: a copy of the object onto itself (S3 CopyObject with MetadataDirective
REPLACE) gives it a new ETag on some servers with the very same bytes. So when only the
ETag moved, the bytes are read back and their SHA-256 compared with the one recorded at
upload: the same clip is never paid for again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from controller.api.scene import ClipInfo
from controller.decide import scene as sc
from controller.observability import metrics as m

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
