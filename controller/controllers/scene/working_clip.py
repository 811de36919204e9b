"""The working clip's effects in a Scene pass: derive it from the original (download,
check the bytes are the recorded original, trim, upload beside it, verify), and
drift's look at it. No provider is called here: an edit is never paid for.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.api.scene import ClipInfo, ScenePhase, SceneStatus
from controller.controllers.ports import ClipStorage, Threads
from controller.controllers.scene.clip_look import counted_s3_op, look_at_clip
from controller.controllers.scene.inputs import ScenePass
from controller.decide import scene as sc
from controller.decide.edit import Edit
from controller.decide.effects import Facts
from controller.media.isolate import MediaError, MediaLimitExceeded, MediaRunner
from controller.media.trim import NothingLeft, TrimError, trim
from controller.queue.state import TransientError
from controller.storage.errors import NOT_FOUND_CODES, StorageError
from controller.storage.objects import file_sha256

log = logging.getLogger("scene_operator")
DERIVE_RETRY_SECONDS = 10.0
LIMIT_RETRY_SECONDS = 300.0  # a trim over SCENE_OPERATOR_MEDIA_*: not again at once
# Tries over the media limits before the edit is refused (recorded in status, so neither
# the next pass nor a restart tries again until the edit or the clip changes).
LIMIT_ATTEMPTS = 3


class WorkingClips:
    """Derives a Scene's working clip in the I/O pool, and looks at it for drift."""

    def __init__(
        self, clips: ClipStorage, threads: Threads, tmp_dir: str, media: MediaRunner
    ) -> None:
        self.clips = clips
        self.threads = threads
        self.tmp_dir = tmp_dir
        self.media = media

    async def derive(self, scene: ScenePass, o: sc.Observation) -> sc.Derived:
        status, d = o.status, o.desired
        clip = status.clip
        assert clip is not None and d is not None and d.edit is not None
        key = d.working_key(clip.spec_hash, clip.take)
        metadata = {
            "spec-hash": clip.spec_hash,
            "take": str(clip.take),
            "edit-hash": d.edit.hash,
            "source-key": clip.key,
            "scene": f"{scene.key[0]}/{scene.key[1]}",
        }
        mem = scene.mem
        try:
            derived = await self.threads.run(
                derive_blocking, self.clips, clip, key, d.edit, metadata, self.tmp_dir, self.media
            )
        except OriginalChanged as e:
            mem.verify_clip = True  # the next pass looks at the original (repair.missingClip)
            raise TransientError(str(e), retry_after=0.0) from e
        except MediaLimitExceeded as e:
            mem.trim_over_limit += 1
            if mem.trim_over_limit >= LIMIT_ATTEMPTS:
                mem.trim_over_limit = 0
                why = f"{e}, on {LIMIT_ATTEMPTS} tries (SCENE_OPERATOR_MEDIA_* limits)"
                return sc.Derived(
                    key, None, refused=f"cannot be applied within the media limits: {why}"
                )
            raise TransientError(
                f"working clip s3://{clip.bucket}/{key}: {e} "
                f"(try {mem.trim_over_limit} of {LIMIT_ATTEMPTS})",
                retry_after=LIMIT_RETRY_SECONDS,
            ) from e
        except (TrimError, MediaError) as e:
            raise TransientError(
                f"working clip s3://{clip.bucket}/{key}: {e}", retry_after=DERIVE_RETRY_SECONDS
            ) from e
        mem.trim_over_limit = 0
        return derived

    async def look(self, status: SceneStatus, facts: Facts) -> None:
        """Drift asked to verify this Scene: also look at its working clip."""
        w = status.working_clip
        if w is None or status.phase != ScenePhase.COMPLETED or facts.working_check is not None:
            return
        record = ClipInfo(
            bucket=w.bucket, key=w.key, size=w.size, etag=w.etag, sha256=w.sha256,
            spec_hash="", take=0, verified_at=w.verified_at,
        )  # fmt: skip
        facts.working_check = await self.threads.run(look_at_clip, self.clips, record)


class OriginalChanged(Exception):
    """The original is gone, or its bytes are not the ones its record names: the next pass
    looks at it, so repair.missingClip decides (a new original gets a new working clip)."""


def derive_blocking(
    clips: Any,
    clip: ClipInfo,
    key: str,
    edit: Edit,
    metadata: dict[str, str],
    tmp_dir: str,
    media: MediaRunner,
) -> sc.Derived:
    """Blocking: run in the I/O pool; the trim in a limited child process (one of the
    media slots). Storage errors propagate (the worker backs off)."""
    with tempfile.TemporaryDirectory(prefix="working-", dir=tmp_dir) as tmp:
        src, out = Path(tmp) / "original.mp4", Path(tmp) / "working.mp4"
        try:
            counted_s3_op("get", clips.download, clip.bucket, clip.key, src)
        except StorageError as e:
            if e.code not in NOT_FOUND_CODES:
                raise
            raise OriginalChanged(f"original s3://{clip.bucket}/{clip.key} is missing") from e
        sha, size = file_sha256(src)
        if size != clip.size or (clip.sha256 is not None and sha != clip.sha256):
            raise OriginalChanged(
                f"original s3://{clip.bucket}/{clip.key} is not the recorded clip"
            )
        try:
            done = media.run(
                trim, src, out, start=edit.trim_start, end=edit.trim_end, mute=edit.mute_audio
            )
        except NothingLeft as e:
            return sc.Derived(key, None, refused=str(e))
        put = functools.partial(clips.put_clip, metadata=metadata)
        fact = counted_s3_op("put", put, clip.bucket, key, out)
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
    obj = sc.StoredObject(key, fact.size, fact.etag, fact.sha256)
    return sc.Derived(key, obj, duration_seconds=done.duration_seconds)


def working_drifted(status: Mapping[str, Any], listing: Mapping[str, Any]) -> bool:
    """Drift's LIST: the recorded working clip is missing or its size or ETag moved."""
    w = status.get("workingClip") or {}
    if not w:
        return False
    obj = listing.get(w.get("key", ""))
    return obj is None or obj.size != w.get("size") or obj.etag != w.get("etag")
