"""The working clip of an edit: the original trimmed on frame boundaries (PyAV).

Blocking and CPU-bound: the operator runs `trim` in a limited child process
(controller/media/isolate.py), one of the media slots. The video is decoded
and re-encoded from the first frame at or after `start` to the last frame that begins
before the original's end minus `end` (a cut that does not fall on a keyframe cannot be
copied, so one simple rule serves every cut); the original's own sound is cut to the
same span (re-encoded to AAC) or dropped with `mute`. One encoder thread: the same
original and edit give the same bytes, so a working clip derived again is the same
object. The output is decoded end to end and must last what was kept (one frame of
slack) before anyone uploads it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from controller.media import engine

_EPS = 1e-6


class TrimError(Exception):
    """The original could not be trimmed (unreadable, or the output failed its check)."""


class NothingLeft(TrimError):
    """The trims leave no frame of the original."""

    def __init__(self, source_seconds: float, message: str) -> None:
        super().__init__(message)
        self.source_seconds = source_seconds

    def __reduce__(self) -> tuple[type[NothingLeft], tuple[float, str]]:
        return NothingLeft, (self.source_seconds, str(self))  # raised in a child process


@dataclass(frozen=True)
class Trimmed:
    duration_seconds: float
    frames: int
    source_seconds: float
    audio: bool  # the working clip has sound


def trim(src: Path, dst: Path, *, start: float, end: float, mute: bool) -> Trimmed:
    """Write `src` without its first `start` and last `end` seconds to `dst` (written
    aside, renamed once checked). NothingLeft when no frame remains."""
    try:
        probe = engine.probe_input(Path(src))
    except engine.AssemblyError as e:
        raise TrimError(str(e)) from e
    total, tb = probe.seconds, probe.info.time_base
    stop = total - end
    times = _frame_times(src, probe.start, tb)
    kept = [t for t in times if t >= start - _EPS and t < stop - _EPS]
    if not kept:
        raise NothingLeft(
            total,
            f"leaves nothing of the {total:.2f} s clip (trims {start:g} s + {end:g} s)",
        )
    fps = probe.fps
    seconds = len(kept) / float(fps)
    sound = probe.audio and not mute
    tmp = Path(dst).with_name(f".{Path(dst).name}.part")
    try:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            # every stream is added before the first packet is written
            video = _video_stream(out, probe, fps)
            audio = (
                out.add_stream("aac", rate=engine.AUDIO_RATE, layout="stereo") if sound else None
            )
            _video(src, out, video, probe, kept[0], len(kept))
            if audio is not None:
                _audio(src, out, audio, kept[0], seconds)
        try:
            engine.verify_output(tmp, seconds, 1, sound)
        except engine.AssemblyError as e:
            raise TrimError(str(e)) from e
        os.replace(tmp, dst)
    except av.FFmpegError as e:
        raise TrimError(f"{Path(src).name}: {e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return Trimmed(seconds, len(kept), total, sound)


def _frame_times(src: Path, first_pts: int, tb: Fraction) -> list[float]:
    """Seconds from the clip's start of every video frame, in presentation order."""
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        pts = sorted(p.pts for p in c.demux(s) if p.pts is not None)
    return [float((p - first_pts) * tb) for p in pts]


def _video_stream(
    out: av.container.OutputContainer, probe: engine.ClipProbe, fps: Fraction
) -> av.VideoStream:
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = probe.info.width, probe.info.height, "yuv420p"
    stream.time_base = 1 / fps
    stream.codec_context.gop_size = max(1, round(fps * 2))
    stream.codec_context.options = dict(engine.X264_OPTIONS)
    return stream


def _video(
    src: Path, out: av.container.OutputContainer, stream: av.VideoStream,
    probe: engine.ClipProbe, first: float, count: int,
) -> None:  # fmt: skip
    index = 0
    with av.open(str(src)) as c:
        for frame in c.decode(video=0):
            if frame.pts is None:
                continue
            t = float((frame.pts - probe.start) * probe.info.time_base)
            if t < first - _EPS:
                continue
            if index >= count:
                break
            img = frame.to_ndarray(format="yuv420p")
            new = av.VideoFrame.from_ndarray(img, format="yuv420p")
            new.pts = index
            index += 1
            out.mux(stream.encode(new))
    out.mux(stream.encode(None))


def _audio(
    src: Path, out: av.container.OutputContainer, stream: av.AudioStream, first: float,
    seconds: float,
) -> None:  # fmt: skip
    """The original's sound from `first` for `seconds` (silence where it has none)."""
    rate = engine.AUDIO_RATE
    skip, total = round(first * rate), round(seconds * rate)
    parts, have = [], 0
    with contextlib.closing(engine._samples(src)) as samples:
        for arr in samples:
            cut = min(skip, arr.shape[1])
            arr, skip = arr[:, cut:], skip - cut
            parts.append(arr[:, : total - have])
            have += parts[-1].shape[1]
            if have >= total:
                break
    parts.append(np.zeros((2, total - have), np.float32))
    pcm = np.concatenate(parts, axis=1)
    tb = Fraction(1, rate)
    for at in range(0, total, engine.AUDIO_CHUNK):
        part = np.ascontiguousarray(pcm[:, at : at + engine.AUDIO_CHUNK])
        frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, at, tb
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
