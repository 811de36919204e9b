"""Joining clips into one MP4 with PyAV: stream copy when possible, else one re-encode.

Blocking and CPU-heavy: the operator runs `assemble` in its own threads, never on the
event loop. Deterministic for the same inputs (one encoder thread, scaling done in numpy,
not swscale, whose output varied between runs), so a rebuild gives the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from controller.media.streams import StreamInfo, can_stream_copy, letterbox

AUDIO_RATE = 48_000
AUDIO_CHUNK = 1024  # samples per AAC frame
DEFAULT_FPS = Fraction(24)
SIZE_CHECK_EVERY = 64  # packets between two looks at the output's size
# x264 settings of a re-encode: one thread, so the bytes do not depend on the machine.
X264_OPTIONS = {"preset": "veryfast", "crf": "20", "threads": "1"}
BLACK_YUV = (16, 128, 128)


class AssemblyError(Exception):
    """The clips could not be joined (bad input, cap reached, output failed its probe)."""


class Refused(AssemblyError):
    """These inputs can never be built within the operator's caps (the film's length,
    its size in pixels): not tried again until they change."""


@dataclass(frozen=True)
class ClipProbe:
    path: Path
    info: StreamInfo
    start: int  # first pts, in the stream's time base
    end: int  # last pts + its duration
    fps: Fraction
    audio: bool = False  # the clip has its own sound (e.g. Veo 3)

    @property
    def seconds(self) -> float:
        return float((self.end - self.start) * self.info.time_base)


@dataclass(frozen=True)
class Assembled:
    mode: str  # "copy" (remux) or "encode"
    duration_seconds: float
    width: int
    height: int
    frames: int
    audio_seconds: float | None


def probe_input(path: Path) -> ClipProbe:
    """The clip's video stream and its exact extent, read from its packets."""
    try:
        with av.open(str(path)) as src:
            if not src.streams.video:
                raise AssemblyError(f"{path.name}: no video stream")
            s = src.streams.video[0]
            cc = s.codec_context
            start, end = None, None
            for pkt in src.demux(s):
                if pkt.pts is None:
                    continue
                start = pkt.pts if start is None else min(start, pkt.pts)
                stop = pkt.pts + (pkt.duration or 0)
                end = stop if end is None else max(end, stop)
            if start is None or end is None or end <= start or s.time_base is None:
                raise AssemblyError(f"{path.name}: no video frames")
            info = StreamInfo(
                codec=cc.name,
                width=cc.width,
                height=cc.height,
                time_base=Fraction(s.time_base),
                pix_fmt=str(cc.pix_fmt),
                extradata=hashlib.sha256(bytes(cc.extradata or b"")).hexdigest(),
            )
            rate = s.average_rate or s.guessed_rate or DEFAULT_FPS
            return ClipProbe(Path(path), info, start, end, Fraction(rate), bool(src.streams.audio))
    except av.FFmpegError as e:
        raise AssemblyError(f"{path.name}: unreadable video: {e}") from e


def assemble(
    clips: list[Path],
    out: Path,
    *,
    audio: Path | None = None,
    resolution: tuple[int, int] | None = None,
    max_bytes: int = 1024**3,
    max_pixels: int = 3840 * 2160,
    max_seconds: float = 600.0,
) -> Assembled:
    """Join `clips` in order into `out` (written aside, renamed when probed good)."""
    if not clips:
        raise AssemblyError("no clips to assemble")
    probes = [probe_input(p) for p in clips]
    expected = sum(p.seconds for p in probes)
    if expected > max_seconds:
        cap = f"{max_seconds:g} s (SCENE_OPERATOR_MAX_FILM_SECONDS)"
        raise Refused(f"the film would last {expected:.1f} s, over the cap of {cap}")
    tmp = out.with_name(f".{out.name}.part")
    modes = ["copy", "encode"] if can_stream_copy([p.info for p in probes], resolution) else []
    w, h = resolution or (probes[0].info.width, probes[0].info.height)
    if not modes and w * h > max_pixels:  # decoded and encoded: memory grows with the frame
        cap = f"{max_pixels} (SCENE_OPERATOR_MAX_ASSEMBLY_PIXELS)"
        raise Refused(f"re-encoding at {w}x{h} is over the cap of {cap}: set a lower resolution")
    modes = modes or ["encode"]
    try:
        for mode in modes:
            try:
                _write(tmp, probes, mode, audio, resolution, expected, max_bytes)
                break
            except _NotMonotonic:
                continue  # packets that would not join cleanly: re-encode instead
        with_audio = audio is not None or any(p.audio for p in probes)
        result = verify_output(tmp, expected, len(probes), with_audio)
        os.replace(tmp, out)
        return Assembled(mode, *result)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class _NotMonotonic(Exception):
    pass


