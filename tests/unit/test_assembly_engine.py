"""The assembly engine on real H.264 clips from the local renderer (PyAV, no mocks)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from controller.media.engine import AssemblyError, assemble, probe_input
from controller.providers.render import render_clip
from tests.support.video import durations, frame_at, frames, tone

FPS = 12


def clip(folder: Path, n: int, aspect: str = "16:9", seconds: int = 2) -> Path:
    path = folder / f"clip{n}-{aspect.replace(':', 'x')}-{seconds}.mp4"
    render_clip(
        path, prompt=f"scene number {n}", sequence=n, duration_seconds=seconds,
        aspect_ratio=aspect, fps=FPS, height=64,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def three(folder: Path) -> list[Path]:
    return [clip(folder, 1), clip(folder, 2, seconds=1), clip(folder, 3)]


def test_same_format_clips_are_joined_by_stream_copy(three: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "film.mp4"
    result = assemble(three, out)
    assert result.mode == "copy"
    want = sum(probe_input(p).seconds for p in three)
    assert want == 5.0
    # the length of the sum of the clips, within one frame per cut
    assert abs(result.duration_seconds - want) <= (len(three) - 1) / FPS
    assert abs(durations(out)["video"] - want) <= (len(three) - 1) / FPS
    film = frames(out)
    assert len(film) == result.frames == 5 * FPS
    # no gap, repeat or jump at the cuts: one frame every 1/FPS s from 0 to the end
    times = [t for t, _ in film]
    assert times[0] == 0 and np.allclose(np.diff(times), 1 / FPS)
    # each clip's middle frame is in the film, untouched (the same bitstream)
    start = 0.0
    for p in three:
        seconds = probe_input(p).seconds
        mid = seconds / 2
        assert np.array_equal(frame_at(film, start + mid), frame_at(frames(p), mid))
        start += seconds


def test_mixed_aspect_ratios_are_re_encoded_and_letterboxed(
    folder: Path, three: list[Path], tmp_path: Path
) -> None:
    portrait = clip(folder, 4, "9:16")
    parts = [three[0], portrait, three[2]]
    out = tmp_path / "mixed.mp4"
    result = assemble(parts, out)
    assert result.mode == "encode"
    info = probe_input(three[0]).info
    assert (result.width, result.height) == (info.width, info.height)  # the first clip's
    assert abs(result.duration_seconds - 6.0) <= 2 / FPS
    film = frames(out)
    assert len(film) == 6 * FPS
    mid = [1.0, 3.0, 5.0]
    for p, t in zip(parts, mid, strict=True):
        got = frame_at(film, t).astype(int)
        src = frame_at(frames(p), 1.0).astype(int)
        if p is portrait:  # pillarboxed: black bars left and right, the clip in the middle
            w = got.shape[1]
            assert got[:, : w // 5].mean() < 25 and got[:, -w // 5 :].mean() < 25
            centre = got[:, w // 2 - 4 : w // 2 + 4]
            assert np.abs(centre.mean(axis=(0, 1)) - src.mean(axis=(0, 1))).max() < 25
        else:  # same size: close to the source frame (re-encoded, so not bit-identical)
            assert np.abs(got - src).mean() < 6


def test_a_set_resolution_scales_every_clip(three: list[Path], tmp_path: Path) -> None:
    result = assemble(three[:2], tmp_path / "big.mp4", resolution=(320, 180))
    assert (result.mode, result.width, result.height) == ("encode", 320, 180)
    assert abs(result.duration_seconds - 3.0) <= 1 / FPS


@pytest.mark.parametrize("seconds", [1.5, 9.0], ids=["shorter-padded", "longer-trimmed"])
def test_audio_is_laid_under_for_exactly_the_film(
    seconds: float, three: list[Path], tmp_path: Path
) -> None:
    song = tone(tmp_path / "song.wav", seconds)
    out = tmp_path / "with-audio.mp4"
    result = assemble(three, out, audio=song)
    assert result.mode == "copy"  # the video is still remuxed
    lengths = durations(out)
    assert abs(lengths["audio"] - lengths["video"]) < 1024 / 48_000 + 1e-3
    assert result.audio_seconds is not None and abs(result.audio_seconds - 5.0) < 0.03
    with av.open(str(out)) as c:  # the audio decodes; silence only where the song ran out
        pcm = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    loud = np.abs(pcm) > 0.05
    heard = loud.nonzero()[0].max() / 48_000
    assert abs(heard - min(seconds, 5.0)) < 0.1


def test_the_clips_own_sound_is_kept_in_sync_with_silence_where_a_clip_has_none(
    three: list[Path], tmp_path: Path
) -> None:
    voiced = []
    for i in (0, 2):  # clips with sound, as Veo 3 makes them
        path = tmp_path / f"voiced{i}.mp4"
        assemble([three[i]], path, audio=tone(tmp_path / f"tone{i}.wav", 10))
        voiced.append(path)
    out = tmp_path / "film.mp4"
    result = assemble([voiced[0], three[1], voiced[1]], out)  # 2 s, 1 s silent, 2 s
    assert result.mode == "copy"
    lengths = durations(out)
    assert abs(lengths["audio"] - lengths["video"]) < 1024 / 48_000 + 1e-3
    with av.open(str(out)) as c:
        pcm = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    loud = np.abs(pcm) > 0.05

    def share(a: float, b: float) -> float:
        return loud[int(a * 48_000) : int(b * 48_000)].mean()

    assert share(0.1, 1.9) > 0.5 and share(3.1, 4.9) > 0.5  # the clips' sound ...
    assert share(2.05, 2.95) == 0  # ... and silence under the silent clip, at its place


def test_the_same_inputs_give_the_same_bytes(
    three: list[Path], folder: Path, tmp_path: Path
) -> None:
    for parts in (three, [three[0], clip(folder, 5, "1:1")]):
        a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
        assemble(parts, a)
        assemble(parts, b)
        assert a.read_bytes() == b.read_bytes()


def test_the_size_cap_stops_it_and_leaves_no_file(three: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "capped.mp4"
    with pytest.raises(AssemblyError, match="exceeds"):
        assemble(three, out, max_bytes=2_000)
    assert list(tmp_path.iterdir()) == []


def test_a_clip_that_is_not_a_video_fails_cleanly(three: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(AssemblyError, match=r"bad\.mp4"):
        assemble([three[0], bad], tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()
