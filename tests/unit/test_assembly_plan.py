"""The final video's pure parts: inputs hash, remux-or-encode, letterbox, decision table."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from fractions import Fraction

import pytest

from controller.api.project import AssemblyAttempts, FinalVideo
from controller.api.vocabulary import Reason
from controller.assembly.plan import (
    AssemblyObservation,
    AudioRef,
    ClipRef,
    Step,
    decide,
    final_key,
    inputs_hash,
    refusal,
)
from controller.media.streams import StreamInfo, can_stream_copy, letterbox

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CLIPS = tuple(ClipRef(i, "b", f"k/{i}.mp4", f"sha{i}", 100 + i) for i in (1, 2, 3))
AUDIO = AudioRef("b", "song.mp3", "etag-1", 1000)


# ----------------------------------------------------------------------------- inputs hash


def test_inputs_hash_is_stable_and_short() -> None:
    h = inputs_hash(CLIPS, AUDIO, None)
    assert h == inputs_hash(CLIPS, AUDIO, None)
    assert len(h) == 16 and int(h, 16) >= 0


@pytest.mark.parametrize(
    "clips, audio, resolution",
    [
        pytest.param(CLIPS[::-1], AUDIO, None, id="order"),
        pytest.param((CLIPS[0], replace(CLIPS[1], sha256="new"), CLIPS[2]), AUDIO, None, id="clip-changed"),
        pytest.param(CLIPS[:2], AUDIO, None, id="clip-dropped"),
        pytest.param((CLIPS[0], replace(CLIPS[1], sequence=5), CLIPS[2]), AUDIO, None, id="sequence"),
        pytest.param(CLIPS, replace(AUDIO, version="etag-2"), None, id="audio-changed"),
        pytest.param(CLIPS, replace(AUDIO, key="other.mp3"), None, id="audio-key"),
        pytest.param(CLIPS, None, None, id="no-audio"),
        pytest.param(CLIPS, AUDIO, "1280x720", id="resolution"),
    ],
)  # fmt: skip
def test_inputs_hash_changes_with_each_input(clips, audio, resolution) -> None:
    assert inputs_hash(clips, audio, resolution) != inputs_hash(CLIPS, AUDIO, None)


def test_inputs_hash_ignores_where_a_clip_is_stored() -> None:
    moved = tuple(replace(c, key=c.key + ".copy", bucket="other") for c in CLIPS)
    assert inputs_hash(moved, AUDIO, None) == inputs_hash(CLIPS, AUDIO, None)


def test_final_key_is_under_the_project_prefix() -> None:
    assert final_key("pre", "ns", "uid-1", "abc") == "pre/ns/uid-1/final/abc.mp4"
    assert final_key("", "ns", "uid-1", "abc") == "ns/uid-1/final/abc.mp4"


# ----------------------------------------------------------------------------- remux or encode

H264 = StreamInfo("h264", 256, 144, Fraction(1, 12288), "yuv420p", "sps-a")


@pytest.mark.parametrize(
    "other, target, copy",
    [
        pytest.param(H264, None, True, id="identical"),
        pytest.param(H264, (256, 144), True, id="target-is-the-clips-size"),
        pytest.param(H264, (1280, 720), False, id="other-target-size"),
        pytest.param(replace(H264, codec="vp9"), None, False, id="codec"),
        pytest.param(replace(H264, width=144, height=256), None, False, id="resolution"),
        pytest.param(replace(H264, time_base=Fraction(1, 90000)), None, False, id="time-base"),
        pytest.param(replace(H264, extradata="sps-b"), None, False, id="parameter-sets"),
        pytest.param(replace(H264, pix_fmt="yuv444p"), None, False, id="pixel-format"),
    ],
)
def test_stream_copy_only_when_every_clip_decodes_alike(other, target, copy) -> None:
    assert can_stream_copy([H264, other, H264], target) is copy


def test_no_stream_copy_of_codecs_mp4_cannot_carry_as_is() -> None:
    vp8 = replace(H264, codec="vp8")
    assert not can_stream_copy([vp8, vp8], None)
    assert not can_stream_copy([], None)


@pytest.mark.parametrize(
    "src, dst, box",
    [
        ((256, 144), (256, 144), (256, 144, 0, 0)),
        ((144, 256), (256, 144), (82, 144, 86, 0)),  # portrait in landscape: pillarbox
        ((256, 144), (144, 144), (144, 82, 0, 30)),  # landscape in square: letterbox
        ((128, 72), (1280, 720), (1280, 720, 0, 0)),  # upscaled to fill
    ],
)
def test_letterbox_keeps_the_aspect_ratio_centred_and_even(src, dst, box) -> None:
    w, h, x, y = letterbox(src, dst)
    assert (w, h, x, y) == box
    assert all(n % 2 == 0 for n in (w, h, x, y))
    assert w <= dst[0] and h <= dst[1]


# ----------------------------------------------------------------------------- decisions

HASH = inputs_hash(CLIPS, None, None)
RECORD = FinalVideo(
    bucket="b",
    s3_key=f"p/ns/uid/final/{HASH}.mp4",
    size=5000,
    etag="e1",
    sha256="f" * 64,
    duration_seconds=6.0,
    inputs_hash=HASH,
    assembled_at="2026-01-01T00:00:00Z",
)


def observe(**kw: object) -> AssemblyObservation:
    base: dict[str, object] = {
        "now": NOW,
        "enabled": True,
        "scene_count": 3,
        "clips": CLIPS,
        "inputs_hash": HASH,
        "recorded": None,
    }
    base.update(kw)
    return AssemblyObservation(**base)  # type: ignore[arg-type]


def test_disabled_is_off_and_records_nothing() -> None:
    d = decide(observe(enabled=False, recorded=RECORD))
    assert (d.step, d.assembled, d.reason, d.final_video) == (
        Step.OFF, False, Reason.ASSEMBLY_NOT_REQUESTED, None,
    )  # fmt: skip


@pytest.mark.parametrize("clips", [CLIPS[:2], ()])
def test_waiting_for_scenes_keeps_the_last_final_video(clips) -> None:
    d = decide(observe(clips=clips, recorded=RECORD))
    assert (d.step, d.assembled, d.reason) == (Step.WAIT, False, Reason.WAITING_FOR_SCENES)
    assert f"{len(clips)} of 3" in d.message
    assert d.final_video == RECORD  # still in S3; its inputsHash says which clips it holds


def test_no_scenes_is_waiting() -> None:
    assert decide(observe(scene_count=0, clips=())).step == Step.WAIT


def test_all_clips_and_no_record_assembles() -> None:
    d = decide(observe())
    assert (d.step, d.assembled, d.reason, d.final_video) == (
        Step.ASSEMBLE, False, Reason.ASSEMBLING, None,
    )  # fmt: skip


def test_a_record_of_these_inputs_is_done_with_no_io() -> None:
    d = decide(observe(recorded=RECORD))
    assert (d.step, d.assembled, d.reason, d.final_video) == (
        Step.DONE, True, Reason.VIDEO_ASSEMBLED, RECORD,
    )  # fmt: skip
    assert RECORD.s3_key in d.message


def test_changed_inputs_rebuild_and_keep_the_old_record_meanwhile() -> None:
    d = decide(observe(recorded=RECORD, inputs_hash="0123456789abcdef"))
    assert (d.step, d.assembled, d.reason) == (Step.ASSEMBLE, False, Reason.ASSEMBLING)
    assert d.final_video == RECORD


def test_drift_disagreement_is_verified_before_anything_else() -> None:
    d = decide(observe(recorded=RECORD, suspect=True))
    assert (d.step, d.assembled) == (Step.VERIFY, True)


def test_missing_final_video_is_rebuilt_and_its_record_dropped() -> None:
    d = decide(observe(recorded=RECORD, suspect=True, missing=True))
    assert (d.step, d.assembled, d.reason) == (Step.ASSEMBLE, False, Reason.FINAL_VIDEO_MISSING)
    assert d.final_video is None


def test_missing_old_final_video_while_waiting_is_dropped() -> None:
    d = decide(observe(recorded=RECORD, clips=CLIPS[:1], missing=True))
    assert (d.step, d.final_video) == (Step.WAIT, None)


def test_running_is_not_started_twice() -> None:
    d = decide(observe(running=HASH))
    assert (d.step, d.assembled, d.reason) == (Step.RUNNING, False, Reason.ASSEMBLING)
    # an assembly of older inputs running does not hold up the current ones
    assert decide(observe(running="0" * 16)).step == Step.ASSEMBLE


def test_failure_waits_for_its_retry_time_then_assembles_again() -> None:
    later = NOW + dt.timedelta(seconds=20)
    failure = AssemblyAttempts(
        inputs_hash=HASH, attempts=2, started_at="2025-12-31T23:59:00Z",
        last_error="clip 2 does not decode", retry_at="2026-01-01T00:00:20Z",
    )  # fmt: skip
    d = decide(observe(attempts=failure))
    assert (d.step, d.assembled, d.reason) == (Step.FAILED, False, Reason.ASSEMBLY_FAILED)
    assert d.requeue_after == 20 and "clip 2 does not decode" in d.message
    assert "attempt 2 of 5" in d.message and d.attempts == failure and not d.stalled
    assert decide(observe(attempts=failure, now=later)).step == Step.ASSEMBLE
    # a failure of other inputs, or of an earlier spec, says nothing about these
    other = failure.model_copy(update={"inputs_hash": "x"})
    assert decide(observe(attempts=other)).step == Step.ASSEMBLE
    assert decide(observe(attempts=other)).attempts is None  # and is dropped from status
    assert decide(observe(attempts=failure, generation=2)).step == Step.ASSEMBLE


def test_a_build_that_died_with_its_operator_backs_off_from_its_start() -> None:
    """Status says an attempt started and nothing more (the operator was OOM-killed or
    restarted during it): a new process waits out the backoff, it does not build at once."""
    died = AssemblyAttempts(inputs_hash=HASH, attempts=3, started_at="2026-01-01T00:00:00Z")
    d = decide(observe(attempts=died))
    assert (d.step, d.reason) == (Step.FAILED, Reason.ASSEMBLY_FAILED)
    assert d.requeue_after is not None and 15 <= d.requeue_after <= 25  # 20 s at attempt 3
    assert "stopped with its operator" in d.message
    assert decide(observe(attempts=died, now=NOW + dt.timedelta(seconds=30))).step == Step.ASSEMBLE


def test_attempts_used_up_stall_until_the_inputs_or_spec_change() -> None:
    spent = AssemblyAttempts(
        inputs_hash=HASH, attempts=5, started_at="2026-01-01T00:00:00Z", last_error="out of memory"
    )
    d = decide(observe(attempts=spent, now=NOW + dt.timedelta(days=30)))
    assert (d.step, d.reason, d.stalled, d.requeue_after) == (
        Step.FAILED, Reason.ASSEMBLY_FAILED, True, None,
    )  # fmt: skip
    assert "gave up after 5 attempts" in d.message and "out of memory" in d.message
    assert decide(observe(attempts=spent, generation=2)).step == Step.ASSEMBLE
    assert decide(observe(attempts=spent, inputs_hash="f" * 16)).step == Step.ASSEMBLE


def test_a_resolution_over_the_operators_cap_is_refused_before_any_work() -> None:
    why = refusal("3840x2160", 1920 * 1080)
    assert why is not None and "SCENE_OPERATOR_MAX_ASSEMBLY_PIXELS" in why
    assert refusal("1920x1080", 1920 * 1080) is None and refusal(None, 100) is None
    d = decide(observe(refused=why))
    assert (d.step, d.assembled, d.reason, d.stalled) == (
        Step.OFF, False, Reason.INVALID_SPEC, True,
    )  # fmt: skip


def test_unknown_audio_version_is_not_done() -> None:
    d = decide(observe(inputs_hash=None, recorded=RECORD))
    assert not d.assembled and d.step == Step.ASSEMBLE


def test_unreadable_audio_fails_and_says_why() -> None:
    d = decide(observe(inputs_hash=None, audio_error="audio s3://b/song.mp3 not found"))
    assert (d.step, d.assembled, d.reason) == (Step.FAILED, False, Reason.ASSEMBLY_FAILED)
    assert "song.mp3 not found" in d.message
    assert d.requeue_after is not None and d.requeue_after > 0  # looked at again


def test_paused_starts_no_assembly_but_lets_one_under_way_finish() -> None:
    d = decide(observe(paused=True))
    assert (d.step, d.assembled, d.reason) == (Step.WAIT, False, Reason.PAUSED)
    assert decide(observe(paused=True, running=HASH)).step == Step.RUNNING
    assert decide(observe(paused=True, recorded=RECORD)).step == Step.DONE  # nothing to do
