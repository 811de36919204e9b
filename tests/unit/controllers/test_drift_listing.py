"""Drift's LIST only when it can change something (`listing_needed`): the rule as a pure
function, and the runtime making no LIST for a Project whose Scenes all have a job in
flight or wait for a slot (and LISTing again once one is Completed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.controllers.drift.reconciler import listing_needed
from tests.unit.harness import Harness


def scene(phase: str | None = None, reason: str | None = None, **status: Any) -> dict[str, Any]:
    if phase is not None:
        status["phase"] = phase
    if reason is not None:
        status["conditions"] = [{"type": "Ready", "status": "False", "reason": reason}]
    return {"metadata": {"name": "s"}, "spec": {}, "status": status}


IN_FLIGHT = scene("Processing", "InProgress", generation={"provider": "replicate"})
NEW = {"metadata": {"name": "s"}, "spec": {}}  # never passed yet
WAITING = scene("Pending", "WaitingForCapacity")
BACKING_OFF = scene("Processing", "RetryScheduled", nextRetryAt="2026-01-01T00:00:00Z")
BUCKET_HELD = scene("Pending", "BucketUnavailable")
COMPLETED = scene("Completed", "Completed", clip={"key": "k", "size": 1, "etag": "e"})
PAUSED = scene("Pending", "Paused")
FAILED = scene("Failed", "RetriesExhausted")
BUDGET = scene("Pending", "BudgetExhausted")
NO_CONDITION = scene("Pending")


def needed(*scenes: dict[str, Any], videos: bool = True, final: bool = False) -> bool:
    return listing_needed(scenes, generate_videos=videos, final_video=final)


def test_no_list_while_every_scene_has_a_job_or_looks_before_starting() -> None:
    assert not needed()
    assert not needed(IN_FLIGHT, NEW, WAITING, BACKING_OFF, BUCKET_HELD)


@pytest.mark.parametrize(
    "other",
    [COMPLETED, PAUSED, FAILED, BUDGET, NO_CONDITION],
    ids=["completed", "paused", "failed", "budget", "unknown"],
)
def test_a_list_when_a_scene_relies_on_it(other: dict[str, Any]) -> None:
    """A Completed clip to compare; a settled Scene without a job that will not look by
    itself (an object for it is adopted from the listing); a shape not understood."""
    assert needed(IN_FLIGHT, WAITING, other)


def test_a_list_for_a_recorded_final_video_even_with_every_scene_busy() -> None:
    assert needed(IN_FLIGHT, final=True)


def test_without_generate_videos_only_completed_clips_need_a_list() -> None:
    assert not needed(PAUSED, FAILED, NEW, videos=False)
    assert needed(PAUSED, COMPLETED, videos=False)


def lists(h: Harness) -> int:
    return sum(1 for op, _, _ in h.clips.calls if op == "list")


def test_the_runtime_lists_no_project_whose_scenes_are_all_busy_or_waiting() -> None:
    """One slot, three Scenes, jobs that run for minutes: over several drift intervals one
    Scene has a job and two wait for the slot, so no LIST; once a clip is Completed, the
    next intervals LIST again (one per interval)."""
    h = Harness(concurrency_replicate=1, poll_initial_seconds=30.0, poll_max_seconds=30.0)
    h.replicate.polls = 8  # about four minutes of Running

    async def busy() -> None:
        h.project(scenes={"count": 3, "durationSeconds": 4}, repair={"intervalSeconds": 60})
        await h.settle(seconds=200)

    asyncio.run(busy())
    assert h.replicate.starts == 1 and "Completed" not in h.phases().values()
    assert lists(h) == 0
    h.replicate.polls = 0
    for job in h.replicate.jobs.values():
        job.polls_left = 0
    asyncio.run(h.settle(seconds=100))
    assert "Completed" in h.phases().values()
    assert lists(h) >= 1