def _write(
    tmp: Path,
    probes: list[ClipProbe],
    mode: str,
    audio: Path | None,
    resolution: tuple[int, int] | None,
    expected: float,
    max_bytes: int,
) -> None:
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        if mode == "copy":
            with av.open(str(probes[0].path)) as first:
                vout = dst.add_stream_from_template(first.streams.video[0])
            video = _copied_packets(probes, vout)
        else:
            size = resolution or (probes[0].info.width, probes[0].info.height)
            video = _encoded_packets(probes, dst, size, probes[0].fps)
        streams: list[Iterator[tuple[float, av.Packet]]] = [video]
        if audio is not None:  # laid under the whole film
            streams.append(_audio_packets([(audio, expected)], dst))
        elif any(p.audio for p in probes):  # the clips' own sound, silence where there is none
            segments = [(p.path if p.audio else None, p.seconds) for p in probes]
            streams.append(_audio_packets(segments, dst))
        for n, (_, packet) in enumerate(heapq.merge(*streams, key=lambda item: item[0])):
            dst.mux(packet)
            if n % SIZE_CHECK_EVERY == 0 and tmp.stat().st_size > max_bytes:
                raise AssemblyError(f"the final video exceeds {max_bytes} bytes")
    if tmp.stat().st_size > max_bytes:
        raise AssemblyError(f"the final video exceeds {max_bytes} bytes")


def _copied_packets(
    probes: list[ClipProbe], vout: av.VideoStream
) -> Iterator[tuple[float, av.Packet]]:
    """Each clip's packets moved to start where the previous clip ended: timestamps stay
    exact and increasing across the cuts, so nothing stutters, repeats or drops there."""
    offset, last_dts = 0, None
    for probe in probes:
        with av.open(str(probe.path)) as src:
            s = src.streams.video[0]
            for pkt in src.demux(s):
                if pkt.pts is None or pkt.dts is None:
                    continue  # the demuxer's flush packet
                pkt.pts = pkt.pts - probe.start + offset
                pkt.dts = pkt.dts - probe.start + offset
                if last_dts is not None and pkt.dts <= last_dts:
                    raise _NotMonotonic
                last_dts = pkt.dts
                pkt.stream = vout
                yield float(pkt.dts * s.time_base), pkt  # type: ignore[operator]  # demuxed: has both
        offset += probe.end - probe.start


def _encoded_packets(
    probes: list[ClipProbe], dst: av.container.OutputContainer, size: tuple[int, int], fps: Fraction
) -> Iterator[tuple[float, av.Packet]]:
    """Every clip decoded, letterboxed into `size` and encoded at one constant frame rate:
    output frame n shows the clip frame on screen at n / fps."""
    w, h = size
    stream = dst.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.time_base = 1 / fps
    stream.codec_context.gop_size = max(1, round(fps * 2))
    stream.codec_context.options = dict(X264_OPTIONS)
    tb = stream.time_base
    index, offset = 0, 0.0
    for probe in probes:
        first = round(offset * fps)
        offset += probe.seconds
        count = round(offset * fps) - first
        for frame in _frames_at(
            probe, [(first + j) / fps - (offset - probe.seconds) for j in range(count)]
        ):
            out = av.VideoFrame.from_ndarray(_fit(frame, w, h), format="yuv420p")
            out.pts = index
            index += 1
            for pkt in stream.encode(out):
                yield _time(pkt, tb), pkt
    for pkt in stream.encode(None):
        yield _time(pkt, tb), pkt


