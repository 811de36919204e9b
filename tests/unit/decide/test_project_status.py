"""Project status is a recount of its Scenes; a clip found missing under Ignore is not Ready."""

from __future__ import annotations

import datetime as dt

from controller.api.project import ProjectPhase, ProjectSpec, ProjectStatus
from controller.api.scene import ScenePhase
from controller.api.vocabulary import Cond, Reason
from controller.decide.conditions import get_condition
from controller.decide.project import ProjectObservation, SceneView, project_status

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def view(n: int, phase: ScenePhase = ScenePhase.COMPLETED, **kw: object) -> SceneView:
    return SceneView(name=f"s{n}", sequence=n, phase=phase, owned=True, **kw)  # type: ignore[arg-type]


def status_of(*scenes: SceneView) -> ProjectStatus:
    spec = ProjectSpec.model_validate({"prompt": "a", "generateVideos": True})
    return project_status(
        ProjectObservation(now=NOW, generation=1, status=ProjectStatus(), spec=spec, scenes=scenes)
    )


def test_all_clips_verified_is_ready() -> None:
    s = status_of(view(1), view(2))
    assert (s.completed_scenes, s.phase) == (2, ProjectPhase.COMPLETED)
    assert get_condition(s.conditions, Cond.READY).status == "True"


def test_an_ignored_missing_clip_makes_the_project_not_ready_without_failing_it() -> None:
    s = status_of(view(1), view(2, clip_missing=True))
    assert (s.completed_scenes, s.failed_scenes, s.phase) == (2, 0, ProjectPhase.COMPLETED)
    videos = get_condition(s.conditions, Cond.VIDEOS_READY)
    assert (videos.status, videos.reason) == ("False", Reason.CLIP_MISSING)
    assert videos.message == "1 clip missing from S3 (repair.missingClip is Ignore)"
    ready = get_condition(s.conditions, Cond.READY)
    assert (ready.status, ready.reason) == ("False", Reason.CLIP_MISSING)


def test_scenes_still_running_are_in_progress() -> None:
    s = status_of(view(1), view(2, ScenePhase.PROCESSING))
    videos = get_condition(s.conditions, Cond.VIDEOS_READY)
    assert (videos.reason, s.phase) == (Reason.IN_PROGRESS, ProjectPhase.PROCESSING)


def test_scenes_parked_for_a_job_slot_are_counted_in_the_project_message() -> None:
    """A Scene that waits for a slot need not write that itself: its Project says it."""
    spec = ProjectSpec.model_validate({"prompt": "a", "generateVideos": True})
    scenes = (view(1), view(2, ScenePhase.PENDING), view(3, ScenePhase.PENDING))
    s = project_status(
        ProjectObservation(
            now=NOW, generation=1, status=ProjectStatus(), spec=spec, scenes=scenes, waiting=2
        )
    )
    videos = get_condition(s.conditions, Cond.VIDEOS_READY)
    assert videos is not None and videos.reason == Reason.IN_PROGRESS
    assert videos.message == "1 of 3 clips ready; 2 scenes waiting for a free job slot"
    none_waiting = get_condition(status_of(*scenes).conditions, Cond.VIDEOS_READY)
    assert none_waiting is not None and none_waiting.message == "1 of 3 clips ready"
