"""Budget cannot be refunded by deleting Scenes (issue 12 #8): the Project's status holds
generationsUsed, a counter that recounts may raise but never lower, and the budget check
reads it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.api.project import ProjectSpec, ProjectStatus
from controller.api.scene import ScenePhase
from controller.controllers.capacity import Capacity
from controller.decide.project import ProjectObservation, SceneView, project_status
from controller.informer.cache import Store
from controller.settings import Settings

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def view(name: str, started: int, pending: bool = False) -> SceneView:
    return SceneView(
        name=name,
        sequence=int(name[-1]),
        phase=ScenePhase.COMPLETED,
        owned=True,
        generations_started=started,
        pending_start=pending,
    )


def recount(previous: int, *scenes: SceneView, cap: int = 2) -> ProjectStatus:
    spec = ProjectSpec(prompt="x", generate_videos=True, budget={"max_generations": cap})  # type: ignore[arg-type]
    obs = ProjectObservation(
        now=NOW,
        generation=1,
        status=ProjectStatus(generations_used=previous),
        spec=spec,
        scenes=scenes,
        budget_used=max(previous, sum(s.generations_started for s in scenes)),
    )
    return project_status(obs)


def test_the_counter_rises_with_the_scenes_and_never_falls() -> None:
    assert recount(0, view("s1", 1), view("s2", 1)).generations_used == 2
    # A Scene deleted: its generation stays used, and the budget stays exhausted.
    after = recount(2, view("s1", 1))
    assert after.generations_used == 2
    exhausted = next(c for c in after.conditions if c.type == "BudgetExhausted")
    assert exhausted.status == "True"
    assert recount(2).generations_used == 2  # every Scene deleted


def test_a_pending_start_is_counted_only_once_it_is_known_to_be_paid() -> None:
    # The marker (no job id yet) is not in the counter: a refused start gives it back.
    assert recount(0, view("s1", 1, pending=True)).generations_used == 0
    assert recount(0, view("s1", 1)).generations_used == 1


def scene(name: str, started: int, job_id: str | None = "j") -> dict[str, Any]:
    status: dict[str, Any] = {"generationsStarted": started}
    if job_id is not None or started:
        status["generation"] = {"provider": "local", "jobId": job_id}
    return {
        "metadata": {"namespace": "ns", "name": name, "resourceVersion": "1"},
        "spec": {"projectRef": {"name": "p"}},
        "status": status,
    }


def test_the_budget_check_reads_the_counter_after_scenes_are_deleted() -> None:
    store = Store()
    cap = Capacity(Settings(), store)
    project = {"metadata": {"namespace": "ns", "name": "p", "resourceVersion": "1"}}
    store.upsert_project({**project, "status": {"generationsUsed": 3}})
    store.upsert_scene(scene("p-scene-001", 1))
    # Two Scenes that used a generation each were deleted: 3 used, not 1.
    assert cap.budget_used(("ns", "p")) == 3
    # A pending start (no job id) adds to the counter, which does not hold it yet.
    store.upsert_scene(scene("p-scene-002", 1, job_id=None))
    assert cap.pending_by_project[("ns", "p")] == 1
    assert cap.budget_used(("ns", "p")) == 4
    store.delete_scene(("ns", "p-scene-002"))
    assert cap.pending_by_project[("ns", "p")] == 0
    assert cap.budget_used(("ns", "p")) == 3
    # Without a counter (a Project not recounted yet), the Scenes' own totals count.
    store.upsert_project({**project, "metadata": {**project["metadata"], "resourceVersion": "2"}})
    assert cap.budget_used(("ns", "p")) == 1