def _time(pkt: av.Packet, tb: Fraction) -> float:
    t = pkt.dts if pkt.dts is not None else pkt.pts
    return float((t or 0) * (pkt.time_base or tb))


def _frames_at(probe: ClipProbe, times: list[float]) -> Iterator[av.VideoFrame]:
    """For each time (seconds from the clip's start), the frame on screen then."""
    tb = probe.info.time_base
    with av.open(str(probe.path)) as src:
        decoded = src.decode(video=0)
        current = next(decoded, None)
        upcoming = next(decoded, None)
        if current is None:
            raise AssemblyError(f"{probe.path.name}: no decodable frame")
        for t in times:
            while upcoming is not None and float((upcoming.pts - probe.start) * tb) <= t + 1e-6:  # type: ignore[operator]  # decoded: has a pts
                current, upcoming = upcoming, next(decoded, None)
            yield current


def _fit(frame: av.VideoFrame, w: int, h: int) -> np.ndarray:
    """The frame as yuv420p planes scaled to fit (w, h), centred on black."""
    if frame.width % 2 or frame.height % 2:
        frame = frame.reformat(width=frame.width // 2 * 2, height=frame.height // 2 * 2)
    fw, fh = frame.width, frame.height
    arr = frame.to_ndarray(format="yuv420p")
    if (fw, fh) == (w, h):
        return arr
    y, u, v = _planes(arr, fw, fh)
    bw, bh, x0, y0 = letterbox((fw, fh), (w, h))
    canvas = [np.full((h, w), BLACK_YUV[0], np.uint8)] + [
        np.full((h // 2, w // 2), c, np.uint8) for c in BLACK_YUV[1:]
    ]
    canvas[0][y0 : y0 + bh, x0 : x0 + bw] = _resize(y, bw, bh)
    for plane, src in zip(canvas[1:], (u, v), strict=True):
        plane[y0 // 2 : (y0 + bh) // 2, x0 // 2 : (x0 + bw) // 2] = _resize(src, bw // 2, bh // 2)
    return np.concatenate([p.ravel() for p in canvas]).reshape(h * 3 // 2, w)


def _planes(arr: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = arr.ravel()
    q = (w // 2) * (h // 2)
    y = flat[: w * h].reshape(h, w)
    u = flat[w * h : w * h + q].reshape(h // 2, w // 2)
    v = flat[w * h + q : w * h + 2 * q].reshape(h // 2, w // 2)
    return y, u, v


def _resize(plane: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bilinear resize of one plane (pixel centres aligned), in numpy: deterministic.
    Separable: rows first, then columns, so each pass gathers one axis only."""
    sh, sw = plane.shape
    if (sw, sh) == (w, h):
        return plane
    x0, x1, wx = _axis(w, sw)
    y0, y1, wy = _axis(h, sh)
    a = plane.astype(np.float32)
    rows = a[:, x0]
    rows += (a[:, x1] - rows) * wx
    out = rows[y0]
    out += (rows[y1] - out) * wy[:, None]
    out += 0.5
    return np.clip(out, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def _axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.intp)
    return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)


def _audio_packets(
    segments: list[tuple[Path | None, float]], dst: av.container.OutputContainer
) -> Iterator[tuple[float, av.Packet]]:
    """One AAC track of the segments in order, each cut or padded with silence to its
    length (None: silence), so the audio stays in sync with the video at every cut."""
    stream = dst.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
    tb = Fraction(1, AUDIO_RATE)
    written = 0
    pending = np.zeros((2, 0), np.float32)

    def chunks(samples: np.ndarray, final: bool) -> Iterator[tuple[float, av.Packet]]:
        nonlocal written, pending
        pending = np.concatenate([pending, samples], axis=1)
        while pending.shape[1] >= AUDIO_CHUNK or (final and pending.shape[1]):
            part, pending = pending[:, :AUDIO_CHUNK], pending[:, AUDIO_CHUNK:]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(part), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, written, tb
            written += part.shape[1]
            for pkt in stream.encode(frame):
                yield _time(pkt, tb), pkt

    start = 0.0
    for path, seconds in segments:
        # sample counts from the running total: no rounding drift over many segments
        total = round((start + seconds) * AUDIO_RATE) - round(start * AUDIO_RATE)
        start += seconds
        taken = 0
        with contextlib.closing(_samples(path)) as samples:
            for arr in samples:
                arr = arr[:, : max(0, total - taken)]
                taken += arr.shape[1]
                yield from chunks(arr, False)
                if taken >= total:
                    break
        yield from chunks(np.zeros((2, total - taken), np.float32), False)
    yield from chunks(np.zeros((2, 0), np.float32), True)
    for pkt in stream.encode(None):
        yield _time(pkt, tb), pkt


def _samples(path: Path | None) -> Generator[np.ndarray, None, None]:
    """The first audio stream of `path` as 48 kHz stereo float planes (None: nothing)."""
    if path is None:
        return
    try:
        with av.open(str(path)) as src:
            if not src.streams.audio:
                raise AssemblyError(f"{path.name}: no audio stream")
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            for frame in _decoded_audio(src, resampler):
                yield frame.to_ndarray().astype(np.float32, copy=False)
    except av.FFmpegError as e:
        raise AssemblyError(f"{path.name}: unreadable audio: {e}") from e


def _decoded_audio(
    src: av.container.InputContainer, resampler: av.AudioResampler
) -> Iterator[av.AudioFrame]:
    for frame in src.decode(audio=0):
        yield from resampler.resample(frame)
    yield from resampler.resample(None)


def verify_output(
    path: Path, expected: float, clips: int, with_audio: bool
) -> tuple[float, int, int, int, float | None]:
    """Decode the output end to end and check it is what was asked: a video of the
    expected length (one frame of slack per cut) and, if asked, audio as long.
    Returns (duration, width, height, frames, audio seconds)."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise AssemblyError("the output has no video stream")
            s = c.streams.video[0]
            rate = float(s.average_rate or DEFAULT_FPS)
            duration = float(s.duration * s.time_base) if s.duration and s.time_base else 0.0
            frames = sum(1 for _ in c.decode(s))
            width, height = s.codec_context.width, s.codec_context.height
        audio_seconds = None
        if with_audio:
            with av.open(str(path)) as c:
                if not c.streams.audio:
                    raise AssemblyError("the output has no audio stream")
                a = c.streams.audio[0]
                decoded = sum(f.samples for f in c.decode(a))  # it decodes, to the end
                tb = a.time_base or Fraction(1, AUDIO_RATE)
                audio_seconds = float(a.duration * tb) if a.duration else decoded / AUDIO_RATE
    except av.FFmpegError as e:
        raise AssemblyError(f"the output does not decode: {e}") from e
    slack = clips / rate + 1e-3
    if frames == 0 or not math.isclose(duration, expected, abs_tol=slack):
        raise AssemblyError(
            f"the output lasts {duration:.3f} s ({frames} frames), expected {expected:.3f} s"
        )
    if audio_seconds is not None and not math.isclose(
        audio_seconds, expected, abs_tol=slack + 0.05
    ):
        raise AssemblyError(
            f"the output's audio lasts {audio_seconds:.3f} s, expected {expected:.3f} s"
        )
    return duration, width, height, frames, audio_seconds
