"""The annotation video.scene-operator.io/paused: "true" (`kubectl video pause`) pauses a
Project exactly as spec.paused does, so a person can hold a Project a GitOps tool owns;
removing it (`kubectl video resume`) lets the work start."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from controller.api import vocabulary as v
from controller.controllers.specs import ProjectSpecs
from controller.decide import tenancy
from controller.settings import Settings
from tests.unit.harness import NS, Harness

SPEC = {"prompt": "a lighthouse", "planner": {"provider": "local"}}


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


def test_the_annotation_pauses_the_spec_the_operator_acts_on() -> None:
    settings = Settings()
    paused = {v.ANNOTATION_PAUSED: "true"}
    spec, problem = tenancy.project_spec(SPEC, settings, annotations=paused)
    assert problem is None and spec is not None and spec.paused
    for other in (None, {}, {v.ANNOTATION_PAUSED: "false"}, {v.ANNOTATION_PAUSED: ""}):
        spec, _ = tenancy.project_spec(SPEC, settings, annotations=other)
        assert spec is not None and not spec.paused
    spec, _ = tenancy.project_spec({**SPEC, "paused": True}, settings, annotations=None)
    assert spec is not None and spec.paused  # spec.paused alone still pauses


def test_the_kept_spec_follows_the_annotation_though_the_generation_does_not_move() -> None:
    specs, settings = ProjectSpecs(), Settings()
    body: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": NS, "uid": "u", "generation": 1},
        "spec": SPEC,
    }
    first, _ = specs.of(body, settings)
    assert first is not None and not first.paused
    body["metadata"]["annotations"] = {v.ANNOTATION_PAUSED: "true"}
    paused, _ = specs.of(body, settings)
    assert paused is not None and paused.paused
    assert specs.of(body, settings, limits=False)[0].paused  # type: ignore[union-attr]
    del body["metadata"]["annotations"]
    assert not specs.of(body, settings)[0].paused  # type: ignore[union-attr]


def _paused_project(h: Harness) -> None:
    h.project()  # planned and created by the harness's defaults: 2 scenes on replicate
    body = copy.deepcopy(h.kube.obj(v.PROJECT_PLURAL, NS, "p"))
    assert body is not None
    body["metadata"]["annotations"] = {v.ANNOTATION_PAUSED: "true"}
    h.kube.objects.pop((v.PROJECT_PLURAL, NS, "p"))  # created paused, as kubectl apply would
    h.pending.clear()
    del body["metadata"]["uid"], body["metadata"]["resourceVersion"]
    h.kube.put(v.PROJECT_PLURAL, body)


def test_a_project_paused_by_annotation_starts_no_job_until_resumed() -> None:
    h = Harness()

    async def go() -> None:
        _paused_project(h)
        await h.settle(seconds=120)
        assert h.replicate.starts == 0
        assert h.scene_names() == ["p-scene-001", "p-scene-002"]  # planning is not held
        for name in h.scene_names():
            ready = cond(h.status(name), v.Cond.READY)
            assert ready["reason"] == v.Reason.PAUSED
            assert v.ANNOTATION_PAUSED in ready["message"]
        project = h.project_status()
        assert cond(project, v.Cond.PAUSED)["status"] == "True"
        assert v.ANNOTATION_PAUSED in cond(project, v.Cond.PAUSED)["message"]
        generation = h.kube.obj(v.PROJECT_PLURAL, NS, "p")["metadata"]["generation"]  # type: ignore[index]

        # `kubectl video resume`: the annotation removed (a merge patch with null)
        current = copy.deepcopy(h.kube.obj(v.PROJECT_PLURAL, NS, "p"))
        assert current is not None
        current["metadata"]["annotations"] = {v.ANNOTATION_PAUSED: None}
        h.kube.put(v.PROJECT_PLURAL, current)
        assert h.kube.obj(v.PROJECT_PLURAL, NS, "p")["metadata"]["generation"] == generation  # type: ignore[index]
        await h.settle(seconds=120)
        assert h.replicate.starts == 2
        assert cond(h.project_status(), v.Cond.PAUSED)["status"] == "False"

    asyncio.run(go())


def test_annotating_a_running_project_holds_its_next_jobs() -> None:
    """Pausing stops new jobs only: like spec.paused, a job already paid for finishes."""
    h = Harness(project_concurrency=1)

    async def go() -> None:
        h.project()
        await h.settle(seconds=1)
        assert h.replicate.starts == 1  # one job at a time for this Project
        h.kube.annotate(v.PROJECT_PLURAL, NS, "p", **{v.ANNOTATION_PAUSED: "true"})
        await h.settle(seconds=600)
        assert h.replicate.starts == 1
        phases = sorted(h.phases().values())
        assert phases.count("Completed") == 1, phases  # the paid job finished

    asyncio.run(go())
