"""Reading videos and writing tones in tests: frames decoded end to end, stream lengths."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np


def tone(
    path: Path, seconds: float, rate: int = 44_100, hz: int = 440, level: int = 12_000
) -> Path:
    """A mono 16-bit WAV sine tone."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * hz * t) * level).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def frames(path: Path) -> list[tuple[float, np.ndarray]]:
    """(time in seconds, RGB pixels) of every frame, decoded end to end."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(float(f.pts * s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]


def frame_at(decoded: list[tuple[float, np.ndarray]], t: float) -> np.ndarray:
    return [img for when, img in decoded if when <= t + 1e-6][-1]


def durations(path: Path) -> dict[str, float]:
    """Seconds per stream type ("video", "audio")."""
    with av.open(str(path)) as c:
        return {s.type: float(s.duration * s.time_base) for s in c.streams}
