"""The final video, decided: its inputs hash and key, how to join the clips, what to do now.

Pure functions only; the I/O lives in controller/assembly/reconciler.py (S3, threads)
and controller/assembly/engine.py (PyAV).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from controller.api.keys import project_prefix
from controller.api.project import FinalVideo
from controller.api.vocabulary import Reason

# Part of the inputs hash: bump it when the engine's output changes for the same inputs,
# so existing final videos are rebuilt under new keys rather than silently kept.
ASSEMBLY_FORMAT = "v1"
# Codecs whose packets may be copied into an MP4 as they are.
COPYABLE_CODECS = frozenset({"h264", "hevc"})
AUDIO_RECHECK = 30.0  # seconds between two looks at an audio object that could not be read


@dataclass(frozen=True)
class ClipRef:
    """One verified clip, as its Scene's status records it."""

    sequence: int
    bucket: str
    key: str
    sha256: str  # the clip's SHA-256 (its ETag when no checksum was recorded)
    size: int


@dataclass(frozen=True)
class AudioRef:
    """The audio object as S3 showed it (HEAD)."""

    bucket: str
    key: str
    version: str  # its SHA-256 metadata, or its ETag
    size: int


def inputs_hash(clips: tuple[ClipRef, ...], audio: AudioRef | None, resolution: str | None) -> str:
    """What decides the final video's bytes: the ordered clips, the audio, the settings."""
    fields = {
        "format": ASSEMBLY_FORMAT,
        "clips": [[c.sequence, c.sha256] for c in clips],
        "audio": [audio.bucket, audio.key, audio.version] if audio else None,
        "resolution": resolution,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def final_key(prefix: str, namespace: str, project_uid: str, inputs: str) -> str:
    """`<prefix>/<ns>/<project uid>/final/<inputsHash>.mp4`: under the Project's prefix, so
    the drift LIST sees it and deletionPolicy Delete removes it."""
    return f"{project_prefix(prefix, namespace, project_uid)}final/{inputs}.mp4"


def parse_resolution(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    w, h = value.split("x")
    return int(w), int(h)


# ----------------------------------------------------------------------------- joining


@dataclass(frozen=True)
class StreamInfo:
    """The video stream of one clip, as the engine probed it."""

    codec: str
    width: int
    height: int
    time_base: Fraction
    pix_fmt: str
    extradata: str  # hash of the codec's private data (H.264 SPS/PPS)


def can_stream_copy(streams: list[StreamInfo], target: tuple[int, int] | None) -> bool:
    """Remux (copy the packets, no re-encode) only when every clip would decode with the
    same decoder set-up: same codec and parameter sets, size, pixel format and time base,
    and the size is the one asked for. Anything else is re-encoded to one format."""
    if not streams:
        return False
    first = streams[0]
    if first.codec not in COPYABLE_CODECS:
        return False
    if target is not None and (first.width, first.height) != target:
        return False
    same = (first.codec, first.width, first.height, first.pix_fmt, first.time_base)
    return all(
        (s.codec, s.width, s.height, s.pix_fmt, s.time_base) == same
        and s.extradata == first.extradata
        for s in streams
    )


def letterbox(src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int, int, int]:
    """(width, height, x, y) of `src` scaled to fit `dst` keeping its aspect ratio,
    centred; every value even (yuv420p chroma is subsampled by two)."""
    sw, sh = src
    dw, dh = dst
    scale = min(dw / sw, dh / sh)
    w = min(dw, max(2, math.floor(sw * scale / 2 + 0.5) * 2))
    h = min(dh, max(2, math.floor(sh * scale / 2 + 0.5) * 2))
    return w, h, (dw - w) // 4 * 2, (dh - h) // 4 * 2


# ----------------------------------------------------------------------------- deciding


class Step(StrEnum):
    OFF = "off"  # assembly not enabled
    WAIT = "wait"  # not every Scene has a verified clip yet
    DONE = "done"  # status records the final video of these inputs
    VERIFY = "verify"  # the drift LIST disagreed with the record: HEAD it first
    ASSEMBLE = "assemble"  # build it (after a HEAD of the key: adopt an object there)
    RUNNING = "running"  # an assembly of these inputs is under way
    FAILED = "failed"  # the last assembly of these inputs failed: wait to retry


@dataclass(frozen=True)
class Failure:
    inputs_hash: str
    message: str
    attempts: int
    retry_at: dt.datetime


@dataclass(frozen=True)
class AssemblyObservation:
    now: dt.datetime
    enabled: bool
    scene_count: int
    clips: tuple[ClipRef, ...]  # verified clips (Completed, not reported missing), ordered
    inputs_hash: str | None  # None when the audio object is not known yet
    recorded: FinalVideo | None  # status.finalVideo
    suspect: bool = False  # the drift LIST did not show the recorded object as recorded
    missing: bool = False  # a HEAD confirmed the recorded object missing or changed
    running: str | None = None  # inputs hash of the assembly under way
    failure: Failure | None = None
    audio_error: str | None = None  # the audio object could not be read (HEAD)
    paused: bool = False  # spec.paused: no new work is started


@dataclass(frozen=True)
class AssemblyDecision:
    step: Step
    assembled: bool  # the condition Assembled
    reason: str
    message: str
    final_video: FinalVideo | None  # what status.finalVideo should say
    requeue_after: float | None = None


def decide(o: AssemblyObservation) -> AssemblyDecision:
    """The decision table of the final video."""
    rec = o.recorded
    if not o.enabled:
        why = "spec.generateVideos is false or spec.assembly.enabled is false"
        return AssemblyDecision(Step.OFF, False, Reason.ASSEMBLY_NOT_REQUESTED, why, None)
    # A record of an object known to be gone is dropped: status never points at nothing.
    keep = None if o.missing else rec
    if o.scene_count == 0 or len(o.clips) < o.scene_count:
        msg = f"{len(o.clips)} of {o.scene_count} clips verified"
        return AssemblyDecision(Step.WAIT, False, Reason.WAITING_FOR_SCENES, msg, keep)
    if o.inputs_hash is None:
        if o.audio_error is not None:  # looked at again shortly: it may be uploaded yet
            return AssemblyDecision(
                Step.FAILED, False, Reason.ASSEMBLY_FAILED, o.audio_error, keep, AUDIO_RECHECK
            )
        msg = "reading the audio object"
        return AssemblyDecision(Step.ASSEMBLE, False, Reason.ASSEMBLING, msg, keep)
    h = o.inputs_hash
    current = rec is not None and rec.inputs_hash == h
    if current and not o.missing:
        if o.suspect:
            return AssemblyDecision(Step.VERIFY, True, Reason.VIDEO_ASSEMBLED, _done(rec), rec)
        return AssemblyDecision(Step.DONE, True, Reason.VIDEO_ASSEMBLED, _done(rec), rec)
    reason = Reason.FINAL_VIDEO_MISSING if current else Reason.ASSEMBLING
    if o.paused and o.running != h:
        msg = "spec.paused is true: the final video is not assembled"
        return AssemblyDecision(Step.WAIT, False, Reason.PAUSED, msg, keep)
    if o.running == h:
        msg = _rebuild(current, f"assembling {len(o.clips)} clips")
        return AssemblyDecision(Step.RUNNING, False, reason, msg, keep)
    f = o.failure
    if f is not None and f.inputs_hash == h and f.retry_at > o.now:
        wait = (f.retry_at - o.now).total_seconds()
        when = f.retry_at.strftime("%Y-%m-%dT%H:%M:%SZ")  # not "in N s": the text must not churn
        msg = f"attempt {f.attempts} failed, next at {when}: {f.message}"
        return AssemblyDecision(Step.FAILED, False, Reason.ASSEMBLY_FAILED, msg, keep, wait)
    msg = _rebuild(current, f"assembling {len(o.clips)} clips")
    return AssemblyDecision(Step.ASSEMBLE, False, reason, msg, keep)


def _done(rec: FinalVideo) -> str:
    return f"s3://{rec.bucket}/{rec.s3_key} ({rec.duration_seconds:.2f} s) verified"


def _rebuild(current: bool, what: str) -> str:
    return f"the final video is missing or changed in S3: {what}" if current else what


def retry_delay(attempts: int, jitter: float) -> float:
    """Seconds before another attempt: 5, 10, 20 ... up to 300, spread by +-25 %."""
    return min(5.0 * 2 ** max(attempts - 1, 0), 300.0) * (0.75 + jitter / 2)
