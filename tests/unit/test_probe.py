"""A clip is a video: the output check on real files (the local renderer makes real MP4s)."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from controller.api.request import VideoRequest
from controller.media.probe import (
    InvalidOutput,
    OutputRules,
    check_stored,
    check_video,
    expected_seconds,
)
from controller.providers.render import render_clip
from controller.settings import Settings

RULES = OutputRules()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    render_clip(path, prompt="a probe", sequence=1, duration_seconds=4, aspect_ratio="16:9")
    return path


def invalid(path: Path, expected: float = 4, rules: OutputRules = RULES) -> InvalidOutput:
    with pytest.raises(InvalidOutput) as info:
        check_video(path, expected, rules)
    assert info.value.reason == "InvalidOutput"
    return info.value


def test_a_rendered_clip_passes_with_its_facts(clip: Path) -> None:
    facts = check_video(clip, 4, RULES)
    assert (facts.codec, facts.width, facts.height) == ("h264", 256, 144)
    assert facts.duration_seconds == pytest.approx(4.0)
    assert facts.size == clip.stat().st_size


def test_html_is_not_a_video(tmp_path: Path) -> None:
    page = tmp_path / "page.mp4"
    page.write_bytes(b"<!doctype html><html><body>Internal dashboard</body></html>")
    err = invalid(page)
    assert err.retryable and "not a readable video" in err.message
    assert str(tmp_path) not in err.message  # no local paths in status


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.97])
def test_a_truncated_mp4_is_refused(clip: Path, tmp_path: Path, fraction: float) -> None:
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * fraction)])
    err = invalid(cut)
    assert err.retryable


def test_audio_only_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 44100, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    err = invalid(path, expected=0.5)
    assert err.retryable and "no video stream (streams: audio)" in err.message


def test_a_clip_of_the_wrong_length_is_refused_for_good(clip: Path) -> None:
    err = invalid(clip, expected=8)
    assert not err.retryable and "4.00s of video, 8s were asked" in err.message
    check_video(clip, 5, RULES)  # within the default tolerance of 1 s
    invalid(clip, expected=5, rules=OutputRules(tolerance_seconds=0.5))


def test_an_oversized_clip_is_refused_for_good(clip: Path) -> None:
    err = invalid(clip, rules=OutputRules(max_bytes=clip.stat().st_size - 1))
    assert not err.retryable and "SCENE_OPERATOR_OUTPUT_MAX_BYTES" in err.message


def test_a_still_image_is_not_a_clip(tmp_path: Path) -> None:
    png = tmp_path / "still.mp4"
    with av.open(str(png), "w", format="image2", options={"update": "1"}) as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), dtype=np.uint8), format="rgb24")
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert "not an MP4 container" in invalid(png).message


def test_expected_seconds_follows_duration_params() -> None:
    base = VideoRequest(prompt="p", duration_seconds=8, aspect_ratio="16:9")
    assert expected_seconds(base) == 8
    assert expected_seconds(VideoRequest("p", 8, "16:9", params={"duration": 6})) == 6
    assert expected_seconds(VideoRequest("p", 8, "16:9", params={"duration_seconds": 4})) == 4
    assert expected_seconds(VideoRequest("p", 8, "16:9", params={"duration": "long"})) == 8


def test_rules_come_from_the_settings() -> None:
    s = Settings(output_max_bytes=1234, output_duration_tolerance_seconds=0.25)
    assert OutputRules.from_settings(s) == OutputRules(max_bytes=1234, tolerance_seconds=0.25)


class FolderClips:
    """The clip store's `download`, over a local folder (the operator's own interface)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.downloads: list[str] = []

    def download(self, bucket: str, key: str, dest: Path) -> None:
        self.downloads.append(key)
        shutil.copyfile(self.folder / key, dest)


def test_objects_found_in_s3_follow_the_same_rule(clip: Path, tmp_path: Path) -> None:
    store = FolderClips(tmp_path)
    shutil.copyfile(clip, tmp_path / "good.mp4")
    (tmp_path / "page.mp4").write_bytes(b"<html>not a clip</html>")
    size = clip.stat().st_size
    assert check_stored(store, "b", "good.mp4", size, 4, RULES, tmp_dir=str(tmp_path)) is None
    assert "not a readable video" in (
        check_stored(store, "b", "page.mp4", 23, 4, RULES, tmp_dir=str(tmp_path)) or ""
    )
    assert "8s were asked" in (
        check_stored(store, "b", "good.mp4", size, 8, RULES, tmp_dir=str(tmp_path)) or ""
    )
    # Over the cap by its HEAD size: refused without a download.
    store.downloads.clear()
    assert "over the cap" in (
        check_stored(store, "b", "good.mp4", 10**12, 4, RULES, tmp_dir=str(tmp_path)) or ""
    )
    assert store.downloads == []


def test_a_one_frame_clip_passes(tmp_path: Path) -> None:
    # Its only frame comes out of the decoder on the flush, not on its packet.
    path = tmp_path / "one.mp4"
    render_clip(path, prompt="one", sequence=1, duration_seconds=1, aspect_ratio="16:9", fps=1)
    facts = check_video(path, 1, RULES)
    assert (facts.width, facts.height, facts.duration_seconds) == (256, 144, 1.0)


def test_a_clip_whose_first_frame_is_garbage_is_refused(clip: Path, tmp_path: Path) -> None:
    # Only the first frame's bytes are decoded: they must be checked, not skipped.
    with av.open(str(clip)) as container:
        first = next(p for p in container.demux(container.streams.video[0]) if p.pts is not None)
        pos, size = first.pos, first.size
    data = bytearray(clip.read_bytes())
    data[pos : pos + size] = b"\0" * size
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(bytes(data))
    assert invalid(bad).retryable


def test_a_clip_checked_before_adoption_is_downloaded_under_the_scratch_directory(
    clip: Path, tmp_path: Path
) -> None:
    """Not in bare /tmp: a probe killed mid-way leaves its file where the next process's
    sweep removes it (the operator's own scratch directory, locked while it lives)."""
    scratch = tmp_path / "scene-operator-live"
    scratch.mkdir()
    store = FolderClips(tmp_path)
    shutil.copyfile(clip, tmp_path / "good.mp4")
    seen: list[Path] = []
    original = store.download

    def download(bucket: str, key: str, dest: Path) -> None:
        seen.append(Path(dest))
        original(bucket, key, dest)

    store.download = download  # type: ignore[method-assign]
    size = (tmp_path / "good.mp4").stat().st_size
    assert check_stored(store, "b", "good.mp4", size, 4, RULES, tmp_dir=str(scratch)) is None
    assert seen and seen[0].is_relative_to(scratch)
    assert list(scratch.iterdir()) == []  # and nothing left once checked
