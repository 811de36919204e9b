"""Offline clip rendering: a real H.264 MP4 drawn with numpy and encoded with PyAV.

The local video provider uses this so the whole pipeline runs without network or keys
and its output can be watched. No font library is guaranteed in the image, so text is
drawn with a tiny built-in 5x7 bitmap font. Pure and deterministic: the same arguments
give the same frames (and, with one encoder thread, the same bytes).
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import os
import tempfile
import textwrap
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# 5x7 glyphs, one hex byte per column, bit 0 = top row (the classic HD44780-style table).
_GLYPH_HEX = {
    " ": "0000000000", "!": "00005F0000", '"': "0007000700", "#": "147F147F14",
    "%": "2313086462", "&": "3649552250", "'": "0005030000", "(": "001C224100",
    ")": "0041221C00", "+": "08083E0808", ",": "0050300000", "-": "0808080808",
    ".": "0060600000", "/": "2010080402", ":": "0036360000", ";": "0056360000",
    "=": "1414141414", "?": "0201510906", "@": "324979413E", "_": "4040404040",
    "0": "3E5149453E", "1": "00427F4000", "2": "4261514946", "3": "2141454B31",
    "4": "1814127F10", "5": "2745454539", "6": "3C4A494930", "7": "0171090503",
    "8": "3649494936", "9": "064949291E",
    "A": "7E1111117E", "B": "7F49494936", "C": "3E41414122", "D": "7F4141221C",
    "E": "7F49494941", "F": "7F09090101", "G": "3E41415132", "H": "7F0808087F",
    "I": "00417F4100", "J": "2040413F01", "K": "7F08142241", "L": "7F40404040",
    "M": "7F0204027F", "N": "7F0408107F", "O": "3E4141413E", "P": "7F09090906",
    "Q": "3E4151215E", "R": "7F09192946", "S": "4649494931", "T": "01017F0101",
    "U": "3F4040403F", "V": "1F2040201F", "W": "7F2018207F", "X": "6314081463",
    "Y": "0304780403", "Z": "6151494543",
}  # fmt: skip

GLYPH_W, GLYPH_H = 5, 7
CELL_W = GLYPH_W + 1  # one pixel of spacing between characters
LINE_H = GLYPH_H + 3


def _glyph(hex_cols: str) -> np.ndarray:
    cols = [int(hex_cols[i : i + 2], 16) for i in range(0, 10, 2)]
    return np.array([[(c >> row) & 1 for c in cols] for row in range(GLYPH_H)], dtype=bool)


GLYPHS: dict[str, np.ndarray] = {ch: _glyph(h) for ch, h in _GLYPH_HEX.items()}


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """A boolean bitmap of one line; lower case is drawn as upper case, unknown as '?'."""
    chars = [c if c in GLYPHS else "?" for c in text.upper()]
    mask = np.zeros((GLYPH_H, max(1, len(chars) * CELL_W)), dtype=bool)
    for i, ch in enumerate(chars):
        mask[:, i * CELL_W : i * CELL_W + GLYPH_W] = GLYPHS[ch]
    return np.kron(mask, np.ones((scale, scale), dtype=bool)) if scale > 1 else mask


def _blit(frame: np.ndarray, mask: np.ndarray, x: int, y: int, color: tuple[int, ...]) -> None:
    """Paint `mask` at (x, y) in `color`, clipped to the frame."""
    h, w = frame.shape[:2]
    mh, mw = min(mask.shape[0], h - y), min(mask.shape[1], w - x)
    if mh <= 0 or mw <= 0:
        return
    frame[y : y + mh, x : x + mw][mask[:mh, :mw]] = color


def _text(frame: np.ndarray, text: str, x: int, y: int, scale: int, color: tuple[int, ...]) -> None:
    mask = text_mask(text, scale)
    shadow = max(1, scale // 2)  # a dark drop shadow keeps text readable on any background
    _blit(frame, mask, x + shadow, y + shadow, (0, 0, 0))
    _blit(frame, mask, x, y, color)


def frame_size(aspect_ratio: str, height: int) -> tuple[int, int]:
    """(width, height) with the short side `height`, both even (yuv420p needs that)."""
    try:
        a, b = (int(p) for p in aspect_ratio.split(":"))
    except ValueError:
        raise ValueError(f"aspect ratio must look like '16:9', got {aspect_ratio!r}") from None
    if a <= 0 or b <= 0 or max(a, b) > 4 * min(a, b):
        raise ValueError(f"unsupported aspect ratio {aspect_ratio!r}")
    if height < 16:
        raise ValueError(f"height must be at least 16, got {height}")
    short = height - height % 2
    long = round(short * max(a, b) / min(a, b) / 2) * 2
    return (long, short) if a >= b else (short, long)


def _palette(prompt: str, sequence: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """A background colour and a contrasting accent, both derived from the scene."""
    digest = hashlib.sha256(f"{sequence}\x00{prompt}".encode()).digest()
    hue = digest[0] / 256
    bg = colorsys.hsv_to_rgb(hue, 0.55 + digest[1] / 1024, 0.42 + digest[2] / 2048)
    accent = colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.65, 0.95)
    return np.array(bg) * 255, tuple(int(c * 255) for c in accent)


@dataclass(frozen=True)
class _Layout:
    """Where things go, top to bottom: title, prompt lines, moving block, time, bar."""

    w: int
    h: int
    margin: int
    title_scale: int
    text_scale: int
    bar_h: int
    block: int

    @property
    def stamp_y(self) -> int:
        return self.h - self.bar_h - 2 - GLYPH_H * self.text_scale

    @property
    def block_y(self) -> int:
        return self.stamp_y - 3 - self.block


def _layout(w: int, h: int, title: str) -> _Layout:
    margin = max(4, h // 24)
    short = min(w, h)
    title_scale = max(1, min(short // 48, (w - 2 * margin) // (len(title) * CELL_W)))
    return _Layout(
        w=w,
        h=h,
        margin=margin,
        title_scale=title_scale,
        text_scale=max(1, short // 144),
        bar_h=max(2, short // 36),
        block=max(4, short // 14),
    )


def _base_frame(lay: _Layout, prompt: str, sequence: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Background plus the static text; returns (frame, accent colour)."""
    w, h, s = lay.w, lay.h, lay.text_scale
    bg, accent = _palette(prompt, sequence)
    shade = 1.0 - 0.35 * np.linspace(0.0, 1.0, h)[:, None, None]  # darker towards the bottom
    frame = np.broadcast_to(bg * shade, (h, w, 3)).astype(np.uint8)
    _text(frame, f"SCENE {sequence}", lay.margin, lay.margin, lay.title_scale, accent)

    top = lay.margin + (GLYPH_H + 4) * lay.title_scale
    width_chars = max(4, (w - 2 * lay.margin) // (CELL_W * s))
    max_lines = max(0, (lay.block_y - 2 - top) // (LINE_H * s))
    lines = textwrap.wrap(" ".join(prompt.split()), width_chars)
    if len(lines) > max_lines > 0:  # cut, and say so
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width_chars - 3].rstrip() + "..."
    for i, line in enumerate(lines[:max_lines]):
        _text(frame, line, lay.margin, top + i * LINE_H * s, s, (255, 255, 255))
    return frame, accent


def to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """RGB (h, w, 3) to one yuv420p plane stack (h*3/2, w), BT.601 limited range.

    Done here rather than by PyAV's swscale path, whose output for some frame widths
    (e.g. 144) varied from run to run and broke determinism.
    """
    h, w = rgb.shape[:2]
    c = rgb.astype(np.int32)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    q = c[0::2, 0::2] + c[0::2, 1::2] + c[1::2, 0::2] + c[1::2, 1::2]  # 2x2 sums for chroma
    r2, g2, b2 = q[..., 0], q[..., 1], q[..., 2]
    u = ((-38 * r2 - 74 * g2 + 112 * b2 + 512) >> 10) + 128
    v = ((112 * r2 - 94 * g2 - 18 * b2 + 512) >> 10) + 128
    planes = (y.ravel(), u.ravel(), v.ravel())
    return np.concatenate(planes).astype(np.uint8).reshape(h * 3 // 2, w)


def render_clip(
    dest: Path,
    *,
    prompt: str,
    sequence: int,
    duration_seconds: int,
    aspect_ratio: str,
    fps: int = 12,
    height: int = 144,
) -> None:
    """Write an H.264/yuv420p MP4 of exactly `duration_seconds` to `dest`.

    `height` is the short side: 16:9 gives 256x144, 9:16 144x256, 1:1 144x144. The file
    appears at `dest` only when complete (written to a sibling temp file, then renamed),
    so a crash never leaves a truncated clip that could be uploaded.
    """
    if duration_seconds < 1:
        raise ValueError(f"duration_seconds must be at least 1, got {duration_seconds}")
    if not 1 <= fps <= 60:
        raise ValueError(f"fps must be within 1..60, got {fps}")
    w, h = frame_size(aspect_ratio, height)
    lay = _layout(w, h, f"SCENE {sequence}")
    base, accent = _base_frame(lay, prompt, sequence)
    n = duration_seconds * fps
    s, block = lay.text_scale, lay.block

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        with av.open(tmp_name, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.time_base = Fraction(1, fps)  # one tick per frame: durations come out exact
            stream.codec_context.gop_size = fps * 2
            # One thread: x264's output then does not depend on the CPU count or timing.
            stream.codec_context.options = {"preset": "veryfast", "crf": "26", "threads": "1"}
            for i in range(n):
                frame = base.copy()
                done = (i + 1) * w // n  # a progress bar that reaches full width at the end
                frame[h - lay.bar_h :, :done] = accent
                frame[h - lay.bar_h :, done:] //= 3
                phase = (i % (2 * fps)) / fps  # a block sweeping across and back every 2 s
                x = round((phase if phase <= 1 else 2 - phase) * (w - block))
                frame[lay.block_y : lay.block_y + block, x : x + block] = 255
                stamp = f"{i / fps:.1f}/{duration_seconds}S"
                _text(
                    frame, stamp, w - lay.margin - len(stamp) * CELL_W * s, lay.stamp_y, s, accent
                )
                video = av.VideoFrame.from_ndarray(to_yuv420p(frame), format="yuv420p")
                video.pts = i
                out.mux(stream.encode(video))
            out.mux(stream.encode(None))
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@dataclass(frozen=True)
class ClipInfo:
    duration_seconds: float
    width: int
    height: int
    codec: str
    frames: int


def probe_clip(path: Path) -> ClipInfo:
    """Read what an MP4 really holds (used by tests and the demo to check output)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        frames = stream.frames or sum(1 for _ in container.decode(stream))
        return ClipInfo(
            duration_seconds=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            codec=stream.codec_context.name,
            frames=frames,
        )
