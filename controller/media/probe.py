"""Is this file the clip that was asked for? Checked with PyAV before any upload.

A provider's "output" is only bytes: an error page, a truncated download, an audio track
or a clip of the wrong length must never be stored and called Completed. The rule, the
same for downloads and for objects found in S3 (adoption):

- at most `max_bytes`;
- an MP4/MOV container (the key ends in .mp4 and is stored as video/mp4) with a video
  stream whose first frame decodes;
- its packets really cover the duration the container declares (a cut-off file does not);
- that duration is within `tolerance_seconds` of what was asked.

Every failure raises `InvalidOutput` (a ProviderError, reason `InvalidOutput`). Broken
bytes are retryable (another job may well be fine); a clip that is too long, too short or
too big is not: the model made what it makes, and asking again would pay for the same.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from controller.api.request import VideoRequest
from controller.api.vocabulary import Reason
from controller.providers.base import ProviderError

MiB = 1024 * 1024
_CONTAINERS = ("mp4", "mov")  # names in PyAV's "mov,mp4,m4a,3gp,3g2,mj2" demuxer
# Request params that set the duration, by provider (Replicate, Veo's config field).
_DURATION_PARAMS = ("duration", "duration_seconds", "durationSeconds")


class InvalidOutput(ProviderError):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(Reason.INVALID_OUTPUT, message, retryable=retryable)


@dataclass(frozen=True)
class OutputRules:
    """What a clip must be; from the settings `output_max_bytes` and
    `output_duration_tolerance_seconds`."""

    max_bytes: int = 64 * MiB
    tolerance_seconds: float = 1.0

    @classmethod
    def from_settings(cls, settings: Any) -> OutputRules:
        return cls(
            max_bytes=settings.output_max_bytes,
            tolerance_seconds=settings.output_duration_tolerance_seconds,
        )


@dataclass(frozen=True)
class VideoFacts:
    container: str
    codec: str
    width: int
    height: int
    duration_seconds: float
    size: int


def expected_seconds(request: VideoRequest) -> float:
    """The duration the provider was asked for: params may set it (within the schema's
    bounds) in the provider's own words."""
    for name in _DURATION_PARAMS:
        value = request.params.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return float(request.duration_seconds)


def check_video(path: Path, expected: float, rules: OutputRules) -> VideoFacts:
    """The facts of the clip at `path`, or InvalidOutput saying why it is not one."""
    size = os.path.getsize(path)
    if size > rules.max_bytes:
        raise InvalidOutput(
            f"output is {size} bytes, over the cap of {rules.max_bytes} "
            "(SCENE_OPERATOR_OUTPUT_MAX_BYTES)",
            retryable=False,
        )
    try:
        facts = _read(Path(path), size)
    except InvalidOutput:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise InvalidOutput(
            f"output is not a readable video ({size} bytes): {type(exc).__name__}: "
            f"{getattr(exc, 'strerror', None) or exc}",
            retryable=True,
        ) from exc
    if abs(facts.duration_seconds - expected) > rules.tolerance_seconds:
        raise InvalidOutput(
            f"output is {facts.duration_seconds:.2f}s of video, {expected:g}s were asked "
            f"(tolerance {rules.tolerance_seconds:g}s, SCENE_OPERATOR_OUTPUT_DURATION_TOLERANCE_SECONDS)",
            retryable=False,
        )
    return facts


def check_stored(
    clips: Any,
    bucket: str,
    key: str,
    size: int,
    expected: float,
    rules: OutputRules,
    *,
    tmp_dir: str,
) -> str | None:
    """Why the S3 object at `key` (HEAD said `size`) is not a usable clip, or None if it
    is one. Downloaded to a temporary file under `tmp_dir`, the operator's scratch
    directory (only when under the size cap), and checked like a download. Storage
    errors propagate."""
    if size > rules.max_bytes:
        return f"{size} bytes, over the cap of {rules.max_bytes}"
    with tempfile.TemporaryDirectory(prefix="probe-", dir=tmp_dir) as tmp:
        path = Path(tmp) / "object.mp4"
        clips.download(bucket, key, path)
        try:
            check_video(path, expected, rules)
        except InvalidOutput as exc:
            return exc.message
    return None


def _read(path: Path, size: int) -> VideoFacts:
    with av.open(str(path)) as container:
        name = container.format.name
        if not any(c in name.split(",") for c in _CONTAINERS):
            raise InvalidOutput(f"output is {name}, not an MP4 container", retryable=True)
        if not container.streams.video:
            kinds = ", ".join(s.type for s in container.streams) or "none"
            raise InvalidOutput(f"output has no video stream (streams: {kinds})", retryable=True)
        stream = container.streams.video[0]
        base = stream.time_base
        # One pass over the packets, none of them decoded but the first few (until the
        # first frame comes out): demuxing is what proves the file is whole, and the
        # frames after the first cost CPU while proving nothing more.
        codec = stream.codec_context
        codec.thread_count = 1  # for one frame, starting decoder threads costs more than it saves
        end_ticks, packets, frame = 0, 0, None
        for packet in container.demux(stream):
            pts = packet.pts
            if pts is None or base is None:
                continue  # the flushing packet at the end
            packets += 1
            end_ticks = max(end_ticks, pts + (packet.duration or 0))  # ticks: no Fractions
            if frame is None:
                frame = _first(codec.decode(packet))
        if packets and frame is None:
            frame = _first(codec.decode(None))  # frames held back by reordering
        end = float(end_ticks * base) if base is not None else 0.0
        declared = _declared_seconds(container, stream)
        if not packets:
            raise InvalidOutput("output has a video stream without frames", retryable=True)
        # A cut-off file still declares its full length (the index is at its start):
        # fewer frames than its index lists, or frames that stop short, give it away.
        if packets < (stream.frames or 0) or (declared and end < declared - 0.5):
            raise InvalidOutput(
                f"output is cut off: {packets} of {stream.frames or '?'} frames, covering "
                f"{end:.2f}s of the {declared:.2f}s it declares ({size} bytes)",
                retryable=True,
            )
        if frame is None:
            raise InvalidOutput("output's first video frame does not decode", retryable=True)
        return VideoFacts(
            container=name,
            codec=stream.codec_context.name,
            width=frame.width,
            height=frame.height,
            duration_seconds=end,
            size=size,
        )


def _first(frames: list[Any]) -> Any:
    return frames[0] if frames else None


def _declared_seconds(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / av.time_base
