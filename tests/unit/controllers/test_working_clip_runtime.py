"""Working clips through the real runtime (actuator, drift) against the fakes: the
original is a real MP4 (tests/unit/providers/fakes.py), the trim is the real one."""

from __future__ import annotations

import asyncio

from controller.api.vocabulary import SCENE_PLURAL
from controller.decide.edit import Edit
from tests.unit.harness import Harness

SCENE = "p-scene-001"
TRIM = Edit(trim_start=1.0, mute_audio=True)
EDIT = {"trimStartSeconds": 1, "muteAudio": True}


def completed(missing_clip: str = "Regenerate") -> Harness:
    h = Harness()
    h.project(
        scenes={"count": 1, "durationSeconds": 4},
        repair={"missingClip": missing_clip, "intervalSeconds": 60},
    )
    asyncio.run(h.settle(seconds=30))
    assert h.status(SCENE)["phase"] == "Completed" and h.replicate.starts == 1
    return h


def set_edit(h: Harness, edit: dict | None) -> None:
    body = h.scene(SCENE)
    spec = {k: v for k, v in body["spec"].items() if k != "edit"}
    h.kube.put(SCENE_PLURAL, {**body, "spec": {**spec, **({"edit": edit} if edit else {})}})


def test_an_edit_is_derived_uploaded_and_recorded_without_a_job() -> None:
    h = completed()
    original = h.status(SCENE)["clip"]
    set_edit(h, EDIT)
    asyncio.run(h.settle(seconds=5))
    st = h.status(SCENE)
    w = st["workingClip"]
    assert (
        st["workingVideoClipS3Key"]
        == w["key"]
        == original["key"].replace(".mp4", f"-w{TRIM.hash}.mp4")
    )
    assert w["durationSeconds"] == 3.0 and w["editHash"] == TRIM.hash
    assert h.clips.objects[("clips", w["key"])].sha256 == w["sha256"]
    assert h.clips.objects[("clips", original["key"])].size == original["size"]  # untouched
    assert st["clip"]["key"] == st["originalVideoClipS3Key"] == original["key"]
    assert h.replicate.starts == 1 and st["generationsStarted"] == 1
    assert "ClipEdited" in h.kube.reasons(SCENE)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and w["key"] in ready["message"]


def test_drift_derives_a_deleted_working_clip_again_for_free() -> None:
    h = completed()
    set_edit(h, EDIT)
    asyncio.run(h.settle(seconds=5))
    w = h.status(SCENE)["workingClip"]
    del h.clips.objects[("clips", w["key"])]
    asyncio.run(h.settle(seconds=90))
    again = h.status(SCENE)["workingClip"]
    assert ("clips", w["key"]) in h.clips.objects
    assert (again["key"], again["sha256"]) == (w["key"], w["sha256"])  # the same bytes
    assert h.kube.reasons(SCENE).count("ClipEdited") == 2
    assert h.replicate.starts == 1


def test_a_regenerated_original_gets_its_working_clip_derived_anew() -> None:
    h = completed("Regenerate")
    set_edit(h, EDIT)
    asyncio.run(h.settle(seconds=5))
    h.clips.objects.clear()  # the original (and its working clip) gone: a new take
    asyncio.run(h.settle(seconds=120))
    st = h.status(SCENE)
    assert st["take"] == 1 and h.replicate.starts == 2
    assert st["workingVideoClipS3Key"] == st["clip"]["key"].replace(".mp4", f"-w{TRIM.hash}.mp4")
    assert st["workingClip"]["sourceKey"] == st["clip"]["key"]
    assert ("clips", st["workingVideoClipS3Key"]) in h.clips.objects


def test_an_edit_of_a_vanished_original_regenerates_it_before_the_drift_interval() -> None:
    """The derivation's download finds no original: the next pass looks at it and
    repair.missingClip (Regenerate) starts a new take at once, not at the next drift
    interval (60 s here)."""
    h = completed("Regenerate")
    key = h.status(SCENE)["clip"]["key"]
    del h.clips.objects[("clips", key)]
    del h.clips.data[("clips", key)]
    set_edit(h, EDIT)
    asyncio.run(h.settle(seconds=20))
    st = h.status(SCENE)
    assert st["take"] == 1 and h.replicate.starts == 2
    assert st["workingClip"]["sourceKey"] == st["clip"]["key"] != key
    assert ("clips", st["workingVideoClipS3Key"]) in h.clips.objects


def test_removing_the_edit_costs_no_s3_write() -> None:
    h = completed()
    set_edit(h, EDIT)
    asyncio.run(h.settle(seconds=5))
    puts = [c for c in h.clips.calls if c[0] == "put"]
    set_edit(h, None)
    asyncio.run(h.settle(seconds=5))
    st = h.status(SCENE)
    assert st["workingVideoClipS3Key"] == st["clip"]["key"] and "workingClip" not in st
    assert [c for c in h.clips.calls if c[0] == "put"] == puts


def test_a_trim_over_the_media_limits_is_tried_three_times_then_refused_for_good() -> None:
    """The trim's child process runs past SCENE_OPERATOR_MEDIA_TIMEOUT_SECONDS: tried
    again 300 s later (the try counted in the log), and after the third the edit is refused in
    status (no new try on later passes or after a restart until the edit changes)."""
    h = completed()
    h.settings = h.settings.model_copy(update={"media_timeout_seconds": 0.001})
    h.restart()  # a process with the tight limit
    asyncio.run(h.settle(seconds=5))

    def downloads() -> int:
        return sum(1 for c in h.clips.calls if c[0] == "download")

    set_edit(h, EDIT)
    asyncio.run(h.settle(seconds=5))
    assert downloads() == 1 and not h.status(SCENE).get("refusedEdit")
    asyncio.run(h.settle(seconds=700))
    st = h.status(SCENE)
    assert downloads() == 3
    assert st["refusedEdit"] and st["lastError"]["reason"] == "InvalidSpec"
    assert "cannot be applied within the media limits" in st["lastError"]["message"]
    assert "workingClip" not in st or st["workingClip"] is None
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "media limits" in ready["message"]
    h.restart()
    asyncio.run(h.settle(seconds=1000))
    assert downloads() == 3  # refused for good: not tried again
