"""Fewer API writes per Scene (issue 14): Project status writes paced, routine Scene
Events gathered on the Project, no status write that the next recount makes anyway."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from controller.api import vocabulary as v
from controller.controllers.capacity import Capacity
from controller.controllers.project.pacing import PROGRESS_SECONDS, progress_only
from controller.controllers.project.series import SERIES_SECONDS
from controller.controllers.project.status import with_deleted_generations
from controller.informer.cache import Store
from controller.informer.intake import PROJECT_RECOUNT_DELAY
from controller.settings import Settings
from tests.unit.harness import NS, Harness


def project_writes(
    h: Harness, scenes: list[tuple[float, dict[str, Any]]] | None = None
) -> list[tuple[float, dict[str, Any]]]:
    """Record (fake time, patch) of every Project status write (and Scene one)."""
    writes: list[tuple[float, dict[str, Any]]] = []
    patch = h.kube.patch_status

    async def recording(plural: str, ns: str, name: str, status: dict[str, Any], **kw: Any):
        if plural == v.PROJECT_PLURAL:
            writes.append((h.clock.t, status))
        elif scenes is not None:
            scenes.append((h.clock.t, status))
        return await patch(plural, ns, name, status, **kw)

    h.kube.patch_status = recording  # type: ignore[method-assign]
    return writes


def one_at_a_time(
    count: int, scenes: list[tuple[float, dict[str, Any]]] | None = None, every: float = 2.0
) -> tuple[Harness, list[tuple[float, dict[str, Any]]]]:
    """A Project whose Scenes start and finish one after another (one job slot): a
    finished Scene every `every` seconds, each a change of the Project's counts."""
    h = Harness(concurrency_replicate=1, poll_initial_seconds=every)
    h.replicate.polls = 0
    writes = project_writes(h, scenes)

    async def go() -> None:
        h.project(scenes={"count": count, "durationSeconds": 4})
        await h.settle(seconds=600)

    asyncio.run(go())
    return h, writes


def test_progress_only_writes_wait_and_phase_changes_do_not() -> None:
    scenes: list[tuple[float, dict[str, Any]]] = []
    h, writes = one_at_a_time(12, scenes)
    status = h.project_status()
    assert status["phase"] == "Completed" and status["completedScenes"] == 12
    assert h.phases() == dict.fromkeys(h.scene_names(), "Completed")
    # One Scene finished every 2 s; the counts were written at most every 10 s.
    progress = [t for t, patch in writes if "phase" not in patch and "plan" not in patch]
    gaps = [b - a for a, b in itertools.pairwise(progress)]
    assert progress and all(gap >= PROGRESS_SECONDS for gap in gaps), writes
    # The phase change to Completed was not held back by the pacing: written with the
    # recount the last Scene's Completed write queued (half a second later).
    last_scene_done = max(t for t, patch in scenes if patch.get("phase") == "Completed")
    assert writes[-1][1].get("phase") == "Completed"
    assert writes[-1][0] - last_scene_done <= PROJECT_RECOUNT_DELAY
    span = writes[-1][0] - writes[0][0]
    assert len(writes) <= 3 + span / PROGRESS_SECONDS + 1, [(t, sorted(p)) for t, p in writes]


def test_a_burst_of_finished_scenes_makes_at_most_two_project_writes() -> None:
    """Eight Scenes finish one a second: after the plan and the first recount, at most
    two Project status writes (one of counts, one for the phase change)."""
    scenes: list[tuple[float, dict[str, Any]]] = []
    h, writes = one_at_a_time(8, scenes, every=1.0)
    done = [t for t, patch in scenes if patch.get("phase") == "Completed"]
    assert len(done) == 8 and done[-1] - done[0] < PROGRESS_SECONDS
    assert len([t for t, _ in writes if t >= done[0]]) <= 2, writes
    assert h.project_status()["completedScenes"] == 8


def test_a_fast_plan_is_written_once_without_a_planning_status_first() -> None:
    h = Harness()
    writes = project_writes(h)
    asyncio.run(go_plan(h))
    assert "plan" in writes[0][1], writes[0]
    # Scenes created in the pass: their recount writes the status, not the pass itself.
    assert not any(t == writes[0][0] for t, _ in writes[1:]), writes


