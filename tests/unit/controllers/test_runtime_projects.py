"""Projects and drift in the runtime against fakes: planning interrupted between two
Scene creates, planner failures, the clip finalizer, invalid specs, and drift repair
under each `repair.missingClip` policy."""

from __future__ import annotations

import asyncio

import pytest

from controller.api import vocabulary as v
from controller.kube.client import ApiError
from controller.providers.base import ProviderError
from tests.unit.harness import NS, Harness, Killed
from tests.unit.providers.fakes import clip_bytes

ONE = {"scenes": {"count": 1, "durationSeconds": 4}}


def run(coro) -> None:
    asyncio.run(coro)


def cond(status: dict, type_: str) -> dict:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


@pytest.mark.parametrize("how", ["killed", "outage"])
def test_planning_interrupted_between_two_scene_creates_finishes_the_same_plan(how: str) -> None:
    """The plan is recorded before the first create: a kill (restart) or an API error
    between two creates finishes the same plan, and the planner is asked once."""
    h = Harness()
    creates = {"n": 0}

    def interrupt(verb: str, plural: str, ns: str, name: str) -> None:
        if verb == "create" and plural == v.SCENE_PLURAL:
            creates["n"] += 1
            if creates["n"] == 2:
                raise Killed() if how == "killed" else ApiError(500, "etcd timeout")

    h.kube.before.append(interrupt)

    async def plan() -> None:
        h.project(scenes={"count": 3, "durationSeconds": 4}, generateVideos=False)
        await h.settle(seconds=1)

    if how == "killed":
        with pytest.raises(Killed):
            run(plan())
        assert h.scene_names() == ["p-scene-001"]
        assert len(h.project_status()["plan"]["scenes"]) == 3
        h.restart()
        run(h.settle(seconds=60))
    else:
        run(plan())
        run(h.settle(seconds=60))
    assert h.scene_names() == ["p-scene-001", "p-scene-002", "p-scene-003"]
    assert h.providers.planner("local").calls == 1
    assert cond(h.project_status(), "ScenesPlanned")["status"] == "True"
    assert h.kube.reasons("p").count("ScenesPlanned") <= 1


def test_a_retryable_planner_failure_backs_off_and_a_permanent_one_waits_for_an_edit() -> None:
    h = Harness()
    planner = h.providers.planner("local")
    planner.errors = [ProviderError("ServerError", "HTTP 500", retryable=True)]

    async def go() -> None:
        h.project(**ONE, generateVideos=False)
        await h.settle(seconds=1)
        assert planner.calls == 1 and h.scene_names() == []
        assert h.project_status()["lastError"]["retryable"] is True
        await h.settle(seconds=30)  # the backoff (5 s, jittered) has passed

    run(go())
    assert planner.calls == 2 and h.scene_names() == ["p-scene-001"]

    h2 = Harness()
    blocked = h2.providers.planner("local")
    blocked.errors = [ProviderError("PromptBlocked", "unsafe", retryable=False)]

    async def go2() -> None:
        h2.project(**ONE, generateVideos=False)
        await h2.settle(seconds=600)
        assert blocked.calls == 1 and h2.scene_names() == []
        assert h2.project_status()["phase"] == "Failed"
        h2.project(**ONE, generateVideos=False, prompt="a calmer lighthouse")
        await h2.settle(seconds=10)

    run(go2())
    assert blocked.calls == 2 and h2.scene_names() == ["p-scene-001"]


def test_deletion_policy_delete_removes_the_clips_then_the_finalizer() -> None:
    h = Harness()

    async def go() -> None:
        h.project(**ONE, deletionPolicy="Delete")
        await h.settle(seconds=60)

    run(go())
    project = h.kube.obj(v.PROJECT_PLURAL, NS, "p")
    assert project is not None and project["metadata"]["finalizers"] == [v.FINALIZER_CLIPS]
    assert h.status("p-scene-001")["phase"] == "Completed" and len(h.clips.keys()) == 1
    h.clips.put("clips", "elsewhere/other-project.mp4", b"not ours")
    h.kube.delete(v.PROJECT_PLURAL, NS, "p")
    run(h.settle(seconds=5))
    assert h.kube.obj(v.PROJECT_PLURAL, NS, "p") is None  # finalizer removed: gone
    assert h.clips.keys() == ["elsewhere/other-project.mp4"]
    assert "ClipsDeleted" in h.kube.reasons("p")


def test_deletion_policy_retain_keeps_no_finalizer_and_turning_delete_off_removes_it() -> None:
    h = Harness()

    async def go() -> None:
        h.project(**ONE, generateVideos=False, deletionPolicy="Delete")
        await h.settle(seconds=1)
        h.project(**ONE, generateVideos=False, deletionPolicy="Retain")
        await h.settle(seconds=1)

    run(go())
    project = h.kube.obj(v.PROJECT_PLURAL, NS, "p")
    assert project is not None and not project["metadata"].get("finalizers")


def test_an_invalid_project_spec_is_reported_and_its_scenes_are_blocked() -> None:
    h = Harness()
    h.kube.put(v.SCENE_PLURAL, declared("mine", 1))

    async def go() -> None:
        await h.settle(seconds=1)
        assert cond(h.status("mine"), "Ready")["reason"] == "ProjectNotFound"
        h.project(scenes={"count": 0})  # below the minimum
        await h.settle(seconds=1)

    run(go())
    assert cond(h.project_status(), "Ready")["reason"] == "InvalidSpec"
    assert h.kube.reasons("p") == ["InvalidSpec"]
    assert cond(h.status("mine"), "Ready")["reason"] == "InvalidSpec"
    assert h.replicate.starts == 0


