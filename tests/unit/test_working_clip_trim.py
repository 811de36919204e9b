"""The trim itself (controller/media/trim.py) on real H.264 files: frame-exact cuts, the
sound cut with the picture or dropped, the same bytes for the same edit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from controller.media.engine import assemble
from controller.media.trim import NothingLeft, trim
from controller.providers.render import render_clip
from tests.support.video import durations, frame_at, frames, tone

FPS = 12


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trim") / "original.mp4"
    render_clip(path, prompt="a lighthouse", sequence=1, duration_seconds=4, aspect_ratio="16:9")
    return path


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.parametrize(("start", "end"), [(1.0, 0.0), (0.55, 1.3), (0.0, 2.0)])
def test_trim_cuts_on_frame_boundaries(original: Path, tmp_path: Path, start, end) -> None:
    out = tmp_path / "w.mp4"
    done = trim(original, out, start=start, end=end, mute=False)
    src, got = frames(original), frames(out)
    first = next(t for t, _ in src if t >= start - 1e-6)  # the first frame at/after start
    kept = [t for t, _ in src if first - 1e-6 <= t < 4.0 - end - 1e-6]
    assert len(got) == len(kept) == done.frames
    assert done.duration_seconds == pytest.approx(len(kept) / FPS)
    assert durations(out)["video"] == pytest.approx(len(kept) / FPS, abs=1 / FPS)
    # each frame is the original's frame at the same moment (re-encoded: close, not equal)
    for (t, img), t0 in zip(got, kept, strict=True):
        same = diff(img, frame_at(src, t0))
        assert same < 3.0, (t, same)
    if start:  # and not the original's first frame
        assert diff(got[0][1], frame_at(src, first)) < diff(got[0][1], frame_at(src, 0.0))


def test_trim_keeps_the_sound_cut_with_the_picture_or_drops_it(
    original: Path, tmp_path: Path
) -> None:
    with_sound = tmp_path / "av.mp4"
    assemble([original], with_sound, audio=tone(tmp_path / "t.wav", 4))
    kept = trim(with_sound, tmp_path / "a.mp4", start=1.0, end=0.5, mute=False)
    assert kept.audio and durations(tmp_path / "a.mp4") == pytest.approx(
        {"video": 2.5, "audio": 2.5}, abs=0.05
    )
    muted = trim(with_sound, tmp_path / "m.mp4", start=1.0, end=0.5, mute=True)
    assert not muted.audio and set(durations(tmp_path / "m.mp4")) == {"video"}


def test_same_edit_gives_the_same_bytes(original: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    trim(original, a, start=1.0, end=0.0, mute=False)
    trim(original, b, start=1.0, end=0.0, mute=False)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


@pytest.mark.parametrize(("start", "end"), [(5.0, 0.0), (2.0, 2.0), (0.0, 4.0)])
def test_trims_that_leave_nothing_raise_and_write_nothing(
    original: Path, tmp_path: Path, start, end
) -> None:
    with pytest.raises(NothingLeft, match=r"leaves nothing of the 4\.00 s clip"):
        trim(original, tmp_path / "w.mp4", start=start, end=end, mute=False)
    assert list(tmp_path.iterdir()) == []
