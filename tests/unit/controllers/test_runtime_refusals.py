"""The real runtime on fakes: output that is not a video is never stored, an object at
the key that is not a video is not adopted, and an unanswered create at a provider that
cannot list its jobs is reported and counted before a new job starts."""

from __future__ import annotations

from controller.api import vocabulary as v
from controller.api.scene import ScenePhase
from controller.observability import metrics as m
from tests.unit.harness import NS, Harness
from tests.unit.providers.fakes import clip_bytes, no_answer

HTML = b"<!doctype html><html><body>Internal admin</body></html>"
SCENE = "p-scene-001"


def test_output_that_is_not_a_video_fails_the_attempt_and_is_never_stored() -> None:
    h = Harness()
    h.replicate.output = lambda job: HTML if job.job_id.endswith("-1") else None
    h.project(scenes={"count": 1, "durationSeconds": 4})
    h.run(h.settle(600))
    st = h.status(SCENE)
    assert st["phase"] == ScenePhase.COMPLETED and st["attempts"] == 2
    assert h.replicate.starts == 2
    retries = [e for e in h.kube.events if e["reason"] == v.Reason.RETRY_SCHEDULED]
    assert any(v.Reason.INVALID_OUTPUT in e["message"] for e in retries)
    assert HTML not in h.clips.data.values()  # the page was never uploaded


def test_output_of_the_wrong_length_fails_without_a_second_job() -> None:
    h = Harness()
    h.replicate.output = lambda job: clip_bytes(job.request.duration_seconds + 3, "16:9")
    h.project(scenes={"count": 1, "durationSeconds": 4})
    h.run(h.settle(600))
    st = h.status(SCENE)
    assert st["phase"] == ScenePhase.FAILED
    assert st["lastError"]["reason"] == v.Reason.INVALID_OUTPUT
    assert h.replicate.starts == 1 and h.clips.keys() == []


def test_an_object_at_the_key_that_is_not_a_video_is_not_adopted() -> None:
    h = Harness()
    h.project(scenes={"count": 1, "durationSeconds": 4})
    h.run(h.settle(600))
    key = h.status(SCENE)["clip"]["key"]
    # The status write of an upload was lost, and the object is not a video.
    h.clips.put("clips", key, HTML)
    rewind = {"phase": "Processing", "clip": None, "originalVideoClipS3Key": None}
    h.run(h.kube.patch_status(v.SCENE_PLURAL, NS, SCENE, rewind))
    h.restart()
    h.run(h.settle(600))
    st = h.status(SCENE)
    assert st["phase"] == ScenePhase.COMPLETED and h.replicate.starts == 2
    assert v.Reason.INVALID_OUTPUT in h.kube.reasons(SCENE)
    assert h.kube.reasons(SCENE).count(v.Reason.CLIP_ADOPTED) == 0
    assert h.clips.data[("clips", key)] != HTML


def test_unanswered_create_without_a_job_list_is_may_be_orphaned_and_counted() -> None:
    h = Harness()
    h.veo.start_script = [("created", no_answer())]  # a job is made; its answer is lost
    again = m.ORPHAN_WINDOW.labels("again")
    before = again._value.get()
    h.project(scenes={"count": 1, "durationSeconds": 4}, video={"provider": "veo"})
    h.run(h.settle(600))
    assert h.status(SCENE)["phase"] == ScenePhase.COMPLETED
    assert h.veo.starts == 2 and len(h.veo.jobs) == 2  # the pay-twice window, reported:
    assert v.Reason.JOB_MAY_BE_ORPHANED in h.kube.reasons(SCENE)
    assert again._value.get() == before + 1


def test_a_project_asking_for_several_outputs_per_job_is_invalid_and_starts_nothing() -> None:
    h = Harness()
    h.project(
        scenes={"count": 1, "durationSeconds": 4},
        video={"provider": "replicate", "params": {"num_outputs": 4}},
    )
    h.run(h.settle(600))
    assert h.replicate.starts == 0 and h.scene_names() == []
    assert v.Reason.INVALID_SPEC in h.kube.reasons("p")
    (invalid,) = [e for e in h.kube.events if e["reason"] == v.Reason.INVALID_SPEC]
    assert "num_outputs" in invalid["message"]