def declared(name: str, sequence: int) -> dict:
    """A Scene the user declared for Project p."""
    return {
        "apiVersion": v.API_VERSION,
        "kind": v.SCENE_KIND,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"projectRef": {"name": "p"}, "sequence": sequence, "prompt": f"shot {name}"},
    }


def test_deleting_a_parked_scene_and_then_its_project_forgets_them() -> None:
    h = Harness(concurrency_replicate=1)
    h.replicate.polls = 50

    async def go() -> None:
        for i, name in enumerate(("a", "b"), start=1):
            h.kube.put(v.SCENE_PLURAL, declared(name, i))
        h.project(**ONE)
        await h.settle(seconds=1)
        assert h.providers.planner("local").calls == 0  # declared Scenes: no planning
        assert len(h.runtime.capacity.waiters) == 1  # the second Scene waits for the slot
        waiting = next(n for n in h.scene_names() if not h.status(n).get("generation"))
        h.kube.delete(v.SCENE_PLURAL, NS, waiting)
        await h.settle(seconds=1)
        assert len(h.runtime.capacity.waiters) == 0 and waiting not in h.scene_names()
        h.kube.delete(v.PROJECT_PLURAL, NS, "p")
        await h.settle(seconds=1)

    run(go())
    assert ("team", "p") not in h.runtime.memory.projects
    (left,) = h.scene_names()
    # Its job is abandoned (canceled at the provider) and its slot freed: no Project to
    # store the clip for (test_cancel.py).
    assert cond(h.status(left), "Ready")["reason"] == "ProjectNotFound"
    assert h.status(left).get("generation") is None and len(h.replicate.cancels) == 1


# ----------------------------------------------------------------------------- drift


def _completed(policy: str) -> Harness:
    h = Harness()

    async def go() -> None:
        h.project(**ONE, repair={"missingClip": policy, "intervalSeconds": 60})
        await h.settle(seconds=30)

    run(go())
    assert h.status("p-scene-001")["phase"] == "Completed"
    return h


def test_drift_regenerate_makes_a_new_take_when_the_clip_is_gone() -> None:
    h = _completed("Regenerate")
    old = h.status("p-scene-001")["clip"]["key"]
    h.clips.objects.clear()
    run(h.settle(seconds=90))
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed" and status["take"] == 1
    assert status["clip"]["key"] != old and h.clips.keys() == [status["clip"]["key"]]
    assert h.replicate.starts == 2
    assert "ClipMissing" in h.kube.reasons("p-scene-001")


def test_drift_fail_marks_the_scene_failed() -> None:
    h = _completed("Fail")
    h.clips.objects.clear()
    run(h.settle(seconds=90))
    status = h.status("p-scene-001")
    assert status["phase"] == "Failed" and status["lastError"]["reason"] == "ClipMissing"
    assert "clip" not in status and h.replicate.starts == 1


def test_drift_ignore_says_the_clip_is_missing_and_notices_when_it_is_back() -> None:
    h = _completed("Ignore")
    (bucket_key, fact) = next(iter(h.clips.objects.items()))
    h.clips.objects.clear()
    run(h.settle(seconds=90))
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed" and "clip" in status
    assert cond(status, "Ready")["reason"] == "ClipMissing"
    assert h.kube.reasons("p-scene-001").count("ClipMissing") == 1
    assert cond(h.project_status(), "Ready")["status"] == "False"
    run(h.settle(seconds=90))  # still missing: reported once
    assert h.kube.reasons("p-scene-001").count("ClipMissing") == 1
    h.clips.objects[bucket_key] = fact
    run(h.settle(seconds=90))
    assert cond(h.status("p-scene-001"), "Ready")["status"] == "True"
    assert "ClipRestored" in h.kube.reasons("p-scene-001")
    assert h.replicate.starts == 1


def test_drift_adopts_an_object_whose_status_write_was_lost() -> None:
    """A paused Project's Scene settled without a clip; an object then appears at its
    deterministic key (an upload whose Completed write was lost): drift adopts it."""
    h = Harness()

    async def go() -> None:
        h.project(**ONE, paused=True, repair={"intervalSeconds": 60})
        await h.settle(seconds=1)
        assert cond(h.status("p-scene-001"), "Ready")["reason"] == "Paused"
        desired = h.runtime.scenes.inputs(h.scene("p-scene-001")).desired
        assert desired is not None
        h.clips.put(desired.bucket, desired.key(0), clip_bytes(4, "16:9"))  # a real video
        await h.settle(seconds=90)

    run(go())
    status = h.status("p-scene-001")
    assert status["phase"] == "Completed" and "ClipAdopted" in h.kube.reasons("p-scene-001")
    assert h.replicate.starts == 0


def test_a_drift_listing_that_fails_is_tried_again_at_the_next_interval() -> None:
    h = _completed("Regenerate")
    failures = {"n": 0}

    def s3_down(op: str, bucket: str, key: str) -> None:
        if op == "list" and failures["n"] < 1:
            failures["n"] += 1
            raise OSError("connection reset")

    h.clips.before.append(s3_down)
    h.clips.objects.clear()
    run(h.settle(seconds=70))
    assert h.replicate.starts == 1 and failures["n"] == 1
    run(h.settle(seconds=70))
    assert h.replicate.starts == 2
