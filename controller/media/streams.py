"""How clips can be joined (pure): whether their packets can be copied as they are, and
where a frame goes when it is letterboxed to another size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

COPYABLE_CODECS = frozenset({"h264", "hevc"})


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