async def go_plan(h: Harness) -> None:
    h.project(scenes={"count": 3, "durationSeconds": 4}, generateVideos=False)
    await h.settle(seconds=5)
    assert h.project_status()["phase"] == "ScenesReady"


def test_routine_scene_events_are_one_event_per_reason_on_the_project() -> None:
    h = Harness()
    h.replicate.polls = 1

    async def go() -> None:
        h.project(scenes={"count": 4, "durationSeconds": 4})
        await h.settle(seconds=120)

    asyncio.run(go())
    assert h.project_status()["phase"] == "Completed"
    for name in h.scene_names():
        assert h.kube.reasons(name) == []
    on_project = {e["reason"]: e for e in h.kube.events if e["object"] == "p"}
    for reason in (v.Reason.GENERATION_STARTED, v.Reason.CLIP_UPLOADED):
        event = on_project[reason]
        assert event["kind"] == v.PROJECT_KIND and event["count"] == 4
        assert "p-scene-001" in event["message"] and "4 scenes" in event["message"]
    assert h.kube.reasons("p").count(v.Reason.CLIP_UPLOADED) == 1


def test_a_long_run_posts_its_routine_events_in_batches_a_minute_apart() -> None:
    h, _ = one_at_a_time(16, every=5.0)  # a Scene every 5 s: ~80 s
    uploaded = [
        e for e in h.kube.events if e["object"] == "p" and e["reason"] == v.Reason.CLIP_UPLOADED
    ]
    assert sum(e["count"] for e in uploaded) == 16
    assert 2 <= len(uploaded) <= 1 + 80 / SERIES_SECONDS + 1


def test_warning_events_stay_on_the_scene() -> None:
    h = Harness()
    h.replicate.polls = 1
    h.replicate.outcome = "fail"  # a permanent failure: GenerationFailed, a Warning

    async def go() -> None:
        h.project(scenes={"count": 1, "durationSeconds": 4})
        await h.settle(seconds=120)

    asyncio.run(go())
    assert v.Reason.GENERATION_FAILED in h.kube.reasons("p-scene-001")
    assert v.Reason.GENERATION_STARTED in h.kube.reasons("p")  # routine: on the Project


def test_scene_events_all_keeps_them_on_each_scene() -> None:
    h = Harness(scene_events="all")
    h.replicate.polls = 1

    async def go() -> None:
        h.project(scenes={"count": 2, "durationSeconds": 4})
        await h.settle(seconds=120)

    asyncio.run(go())
    for name in h.scene_names():
        assert h.kube.reasons(name) == [v.Reason.GENERATION_STARTED, v.Reason.CLIP_UPLOADED]
    assert v.Reason.CLIP_UPLOADED not in h.kube.reasons("p")


def test_progress_only_tells_counts_from_meaning() -> None:
    cond = {"type": "Ready", "status": "False", "reason": "InProgress", "message": "1 of 3"}
    old = {"phase": "Processing", "completedScenes": 1, "conditions": [cond]}
    counted = {**old, "completedScenes": 2, "conditions": [{**cond, "message": "2 of 3"}]}
    assert progress_only(old, counted, capped=False)
    assert not progress_only(old, {**counted, "phase": "Completed"}, capped=False)
    flipped = {**old, "conditions": [{**cond, "status": "True", "reason": "Completed"}]}
    assert not progress_only(old, flipped, capped=False)
    # generationsUsed is what a budget cap is checked against: at once when capped.
    used = {**old, "generationsUsed": 3}
    assert progress_only(old, used, capped=False)
    assert not progress_only(old, used, capped=True)


def test_a_deleted_scene_keeps_its_generation_in_the_project_counter() -> None:
    """The counter's write may wait; a Scene deleted meanwhile still counts."""
    from controller.api.project import ProjectStatus

    store = Store()
    capacity = Capacity(Settings(), store)
    scene = {
        "metadata": {"namespace": NS, "name": "p-scene-001", "resourceVersion": "2"},
        "spec": {"projectRef": {"name": "p"}},
        "status": {"generationsStarted": 2, "generation": {"provider": "replicate", "jobId": "j"}},
    }
    store.upsert_scene(scene)
    store.delete_scene((NS, "p-scene-001"))
    deleted = capacity.deleted_settled[(NS, "p")]
    assert deleted == 2
    status = with_deleted_generations(ProjectStatus(generations_used=1), settled=1, deleted=deleted)
    assert status.generations_used == 3
